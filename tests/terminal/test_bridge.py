"""TerminalBridge against the emulator: what reaches a pty program when input ends."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import struct
import termios
from collections.abc import AsyncIterator, Callable

import pytest

from ssmsh.aws import AwsSettings, SsmSessions, StaticCredentials
from ssmsh.channel import SessionConnection
from ssmsh.emulator import DEFAULT_TARGET, Emulator, EmulatorConfig
from ssmsh.terminal.bridge import TerminalBridge
from ssmsh.terminal.tty import Terminal
from tests.conftest import scaled

pytestmark = pytest.mark.timeout(60)

#: Prints nothing before it has read a line, and says when its input ended.
READER = 'while read line; do echo "got:$line"; done; echo "input-ended"'


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(shell="/bin/sh")) as emu:
        yield emu


async def open_command(emulator: Emulator, command: str) -> SessionConnection:
    settings = AwsSettings(
        region="us-east-1",
        endpoint_url=emulator.endpoint_url,
        credentials=StaticCredentials("AKIDBRIDGETEST000001", "secret"),
    )
    sessions = SsmSessions(settings)
    info = await sessions.start_session(
        DEFAULT_TARGET, "AWS-StartInteractiveCommand", {"command": [command]}
    )
    conn = SessionConnection(info, sessions)
    await conn.start()
    return conn


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    try:
        async with asyncio.timeout(scaled(timeout)):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"no {what} within {timeout} s") from None


async def test_a_terminal_that_goes_away_is_not_sent_an_end_of_input(
    emulator: Emulator, tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ssmsh.terminal.bridge")
    master, slave = os.openpty()
    out_path = f"{tmp_path}/out"
    out = os.open(out_path, os.O_WRONLY | os.O_CREAT)
    conn = await open_command(emulator, READER)
    try:
        terminal = Terminal(slave, out, out)
        bridge = TerminalBridge(conn, terminal, handshake_grace=0.2)
        running = asyncio.create_task(bridge.run())

        def output() -> bytes:
            with open(out_path, "rb") as f:
                return f.read()

        os.write(master, b"one\r")
        await wait_for(lambda: b"got:one" in output(), "the first line")
        os.close(master)  # the terminal goes away: reading it now fails
        master = -1
        await wait_for(lambda: "the terminal closed" in caplog.text, "the end of stdin")
        # Had an end of input (Ctrl-D) been sent, the loop would be over by now.
        await conn.send_input(b"two\r")
        await wait_for(lambda: b"got:two" in output(), "the second line")
        assert b"input-ended" not in output()
        await conn.close()
        result = await asyncio.wait_for(running, scaled(10))
        assert not result.disconnected
    finally:
        await conn.close()
        for fd in (master, slave, out):
            if fd >= 0:
                os.close(fd)


async def test_leaving_before_the_agent_said_anything(emulator: Emulator) -> None:
    # Input is read before the session is established; "~." there leaves at once.
    master, slave = os.openpty()
    conn = await open_command(emulator, "cat")
    try:
        terminal = Terminal(slave, slave, slave)
        bridge = TerminalBridge(conn, terminal, handshake_grace=None)
        running = asyncio.create_task(bridge.run())
        os.write(master, b"~.")
        result = await asyncio.wait_for(running, scaled(10))
        assert result.disconnected
        assert not conn.protocol.established
    finally:
        await conn.close()
        os.close(master)
        os.close(slave)


async def test_a_command_that_ended_before_the_size_was_sent(emulator: Emulator) -> None:
    # `exec -t -- true`: the whole session can be over before the bridge sends the
    # terminal size; that is a normal end, not "the session is closed" and 255.
    master, slave = os.openpty()
    conn = await open_command(emulator, "printf quick")
    try:
        await asyncio.wait_for(conn.wait_closed(), scaled(10))
        out_r, out_w = os.pipe()
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        terminal = Terminal(slave, out_w, out_w)
        assert terminal.size() == (80, 24)
        result = await asyncio.wait_for(TerminalBridge(conn, terminal).run(), scaled(10))
        assert result.closed_by_remote and not result.disconnected
        os.close(out_w)
        assert os.read(out_r, 100) == b"quick"
        os.close(out_r)
    finally:
        await conn.close()
        os.close(master)
        os.close(slave)
