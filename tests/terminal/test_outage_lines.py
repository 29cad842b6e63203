"""What the user is told while the link to the gateway is down: the real reason, once,
and a short reminder while the outage lasts."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from ssmsh.aws import AwsSettings, SsmSessions
from ssmsh.channel import ConnectionState, SessionConnection, SessionInfo
from ssmsh.channel.link import close_reason
from ssmsh.channel.types import StateChange, StreamCredentials
from ssmsh.terminal.bridge import TerminalBridge
from ssmsh.terminal.tty import Terminal
from tests.conftest import scaled

pytestmark = pytest.mark.timeout(30)


async def _reason_after(server_side: str) -> str:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        if server_side == "bye":
            await ws.close(1000, "Bye")
        else:  # an RST: linger 0, then close
            sock = ws.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            ws.transport.abort()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with asyncio.timeout(scaled(5)):
            async with connect(f"ws://127.0.0.1:{port}") as client:
                await client.send("hello")
                with contextlib.suppress(ConnectionClosed):
                    async for _ in client:
                        pass
                await client.wait_closed()
                return close_reason(None, client)
    raise AssertionError("unreachable")


async def test_close_frame_reason() -> None:
    assert await _reason_after("bye") == "gateway closed the connection (1000 Bye)"


async def test_reset_reason() -> None:
    assert await _reason_after("reset") == "connection reset"


def _bridge(lines: list[str], repeat: float) -> TerminalBridge:
    info = SessionInfo("s-1", "i-0123456789abcdef0", StreamCredentials("ws://127.0.0.1:9", "t"))
    conn = SessionConnection(info, SsmSessions(AwsSettings(region="us-east-1")))
    return TerminalBridge(
        conn, Terminal(), status=lines.append, notice_delay=0.05, repeat_interval=repeat
    )


def _change(new: ConnectionState, reason: str = "", **kw: object) -> StateChange:
    old = ConnectionState.CONNECTED
    return StateChange(old, new, reason, **kw)  # type: ignore[arg-type]


async def test_outage_lines_say_the_reason_once_and_repeat() -> None:
    lines: list[str] = []
    bridge = _bridge(lines, repeat=scaled(0.2))
    bridge._on_state(_change(ConnectionState.RECONNECTING, "connection reset", attempt=1))
    await asyncio.sleep(scaled(0.1))
    assert lines == ["ssmsh: connection reset; reconnecting..."]
    bridge._on_state(
        _change(ConnectionState.RECONNECTING, "cannot connect to 127.0.0.1:9: refused", attempt=2)
    )
    await asyncio.sleep(scaled(0.5))
    reminders = lines[1:]
    assert len(reminders) >= 2, lines
    for line in reminders:
        assert line.startswith("ssmsh: still reconnecting ("), line
        assert "last error: cannot connect to 127.0.0.1:9: refused" in line, line
        assert line.count("connection") <= 1, line
    bridge._on_state(_change(ConnectionState.CONNECTED, outage=1.5))
    count = len(lines)
    assert lines[-1] == "ssmsh: reconnected after 1.5 s"
    await asyncio.sleep(scaled(0.5))
    assert len(lines) == count, "reminders went on after the reconnect"


async def test_no_line_for_a_short_outage() -> None:
    lines: list[str] = []
    bridge = _bridge(lines, repeat=scaled(0.2))
    bridge._on_state(_change(ConnectionState.RECONNECTING, "connection reset", attempt=1))
    bridge._on_state(_change(ConnectionState.CONNECTED, outage=0.01))
    await asyncio.sleep(scaled(0.3))
    assert lines == []
