"""Multiplexed forwarding over an in-memory channel to an smux agent dialing real sockets."""

from __future__ import annotations

import asyncio
import hashlib
import socket

import pytest

from ssmsh.exceptions import ChannelClosed, TunnelError
from ssmsh.protocol.session import OutputReceived
from ssmsh.protocol.smux import SmuxSession, StreamData
from ssmsh.tunnel.config import TunnelConfig
from ssmsh.tunnel.mux import MuxTunnel
from tests.conftest import scaled

from .helpers import (
    MemoryLink,
    MuxRig,
    echo_server,
    free_port,
    pattern,
    script_server,
    send_all_and_read,
)


async def open_small_window(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client connection with a tiny receive buffer, so a stalled reader stalls soon."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await asyncio.open_connection(sock=sock, limit=1024)


async def test_echo_large_payload_intact() -> None:
    payload = pattern(8 * 1024 * 1024, 1)
    async with echo_server() as dest, MuxRig(dest) as rig:
        async with asyncio.timeout(scaled(20)):
            echoed = await send_all_and_read("127.0.0.1", rig.port, payload)
    assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()
    # Large messages: far fewer channel messages than 1 KiB chunks would need.
    assert rig.link.client.sent_messages < len(payload) // 8192


async def test_many_concurrent_connections_distinct_payloads() -> None:
    async with echo_server() as dest, MuxRig(dest, verbose=False) as rig:
        payloads = [pattern(1000 + 97 * i, i) for i in range(200)]
        async with asyncio.timeout(scaled(30)):
            results = await asyncio.gather(
                *(send_all_and_read("127.0.0.1", rig.port, p, chunk=4096) for p in payloads)
            )
    assert results == payloads
    assert rig.agent.streams_opened == 200
    assert rig.log.total == 200 and rig.log.active == 0


async def test_verbose_lines_report_bytes_and_duration() -> None:
    async with echo_server() as dest, MuxRig(dest) as rig:
        await send_all_and_read("127.0.0.1", rig.port, b"x" * 5000)
        for _ in range(50):
            if rig.log.active == 0:
                break
            await asyncio.sleep(0.01)
    opened = [line for line in rig.lines if "open from 127.0.0.1:" in line]
    closed = [line for line in rig.lines if "closed after" in line]
    assert len(opened) == 1 and "stream 3" in opened[0]
    assert len(closed) == 1 and "sent 5.0 kB, received 5.0 kB" in closed[0]


async def test_refused_remote_port_fails_one_connection_listener_stays_up() -> None:
    async with echo_server() as dest, MuxRig(free_port()) as rig:
        reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
        writer.write(b"hello")
        async with asyncio.timeout(scaled(5)):
            try:
                data = await reader.read()
            except ConnectionResetError:
                data = b""
        assert data == b""
        writer.close()
        assert any("could not connect to localhost:" in line for line in rig.lines), rig.lines
        # The listener and the session are still up: the next connection works.
        rig.agent.port = dest
        async with asyncio.timeout(scaled(5)):
            assert await send_all_and_read("127.0.0.1", rig.port, b"again") == b"again"


async def test_half_close_client_eof_then_server_answers() -> None:
    async def answer_after_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.read()  # until the client's EOF
        await asyncio.sleep(0.05)
        writer.write(b"got " + str(len(request)).encode())
        writer.close()

    async with script_server(answer_after_eof) as dest, MuxRig(dest) as rig:
        async with asyncio.timeout(scaled(5)):
            reply = await send_all_and_read("127.0.0.1", rig.port, b"q" * 100_000)
    assert reply == b"got 100000"


async def test_half_close_server_eof_then_client_keeps_sending() -> None:
    received = asyncio.get_running_loop().create_future()

    async def banner_then_listen(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"banner")
        writer.write_eof()  # the server is done talking but still listens
        received.set_result(await reader.read())
        writer.close()

    async with script_server(banner_then_listen) as dest, MuxRig(dest) as rig:
        reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
        async with asyncio.timeout(scaled(5)):
            assert await reader.read() == b"banner"  # EOF after the banner
            writer.write(b"late data")
            writer.write_eof()
            assert await received == b"late data"
        writer.close()


async def test_stalled_reader_is_buffered_then_bounded_and_nothing_is_lost() -> None:
    config = TunnelConfig(stream_receive_buffer=512 * 1024, session_receive_buffer=4 << 20)
    # Larger than what loopback socket buffers can hide (several MB with autotuning).
    big = pattern(16 * 1024 * 1024, 7)
    sent = asyncio.Event()

    async def firehose(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.read(1)
        if first == b"S":
            writer.write(big)
            await writer.drain()
            sent.set()
            writer.close()
        else:  # an echo connection
            writer.write(first)
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
            writer.close()

    async with script_server(firehose) as dest, MuxRig(dest, config) as rig:
        slow_reader, slow_writer = await open_small_window(rig.port)
        slow_writer.write(b"S")
        # Stop reading: the stream's buffer fills up to its bound and no further.
        async with asyncio.timeout(scaled(10)):
            while rig.tunnel.stats["receive_pauses"] == 0:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        # Bounded: the bound plus at most one message and the socket buffers.
        assert rig.tunnel.buffered <= config.stream_receive_buffer + 64 * 1024
        # The stalled reader resumes: everything arrives, in order.
        async with asyncio.timeout(scaled(20)):
            parts = []
            while data := await slow_reader.read(1 << 16):
                parts.append(data)
        assert b"".join(parts) == big
        slow_writer.close()
        # ...and the session carries on.
        async with asyncio.timeout(scaled(5)):
            assert await send_all_and_read("127.0.0.1", rig.port, b"E" + b"x" * 1000) == (
                b"E" + b"x" * 1000
            )


async def test_slow_reader_under_its_bound_does_not_hold_up_others() -> None:
    config = TunnelConfig(stream_receive_buffer=2 << 20, session_receive_buffer=8 << 20)
    burst = pattern(1 << 20, 3)

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.read(1)
        if first == b"B":
            writer.write(burst)  # 1 MiB that the client will not read for a while
            await writer.drain()
            await reader.read()
        else:
            writer.write(first)
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        writer.close()

    async with script_server(server) as dest, MuxRig(dest, config) as rig:
        idle_reader, idle_writer = await open_small_window(rig.port)
        idle_writer.write(b"B")
        await asyncio.sleep(0.2)  # the burst is now parked in the stream's buffer
        payload = b"E" + pattern(4 << 20, 4)
        async with asyncio.timeout(scaled(15)):
            assert await send_all_and_read("127.0.0.1", rig.port, payload) == payload
        assert rig.tunnel.stats["receive_pauses"] == 0
        idle_writer.write_eof()
        async with asyncio.timeout(scaled(10)):
            data = b""
            while chunk := await idle_reader.read(1 << 16):
                data += chunk
        assert data == burst
        idle_writer.close()


async def test_upstream_backpressure_pauses_only_that_connection() -> None:
    config = TunnelConfig(stream_send_buffer=64 * 1024)
    link = MemoryLink(limit=256 * 1024)
    tunnel = MuxTunnel(link.client, keepalive=False, config=config)
    runner = asyncio.create_task(tunnel.run())
    stream = tunnel.open_stream()
    stream.write(b"x" * (1 << 20))
    # Nobody reads the agent end: the pump blocks in channel.send, drain must block.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await stream.drain()
    # A second stream can still queue (its own buffer is empty).
    other = tunnel.open_stream()
    other.write(b"y" * 1000)
    await other.drain()
    runner.cancel()
    link.close()
    await asyncio.gather(runner, return_exceptions=True)


async def test_round_robin_between_streams() -> None:
    link = MemoryLink(limit=1 << 30)
    config = TunnelConfig(send_quantum=16 * 1024, send_batch=1 << 20)
    tunnel = MuxTunnel(link.client, keepalive=False, config=config)
    first, second = tunnel.open_stream(), tunnel.open_stream()
    first.write(b"a" * (256 * 1024))
    second.write(b"b" * (32 * 1024))
    runner = asyncio.create_task(tunnel.run())
    server = SmuxSession(client=False)
    order: list[int] = []
    async with asyncio.timeout(scaled(5)):
        while sum(1 for sid in order if sid == second.id) < 2:
            received = await link.agent.receive()
            assert isinstance(received, OutputReceived)
            server.receive_data(received.data, 0.0)
            for event in server.events_received():
                if isinstance(event, StreamData):
                    order.append(event.stream_id)
    # The small stream is served within the first rounds, not after all of the big one.
    assert order.index(second.id) <= 1
    runner.cancel()
    link.close()
    await asyncio.gather(runner, return_exceptions=True)


def count_nops(link: MemoryLink) -> int:
    nops = 0
    while not link.agent._in.items.empty():
        item = link.agent._in.items.get_nowait()
        assert item is not None
        assert isinstance(item, OutputReceived)
        nops += item.data.count(bytes.fromhex("0103000000000000"))
    return nops


async def test_keepalive_nops_only_when_enabled_and_silence_limit() -> None:
    # Default: NOPs go out, and a silent agent does not kill the tunnel by itself
    # (the agent watchdog judges by acknowledgements instead).
    link = MemoryLink()
    config = TunnelConfig(keepalive_interval=0.05)
    tunnel = MuxTunnel(link.client, keepalive=True, config=config)
    runner = asyncio.create_task(tunnel.run())
    await asyncio.sleep(0.4)
    assert not runner.done()
    assert count_nops(link) >= 4
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)

    # With smux's own silence limit, a quiet agent ends the session.
    link = MemoryLink()
    config = TunnelConfig(keepalive_interval=0.05, keepalive_timeout=0.3)
    tunnel = MuxTunnel(link.client, keepalive=True, config=config)
    with pytest.raises(TunnelError, match="stopped responding"):
        async with asyncio.timeout(scaled(3)):
            await tunnel.run()
    assert count_nops(link) >= 3

    quiet = MemoryLink()
    tunnel = MuxTunnel(quiet.client, keepalive=False, config=config)
    runner = asyncio.create_task(tunnel.run())
    await asyncio.sleep(0.4)  # idle: nothing sent, nothing fails
    assert quiet.agent._in.items.empty() and not runner.done()
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)


async def test_channel_end_finishes_streams() -> None:
    link = MemoryLink()
    tunnel = MuxTunnel(link.client, keepalive=False)
    runner = asyncio.create_task(tunnel.run())
    stream = tunnel.open_stream()
    link.close()
    with pytest.raises(ChannelClosed):
        await asyncio.wait_for(runner, scaled(2))
    assert await stream.read() == b""


async def test_agent_garbage_is_a_session_error() -> None:
    link = MemoryLink()
    tunnel = MuxTunnel(link.client, keepalive=False)
    runner = asyncio.create_task(tunnel.run())
    stream = tunnel.open_stream()
    await link.agent._out.put(OutputReceived(b"\x09" * 8))
    with pytest.raises(TunnelError, match="smux session failed"):
        await asyncio.wait_for(runner, scaled(2))
    with pytest.raises(TunnelError):
        await stream.read()


async def test_stream_sink_takes_data_while_it_can_then_read_returns_the_rest_in_order() -> None:
    link = MemoryLink()
    tunnel = MuxTunnel(link.client, keepalive=False)
    stream = tunnel.open_stream()
    taken: list[bytes] = []
    room = [2]

    def sink(data: bytes) -> bool:
        if not room[0]:
            return False
        room[0] -= 1
        taken.append(data)
        return True

    stream.set_sink(sink)
    assert [stream.feed_data(p) for p in (b"a", b"b", b"c", b"d")] == [False, False, True, True]
    assert taken == [b"a", b"b"]
    assert stream.buffered == 2
    room[0] = 5
    assert stream.feed_data(b"e")  # the sink was dropped when it refused: still queued, in order
    assert await stream.read() == b"cde"
    stream.set_sink(sink)
    assert not stream.feed_data(b"f")
    stream.feed_eof()
    assert await stream.read() == b""
    assert taken == [b"a", b"b", b"f"]
    assert stream.bytes_received == 6
    link.close()
