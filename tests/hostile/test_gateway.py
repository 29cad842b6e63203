"""A hostile or broken gateway, over a real WebSocket on loopback.

The fake gateway (tests/channel/fakeagent.py) answers pings and speaks the protocol;
here it also goes mute before the handshake or sends one message far larger than any
agent's. The client must neither wait for ever nor buffer what it is sent.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from ssmsh.channel import ConnectionConfig, SessionConnection
from ssmsh.exceptions import HandshakeError, ReconnectFailed
from tests.channel.fakeagent import FakeAgent
from tests.conftest import scaled

CONFIG = ConnectionConfig(
    ping_interval=0.2,
    ping_timeout=0.5,
    backoff_initial=0.02,
    backoff_max=0.1,
    reconnect_budget=scaled(1),
    connect_budget=scaled(2),
    open_timeout=scaled(2),
    handshake_timeout=scaled(0.5),
)


async def test_an_agent_that_never_handshakes_ends_the_session_at_the_deadline() -> None:
    async with FakeAgent() as agent:
        agent.mute = True  # pings answered, nothing else, ever
        info = agent.start_session()
        start = time.monotonic()
        async with SessionConnection(info, agent, config=CONFIG) as conn:
            with pytest.raises(HandshakeError, match="no handshake from the agent within"):
                await conn.wait_established()
            assert conn.closed
        assert time.monotonic() - start < scaled(0.5) + scaled(2)
        assert agent.terminate_calls == [info.session_id]  # nothing left behind


async def test_the_deadline_does_not_touch_an_established_session() -> None:
    async with FakeAgent() as agent:
        info = agent.start_session()
        async with SessionConnection(info, agent, config=CONFIG) as conn:
            await conn.wait_established()
            await asyncio.sleep(scaled(0.8))  # past the deadline
            assert not conn.closed
            await conn.send_input(b"still here\r")


async def test_a_message_larger_than_the_bound_closes_the_link_unread() -> None:
    config = ConnectionConfig(
        ping_interval=0.2,
        ping_timeout=0.5,
        backoff_initial=0.02,
        backoff_max=0.1,
        reconnect_budget=scaled(1),
        open_timeout=scaled(2),
        max_message_size=64 * 1024,
    )
    async with FakeAgent() as agent:
        agent.resume_refused = True  # the lost link is the end: no second chance
        info = agent.start_session()
        async with SessionConnection(info, agent, config=config) as conn:
            await conn.wait_established()
            session = agent.sessions[info.session_id]
            assert session.ws is not None
            ws = session.ws
            await ws.send(b"\0" * (1024 * 1024))  # one 1 MiB message, or 1 GiB: the same
            await asyncio.wait_for(ws.wait_closed(), scaled(5))
            assert ws.close_code == 1009  # "message too big", said by the client
            with pytest.raises(ReconnectFailed):
                async with asyncio.timeout(scaled(10)):
                    await conn.wait_closed()
