"""The link's own WebSocket parts: client frames written without websockets, and FrameLink."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from ssmsh.channel.link import FrameLink, binary_frames
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
