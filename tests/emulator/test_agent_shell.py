"""Shell sessions end to end: real WebSocket, real gateway, real agent, real pty."""

from __future__ import annotations

import json

import pytest

from ssmsh.emulator.config import EmulatorConfig
from ssmsh.emulator.gateway import Gateway
from ssmsh.emulator.state import DEFAULT_TARGET, SessionStatus
from ssmsh.protocol.constants import PayloadType
from ssmsh.protocol.payloads import TerminalSize
from tests.emulator.dcclient import DCClient, gateway, gateway_for, make_session

__all__ = ["gateway"]


async def test_echo_round_trip_through_a_real_pty(gateway: Gateway) -> None:
    session = make_session(gateway.state, gateway=gateway)
    client = DCClient(session)
    await client.connect()
    client.send(PayloadType.OUTPUT, b"echo hel''lo-pty\n")
    await client.wait_output(b"hello-pty")
    # No handshake for a plain shell: the agent's first message is Output, seq 0, SYN flag.
    first = client.agent_data_frames()[0]
    assert (first.payload_type, first.sequence_number, first.flags) == (1, 0, 1)
    assert client.handshake_requests == []
    assert session.status == SessionStatus.CONNECTED
    await client.close()


async def test_size_message_resizes_the_pty(gateway: Gateway) -> None:
    session = make_session(gateway.state, gateway=gateway)
    client = DCClient(session)
    await client.connect()
    client.send(PayloadType.SIZE, TerminalSize(cols=123, rows=45).encode())
    client.send(PayloadType.OUTPUT, b"stty size\n")
    await client.wait_output(b"45 123")
    await client.close()


async def test_exit_ends_the_session_with_channel_closed(gateway: Gateway) -> None:
    session = make_session(gateway.state, gateway=gateway)
    client = DCClient(session)
    await client.connect()
    client.send(PayloadType.OUTPUT, b"echo bye-bye; exit 3\n")
    closed = await client.wait_closed()
    assert b"bye-bye" in client.output
    # Like the real agent: no exit code, and an empty Output in channel_closed.
    assert closed.output == ""
    assert closed.session_id == session.session_id
    assert client.exit_codes == []
    await client.wait_disconnected()
    assert client.close_code == 1000
    assert session.status == SessionStatus.TERMINATED
    assert session.token is None
    assert gateway.agent(session.session_id) is None


@pytest.mark.parametrize("size", [1024 * 3 + 17])
async def test_output_chunks_never_exceed_1024_bytes(gateway: Gateway, size: int) -> None:
    session = make_session(gateway.state, gateway=gateway)
    client = DCClient(session)
    await client.connect()
    client.send(PayloadType.OUTPUT, f"head -c {size} /dev/zero | tr '\\0' x; echo END\n".encode())
    await client.wait_output(b"xEND")
    sizes = [len(m.payload) for m in client.agent_data_frames()]
    assert max(sizes) <= 1024
    assert client.output.count(b"x") >= size
    await client.close()


async def test_session_preferences_shell_profile_and_idle_timeout() -> None:
    """The account's preferences (SSM-SessionManagerRunShell's inputs) reach the agent:
    the Linux shell profile is typed into the new shell, as the official agent does, and
    idleSessionTimeout (minutes) ends an idle session."""
    async with gateway_for(EmulatorConfig(shell="/bin/sh", pty_start_delay=0)) as gateway:
        state = gateway.state
        stored = state.documents.get("SSM-SessionManagerRunShell").version("$LATEST")
        preferences = json.loads(stored.content_as("JSON"))
        preferences["inputs"]["shellProfile"]["linux"] = "PROFILE_MARK=from-profile"
        state.documents.update("SSM-SessionManagerRunShell", json.dumps(preferences))
        session = state.start_session(DEFAULT_TARGET, base_url=gateway.url)
        assert session.inputs["idleSessionTimeout"] == "20"  # minutes, the default
        session.inputs["idleSessionTimeout"] = "0.02"  # 1.2 s (the API accepts 1-60)
        client = DCClient(session)
        await client.connect()
        try:
            await client.wait_output(b"PROFILE_MARK=from-profile")
            client.send(PayloadType.OUTPUT, b"echo mark=$PROFILE_MARK\n")
            await client.wait_output(b"mark=from-profile")
            closed = await client.wait_closed(timeout=5)
            assert "inactivity" in closed.output
        finally:
            await client.close()
