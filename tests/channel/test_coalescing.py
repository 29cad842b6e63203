"""Receive coalescing: small frames streaming in are read, acknowledged and delivered in batches."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import ServerConnection

from ssmsh.channel import ConnectionConfig, OutputReceived, SessionConnection
from ssmsh.channel.reading import HOLD_FIRST, HOLD_GAP, HOLD_MAX_BATCH, ReadGate, next_hold
from tests.conftest import scaled

from .fakeagent import AgentSession, FakeAgent


def count_reads(ws: ServerConnection) -> list[int]:
    """Count the agent's socket reads (each one is a wakeup that brought client frames)."""
    reads = [0]
    original = ws.data_received

    def data_received(data: bytes) -> None:
        reads[0] += 1
        original(data)

    ws.data_received = data_received  # type: ignore[method-assign]
    return reads


async def receive_bytes(conn: SessionConnection, size: int) -> bytes:
    got = bytearray()
    async with asyncio.timeout(scaled(20)):
        while len(got) < size:
            event = await conn.receive()
            assert event is not None
            if isinstance(event, OutputReceived):
                got += event.data
    return bytes(got)


async def send_paced(agent: FakeAgent, session: AgentSession, blob: bytes, size: int) -> None:
    """The real agent's pattern: one message of ``size`` bytes, then a 1 ms pause."""
    for start in range(0, len(blob), size):
        agent.send_output(session, blob[start : start + size])
        await asyncio.sleep(0.001)


async def settle(agent: FakeAgent, session: AgentSession) -> None:
    async with asyncio.timeout(scaled(10)):
        while session.channel.unacked:
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def prompted(
    config: ConnectionConfig | None = None,
) -> AsyncIterator[tuple[FakeAgent, AgentSession, SessionConnection]]:
    """A connection to a fake agent (no handshake, no echo), its ``$ `` prompt read."""
    async with FakeAgent(handshake=False, echo=False, prompt=b"$ ") as agent:
        info = agent.start_session()
        session = agent.sessions[info.session_id]
        async with SessionConnection(info, agent, config=config) as conn:
            assert await receive_bytes(conn, 2) == b"$ "
            yield agent, session, conn


async def stream_paced(
    agent: FakeAgent, session: AgentSession, conn: SessionConnection, size: int
) -> None:
    """``size`` random bytes in paced 1 KiB messages: all arrive, all are acknowledged."""
    blob = os.urandom(size)
    sender = asyncio.create_task(send_paced(agent, session, blob, 1024))
    assert await receive_bytes(conn, len(blob)) == blob
    await sender
    await settle(agent, session)


async def test_a_paced_stream_is_acknowledged_in_batches() -> None:
    async with prompted(ConnectionConfig(receive_coalesce=0.008)) as (agent, session, conn):
        assert session.ws is not None
        reads = count_reads(session.ws)
        await stream_paced(agent, session, conn, 300 * 1024)
        assert session.channel.stats["acked"] >= 301
        # A hold that outlasted the agent's RTO would resend most of the 300 messages; a
        # stall of a machine shared with other test workers can cost a few (3 %).
        assert session.channel.stats["retransmitted"] <= 9
        assert conn.receive_holds > 0
        # Batches of acks, not one wakeup per message (a third of that on a quiet
        # machine; seen up to 169 of 300 with other test workers and load on 2 cores).
        assert reads[0] <= 300 * 2 // 3, reads[0]


async def test_isolated_frames_and_fast_streams_are_not_held() -> None:
    async with prompted(ConnectionConfig(receive_coalesce=0.008)) as (agent, session, conn):
        for i in range(5):  # keystroke echoes, well apart
            await asyncio.sleep(0.05)
            agent.send_output(session, b"%d" % i)
            assert await receive_bytes(conn, 1) == b"%d" % i
        assert conn.receive_holds == 0
        blob = os.urandom(4 * 1024 * 1024)
        for start in range(0, len(blob), 32 * 1024):  # big messages, back to back
            agent.send_output(session, blob[start : start + 32 * 1024])
        assert await receive_bytes(conn, len(blob)) == blob
        # 128 messages back to back: none held, but a stall of a machine shared with other
        # test workers can make one of them arrive alone, as a paced one would (seen once).
        assert conn.receive_holds <= 1


async def test_coalescing_can_be_switched_off() -> None:
    async with prompted(ConnectionConfig(receive_coalesce=0)) as (agent, session, conn):
        await stream_paced(agent, session, conn, 50 * 1024)
        assert conn.receive_holds == 0


async def test_default_coalescing_batches_a_paced_stream_without_retransmissions() -> None:
    """The default (longest hold 30 ms): few wakeups, and the agent does not resend.

    The holds grow slowly enough for the agent's RTO to follow them. On a busy
    machine (the suite runs in four workers on two cores) a stall of the shared
    event loop can still outlast that RTO and cost a few resends (harmless: the
    copy is acknowledged again); the bound is 3 % of the messages, where holds
    that outgrew the RTO would resend most of them.
    """
    async with prompted() as (agent, session, conn):
        assert session.ws is not None
        reads = count_reads(session.ws)
        await stream_paced(agent, session, conn, 500 * 1024)
        assert session.channel.stats["acked"] >= 501
        assert session.channel.stats["retransmitted"] <= 15
        # An eighth of the messages on a quiet machine; 166 of 500 seen under load.
        assert reads[0] <= 500 // 2, reads[0]


def test_hold_ramps_up_along_a_stream_and_stops_after_a_quiet_spell() -> None:
    limit = 0.03
    holds = [0.0]
    for _ in range(20):  # 1 KiB per ms: each batch brings what came during the hold
        previous = holds[-1]
        interval = previous + 0.001
        holds.append(next_hold(previous, interval, int(interval * 1024 * 1000), limit))
    assert holds[1] == HOLD_FIRST
    assert holds[1:6] == pytest.approx([0.002, 0.004, 0.006, 0.008, 0.010])
    assert holds[15:] == pytest.approx([limit] * 6)
    assert holds[-1] == limit
    # A quiet spell ends the stream: the next batch is handled at once.
    assert next_hold(limit, limit + HOLD_GAP + 0.001, 1024, limit) == 0.0
    assert next_hold(0.0, HOLD_GAP * 2, 1024, limit) == 0.0


def test_hold_is_bounded_by_bytes_and_never_used_for_fast_links() -> None:
    # 1 MiB per read every 2 ms: a fast link, not held.
    assert next_hold(0.0, 0.002, 1 << 20, 0.03) == 0.0
    # A moderate stream: held only as long as HOLD_MAX_BATCH bytes take to come.
    rate = 4e6  # bytes per second
    hold = next_hold(0.016, 0.017, int(rate * 0.017), 0.03)
    assert hold == pytest.approx(HOLD_MAX_BATCH / rate, rel=0.01)
    assert next_hold(0.016, 0.017, 1024, 0.0) == 0.0  # switched off


class _Link:
    def __init__(self) -> None:
        self.reading: list[bool] = []

    def set_reading(self, wanted: bool) -> None:
        self.reading.append(wanted)


async def test_input_ends_a_hold_and_the_stream() -> None:
    # Fast typing: each echo comes a millisecond after the previous one, like a stream
    # of small batches; without input_sent every echo would wait for the hold.
    gate = ReadGate(asyncio.get_running_loop(), limit=0.03)
    link = _Link()
    gate.attach(link)
    for i in range(6):  # a stream ramps the hold up
        gate.end_batch(100, now=1.0 + i * 0.001)
    assert gate.holds > 0
    assert link.reading == [True, False]  # held now
    gate.input_sent()
    assert link.reading == [True, False, True]  # read again at once
    holds = gate.holds
    gate.end_batch(1, now=1.0061)  # the echo, right after: not held
    assert gate.holds == holds
    assert link.reading == [True, False, True]


async def test_an_echo_of_fast_typing_is_not_held() -> None:
    # End to end: keys sent one after another's echo all come back without holds.
    async with prompted() as (agent, session, conn):
        loop = asyncio.get_running_loop()
        waits = []
        for key in b"abcdefghijklmnopqrst":
            start = loop.time()
            await conn.send_input(bytes([key]))
            agent.send_output(session, bytes([key]))  # the remote echo
            assert await receive_bytes(conn, 1) == bytes([key])
            waits.append(loop.time() - start)
        assert conn.receive_holds == 0, waits
