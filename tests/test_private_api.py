"""The contract test of ``ssmsh/_private_api.py``: what ssmsh relies on in websockets and
asyncio beyond their documented API, checked against the installed versions.

CI runs this file with the newest websockets that ``pyproject.toml`` allows as well, so an
upgrade that breaks one of these assumptions fails here first, with a name that says which:

* frames we write are read back by websockets' own parser (``Frame.parse``, the Sans-I/O
  server protocol, a real server's ``recv()``) as the same messages, masked as a client must;
* frames websockets writes (every kind of data message, fragmented or not, among control
  frames) are read by ``FrameLink``'s fast path, and kept out of ``recv()``;
* the private attributes and methods we use exist, with the types and signatures we expect,
  and the names ``FrameLink`` adds do not shadow any of websockets';
* asyncio's socket transports obey ``max_size``, and ``FlowControlMixin`` gives a write pipe
  ``drain()`` backpressure.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol
from websockets.streams import StreamReader

from ssmsh._private_api import (
    DrainableWriteProtocol,
    FrameLink,
    apply_mask,
    binary_frames,
    bound_reads,
    close_cause,
    connection_error,
    counted_server_connection,
    proxy_url,
    transport_of,
)
from tests.conftest import scaled

SIZES = [0, 1, 2, 125, 126, 127, 1024, 65535, 65536, 70000]


def parse_all(wire: bytes) -> list[Frame]:
    """Parse client frames as a server does (masked, any size)."""
    reader = StreamReader()
    reader.feed_data(wire)
    frames = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=True, max_size=None)
        try:
            while True:
                next(parser)
        except StopIteration as done:
            frames.append(done.value)
    return frames


def test_binary_frames_parse_back_as_masked_binary_frames() -> None:
    payloads = [os.urandom(size) for size in SIZES]
    wire = binary_frames(payloads)
    frames = parse_all(wire)
    assert [bytes(f.data) for f in frames] == payloads
    assert all(f.opcode is Opcode.BINARY and f.fin for f in frames)
    # Each frame has its own mask key: the masked bytes of equal payloads differ.
    a, b = binary_frames([b"x" * 64]), binary_frames([b"x" * 64])
    assert a[:2] == b[:2] and a != b


@pytest.mark.parametrize("size", SIZES)
def test_binary_frames_header_length_encoding(size: int) -> None:
    wire = binary_frames([b"\0" * size])
    assert wire[0] == 0x82
    assert wire[1] & 0x80  # masked
    header = 2 + (0 if size < 126 else 2 if size < 65536 else 8) + 4
    assert len(wire) == header + size


@contextlib.asynccontextmanager
async def frame_link_to(
    handler: Callable[[ServerConnection], Awaitable[None]],
) -> AsyncIterator[FrameLink]:
    """A FrameLink client connected to a loopback websockets server running ``handler``."""
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        ws = await connect(f"ws://127.0.0.1:{port}", create_connection=FrameLink)
        assert isinstance(ws, FrameLink)
        try:
            yield ws
        finally:
            await ws.close()


async def test_frame_link_delivers_every_kind_of_data_message_in_order() -> None:
    sent = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        await ws.send(b"first")
        await ws.send([b"frag-", b"mented-", b"binary"])  # one message in three frames
        await ws.send("text")
        await ws.ping()
        await ws.send(b"last")
        sent.set()
        await ws.wait_closed()

    async with frame_link_to(handler) as ws:
        async with asyncio.timeout(scaled(5)):
            await sent.wait()
            await asyncio.sleep(0.05)  # everything arrived before a handler is set
        batches: list[list[bytes]] = []
        ws.handler = batches.append
        assert [m for batch in batches for m in batch] == [
            b"first",
            b"frag-mented-binary",
            b"text",
            b"last",
        ]


async def test_frame_link_passes_frames_per_read_to_the_handler() -> None:
    go = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        await go.wait()
        for i in range(50):
            await ws.send(b"%d" % i)
        await ws.wait_closed()

    async with frame_link_to(handler) as ws:
        got: list[bytes] = []
        calls = [0]

        def on_frames(frames: list[bytes]) -> None:
            calls[0] += 1
            got.extend(frames)

        ws.handler = on_frames
        go.set()
        async with asyncio.timeout(scaled(5)):
            while len(got) < 50:
                await asyncio.sleep(0.01)
        assert got == [b"%d" % i for i in range(50)]
        assert calls[0] < 50  # several frames per call
        pong = await ws.ping()  # control frames still work
        async with asyncio.timeout(scaled(5)):
            await pong


# ------------------------------------------------------------------ our frames, their parser


def test_binary_frames_are_read_by_websockets_server_protocol() -> None:
    payloads = [os.urandom(size) for size in SIZES]
    wire = binary_frames(payloads)
    for chunks in ([wire], [wire[i : i + 1] for i in range(len(wire))]):  # whole, byte by byte
        server = ServerProtocol(state=State.OPEN, max_size=None)
        for chunk in chunks:
            server.receive_data(chunk)
        events = server.events_received()
        assert server.parser_exc is None  # an unmasked client frame would be a protocol error
        assert [(e.opcode, e.fin, bytes(e.data)) for e in events if isinstance(e, Frame)] == [
            (Opcode.BINARY, True, payload) for payload in payloads
        ]


async def test_written_frames_reach_a_websockets_server_in_order_among_its_own() -> None:
    received: list[bytes | str] = []
    done = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            received.append(message)
            if message == b"end":
                done.set()

    async with frame_link_to(handler) as ws:
        assert ws.can_write_frames()
        assert isinstance(ws.write_buffer_size(), int)
        first = [os.urandom(size) for size in SIZES]
        ws.write_frames(first)
        await ws.send(b"through websockets")  # its own send between two of our writes
        pong = await ws.ping()
        ws.write_frames([b"after", b"end"])
        async with asyncio.timeout(scaled(5)):
            await done.wait()
            await pong
        assert received == [*first, b"through websockets", b"after", b"end"]
        await ws.close()
        assert not ws.can_write_frames()


def test_apply_mask_is_its_own_inverse() -> None:
    data, mask = os.urandom(1000), b"\x01\x02\x03\x04"
    masked = apply_mask(data, mask)
    assert masked != data and apply_mask(masked, mask) == data
    assert masked[:4] == bytes(b ^ m for b, m in zip(data[:4], mask, strict=True))


# ------------------------------------------------------------------ their frames, our reader


async def test_frame_link_keeps_data_frames_out_of_recv() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(b"one")
        await ws.send("two")
        await ws.wait_closed()

    async with frame_link_to(handler) as ws:
        got: list[bytes] = []
        ws.handler = got.extend
        async with asyncio.timeout(scaled(5)):
            while len(got) < 2:
                await asyncio.sleep(0.01)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await ws.recv()
        assert got == [b"one", b"two"]


async def test_set_reading_pauses_and_resumes_the_link() -> None:
    go = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        await go.wait()
        await ws.send(b"while paused")
        await ws.wait_closed()

    async with frame_link_to(handler) as ws:
        got: list[bytes] = []
        ws.handler = got.extend
        ws.set_reading(False)
        assert not ws.transport.is_reading()
        go.set()
        await asyncio.sleep(0.1)
        assert got == []
        ws.set_reading(True)
        async with asyncio.timeout(scaled(5)):
            while not got:
                await asyncio.sleep(0.01)
        assert got == [b"while paused"]


# ------------------------------------------------------------------ the private parts themselves


def test_the_methods_frame_link_overrides_still_exist_with_their_signatures() -> None:
    for name, parameters in (
        ("process_event", ["self", "event"]),
        ("data_received", ["self", "data"]),
    ):
        method = getattr(ClientConnection, name)
        assert inspect.isfunction(method), name
        assert list(inspect.signature(method).parameters) == parameters, name
    # data_received goes through process_event, which is what FrameLink hooks.
    assert "process_event" in inspect.getsource(Connection.data_received)


async def test_the_attributes_we_use_exist_with_their_types() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.close(1000, "Bye")

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        ws = await connect(f"ws://127.0.0.1:{port}", create_connection=FrameLink)
        assert isinstance(ws, FrameLink)
        transport = ws.transport
        assert isinstance(transport, asyncio.Transport)
        assert transport_of(ws) is transport
        for method in ("pause_reading", "resume_reading", "is_reading", "is_closing", "abort"):
            assert callable(getattr(transport, method)), method
        assert isinstance(transport.get_write_buffer_size(), int)
        assert isinstance(ws.protocol, Protocol)
        assert ws.protocol.state is State.OPEN
        assert ws.protocol.data_to_send() == []
        assert ws.protocol.close_rcvd is None
        # The error that broke the connection: renamed from recv_exc in websockets 17.x.
        assert "connection_exc" in vars(ws) or "recv_exc" in vars(ws)
        assert connection_error(ws) is None
        assert close_cause(ws) == (None, None)
        await ws.send(b"bye now")
        async with asyncio.timeout(scaled(5)):
            await ws.wait_closed()
        frame, error = close_cause(ws)
        assert isinstance(frame, Close) and (frame.code, frame.reason) == (1000, "Bye")
        assert error is None or isinstance(error, BaseException)


async def test_connection_error_after_a_reset() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        sock = ws.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ws.transport.abort()  # an RST, no close frame

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        ws = await connect(f"ws://127.0.0.1:{port}", create_connection=FrameLink)
        await ws.send(b"reset me")
        async with asyncio.timeout(scaled(5)):
            await ws.wait_closed()
        frame, error = close_cause(ws)
        assert frame is None and isinstance(error, ConnectionResetError)


async def test_frame_link_adds_no_name_that_websockets_uses() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()

    ours = {name for name in vars(FrameLink) if not name.startswith("__")}
    overrides = {"process_event", "data_received"}
    async with frame_link_to(handler) as ws:
        theirs = set(dir(ClientConnection)) | set(vars(ws)) - ours
        assert ours & theirs == overrides, websockets.version.version


def test_proxy_url_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert proxy_url("wss://gateway.example/v1/data-channel/s") is None
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    assert proxy_url("wss://gateway.example/v1/data-channel/s") == "http://proxy.example:3128"
    monkeypatch.setenv("no_proxy", "gateway.example")
    assert proxy_url("wss://gateway.example/v1/data-channel/s") is None


# ------------------------------------------------------------------ asyncio


async def test_bound_reads_caps_each_read_of_a_socket_transport() -> None:
    size, total = 4096, 1 << 20
    loop = asyncio.get_running_loop()
    reads: list[int] = []
    got_all = loop.create_future()

    class Recorder(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            reads.append(len(data))
            if sum(reads) >= total and not got_all.done():
                got_all.set_result(None)

    async def send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(os.urandom(total))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(send, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        transport, _ = await loop.create_connection(Recorder, sock=sock)
        assert isinstance(getattr(transport, "max_size", None), int)
        bound_reads(transport, size)
        async with asyncio.timeout(scaled(5)):
            await got_all
        transport.close()
    assert sum(reads) == total and max(reads) <= size


async def test_drainable_write_protocol_gives_drain_backpressure() -> None:
    assert callable(getattr(asyncio.streams.FlowControlMixin, "_drain_helper", None))
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    try:
        pipe = os.fdopen(write_fd, "wb", buffering=0, closefd=False)
        transport, protocol = await loop.connect_write_pipe(DrainableWriteProtocol, pipe)
        writer = asyncio.StreamWriter(transport, protocol, None, loop)
        writer.write(b"x" * (4 << 20))  # far beyond the pipe's buffer and the high-water mark
        drain = asyncio.ensure_future(writer.drain())
        await asyncio.sleep(0.05)
        assert not drain.done()  # nobody reads the pipe: drain waits
        os.set_blocking(read_fd, False)
        async with asyncio.timeout(scaled(5)):
            while not drain.done():
                with contextlib.suppress(BlockingIOError):
                    os.read(read_fd, 1 << 20)
                await asyncio.sleep(0)
        await drain
        transport.close()
    finally:
        os.close(read_fd)
        os.close(write_fd)


async def test_counted_server_connection_sees_every_connection_come_and_go() -> None:
    made: list[ServerConnection] = []
    lost: list[ServerConnection] = []

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    factory = counted_server_connection(made.append, lost.append)
    async with serve(echo, "127.0.0.1", 0, create_connection=factory) as server:
        port = server.sockets[0].getsockname()[1]
        # A WebSocket that completes its handshake and closes cleanly...
        async with connect(f"ws://127.0.0.1:{port}") as client:
            await client.send("hi")
            assert await client.recv() == "hi"
            assert len(made) == 1 and lost == []
            assert isinstance(made[0], ServerConnection)
        # ... and a TCP connection that never upgrades, reset: both counted, both lost.
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        async with asyncio.timeout(5):
            while len(made) < 2:
                await asyncio.sleep(0.01)
        assert made[1].protocol.state is State.CONNECTING  # before its opening handshake
        writer.transport.abort()
        async with asyncio.timeout(5):
            while len(lost) < 2:
                await asyncio.sleep(0.01)
    assert lost == made
