"""Shell sessions end to end: real WebSocket, real gateway, real agent, real pty."""

from __future__ import annotations

import pytest

from ssmsh.emulator.gateway import Gateway
from ssmsh.emulator.state import SessionStatus
from ssmsh.protocol.constants import PayloadType
from ssmsh.protocol.payloads import TerminalSize
from tests.emulator.dcclient import DCClient, gateway, make_session

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
