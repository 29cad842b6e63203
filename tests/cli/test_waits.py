"""Long waits say what they wait for, on a terminal (issue #17, item 10).

After about two seconds a line names what is awaited (the SSM endpoint, the agent), the
time so far or left, and the way out; it is redrawn over itself and gone when the wait
ends. While reconnecting, a line counts down the time left. Scripts (stderr not a
terminal) and ``-q`` get none of it. Real processes: under a pty, or with pipes.
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
from collections.abc import Iterator

import pytest

from ssmsh.emulator import DEFAULT_TARGET, Emulator
from tests.conftest import scaled

from .harness import PROMPT_RE, PtyProcess, start_cli
from .scripted import ScriptedAws
from .test_early_signals import MuteAgent

pytestmark = pytest.mark.timeout(60)

TARGET = "i-0123456789abcdef0"


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """http://127.0.0.1:PORT: connections accepted (by the backlog), never answered."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def screen_lines(proc: PtyProcess) -> list[str]:
    return [line for line in proc.screen_text().splitlines() if line.strip()]


async def test_a_silent_endpoint_is_named_after_two_seconds(silent_endpoint: str) -> None:
    proc = PtyProcess(["shell", TARGET, "--endpoint-url", silent_endpoint], cols=160)
    try:
        await asyncio.sleep(scaled(1))
        assert "waiting for" not in proc.text  # not at once: most calls take less
        pattern = (
            rf"ssmsh: waiting for the SSM endpoint at {re.escape(silent_endpoint)} "
            r"\(StartSession, (\d+) s\); Ctrl-C to give up"
        )
        first = int((await proc.expect(pattern, timeout=5)).group(1))
        later = await proc.expect(pattern, timeout=5, start=len(proc.output))
        assert int(later.group(1)) > first  # redrawn with the time so far
        # one line, drawn over itself: the screen shows it once
        assert sum("waiting for the SSM endpoint" in line for line in screen_lines(proc)) == 1
        proc.send(b"\x03")
        assert await proc.wait() == 130
        (line,) = screen_lines(proc)  # the hint is gone
        assert line.endswith("ssmsh: interrupted"), line
        assert proc.slave_attrs() == proc.initial_attrs
    finally:
        proc.close()


async def test_a_narrow_terminal_keeps_the_way_out(silent_endpoint: str) -> None:
    proc = PtyProcess(["shell", TARGET, "--endpoint-url", silent_endpoint], cols=60)
    try:
        await proc.expect("Ctrl-C to give up", timeout=5)
        await asyncio.sleep(0.1)
        (line,) = screen_lines(proc)
        assert line.startswith("ssmsh: waiting for the SSM endpoint")
        assert line.endswith("…; Ctrl-C to give up") and len(line) < 60, line
    finally:
        proc.close()


async def test_no_hint_for_scripts_or_quiet(silent_endpoint: str) -> None:
    piped = await start_cli(["shell", TARGET, "--endpoint-url", silent_endpoint])
    quiet = PtyProcess(["shell", TARGET, "-q", "--endpoint-url", silent_endpoint])
    try:
        await asyncio.sleep(scaled(3.5))
        assert quiet.text == ""
        quiet.send(b"\x03")
        assert await quiet.wait() == 130
        assert quiet.text.strip() == "^Cssmsh: interrupted"
    finally:
        quiet.close()
    piped.send_signal(signal.SIGINT)
    async with asyncio.timeout(scaled(10)):
        _, err = await piped.communicate()
    assert err == b"ssmsh: interrupted\n"


async def test_a_slow_agent_is_named_with_the_time_left() -> None:
    agent = MuteAgent()
    async with agent, ScriptedAws(agent) as aws:
        proc = PtyProcess(
            ["shell", TARGET, "--endpoint-url", aws.endpoint_url, "--handshake-timeout", "20"],
            cols=160,
        )
        try:
            match = await proc.expect(
                rf"ssmsh: waiting for the agent on {TARGET} to answer "
                r"\((\d+) s, gives up in (\d+) s\); ~\. to disconnect",
                timeout=6,
            )
            elapsed, left = int(match.group(1)), int(match.group(2))
            assert elapsed >= 2 and abs(elapsed + left - 20) <= 1, match.group(0)
            proc.send(b"~.")  # the way out it names (the terminal is raw: no Ctrl-C)
            assert await proc.wait() == 255
            assert not any("waiting for the agent" in line for line in screen_lines(proc))
            assert proc.slave_attrs() == proc.initial_attrs
        finally:
            proc.close()


async def test_reconnecting_counts_down_the_time_left(emulator: Emulator) -> None:
    proc = PtyProcess(
        [
            "shell",
            DEFAULT_TARGET,
            "--endpoint-url",
            emulator.endpoint_url,
            "--keepalive",
            "0.5",
            "--reconnect-timeout",
            "30",
        ],
        cols=160,
    )
    gateway = emulator.gateway
    try:
        await proc.expect(PROMPT_RE)
        start = len(proc.output)
        gateway.set_silent(True)  # type: ignore[attr-defined]
        await proc.expect(r"ssmsh: [^\r\n]*; reconnecting\.\.\.", timeout=10, start=start)
        countdown = r"ssmsh: reconnecting: 0:(\d\d) left \(last error: [^)]*\); ~\. to disconnect"
        first = int((await proc.expect(countdown, timeout=5, start=start)).group(1))
        assert first <= 30
        later = first
        async with asyncio.timeout(scaled(5)):
            while later >= first:  # redrawn each second with less time left
                later = int((await proc.expect(countdown, start=len(proc.output))).group(1))
        assert sum(" left (last error" in line for line in screen_lines(proc)) == 1
        gateway.set_silent(False)  # type: ignore[attr-defined]
        await proc.expect(r"ssmsh: reconnected after [\d.]+ s", timeout=15, start=start)
        await asyncio.sleep(0.3)
        assert not any(" left (last error" in line for line in screen_lines(proc))
        proc.send("echo back-$((40+2))\r")
        await proc.expect(r"back-42\r\n", start=start)
        proc.send("exit\r")
        assert await proc.wait() == 0
    finally:
        gateway.set_silent(False)  # type: ignore[attr-defined]
        proc.close()


async def test_forward_says_when_it_reconnects(emulator: Emulator) -> None:
    argv = ["--endpoint-url", emulator.endpoint_url, "--keepalive", "0.5"]
    proc = PtyProcess(["forward", DEFAULT_TARGET, "0:22", *argv], cols=160)
    gateway = emulator.gateway
    try:
        label = (await proc.expect(r"ssmsh: listening on (127\.0\.0\.1:\d+) for ")).group(1)
        async with asyncio.timeout(scaled(10)):  # the session is up once the agent is linked
            while not any(emulator.gateway.connected(s) for s in emulator.state.sessions):  # type: ignore[attr-defined]
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        start = len(proc.output)
        gateway.set_silent(True)  # type: ignore[attr-defined]
        lost = rf"ssmsh: {re.escape(label)}: [^\r\n]*; reconnecting\.\.\."
        await proc.expect(lost, timeout=10, start=start)
        countdown = rf"ssmsh: {re.escape(label)}: reconnecting: \d+:\d\d left \(last error: "
        await proc.expect(countdown + r"[^)]*\); Ctrl-C to give up", timeout=5, start=start)
        gateway.set_silent(False)  # type: ignore[attr-defined]
        await proc.expect(rf"ssmsh: {re.escape(label)}: reconnected after [\d.]+ s", timeout=15)
        await asyncio.sleep(0.3)
        assert not any(" left (last error" in line for line in screen_lines(proc))
        proc.send(b"\x03")
        assert await proc.wait() == 0
    finally:
        gateway.set_silent(False)  # type: ignore[attr-defined]
        proc.close()
