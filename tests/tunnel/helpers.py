"""In-process stand-ins for the far end of a tunnel: a memory data channel, an smux agent.

:class:`MemoryLink` joins a client :class:`PortChannel` end to an agent end with
bounded queues (so backpressure is real). :class:`MuxAgent` plays the agent's
multiplexed port plugin over the agent end: an smux *server* session that dials
a real TCP destination on loopback for every stream, and reports a refused dial
with Flag ConnectToPortError plus FIN, as amazon-ssm-agent does. Unlike the
official agent it keeps half-close (FIN -> shutdown(SHUT_WR)).

Servers: :func:`echo_server` echoes; :func:`script_server` runs a coroutine per
connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

from ssmsh.exceptions import ChannelClosed
from ssmsh.protocol.constants import Flag
from ssmsh.protocol.session import FlagReceived, OutputReceived
from ssmsh.protocol.smux import SmuxFailed, SmuxSession, StreamData, StreamFinished, StreamOpened
from ssmsh.tunnel.channel import PortEvent


def _size(item: PortEvent) -> int:
    """Bytes a payload takes on the wire (a Flag is 4)."""
    return len(item.data) if isinstance(item, OutputReceived) else 4


class _Pipe:
    """One direction: a queue of payloads bounded in bytes."""

    def __init__(self, limit: int) -> None:
        self.items: asyncio.Queue[PortEvent | None] = asyncio.Queue()
        self.size = 0
        self.limit = limit
        self.room = asyncio.Event()
        self.room.set()
        self.closed = False

    async def put(self, item: PortEvent) -> None:
        while self.size > self.limit and not self.closed:
            self.room.clear()
            await self.room.wait()
        if self.closed:
            raise ChannelClosed("the channel is closed")
        self.size += _size(item)
        self.items.put_nowait(item)

    async def get(self) -> PortEvent:
        if self.closed and self.items.empty():
            raise ChannelClosed("the channel is closed")
        item = await self.items.get()
        if item is None:
            self.closed = True
            raise ChannelClosed("the channel is closed")
        self.size -= _size(item)
        if self.size <= self.limit:
            self.room.set()
        return item

    def close(self) -> None:
        self.closed = True
        self.room.set()
        self.items.put_nowait(None)


class ChannelEnd:
    """One end of a :class:`MemoryLink`; implements PortChannel."""

    def __init__(self, outgoing: _Pipe, incoming: _Pipe) -> None:
        self._out = outgoing
        self._in = incoming
        self.sent_messages = 0
        self.flags_sent: list[int] = []

    async def send(self, data: bytes) -> None:
        self.sent_messages += 1
        await self._out.put(OutputReceived(data))

    async def send_flag(self, flag: int) -> None:
        self.flags_sent.append(int(flag))
        await self._out.put(FlagReceived(int(flag)))

    async def receive(self) -> PortEvent:
        return await self._in.get()

    def close(self) -> None:
        self._out.close()
        self._in.close()


class MemoryLink:
    """A client end and an agent end joined in memory."""

    def __init__(self, limit: int = 1 << 20) -> None:
        up, down = _Pipe(limit), _Pipe(limit)
        self.client = ChannelEnd(up, down)
        self.agent = ChannelEnd(down, up)

    def close(self) -> None:
        self.client.close()


class MuxAgent:
    """The agent's multiplexed port plugin, dialing ``port`` on loopback for each stream."""

    def __init__(self, end: ChannelEnd, port: int, *, send_size: int = 16 * 1024) -> None:
        self.end = end
        self.port = port
        self.send_size = send_size
        self.session = SmuxSession(client=False)
        self.writers: dict[int, asyncio.StreamWriter] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.wakeup = asyncio.Event()
        self.error: str | None = None
        self.streams_opened = 0

    async def run(self) -> None:
        sender = asyncio.create_task(self._sender())
        try:
            while True:
                try:
                    received = await self.end.receive()
                except ChannelClosed:
                    return
                if not isinstance(received, OutputReceived):
                    continue
                self.session.receive_data(received.data, 0.0)
                for event in self.session.events_received():
                    await self._handle(event)
        finally:
            sender.cancel()
            for task in list(self.tasks):
                task.cancel()
            for writer in self.writers.values():
                writer.transport.abort()

    async def _handle(self, event: object) -> None:
        if isinstance(event, StreamOpened):
            self.streams_opened += 1
            sid = event.stream_id
            # Dial inline, as the agent does: later frames wait behind the dial.
            try:
                reader, opened = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await self.end.send_flag(Flag.CONNECT_TO_PORT_ERROR)
                self.session.close_stream(sid)
                self.wakeup.set()
                return
            self.writers[sid] = opened
            task = asyncio.create_task(self._pump(sid, reader))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        elif isinstance(event, StreamData):
            writer = self.writers.get(event.stream_id)
            if writer is not None:
                writer.write(event.data)
                await writer.drain()
        elif isinstance(event, StreamFinished):
            writer = self.writers.get(event.stream_id)
            if writer is not None and not writer.is_closing():
                with contextlib.suppress(OSError):
                    writer.write_eof()
        elif isinstance(event, SmuxFailed):
            self.error = event.reason

    async def _pump(self, sid: int, reader: asyncio.StreamReader) -> None:
        while True:
            data = await reader.read(self.send_size)
            if not data:
                break
            if sid in self.session.streams:
                self.session.send(sid, data)
                self.wakeup.set()
                await asyncio.sleep(0)
        self.session.close_stream(sid)
        self.wakeup.set()

    async def _sender(self) -> None:
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            out = self.session.data_to_send()
            view = memoryview(out)
            for start in range(0, len(out), self.send_size):
                await self.end.send(bytes(view[start : start + self.send_size]))


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def script_server(handler: Handler) -> AsyncIterator[int]:
    """A loopback TCP server running ``handler`` per connection; yields its port."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0, limit=1 << 18)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 18):
            writer.write(data)
            await writer.drain()
        writer.write_eof()
        await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


def echo_server() -> contextlib.AbstractAsyncContextManager[int]:
    """A loopback echo server that keeps half-close: EOF in, echo everything, EOF out."""
    return script_server(_echo)


def free_port() -> int:
    """A loopback port nobody listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pattern(size: int, seed: int) -> bytes:
    """Deterministic pseudo-random bytes (fast: SHAKE-256)."""
    return hashlib.shake_256(seed.to_bytes(8, "big")).digest(size) if size else b""


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


async def _connect(
    host: str | None, port: int | str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """TCP to ``host``:``port``, or Unix when ``port`` is a path."""
    if isinstance(port, str):
        return await asyncio.open_unix_connection(port, limit=1 << 18)
    return await asyncio.open_connection(host, port, limit=1 << 18)


async def _send_all(
    writer: asyncio.StreamWriter, payload: bytes, chunk: int, pause: float = 0.0
) -> None:
    view = memoryview(payload)
    for start in range(0, len(payload), chunk):
        writer.write(view[start : start + chunk])
        await writer.drain()
        if pause:
            await asyncio.sleep(pause)


async def send_all_and_read(
    host: str | None, port: int | str, payload: bytes, *, chunk: int = 1 << 16
) -> bytes:
    """Connect, send ``payload``, half-close, read until EOF; TCP or (port=path) Unix."""
    reader, writer = await _connect(host, port)

    async def send() -> None:
        await _send_all(writer, payload, chunk)
        writer.write_eof()

    sender = asyncio.create_task(send())
    parts = []
    while data := await reader.read(1 << 18):
        parts.append(data)
    await sender
    writer.close()
    return b"".join(parts)


async def exchange(
    host: str | None,
    port: int | str,
    payload: bytes,
    *,
    chunk: int = 1 << 16,
    pause: float = 0.0,
) -> bytes:
    """Connect, send ``payload`` while reading its echo, close once all came back.

    No half-close: this works whatever the agent does with an end of data (the
    real agent closes the whole destination connection on the first one; see
    ``EmulatorConfig.agent_fin``). Returns what was read, short if EOF came early.
    ``pause`` seconds between chunks make the transfer last at least that long.
    """
    reader, writer = await _connect(host, port)
    sender = asyncio.create_task(_send_all(writer, payload, chunk, pause))
    received = bytearray()
    try:
        while len(received) < len(payload):
            data = await reader.read(min(1 << 18, len(payload) - len(received)))
            if not data:
                break
            received += data
        await sender
    finally:
        sender.cancel()
        writer.close()
    return bytes(received)


class MuxRig:
    """A MuxTunnel + MuxForwarder on a loopback listener, over a MuxAgent to ``dest_port``."""

    def __init__(self, dest_port: int, config: object | None = None, verbose: bool = True) -> None:
        from ssmsh.tunnel.config import TunnelConfig
        from ssmsh.tunnel.forwarder import ConnectionLog, MuxForwarder
        from ssmsh.tunnel.mux import MuxTunnel

        assert config is None or isinstance(config, TunnelConfig)
        self.link = MemoryLink()
        self.agent = MuxAgent(self.link.agent, dest_port)
        self.tunnel = MuxTunnel(self.link.client, keepalive=False, config=config)
        self.lines: list[str] = []
        self.log = ConnectionLog("test", self.lines.append, verbose)
        self.forwarder = MuxForwarder(self.tunnel, self.log, remote_label=f"localhost:{dest_port}")
        self.port = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> MuxRig:
        self._tasks = [
            asyncio.create_task(self.agent.run()),
            asyncio.create_task(self.tunnel.run()),
        ]
        self._server = await asyncio.start_server(
            self.forwarder.handle, "127.0.0.1", 0, limit=1 << 18
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        self.forwarder.abort_all()
        self.link.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class BasicAgent:
    """The agent's basic port plugin: one destination connection, redialed after a
    DisconnectToPort flag when the next Output arrives."""

    def __init__(self, end: ChannelEnd, port: int) -> None:
        self.end = end
        self.port = port
        self.writer: asyncio.StreamWriter | None = None
        self.reader_task: asyncio.Task[None] | None = None
        self.flags: list[int] = []
        self.dials = 0

    async def _dial(self) -> None:
        reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.dials += 1
        self.reader_task = asyncio.create_task(self._pump(reader))

    async def _pump(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError, ChannelClosed):
            while data := await reader.read(16 * 1024):
                await self.end.send(data)

    async def run(self) -> None:
        await self._dial()
        try:
            while True:
                try:
                    event = await self.end.receive()
                except ChannelClosed:
                    return
                if isinstance(event, FlagReceived):
                    flag = event.flag
                    self.flags.append(flag)
                    if flag == Flag.DISCONNECT_TO_PORT and self.writer is not None:
                        self.writer.transport.abort()
                        self.writer = None
                else:
                    if self.writer is None:
                        await self._dial()
                    assert self.writer is not None
                    self.writer.write(event.data)
                    await self.writer.drain()
        finally:
            if self.reader_task is not None:
                self.reader_task.cancel()
            if self.writer is not None:
                self.writer.transport.abort()
