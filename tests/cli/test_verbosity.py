"""What ``-v``, ``-vv``, ``--debug`` and ``--log-file`` mean, wherever they are written.

``-v`` is one thing everywhere, before or after the command name: more status lines
(``forward``: a line per connection; every session: how it started and ended).
``--debug`` (or ``-vv``) is the debug log. ``--log-file PATH`` always gets the debug
log, and leaves stderr as it would have been. Real processes, real pipes.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import pytest

from ssmsh.emulator import DEFAULT_TARGET, Emulator
from tests.conftest import scaled
from tests.tunnel.helpers import echo_server, exchange

from .harness import cli_env, run_cli

pytestmark = pytest.mark.timeout(60)

ESTABLISHED = re.compile(r"^ssmsh: session \S+ established: type=\S+ agent=", re.M)
DEBUG_LINE = re.compile(r"^\S+ \S+ DEBUG ssmsh\.", re.M)


async def test_v_is_status_lines_not_the_debug_log() -> None:
    status, out, err = await run_cli(["-v", "exec", "--local", "--", "echo", "hi"])
    text = err.decode()
    assert status == 0, text
    assert out == b"hi\n"
    assert ESTABLISHED.search(text), text
    assert re.search(r"^ssmsh: session \S+ ended: duration=", text, re.M), text
    assert not DEBUG_LINE.search(text), text
    assert "Traceback" not in text


@pytest.mark.parametrize("flag", [["-vv"], ["--debug"], ["-v", "-v"]])
async def test_vv_and_debug_are_the_debug_log(flag: list[str]) -> None:
    status, out, err = await run_cli([*flag, "exec", "--local", "--", "echo", "hi"])
    assert status == 0, err
    assert out == b"hi\n"
    assert DEBUG_LINE.search(err.decode()), err


async def test_without_v_no_session_lines() -> None:
    status, _, err = await run_cli(["exec", "--local", "--", "true"])
    assert status == 0, err
    assert not ESTABLISHED.search(err.decode()), err


async def test_log_file_without_debug_holds_the_debug_log(tmp_path: Path) -> None:
    log = tmp_path / "ssmsh.log"
    status, _, err = await run_cli(["exec", "--local", "--log-file", str(log), "--", "true"])
    assert status == 0, err
    text = err.decode()
    assert not DEBUG_LINE.search(text) and not ESTABLISHED.search(text), text
    written = log.read_text()
    assert DEBUG_LINE.search(written), written
    assert " INFO ssmsh.channel.connection: session " in written


async def test_log_file_gets_the_traceback_of_a_failure(tmp_path: Path) -> None:
    log = tmp_path / "ssmsh.log"
    status, _, err = await run_cli(
        ["shell", "--local", "--log-file", str(log), "--document", "AWS-StartSSHSession"]
    )
    assert status == 255
    assert err.decode().count("\n") == 1, err  # one line on stderr, as without the file
    assert "Traceback" in log.read_text()


@pytest.mark.parametrize("before", [True, False])
async def test_v_gives_forward_its_connection_lines_before_or_after_the_command(
    emulator: Emulator, before: bool
) -> None:
    async with echo_server() as dest:
        words = ["forward", DEFAULT_TARGET, f"0:{dest}"]
        argv = ["-v", *words] if before else [*words, "-v"]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ssmsh",
            "--endpoint-url",
            emulator.endpoint_url,
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=cli_env(),
        )
        assert proc.stderr is not None
        lines: list[str] = []
        try:
            async with asyncio.timeout(scaled(20)):
                while not any("listening on 127.0.0.1:" in line for line in lines):
                    lines.append((await proc.stderr.readline()).decode())
                port = int(re.findall(r"127\.0\.0\.1:(\d+)", "".join(lines))[0])
                assert await exchange("127.0.0.1", port, b"hello") == b"hello"
                while not any(" #1: closed after " in line for line in lines):
                    line = (await proc.stderr.readline()).decode()
                    assert line, lines
                    lines.append(line)
        finally:
            proc.send_signal(signal.SIGINT)
            async with asyncio.timeout(scaled(15)):
                rest = (await proc.stderr.read()).decode()
                status = await proc.wait()
        text = "".join(lines) + rest
        assert status == 0, text
        assert re.search(r"#1: open from 127\.0\.0\.1:\d+", text), text
        assert not DEBUG_LINE.search(text), text
