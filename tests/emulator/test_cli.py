"""``ssmsh emulator`` as a real subprocess, and its option parsing."""

from __future__ import annotations

import argparse
import os
import selectors
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest

from ssmsh.emulator import DEFAULT_TARGET
from ssmsh.emulator.cli import build_config, configure_parser
from ssmsh.emulator.config import is_loopback
from tests.conftest import scaled
from tests.emulator.conftest import make_client

MODULE = [sys.executable, "-m", "ssmsh.emulator.cli"]


class Running:
    def __init__(self, proc: subprocess.Popen[bytes], url: str) -> None:
        self.proc = proc
        self.url = url
        self.rest_of_stdout = b""

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(signum)
        out, err = self.proc.communicate(timeout=scaled(15))
        self.rest_of_stdout = out
        return self.proc.returncode, err.decode(errors="replace")


def read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    line = b""
    while not line.endswith(b"\n"):
        if not selector.select(timeout):
            raise TimeoutError("the emulator printed no endpoint line")
        chunk = os.read(proc.stdout.fileno(), 1)
        if not chunk:
            break
        line += chunk
    return line


def start(*args: str, command: list[str] = MODULE) -> Running:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        line = read_line(proc, scaled(20))
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    return Running(proc, line.decode().rstrip("\n"))


@pytest.fixture
def running() -> Iterator[Running]:
    emulator = start("--target", "i-0aaaaaaaaaaaaaaaa,name=web")
    yield emulator
    if emulator.proc.poll() is None:
        emulator.proc.kill()
        emulator.proc.communicate()


def test_first_line_is_the_endpoint_and_sigterm_stops_cleanly(running: Running) -> None:
    assert running.url.startswith("http://127.0.0.1:")
    assert running.url.split(":")[-1].isdigit()
    ssm = make_client("ssm", running.url)
    response = ssm.start_session(Target="i-0aaaaaaaaaaaaaaaa")
    assert response["StreamUrl"].startswith("ws://127.0.0.1:")
    names = {
        i["InstanceId"]: i["ComputerName"]
        for i in ssm.describe_instance_information()["InstanceInformationList"]
    }
    assert set(names) == {DEFAULT_TARGET, "i-0aaaaaaaaaaaaaaaa"}
    code, err = running.stop(signal.SIGTERM)
    assert code == 0
    assert "Traceback" not in err
    assert f"export AWS_ENDPOINT_URL={running.url}" in err
    assert "i-0aaaaaaaaaaaaaaaa  Name=web" in err
    assert running.rest_of_stdout == b""  # nothing but the URL on stdout


def test_ctrl_c_stops_cleanly(running: Running) -> None:
    assert make_client("ssm", running.url).get_connection_status(Target=DEFAULT_TARGET)
    code, err = running.stop(signal.SIGINT)
    assert code == 0
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


def test_credentials_are_verified() -> None:
    emulator = start("--credentials", "AKIDCLI:cli-secret", "--credentials", "AKIDTWO:two")
    try:
        assert make_client("ssm", emulator.url, "AKIDCLI", "cli-secret").start_session(
            Target=DEFAULT_TARGET
        )
        assert make_client("ssm", emulator.url, "AKIDTWO", "two").describe_sessions(State="Active")[
            "Sessions"
        ]
        with pytest.raises(botocore.exceptions.ClientError) as exc_info:
            make_client("ssm", emulator.url, "AKIDCLI", "wrong").start_session(
                Target=DEFAULT_TARGET
            )
        assert exc_info.value.response["Error"]["Code"] == "InvalidSignatureException"
    finally:
        code, err = emulator.stop()
    assert code == 0
    assert "cli-secret" not in err  # secrets are never echoed


def test_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [*MODULE, "--port", str(port)], capture_output=True, timeout=scaled(20)
        )
    assert result.returncode == 1
    assert result.stdout == b""
    err = result.stderr.decode()
    assert "cannot listen" in err and "Traceback" not in err


def test_non_loopback_host_warns_loudly() -> None:
    # 192.0.2.1 (TEST-NET-1) is not configured here: binding fails, no traffic is sent.
    result = subprocess.run(
        [*MODULE, "--host", "192.0.2.1"], capture_output=True, timeout=scaled(20)
    )
    err = result.stderr.decode()
    assert "WARNING" in err and "not a loopback address" in err
    assert result.returncode == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "args",
    [
        ["--drop", "1.5"],
        ["--credentials", "no-colon"],
        ["--target", "i-1,colour=blue"],
        ["--port", "70000"],
        ["--close-every", "0"],
        ["--delay", "-5"],
        ["--kms-key", "a/b/c"],
        ["--identity", "AKID=alice"],
    ],
)
def test_bad_options(args: list[str]) -> None:
    result = subprocess.run([*MODULE, *args], capture_output=True, timeout=scaled(20))
    assert result.returncode == 2
    assert result.stdout == b""
    assert b"Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(b"ssmsh emulator")


def parse(*args: str) -> argparse.Namespace:
    return configure_parser(argparse.ArgumentParser(prog="ssmsh emulator")).parse_args(args)


def test_build_config() -> None:
    config = build_config(
        parse(
            "--target",
            "i-0bbbbbbbbbbbbbbbb,name=db,kms=alias/db,status=ConnectionLost",
            "--target",
            f"{DEFAULT_TARGET},kms=alias/default",
            "--kms-key",
            "alias/extra",
            "--credentials",
            "A:B",
            "--idle-timeout",
            "30",
            "--max-session-duration",
            "600",
            "--agent-pacing",
            "--shell-exit-status",
            "--close-every",
            "5",
            "--reset-every",
            "7",
            "--drop",
            "0.1",
            "--duplicate",
            "0.2",
            "--reorder",
            "0.3",
            "--delay",
            "40",
            "--seed",
            "7",
        )
    )
    targets = {t.instance_id: t for t in config.targets}
    assert targets[DEFAULT_TARGET].kms_key_id == "alias/default"
    db = targets["i-0bbbbbbbbbbbbbbbb"]
    assert (db.name, db.kms_key_id, db.ping_status) == ("db", "alias/db", "ConnectionLost")
    assert config.kms_keys == ["alias/extra"]
    assert config.credential_map() == {"A": "B"}
    assert (config.idle_timeout, config.max_session_duration) == (30.0, 600.0)
    assert config.agent_pacing and config.shell_exit_status
    faults: Any = config.faults
    assert (faults.close_every, faults.reset_every) == (5.0, 7.0)
    assert (faults.drop, faults.duplicate, faults.reorder) == (0.1, 0.2, 0.3)
    assert (faults.delay_ms, faults.seed) == (40.0, 7)


def test_defaults() -> None:
    config = build_config(parse())
    assert config.host == "127.0.0.1" and config.port == 0
    assert [t.instance_id for t in config.targets] == [DEFAULT_TARGET]
    assert config.credentials is None
    assert config.identities == {}


def test_identities() -> None:
    alice = "arn:aws:iam::123456789012:user/alice"
    session = "arn:aws:sts::123456789012:assumed-role/Approvers/bob"
    config = build_config(parse("--identity", f"AKIDA={alice}", "--identity", f"AKIDB={session}"))
    assert config.identities == {"AKIDA": alice, "AKIDB": session}


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_ssmsh_emulator_command() -> None:
    emulator = start("--port", "0", command=[sys.executable, "-m", "ssmsh", "emulator"])
    try:
        assert emulator.url.startswith("http://127.0.0.1:")
        kms = make_client("kms", emulator.url)
        with pytest.raises(botocore.exceptions.ClientError) as exc_info:
            kms.decrypt(CiphertextBlob=b"x" * 40)
        assert exc_info.value.response["Error"]["Code"] == "InvalidCiphertextException"
    finally:
        code, err = emulator.stop()
    assert code == 0 and "Traceback" not in err


def test_added_targets_are_not_named_like_the_default() -> None:
    from ssmsh.emulator.cli_types import _target

    extra = _target("i-0aaaaaaaaaaaaaaaa")
    assert extra.name == ""
    assert "Name" not in extra.all_tags
    assert _target("i-0aaaaaaaaaaaaaaaa,name=db").name == "db"


@pytest.mark.parametrize("text", ["bad id", "i-xyz", "i-0123", "web-1"])
def test_bad_target_ids_are_refused(text: str) -> None:
    import argparse

    from ssmsh.emulator.cli_types import _target

    with pytest.raises(argparse.ArgumentTypeError):
        _target(text)
