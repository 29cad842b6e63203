"""SessionConnection against a real WebSocket server driving DataChannel(Role.AGENT)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import socket

import pytest

from ssmsh.channel import (
    ChannelClosedByRemote,
    ConnectionConfig,
    ConnectionState,
    OutputReceived,
    SessionConnection,
    StateChange,
    StderrReceived,
    backoff_delays,
)
from ssmsh.channel.connection import CLIENT_ID
from ssmsh.exceptions import ChannelClosed, EncryptionError, ReconnectFailed
from ssmsh.protocol.constants import Flag, PayloadType
from tests.conftest import scaled

from .fakeagent import FakeAgent

FAST = ConnectionConfig(
    ping_interval=0.2,
    ping_timeout=0.3,
    backoff_initial=0.02,
    backoff_max=0.1,
    reconnect_budget=scaled(10),
    connect_budget=scaled(2),
    open_timeout=scaled(2),
)


async def read_until(conn: SessionConnection, needle: bytes, timeout: float = 5) -> bytes:
    got = b""
    async with asyncio.timeout(scaled(timeout)):
        while needle not in got:
            event = await conn.receive()
            assert event is not None, got
            if isinstance(event, OutputReceived | StderrReceived):
                got += event.data
    return got


def state_of(conn: SessionConnection) -> ConnectionState:
    """``conn.state`` read anew: mypy keeps the attribute narrowed by an earlier assert
    across the awaits that change it."""
    return conn.state


async def wait_for(predicate, timeout: float = 5) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(scaled(timeout)):
        while not predicate():
            await asyncio.sleep(0.01)


@pytest.mark.parametrize(("handshake", "kms"), [(True, None), (False, None), (True, "alias/ssm")])
async def test_establish_echo_and_size(handshake: bool, kms: str | None) -> None:
    async with FakeAgent(handshake=handshake, kms_key=kms) as agent:
        info = agent.start_session()
        session = agent.sessions[info.session_id]
        async with SessionConnection(info, agent, config=FAST) as conn:
            established = await conn.wait_established()
            assert established.encrypted is (kms is not None)
            assert established.session_type == "Standard_Stream"
            await conn.send_size(132, 43)
            await conn.send_input(b"echo hi\r")
            assert (await read_until(conn, b"echo hi\r")).startswith(b"$ ")
            await wait_for(lambda: session.sizes == [(132, 43)])
            assert bytes(session.received) == b"echo hi\r"
            assert conn.state is ConnectionState.CONNECTED
        assert agent.terminate_calls == [info.session_id]
        assert state_of(conn) is ConnectionState.CLOSED
        assert agent.headers_seen[0].get("X-Test-Signed") == "yes"
        assert session.client_ids == [CLIENT_ID]


async def test_wrong_kms_key_fails_clearly() -> None:
    async with FakeAgent(kms_key="alias/ssm") as agent:
        agent.known_keys = {"alias/other"}  # the agent asks for a key KMS does not know
        info = agent.start_session()
        async with SessionConnection(info, agent, config=FAST) as conn:
            with pytest.raises(EncryptionError, match="NotFoundException"):
                await conn.wait_established()
            with pytest.raises(EncryptionError):
                await conn.receive()
            with pytest.raises(EncryptionError):
                await conn.send_input(b"x")
            with pytest.raises(EncryptionError):
                await conn.wait_closed()


async def test_wrong_data_key_fails_the_challenge() -> None:
    async with FakeAgent(kms_key="alias/ssm") as agent:
        agent.agent_key = bytes(64)  # the agent decrypted the blob to another key
        info = agent.start_session()
        async with SessionConnection(info, agent, config=FAST) as conn:
            with pytest.raises(EncryptionError, match="challenge"):
                await conn.wait_established()
        assert not agent.sessions[info.session_id].established


async def test_reconnect_after_bye_keeps_every_byte() -> None:
    changes: list[StateChange] = []
    async with FakeAgent() as agent:
        info = agent.start_session()
        session = agent.sessions[info.session_id]
        conn = SessionConnection(info, agent, config=FAST, on_state_change=changes.append)
        async with conn:
            await read_until(conn, b"$ ")
            await agent.drop(session)  # close 1000 "Bye", as MGS does hourly
            await conn.send_input(b"typed during the outage\r")
            await read_until(conn, b"typed during the outage\r")
            assert bytes(session.received) == b"typed during the outage\r"
        assert agent.resume_calls == 1
        assert len(set(session.request_ids)) == 2
        assert set(session.client_ids) == {CLIENT_ID}
        states = [c.new for c in changes]
        assert states[:3] == [
            ConnectionState.CONNECTED,
            ConnectionState.RECONNECTING,
            ConnectionState.CONNECTED,
        ]
        assert "1000" in changes[1].reason
        assert changes[2].outage is not None


async def test_silence_is_detected_and_recovered() -> None:
    async with FakeAgent() as agent:
        info = agent.start_session()
        session = agent.sessions[info.session_id]
        async with SessionConnection(info, agent, config=FAST) as conn:
            await read_until(conn, b"$ ")
            reasons: list[str] = []
            conn.add_state_listener(lambda c: reasons.append(c.reason))
            loop = asyncio.get_running_loop()
            start = loop.time()
            agent.go_silent(session)
            await wait_for(lambda: agent.resume_calls == 1, timeout=3)
            # ping interval + pong deadline, plus scheduling slack
            assert loop.time() - start < scaled(0.2 + 0.3 + 0.5)
            assert any("no reply to keepalive" in r for r in reasons)
            await conn.send_input(b"after\r")
            await read_until(conn, b"after\r")


async def test_resume_refused_ends_with_reconnect_failed() -> None:
    async with FakeAgent() as agent:
        info = agent.start_session()
        async with SessionConnection(info, agent, config=FAST) as conn:
            await read_until(conn, b"$ ")
            agent.resume_refused = True
            await agent.drop(agent.sessions[info.session_id])
            with pytest.raises(ReconnectFailed, match="DoesNotExistException"):
                async with asyncio.timeout(scaled(5)):
                    while await conn.receive():
                        pass
            assert conn.state is ConnectionState.CLOSED
        assert agent.terminate_calls == [info.session_id]


async def test_resume_without_token_means_timed_out() -> None:
    async with FakeAgent() as agent:
        info = agent.start_session()
        async with SessionConnection(info, agent, config=FAST) as conn:
            await read_until(conn, b"$ ")
            session = agent.sessions[info.session_id]
            session.terminated = True  # ResumeSession now returns no token
            await agent.drop(session)
            with pytest.raises(ReconnectFailed, match="timed out or was terminated"):
                await asyncio.wait_for(conn.wait_closed(), scaled(5))


async def test_reconnect_budget_runs_out() -> None:
    config = ConnectionConfig(
        ping_interval=None, backoff_initial=0.05, backoff_max=0.1, reconnect_budget=0.5
    )
    async with FakeAgent() as agent:
        info = agent.start_session()
        async with SessionConnection(info, agent, config=config) as conn:
            await read_until(conn, b"$ ")
            assert agent.server is not None
            agent.server.close()  # nothing listens any more: every attempt fails
            await agent.server.wait_closed()
            loop = asyncio.get_running_loop()
            start = loop.time()
            with pytest.raises(ReconnectFailed, match=r"within 0.5 s: cannot connect"):
                await asyncio.wait_for(conn.wait_closed(), scaled(5))
            assert loop.time() - start < scaled(1.5)
            assert agent.resume_calls >= 2


async def test_links_that_only_answer_a_ping_do_not_end_the_outage() -> None:
    config = ConnectionConfig(
        ping_interval=0.5,
        ping_timeout=0.5,
        backoff_initial=0.02,
        backoff_max=0.1,
        reconnect_budget=1.0,
    )
    async with FakeAgent() as agent:
        info = agent.start_session()
        async with SessionConnection(info, agent, config=config) as conn:
            await read_until(conn, b"$ ")
            agent.refuse_after = 0.05
            await agent.drop(agent.sessions[info.session_id])
            loop = asyncio.get_running_loop()
            start = loop.time()
            with pytest.raises(ReconnectFailed, match=r"within 1 s: .* \(1008 refused\)"):
                await asyncio.wait_for(conn.wait_closed(), scaled(10))
            assert loop.time() - start < scaled(2.5)
            assert 3 <= agent.resume_calls <= 30


async def test_channel_closed_by_remote_is_the_last_event() -> None:
    async with FakeAgent() as agent:
        info = agent.start_session()
        session = agent.sessions[info.session_id]
        async with SessionConnection(info, agent, config=FAST) as conn:
            await read_until(conn, b"$ ")
            await agent.close_channel(session, "Exiting: idle timeout")
            events = []
            async with asyncio.timeout(scaled(5)):
                async for event in conn:
                    events.append(event)
            assert events[-1] == ChannelClosedByRemote("Exiting: idle timeout", info.session_id)
            await conn.wait_closed()
            assert conn.closed and conn.error is None
            with pytest.raises(ChannelClosed):
                await conn.send_input(b"too late")


async def test_one_mebibyte_input_arrives_intact() -> None:
    blob = random.Random(1).randbytes(1 << 20)
    async with FakeAgent(echo=False) as agent:
        info = agent.start_session()
        session = agent.sessions[info.session_id]
        async with SessionConnection(info, agent, config=FAST) as conn:
            await read_until(conn, b"$ ")
            await conn.send_input(blob)
            assert await conn.drain(scaled(10))
            assert hashlib.sha256(session.received).digest() == hashlib.sha256(blob).digest()


async def test_input_survives_repeated_link_drops() -> None:
    blob = os.urandom(600_000)
    async with FakeAgent(echo=False) as agent:
        agent.drop_every = 0.15
        info = agent.start_session()
        session = agent.sessions[info.session_id]
        async with SessionConnection(info, agent, config=FAST) as conn:
            await read_until(conn, b"$ ")
            sent = bytearray()
            for start in range(0, len(blob), 10_000):
                await conn.send_input(blob[start : start + 10_000])
                sent += blob[start : start + 10_000]
                await asyncio.sleep(0.02)
            # A slow reconnect can swallow the whole blob in one outage: keep typing
            # until the input has really lived through repeated drops.
            async with asyncio.timeout(scaled(20)):
                while agent.connections < 3:
                    more = os.urandom(1000)
                    await conn.send_input(more)
                    sent += more
                    await asyncio.sleep(0.02)
            assert await conn.drain(scaled(20))
            assert bytes(session.received) == bytes(sent)


async def test_output_backpressure_does_not_look_like_silence() -> None:
    config = ConnectionConfig(ping_interval=0.1, ping_timeout=0.1, max_receive_buffer=64 * 1024)
    async with FakeAgent(echo=False) as agent:
        info = agent.start_session()
        session = agent.sessions[info.session_id]
        async with SessionConnection(info, agent, config=config) as conn:
            await read_until(conn, b"$ ")
            chunk = b"x" * 1000
            for _ in range(1000):
                agent.send_output(session, chunk)
            await asyncio.sleep(0.6)  # nobody reads: the driver stops reading the socket
            assert conn.state is ConnectionState.CONNECTED
            assert agent.resume_calls == 0
            got = await read_until(conn, b"x" * 10)
            total = len(got)
            async with asyncio.timeout(scaled(10)):
                while total < 1000 * 1000:
                    event = await conn.receive()
                    assert isinstance(event, OutputReceived)
                    total += len(event.data)
            assert total == 1000 * 1000


async def test_flags_and_stderr() -> None:
    async with FakeAgent() as agent:
        info = agent.start_session()
        session = agent.sessions[info.session_id]
        async with SessionConnection(info, agent, config=FAST) as conn:
            await read_until(conn, b"$ ")
            await conn.send_flag(Flag.TERMINATE_SESSION)
            await wait_for(lambda: session.flags == [2])
            agent.send_output(session, b"oops", PayloadType.STDERR)
            event = await asyncio.wait_for(conn.receive(), scaled(5))
            assert event == StderrReceived(b"oops")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_first_link_unreachable_fails_within_budget() -> None:
    async with FakeAgent() as agent:
        info = agent.start_session()
        port = _closed_port()
        bad = type(info.stream)(f"ws://127.0.0.1:{port}/v1/data-channel/x", "t")
        info = type(info)(info.session_id, info.target_id, bad)
        config = ConnectionConfig(connect_budget=0.3, backoff_initial=0.05)
        conn = SessionConnection(info, agent, config=config)
        with pytest.raises(ReconnectFailed, match=f"cannot connect to 127.0.0.1:{port}"):
            await conn.start()
        await conn.close()
        assert agent.terminate_calls == [info.session_id]


async def test_state_changes_iterator() -> None:
    async with FakeAgent() as agent:
        info = agent.start_session()
        conn = SessionConnection(info, agent, config=FAST)
        seen: list[ConnectionState] = []

        async def watch() -> None:
            async for change in conn.state_changes():
                seen.append(change.new)

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0)
        async with conn:
            await read_until(conn, b"$ ")
        await asyncio.wait_for(watcher, scaled(2))
        assert seen == [ConnectionState.CONNECTED, ConnectionState.CLOSED]


def test_backoff_is_jittered_exponential_and_capped() -> None:
    config = ConnectionConfig(backoff_initial=0.1, backoff_factor=2, backoff_max=1.0)
    delays = backoff_delays(config, random.Random(7))
    values = [next(delays) for _ in range(10)]
    caps = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    for value, cap in zip(values, caps, strict=True):
        assert cap * 0.5 <= value <= cap


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        ConnectionConfig(ping_timeout=0)
    with pytest.raises(ValueError):
        ConnectionConfig(backoff_jitter=2)
