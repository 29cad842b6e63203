"""A hostile or broken peer, at the Sans-I/O layer: every buffer is bounded in bytes.

Each test sends what issue #15 measured (messages far ahead of sequence, stream data
before the handshake, a HandshakeRequest of thousands of actions, a flood of smux
SYNs) and checks that what is kept stays under its bound, and that what does not fit
is either left unacknowledged (the peer sends it again later) or ends the session
with one reason, never silently lost.
"""

from __future__ import annotations

import json
import uuid

import pytest

from ssmsh.exceptions import RemoteProtocolError
from ssmsh.protocol.constants import MessageType, PayloadType
from ssmsh.protocol.datachannel import ChannelConfig, DataChannel, Role
from ssmsh.protocol.events import MessageDropped, PayloadReceived
from ssmsh.protocol.message import ClientMessage
from ssmsh.protocol.payloads import MAX_REQUESTED_ACTIONS, HandshakeRequest
from ssmsh.protocol.session import MAX_EARLY_BYTES, SessionFailed
from ssmsh.protocol.smux import SMUX_VERSION, SmuxSession
from tests.protocol.test_session import Link, of, port_request

T0 = 1000.0


def agent_message(seq: int, payload: bytes) -> bytes:
    return ClientMessage(
        message_type=MessageType.OUTPUT_STREAM_DATA,
        schema_version=1,
        created_date=1,
        sequence_number=seq,
        flags=0,
        message_id=uuid.uuid4(),
        payload_type=PayloadType.OUTPUT,
        payload=payload,
    ).encode()


def acked_sequences(channel: DataChannel) -> list[int]:
    acks = [ClientMessage.decode(f) for f in channel.data_to_send()]
    return [json.loads(m.payload)["AcknowledgedMessageSequenceNumber"] for m in acks]


def test_messages_ahead_of_sequence_are_bounded_in_bytes() -> None:
    cap = 1024 * 1024
    client = DataChannel(Role.CLIENT, ChannelConfig(reorder_capacity_bytes=cap))
    big = b"x" * 100_000
    # 10,000 x 100 KB ahead of sequence (seq 0 never comes): 1 GB if counted in messages.
    for seq in range(1, 101):
        client.receive_data(agent_message(seq, big), T0)
    kept = cap // len(big)
    assert client._reorder_bytes == kept * len(big) <= cap
    # What was kept is acked; what was not is left unacked for the agent to send again.
    assert acked_sequences(client) == list(range(1, kept + 1))
    dropped = [e for e in client.events_received() if isinstance(e, MessageDropped)]
    assert len(dropped) == 100 - kept and not any(d.fatal for d in dropped)

    # The gap is filled: everything kept comes out in order, and the bound is free again.
    client.receive_data(agent_message(0, b"first"), T0)
    delivered = [
        e.sequence_number for e in client.events_received() if isinstance(e, PayloadReceived)
    ]
    assert delivered == list(range(kept + 1))
    assert client._reorder_bytes == 0
    # The dropped ones arrive again and are taken.
    client.receive_data(agent_message(kept + 1, big), T0)
    assert client.expected_sequence_number == kept + 2


def test_the_default_bound_holds_a_full_window_of_the_agents_messages() -> None:
    # The agent's 1 KiB messages, 10,000 ahead (its whole window) all fit.
    config = ChannelConfig()
    assert config.reorder_capacity * 1024 <= config.reorder_capacity_bytes


def test_stream_data_before_the_handshake_is_bounded_in_bytes() -> None:
    link = Link()
    link.agent.send(PayloadType.HANDSHAKE_REQUEST, port_request(kms=True))  # waits for KMS
    link.pump()
    chunk = b"y" * 65536
    for _ in range(MAX_EARLY_BYTES // len(chunk)):
        link.agent.send(PayloadType.OUTPUT, chunk)
    assert of(link.pump(), SessionFailed) == []  # up to the bound: kept
    link.agent.send(PayloadType.OUTPUT, b"one byte more")
    (failed,) = of(link.pump(), SessionFailed)
    assert failed.kind == "protocol"
    assert "before the handshake" in failed.reason


def test_a_handshake_request_of_thousands_of_actions_is_refused() -> None:
    actions = [{"ActionType": f"Unknown{i}", "ActionParameters": None} for i in range(20_001)]
    payload = json.dumps({"AgentVersion": "3.3.1142.0", "RequestedClientActions": actions})
    with pytest.raises(RemoteProtocolError, match="20001 actions"):
        HandshakeRequest.decode(payload.encode())

    link = Link()
    link.agent.send(PayloadType.HANDSHAKE_REQUEST, payload.encode())
    (failed,) = of(link.pump(), SessionFailed)
    assert "invalid HandshakeRequest" in failed.reason
    # No HandshakeResponse was built, let alone retransmitted.
    assert link.agent.of_type(PayloadType.HANDSHAKE_RESPONSE) == []


def test_a_handshake_request_at_the_bound_is_answered() -> None:
    actions = [
        {"ActionType": "SessionType", "ActionParameters": {"SessionType": "Standard_Stream"}}
    ]
    actions += [{"ActionType": f"Unknown{i}"} for i in range(MAX_REQUESTED_ACTIONS - 1)]
    payload = json.dumps({"AgentVersion": "3.3.1142.0", "RequestedClientActions": actions})
    assert len(HandshakeRequest.decode(payload.encode()).requested_actions) == MAX_REQUESTED_ACTIONS


def test_a_syn_flood_costs_a_refusing_end_nothing() -> None:
    client = SmuxSession(client=True, accept_streams=False)
    syns = b"".join(
        bytes([SMUX_VERSION, 0]) + (0).to_bytes(2, "little") + i.to_bytes(4, "little")
        for i in range(2, 200_002, 2)
    )
    client.receive_data(syns, T0)
    assert client.refused_streams == 100_000
    assert dict(client.streams) == {} and client.events_received() == []
    assert client.data_to_send() == b""  # not even a FIN each
    # The client's own streams still work.
    sid = client.open_stream()
    assert sid in client.streams
