"""Session lifetime and flow: idle timeout, maximum duration, backpressure, pacing."""

from __future__ import annotations

import asyncio
import time

from ssmsh.emulator.agent import IDLE_TIMEOUT_REASON, MAX_DURATION_REASON
from ssmsh.emulator.config import EmulatorConfig
from ssmsh.emulator.state import SessionStatus
from ssmsh.protocol.constants import PayloadType
from ssmsh.protocol.datachannel import ChannelConfig
from tests.conftest import scaled
from tests.emulator.dcclient import DCClient, gateway_for, make_session
from tests.emulator.test_agent_port import EchoServer, MuxClient, port_properties


async def test_idle_timeout_ends_the_session_with_a_reason() -> None:
    config = EmulatorConfig(shell="/bin/sh", idle_timeout=scaled(0.4))
    async with gateway_for(config) as gw:
        session = make_session(gw.state, gateway=gw)
        client = DCClient(session)
        await client.connect()
        # Activity keeps it alive...
        for _ in range(3):
            client.send(PayloadType.OUTPUT, b"true\n")
            last_activity = time.monotonic()
            await asyncio.sleep(scaled(0.2))
        assert client.channel_closed is None
        # ... and silence ends it.
        closed = await client.wait_closed()
        assert closed.output == IDLE_TIMEOUT_REASON
        assert time.monotonic() - last_activity >= scaled(0.4)
        assert session.status == SessionStatus.TERMINATED
        assert session.end_reason == IDLE_TIMEOUT_REASON
        await client.close()


async def test_max_session_duration() -> None:
    # No 1 s wait before the first read of the pty here: the limit is shorter than that.
    config = EmulatorConfig(shell="/bin/sh", max_session_duration=scaled(0.5), pty_start_delay=0)
    async with gateway_for(config) as gw:
        session = make_session(gw.state, gateway=gw)
        client = DCClient(session)
        await client.connect()
        client.send(PayloadType.OUTPUT, b"while true; do echo tick; sleep 0.05; done\n")
        closed = await client.wait_closed()
        assert closed.output == MAX_DURATION_REASON
        assert b"tick" in client.output
        await client.close()


async def test_output_stops_when_nobody_acknowledges_it() -> None:
    async with gateway_for() as gw:
        session = make_session(gw.state, gateway=gw)
        client = DCClient(session)
        await client.connect()
        client.send(PayloadType.OUTPUT, b"yes\n")
        await client.wait_for(lambda: client.output.count(b"y\r\n") > 1000)
        agent = gw.agent(session.session_id)
        assert agent is not None
        await client.disconnect(abrupt=True)
        # Detached, publication is paused: the pty is not read any more (the official
        # agent's readers check IsActive() first), so nothing more is queued.
        high_water = ChannelConfig().high_water
        await asyncio.sleep(scaled(0.2))  # what was being read when it paused
        made = agent.channel.next_sequence_number
        await asyncio.sleep(scaled(0.3))
        assert agent.channel.next_sequence_number == made  # no new messages
        assert agent.channel.unacked <= high_water
        # Back again: the backlog drains and the program is still running.
        await client.connect(token=gw.state.issue_token(session))
        client.send(PayloadType.OUTPUT, b"\x03")
        client.send(PayloadType.OUTPUT, b"echo sto''pped\n")
        await client.wait_output(b"stopped", timeout=30)
        await client.close()


async def test_agent_pacing_sends_1_kib_messages() -> None:
    config = EmulatorConfig(shell="/bin/sh", agent_pacing=True)
    async with gateway_for(config) as gw, EchoServer() as server:
        session = make_session(
            gw.state, "Port", properties=port_properties(server.port), gateway=gw
        )
        client = DCClient(session)
        await client.connect()
        await client.wait_ready()
        mux = MuxClient(client)
        stream_id = mux.open()
        blob = bytes(range(256)) * 200  # 51 200 bytes
        started = time.monotonic()
        mux.send(stream_id, blob)
        await mux.wait(lambda: len(mux.data.get(stream_id, b"")) == len(blob))
        elapsed = time.monotonic() - started
        assert bytes(mux.data[stream_id]) == blob
        outputs = [m for m in client.agent_data_frames() if m.payload_type == PayloadType.OUTPUT]
        assert max(len(m.payload) for m in outputs) == 1024
        assert len(outputs) >= len(blob) // 1024
        assert elapsed >= len(outputs) * 0.001  # a 1 ms pause after each message
        await client.close()


async def test_unpaced_port_sessions_use_bigger_messages() -> None:
    async with gateway_for(EmulatorConfig(agent_pacing=False)) as gw, EchoServer() as server:
        session = make_session(
            gw.state, "Port", properties=port_properties(server.port), gateway=gw
        )
        client = DCClient(session)
        await client.connect()
        await client.wait_ready()
        mux = MuxClient(client)
        stream_id = mux.open()
        blob = bytes(range(256)) * 1024
        mux.send(stream_id, blob)
        await mux.wait(lambda: len(mux.data.get(stream_id, b"")) == len(blob))
        outputs = [m for m in client.agent_data_frames() if m.payload_type == PayloadType.OUTPUT]
        assert max(len(m.payload) for m in outputs) > 1024
        assert max(len(m.payload) for m in outputs) <= 32 * 1024
        await client.close()
