"""The session record that ``ssmsh attach`` reads (:mod:`ssmsh.cli.resumable`)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ssmsh.cli.resumable import (
    COUNTERS_SIZE,
    AttachHeader,
    RecordWriter,
    list_records,
    owner_alive,
    pack_counters,
    process_start,
    read_record,
    record_path,
    sessions_dir,
    unpack_counters,
    write_record,
)
from ssmsh.cli.shell import aws_in_use
from ssmsh.exceptions import UsageError
from ssmsh.protocol.constants import PayloadType
from ssmsh.protocol.datachannel import SequenceState
from ssmsh.protocol.session import ClientSession

from .harness import run_cli

SID = "alice-0123456789abcdef0"


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    return tmp_path


def header(**changes: object) -> AttachHeader:
    base = AttachHeader(
        session_id=SID,
        target_id="i-0123456789abcdef0",
        stream_url="wss://example.invalid/v1/data-channel/" + SID,
        client_id="6f1c2d9e-0000-4000-8000-000000000000",
        region="us-east-1",
        profile=None,
        endpoint_url="http://127.0.0.1:1",
        session_type="Standard_Stream",
        agent_version="",
        client_version="1.2.677.0",
        handshake="none",
        encrypted=False,
        pid=os.getpid(),
        pid_start=process_start(os.getpid()),
        started=1_700_000_000.0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_the_directory_follows_xdg_state_home(state_home: Path) -> None:
    assert sessions_dir() == state_home / "ssmsh" / "sessions"
    assert record_path(SID) == state_home / "ssmsh" / "sessions" / f"{SID}.rec"
    with pytest.raises(UsageError):
        record_path("../etc/passwd")


def test_counters_round_trip_in_one_fixed_block() -> None:
    state = SequenceState(5_000_000_000, frozenset({5_000_000_002, 5_000_000_064}), 7, 9)
    block = pack_counters(state)
    assert len(block) == COUNTERS_SIZE
    assert unpack_counters(block) == state
    # Beyond the 64 numbers after next_in, an acked-ahead number cannot be kept.
    far = SequenceState(1, frozenset({66}), 0, 0)
    assert unpack_counters(pack_counters(far)) == SequenceState(1, frozenset(), 0, 0)


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda data: data[:40], "cut short"),
        (lambda data: data[:9] + b"\xff" + data[10:], "checksum"),
        (lambda data: data[:COUNTERS_SIZE] + b"{not json", "damaged"),
        (lambda data: data[:COUNTERS_SIZE] + b'{"session_id": 1}', "lacks"),
        (lambda data: b"XXXX" + data[4:], "checksum"),
        (lambda data: data.replace(b'"started":1700000000.0', b'"started":"x"'), "started"),
    ],
)
def test_a_torn_or_corrupt_record_is_one_line(damage: object, why: str) -> None:
    path = record_path(SID)
    os.close(write_record(path, header(), pack_counters(SequenceState(1, frozenset(), 0, 0))))
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    with pytest.raises(UsageError, match=why) as info:
        read_record(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    (item,) = list(list_records())
    assert isinstance(item, tuple)
    assert item[0] == path and why in item[1]


def test_a_missing_record_says_where_to_look() -> None:
    with pytest.raises(UsageError, match="ssmsh attach lists"):
        read_record(record_path(SID))


def test_the_writer_starts_once_established_and_keeps_the_counters(tmp_path: Path) -> None:
    warnings: list[str] = []
    path = record_path(SID)
    writer = RecordWriter(path, lambda protocol: header(), warnings.append)
    protocol = ClientSession()
    writer(protocol)
    assert not path.exists()  # nothing to take over before the session is established
    protocol.restore(
        session_type="Standard_Stream",
        agent_version="",
        sequence=SequenceState(3, frozenset(), 2, 2),
        size=(80, 24),
        now=0.0,
    )
    writer(protocol)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_record(path).state == SequenceState(3, frozenset(), 2, 2)
    protocol.connection_made(0.0)
    protocol.send_input(b"ls\n", 0.0)
    writer(protocol)  # before the frame goes: the record already counts it
    assert read_record(path).state == SequenceState(3, frozenset(), 2, 3)
    assert read_record(path).header == header()
    writer.remove()
    assert not path.exists() and warnings == []


def test_the_record_names_the_aws_settings_in_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given by the environment, they must still be there for an attach from a shell
    # without it: ResumeSession elsewhere would take the session for ended.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    for name in ("SSMSH_CONFIG", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_SSM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_PROFILE", "prod")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    args = argparse.Namespace(region=None, profile=None, endpoint_url=None, local=False)
    assert aws_in_use(args, "eu-west-1") == {
        "region": "eu-west-1",
        "profile": "prod",
        "endpoint_url": "http://127.0.0.1:1",
    }
    args.profile = "dev"  # the command line (or an alias) first
    assert aws_in_use(args, "eu-west-1")["profile"] == "dev"


def test_a_record_taken_over_is_not_removed_by_the_process_it_was_taken_from() -> None:
    path = record_path(SID)
    protocol = ClientSession()
    protocol.restore(
        session_type="Standard_Stream",
        agent_version="",
        sequence=SequenceState(0, frozenset(), 0, 0),
        size=(80, 24),
        now=0.0,
    )
    first = RecordWriter(path, lambda protocol: header(), print)
    first(protocol)
    second = RecordWriter(path, lambda protocol: header(pid=os.getpid() + 1), print)
    second(protocol)  # ssmsh attach --force, while the first still runs
    first.remove()  # the first one's session ends there
    assert read_record(path).header.pid == os.getpid() + 1
    second.remove()
    assert not path.exists()


def test_a_kms_session_leaves_its_header_only() -> None:
    path = record_path(SID)
    writer = RecordWriter(path, lambda protocol: header(encrypted=True), print)
    protocol = ClientSession()
    protocol.restore(
        session_type="Standard_Stream",
        agent_version="3.3.1142.0",
        sequence=SequenceState(0, frozenset(), 0, 0),
        size=(80, 24),
        now=0.0,
    )
    writer(protocol)
    record = read_record(path)
    assert record.header.encrypted and record.state is None
    assert path.read_bytes()[:COUNTERS_SIZE] == bytes(COUNTERS_SIZE)
    protocol.channel.send_data(PayloadType.OUTPUT, b"x", 0.0)
    writer(protocol)
    assert read_record(path).state is None


def test_owner_alive() -> None:
    assert owner_alive(header())
    assert not owner_alive(header(pid_start=(process_start(os.getpid()) or 0) + 1))
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    assert not owner_alive(header(pid=int(done.stdout)))


def _write(state_home: Path, **changes: object) -> Path:
    path = record_path(SID)
    counters = (
        bytes(COUNTERS_SIZE)
        if changes.get("encrypted")
        else pack_counters(SequenceState(0, frozenset(), 0, 0))
    )
    os.close(write_record(path, header(**changes), counters))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({}, f"session {SID} is still held by ssmsh process"),
        ({"encrypted": True, "pid": 0}, f"session {SID} is encrypted with KMS"),
    ],
)
async def test_attach_refuses_in_one_line(
    state_home: Path, changes: dict[str, object], message: str
) -> None:
    path = _write(state_home, **changes)
    status, out, err = await run_cli(["attach", SID], env={"XDG_STATE_HOME": str(state_home)})
    assert status == 255 and out == b""
    (line,) = err.decode().splitlines()
    assert line.startswith(f"ssmsh: {message}")
    assert path.exists()


async def test_attach_lists_the_records(state_home: Path) -> None:
    env = {"XDG_STATE_HOME": str(state_home)}
    status, out, err = await run_cli(["attach"], env=env)
    assert (status, out) == (0, b"") and b"no session records" in err
    _write(state_home)
    status, out, _ = await run_cli(["attach"], env=env)
    head, row = out.decode().splitlines()
    assert head.split() == ["SESSION", "TARGET", "AGE", "STATE"]
    assert row.startswith(SID) and "held by ssmsh process" in row
