"""Sessions through the in-process emulator with fault injection, for the reconnect tests.

A :class:`Rig` is an :class:`~ssmsh.emulator.Emulator` on loopback (with a
:class:`~ssmsh.emulator.faults.FaultConfig`) plus the production AWS side,
:class:`~ssmsh.aws.SsmSessions` (boto3 over real HTTP). Sessions are started
through the API and driven by the production :class:`SessionConnection`; tunnels
by the production :class:`ForwardSession`. Nothing here replaces a part of the
client: the tests see what a library user would see.

:class:`StateLog` records a connection's state changes and lets a test wait for
the n-th one of a kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import re
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from ssmsh.aws import AwsSettings, SsmSessions, StaticCredentials
from ssmsh.channel import (
    ConnectionConfig,
    ConnectionState,
    OutputReceived,
    SessionConnection,
    SessionInfo,
    StateChange,
)
from ssmsh.emulator import DEFAULT_TARGET, Emulator, EmulatorConfig
from ssmsh.emulator.faults import FaultConfig
from ssmsh.tunnel.config import TunnelConfig
from ssmsh.tunnel.gate import HandlerGate
from ssmsh.tunnel.listeners import open_listener
from ssmsh.tunnel.session import ForwardSession
from ssmsh.tunnel.spec import parse_spec
from tests.conftest import scaled

__all__ = [
    "FAST",
    "PROMPT",
    "Rig",
    "StateLog",
    "Tunnel",
    "echo_server",
    "pattern",
    "read_output",
    "rig",
    "sha256",
    "transfer",
    "tunnel",
]

TARGET = DEFAULT_TARGET
PROMPT = "ssmsh-test$ "
ACCESS_KEY = "AKIDSSMSHRECONNECT00"
SECRET_KEY = "ssmsh-reconnect-secret"
CLIENT_CREDENTIALS = StaticCredentials(ACCESS_KEY, SECRET_KEY)

#: Fast loss detection and retries, so a test sees many reconnects in little time.
FAST = ConnectionConfig(
    ping_interval=0.25,
    ping_timeout=0.5,
    backoff_initial=0.02,
    backoff_max=0.2,
    reconnect_budget=scaled(30),
    connect_budget=scaled(10),
    open_timeout=scaled(5),
    terminate_timeout=scaled(5),
)


def pattern(size: int, seed: int) -> bytes:
    """Deterministic pseudo-random bytes."""
    return hashlib.shake_256(seed.to_bytes(8, "big")).digest(size) if size else b""


class StateLog:
    """Every :class:`StateChange` of a connection, with waits on them."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.changes: list[StateChange] = []
        self.times: list[float] = []
        self._loop = loop or asyncio.get_running_loop()
        self._changed = asyncio.Event()

    def __call__(self, change: StateChange) -> None:
        self.changes.append(change)
        self.times.append(self._loop.time())
        self._changed.set()

    def count(self, old: ConnectionState | None, new: ConnectionState) -> int:
        return sum(1 for c in self.changes if c.new is new and (old is None or c.old is old))

    @property
    def reconnects(self) -> int:
        """Completed reconnects: RECONNECTING -> CONNECTED transitions."""
        return self.count(ConnectionState.RECONNECTING, ConnectionState.CONNECTED)

    @property
    def losses(self) -> int:
        """Lost links: CONNECTED -> RECONNECTING transitions."""
        return self.count(ConnectionState.CONNECTED, ConnectionState.RECONNECTING)

    def outages(self) -> list[float]:
        return [c.outage for c in self.changes if c.outage is not None]

    async def wait_reconnects(self, count: int, timeout: float = 10) -> None:
        """Wait until ``count`` losses happened and were all repaired."""
        await self.wait(lambda: self.losses >= count and self.reconnects >= count, timeout)

    async def wait(self, predicate: Callable[[], bool], timeout: float = 10) -> None:
        """Wait until ``predicate()`` holds; fails at once if the connection closes first."""
        async with asyncio.timeout(scaled(timeout)):
            while not predicate():
                closed = [c for c in self.changes if c.new is ConnectionState.CLOSED]
                if closed:
                    raise AssertionError(f"the connection closed: {closed[0].reason}")
                self._changed.clear()
                await self._changed.wait()


class Rig:
    """An emulator with faults, and the AWS client side talking to it."""

    def __init__(self, emulator: Emulator, sessions: SsmSessions) -> None:
        self.emulator = emulator
        self.sessions = sessions

    @property
    def gateway(self) -> Any:
        return self.emulator.gateway

    @property
    def counters(self) -> dict[str, int]:
        return dict(self.emulator.faults.counters)

    async def start(
        self, document: str | None = None, parameters: dict[str, list[str]] | None = None
    ) -> SessionInfo:
        return await self.sessions.start_session(TARGET, document, parameters)

    async def connect(
        self,
        info: SessionInfo,
        config: ConnectionConfig = FAST,
        log: StateLog | None = None,
    ) -> SessionConnection:
        conn = SessionConnection(info, self.sessions, config=config, on_state_change=log)
        await conn.start()
        return conn

    def cut(self, session_id: str, abrupt: bool = False) -> int:
        """Close the session's client WebSocket now (1000 "Bye", or a TCP reset)."""
        count: int = self.gateway.close_connections(session_id, abrupt=abrupt)
        return count


@contextlib.asynccontextmanager
async def rig(
    faults: FaultConfig | None = None,
    *,
    client_credentials: StaticCredentials | None = CLIENT_CREDENTIALS,
    **config: Any,
) -> AsyncIterator[Rig]:
    """An emulator on loopback (``config`` goes to EmulatorConfig) and an SsmSessions.

    ``client_credentials`` None leaves them to boto3's usual resolution (environment, files).
    """
    config.setdefault("environment", {"PS1": PROMPT, "ENV": "/dev/null"})
    # Megabytes through faults: unpaced unless a test asks for the agent's pace, and
    # with TCP half-close, which the transfers here end with (the official agent closes
    # the destination at the first FIN; tests/tunnel covers both).
    config.setdefault("agent_pacing", False)
    config.setdefault("agent_fin", "half-close")
    # Recovery from drops one message per 100 ms tick (the official agent's) would take
    # minutes for these transfers; the client's side is what is under test here.
    config.setdefault("agent_resend", "selective")
    async with Emulator(EmulatorConfig(faults=faults, **config)) as emulator:
        aws = AwsSettings(
            region="us-east-1", endpoint_url=emulator.endpoint_url, credentials=client_credentials
        )
        yield Rig(emulator, SsmSessions(aws))


# ---------------------------------------------------------------------- shells


async def read_output(conn: SessionConnection, needle: str | bytes, timeout: float = 10) -> bytes:
    """Output until ``needle`` (a regex over the decoded text when ``str``) appears."""
    got = bytearray()
    async with asyncio.timeout(scaled(timeout)):
        while True:
            event = await conn.receive()
            assert event is not None, bytes(got)
            if type(event) is OutputReceived:
                got += event.data
                if isinstance(needle, bytes):
                    if needle in got:
                        return bytes(got)
                elif re.search(needle, got.decode(errors="replace")):
                    return bytes(got)


# ---------------------------------------------------------------------- tunnels


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 18):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[int]:
    """A loopback echo server (EOF in, everything echoed, EOF out); yields its port."""
    server = await asyncio.start_server(_echo, "127.0.0.1", 0, limit=1 << 18)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1)


class Tunnel:
    """A forward (local listener -> port session -> agent -> ``dest_port``)."""

    def __init__(self, forward: ForwardSession, log: StateLog, info: SessionInfo) -> None:
        self.forward = forward
        self.log = log
        self.info = info
        self.lines: list[str] = []
        self._runner: asyncio.Task[None] | None = None

    @property
    def connection(self) -> SessionConnection:
        return self.forward.connection

    @property
    def port(self) -> int:
        port = self.forward.listener.port
        assert port is not None
        return port

    def run(self) -> None:
        self._runner = asyncio.create_task(self.forward.run())

    def failure(self) -> BaseException | None:
        """Why the forward ended, if it did."""
        if self._runner is None or not self._runner.done():
            return None
        if self._runner.cancelled():
            return asyncio.CancelledError()
        return self._runner.exception()

    async def close(self) -> None:
        if self._runner is not None and not self._runner.done():
            self._runner.cancel()
            with contextlib.suppress(BaseException):
                await self._runner
        await self.forward.terminate()


@contextlib.asynccontextmanager
async def tunnel(
    rig: Rig,
    dest_port: int,
    config: ConnectionConfig = FAST,
    tunnel_config: TunnelConfig | None = None,
) -> AsyncIterator[Tunnel]:
    """A running forward to ``127.0.0.1:dest_port`` on the emulated target."""
    spec = parse_spec(f"0:{dest_port}")
    gate = HandlerGate()
    listener = await open_listener(spec, gate)
    log = StateLog()
    tconfig = tunnel_config or TunnelConfig()
    try:
        info = await rig.start(spec.document_name, spec.document_parameters(listener.port))
        cconfig = dataclasses.replace(config, max_payload_size=tconfig.max_message_size)
        conn = await rig.connect(info, cconfig, log)
    except BaseException:
        gate.fail()
        await listener.close()
        raise
    lines: list[str] = []
    forward = ForwardSession(
        conn, listener, gate, remote_label="test", report=lines.append, config=tconfig
    )
    handle = Tunnel(forward, log, info)
    handle.lines = lines
    handle.run()
    try:
        yield handle
    finally:
        await handle.close()


async def transfer(
    port: int,
    payload: bytes,
    *,
    chunk: int = 1 << 16,
    rate: float | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> bytes:
    """Send ``payload`` through ``127.0.0.1:port``, half-close, and read the echo to EOF.

    ``rate`` (bytes per second) caps the sending speed, so that a transfer spans
    a known time (and so a known number of timed faults) on any machine.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 18)
    loop = asyncio.get_running_loop()

    async def send() -> None:
        view = memoryview(payload)
        began = loop.time()
        for start in range(0, len(view), chunk):
            if rate is not None and (ahead := began + start / rate - loop.time()) > 0:
                await asyncio.sleep(ahead)
            writer.write(view[start : start + chunk])
            await writer.drain()
        writer.write_eof()

    sender = asyncio.create_task(send())
    parts: list[bytes] = []
    received = 0
    try:
        while data := await reader.read(1 << 18):
            parts.append(data)
            received += len(data)
            if on_progress is not None:
                on_progress(received)
        await sender
    finally:
        sender.cancel()
        writer.close()
    return b"".join(parts)


def sha256(data: bytes | Sequence[bytes]) -> str:
    digest = hashlib.sha256()
    for part in [data] if isinstance(data, bytes) else data:
        digest.update(part)
    return digest.hexdigest()
