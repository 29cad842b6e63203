"""``ssmsh cp`` against the emulator (whose agent runs the helper in a real pty, as the
official agent runs an InteractiveCommands command): real files, real processes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ssmsh.emulator import DEFAULT_TARGET, Emulator, EmulatorConfig, TargetRecord
from tests.conftest import scaled

from .harness import cli_env, run_cli

pytestmark = pytest.mark.timeout(120)

#: The size of the big striped download: the issue's 100 MiB by hand
#: (SSMSH_CP_BIG_MIB=100); less by default, to keep the suite within its time.
BIG_MIB = int(os.environ.get("SSMSH_CP_BIG_MIB", "12"))


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """Unpaced: the agent's 1 KiB messages without its 1 ms pause after each, so that
    megabytes take seconds (bench_cp.py measures the official agent's pace)."""
    config = EmulatorConfig(
        agent_pacing=False, targets=[TargetRecord(DEFAULT_TARGET, name="web-1")]
    )
    async with Emulator(config) as emu:
        yield emu


async def cp(emulator: Emulator, *words: str, timeout: float = 60) -> tuple[int, str]:
    code, out, err = await run_cli(
        ["cp", "--endpoint-url", emulator.endpoint_url, *words], timeout=timeout
    )
    assert out == b""
    return code, err.decode()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_files_with_every_byte_value_go_up_and_come_back(
    emulator: Emulator, tmp_path: Path
) -> None:
    here, there, back = tmp_path / "here", tmp_path / "there", tmp_path / "back"
    for d in (here, there, back):
        d.mkdir()
    binary = here / "all bytes.bin"
    binary.write_bytes(bytes(range(256)) * 1000 + random.Random(1).randbytes(1_300_000))
    (here / "empty").write_bytes(b"")
    quoted = here / 'it\'s a "file" $(x) ; `y`'
    quoted.write_bytes(b"spaces and quotes\n")
    sources = [str(binary), str(here / "empty"), str(quoted)]
    code, err = await cp(emulator, "-j", "3", *sources, f"web-1:{there}/")
    assert (code, err) == (0, "")
    for source in sources:
        assert (there / Path(source).name).read_bytes() == Path(source).read_bytes()
    assert not list(there.glob("*.ssmsh-part"))
    remote = [f"web-1:{there / Path(s).name}" for s in sources]
    code, err = await cp(emulator, "-j", "2", *remote, str(back))
    assert (code, err) == (0, "")
    umask = os.umask(0o022)
    os.umask(umask)
    for source in sources:
        assert (back / Path(source).name).read_bytes() == Path(source).read_bytes()
        assert (back / Path(source).name).stat().st_mode & 0o777 == 0o666 & ~umask  # as cp's
    # One file to a new name, each way; a relative remote path is from the home directory.
    code, err = await cp(emulator, str(binary), f"web-1:{there}/renamed")
    assert (code, digest(there / "renamed")) == (0, digest(binary)), err


async def test_remote_patterns(emulator: Emulator, tmp_path: Path) -> None:
    logs, here = tmp_path / "logs", tmp_path / "here"
    logs.mkdir()
    here.mkdir()
    for name in ("app 1.log", "app-2.log", "notes.txt"):
        (logs / name).write_bytes(name.encode())
    code, err = await cp(emulator, f"web-1:{logs}/*.log", f"web-1:{logs}/*.nothing", str(here))
    assert sorted(p.name for p in here.iterdir()) == ["app 1.log", "app-2.log"]
    assert (code, err.strip()) == (1, f"ssmsh: web-1:{logs}/*.nothing: no match")


async def test_directories_with_modes_and_times(emulator: Emulator, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "deep.txt").write_bytes(b"deep\n")
    (tree / "top.sh").write_bytes(b"#!/bin/sh\n")
    (tree / "a" / "empty").write_bytes(b"")
    os.chmod(tree / "top.sh", 0o751)
    os.chmod(tree / "a", 0o700)
    for i, path in enumerate(sorted(tree.rglob("*"), reverse=True)):  # deepest first
        os.utime(path, (1_600_000_000 + i, 1_600_000_000 + i))
    up, down = tmp_path / "up", tmp_path / "down"
    up.mkdir()
    code, err = await cp(emulator, "-rp", str(tree), f"web-1:{up}")
    assert (code, err) == (0, "")
    code, err = await cp(emulator, "-rp", f"web-1:{up}/tree", str(down))  # down: a new name
    assert (code, err) == (0, "")
    for copy in (up / "tree", down):
        for original in tree.rglob("*"):
            other = copy / original.relative_to(tree)
            assert other.stat().st_mode == original.stat().st_mode, other
            assert int(other.stat().st_mtime) == int(original.stat().st_mtime), other
            if original.is_file():
                assert other.read_bytes() == original.read_bytes()


async def test_a_big_file_striped_over_sessions(emulator: Emulator, tmp_path: Path) -> None:
    big = tmp_path / "big"
    with big.open("wb") as f:
        rng = random.Random(2)
        for _ in range(BIG_MIB):
            f.write(rng.randbytes(1 << 20))
    down = tmp_path / "down"
    code, _, err = await run_cli(
        ["cp", "-v", "-j", "4", "--endpoint-url", emulator.endpoint_url, f"web-1:{big}", str(down)],
        timeout=30 + BIG_MIB * 3,
    )
    assert code == 0, err
    assert digest(down) == digest(big)
    assert re.search(rb"over 4 sessions", err), err


async def test_compressed_downloads_move_less(emulator: Emulator, tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(
        b"".join(b"2026-12-06 12:00:%02d INFO request %d ok\n" % (i % 60, i) for i in range(90_000))
    )
    down = tmp_path / "down.log"
    code, _, err = await run_cli(
        [
            "cp",
            "-v",
            "-C",
            "-j",
            "1",
            "--endpoint-url",
            emulator.endpoint_url,
            f"web-1:{log}",
            str(down),
        ],
        timeout=60,
    )
    assert code == 0, err
    assert down.read_bytes() == log.read_bytes()
    received = sum(int(n) for n in re.findall(rb"bytes_in=(\d+)", err))
    assert 0 < received < log.stat().st_size // 4, err  # base64 alone would be 4/3 of it


async def test_an_interrupted_copy_resumes_with_only_what_is_missing(
    emulator: Emulator, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    source.write_bytes(random.Random(4).randbytes(12 << 20))
    down = tmp_path / "down"
    part = tmp_path / "down.ssmsh-part"
    args = ["cp", "-v", "-j", "1", "--endpoint-url", emulator.endpoint_url]
    proc = await asyncio.create_subprocess_exec(
        "python", "-m", "ssmsh", *args, f"web-1:{source}", str(down),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=cli_env(),
    )  # fmt: skip
    chunk = 1 << 20
    original = source.read_bytes()

    def chunks_here() -> int:
        try:
            data = part.read_bytes()
        except OSError:
            return 0
        return sum(
            1 for i in range(0, len(data), chunk) if data[i : i + chunk] == original[i : i + chunk]
        )

    async with asyncio.timeout(scaled(40)):
        while chunks_here() < 3:
            await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = await proc.communicate()
    assert proc.returncode == 130, err
    assert b"--resume" in err and not down.exists() and part.exists()
    code, _out, err2 = await run_cli([*args, "--resume", f"web-1:{source}", str(down)], timeout=30)
    assert code == 0, err2
    assert down.read_bytes() == original and not part.exists()
    moved = float(re.search(rb"([0-9.]+) MiB moved", err2).group(1))  # type: ignore[union-attr]
    assert moved <= 12 - 3, err2
    # Again: nothing left to move.
    code, _, err3 = await run_cli([*args, "--resume", f"web-1:{source}", str(down)], timeout=60)
    assert code == 0 and b"already the same on both sides" in err3, err3


async def test_an_interrupted_upload_resumes(emulator: Emulator, tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.write_bytes(random.Random(6).randbytes(6 << 20))
    there = tmp_path / "there"
    there.mkdir()
    part = there / "source.ssmsh-part"
    # A copy cut short (its part holds the first 4 MiB; the rest are holes).
    with part.open("wb") as f:
        f.write(source.read_bytes()[: 4 << 20])
        f.truncate(6 << 20)
    code, _out, err = await run_cli(
        [
            "cp",
            "-v",
            "--resume",
            "--endpoint-url",
            emulator.endpoint_url,
            str(source),
            f"web-1:{there}",
        ],
        timeout=60,
    )
    assert code == 0, err
    assert (there / "source").read_bytes() == source.read_bytes() and not part.exists()
    assert b"2.0 MiB moved" in err, err


@pytest.mark.parametrize(
    ("words", "code", "message"),
    [
        (["{tmp}/nothing", "web-1:/tmp/"], 1, "{tmp}/nothing: No such file or directory"),
        (["web-1:{tmp}/nothing", "{tmp}"], 1, "web-1:{tmp}/nothing: no such file or directory"),
        (["web-1:{tmp}", "{tmp}/x"], 1, "is a directory (give -r to copy it)"),
        (["{tmp}", "{tmp}/y"], 255, "one side must be remote (TARGET:PATH)"),
        (["web-1:/a", "web-1:/b"], 255, "the sources must be local"),
        (["{tmp}/f", "nosuch:/tmp/"], 255, "no managed instance named 'nosuch'"),
        (["{tmp}/f", "web-1:/no/such/dir/"], 1, "no such directory"),
        (["{tmp}/f", "{tmp}/f", "web-1:{tmp}/f"], 1, "web-1:{tmp}/f: not a directory"),
        (["-r", "web-1:{tmp}", "{tmp}/f"], 1, "{tmp}/f: not a directory"),
        (["{tmp}/f", "web-1:/proc/"], 1, "web-1:/proc/f: "),
        (["-j", "0", "{tmp}/f", "web-1:/tmp/"], 255, "-j 0 is out of range"),
    ],
)
async def test_mistakes_get_one_line(
    emulator: Emulator, tmp_path: Path, words: list[str], code: int, message: str
) -> None:
    (tmp_path / "f").write_bytes(b"x")
    got, err = await cp(emulator, *(w.format(tmp=tmp_path) for w in words), timeout=30)
    lines = err.strip().splitlines()
    assert got == code and len(lines) == 1 and message.format(tmp=tmp_path) in lines[0], err
    assert "Traceback" not in err
