"""A channel carried over to a new process (``ssmsh attach``): sequence_state() and restore().

The agent here follows the official agent's receive rules before 3.2.1041.0
(amazon-ssm-agent ``datachannel.go``, ``handleStreamDataMessage``): the expected
message and the ones ahead of it are acked; one it processed already is dropped
*without* an ack (from 3.2.1041.0 on it is acked again; the fillers work either way).
Its output side is our agent channel.
"""

from __future__ import annotations

from ssmsh.protocol.constants import MessageType, PayloadType
from ssmsh.protocol.datachannel import ChannelConfig, DataChannel, Role, SequenceState
from ssmsh.protocol.events import PayloadReceived
from ssmsh.protocol.message import ClientMessage
from ssmsh.protocol.payloads import Acknowledge
from ssmsh.protocol.session import ClientSession, OutputReceived, SessionEstablished

SIZE = b'{"cols":80,"rows":24}'


class OfficialAgent:
    """Receives input as the official agent does; sends output with a DataChannel."""

    def __init__(self) -> None:
        self.out = DataChannel(Role.AGENT)
        self.expected = 0
        self.buffer: dict[int, ClientMessage] = {}
        self.processed: list[tuple[int, int, bytes]] = []  # (seq, payload type, payload)
        self.frames: list[bytes] = []

    def receive(self, frame: bytes, now: float) -> None:
        message = ClientMessage.decode(frame)
        if message.message_type != MessageType.INPUT_STREAM_DATA:
            self.out.receive_data(frame, now)
            self.frames += self.out.data_to_send()
            return
        seq = message.sequence_number
        if seq < self.expected:
            return  # "Discarding already processed message": no ack
        self.frames.append(self._ack(message))
        self.buffer[seq] = message
        while self.expected in self.buffer:
            done = self.buffer.pop(self.expected)
            self.processed.append((done.sequence_number, done.payload_type, done.payload))
            self.expected += 1

    def _ack(self, message: ClientMessage) -> bytes:
        ack = Acknowledge(
            str(message.message_type), str(message.message_id), message.sequence_number
        )
        return ClientMessage(
            message_type=MessageType.ACKNOWLEDGE,
            schema_version=1,
            created_date=1,
            sequence_number=0,
            flags=3,
            message_id=message.message_id,
            payload_type=0,
            payload=ack.encode(),
        ).encode()

    def send(self, text: bytes, now: float) -> None:
        self.out.send_data(PayloadType.OUTPUT, text, now)
        self.frames += self.out.data_to_send()

    def take(self) -> list[bytes]:
        frames, self.frames = self.frames, []
        return frames


def exchange(
    client: DataChannel, agent: OfficialAgent, now: float, *, drop_acks: bool = False
) -> list[bytes]:
    """Pass frames both ways until quiet; returns what the client got delivered."""
    got: list[bytes] = []
    for _ in range(20):
        to_agent = client.data_to_send()
        to_client = agent.take()
        if not to_agent and not to_client:
            break
        for frame in to_agent:
            agent.receive(frame, now)
        for frame in to_client:
            if drop_acks and ClientMessage.decode(frame).message_type == MessageType.ACKNOWLEDGE:
                continue
            client.receive_data(frame, now)
        got += [e.payload for e in client.events_received() if isinstance(e, PayloadReceived)]
    return got


def fresh_client(state: SequenceState) -> DataChannel:
    client = DataChannel(Role.CLIENT, ChannelConfig(max_retransmissions=3))
    client.restore(state, PayloadType.SIZE, SIZE, 10.0)
    assert client.data_to_send() == []  # nothing before a link
    client.connection_made(10.0)
    return client


def test_sequence_state_follows_acks_and_deliveries() -> None:
    client, agent = DataChannel(Role.CLIENT), OfficialAgent()
    assert client.sequence_state() == SequenceState(0, frozenset(), 0, 0)
    for word in (b"a", b"b", b"c"):
        agent.send(word, 0.0)
    client.send_data(PayloadType.OUTPUT, b"x", 0.0)
    client.send_data(PayloadType.OUTPUT, b"y", 0.0)
    # Sent, not acked yet: the state already counts them (it is taken before they go).
    assert client.sequence_state() == SequenceState(0, frozenset(), 0, 2)
    assert exchange(client, agent, 0.1) == [b"a", b"b", b"c"]
    assert client.sequence_state() == SequenceState(3, frozenset(), 2, 2)


def test_a_new_process_carries_on_without_loss_or_duplicate() -> None:
    first, agent = DataChannel(Role.CLIENT), OfficialAgent()
    agent.send(b"$ ", 0.0)
    first.send_data(PayloadType.OUTPUT, b"sleep 1; echo late\n", 0.0)
    assert exchange(first, agent, 0.1) == [b"$ "]
    state = first.sequence_state()  # ... and the process is killed
    agent.send(b"late\r\n$ ", 1.0)
    agent.take()  # nobody listens
    second = fresh_client(state)
    agent.out.connection_made(10.0)  # start_publication: it re-sends what is unacked
    agent.frames += agent.out.data_to_send()
    assert exchange(second, agent, 10.1) == [b"late\r\n$ "]
    second.send_data(PayloadType.OUTPUT, b"echo $$\n", 10.2)
    exchange(second, agent, 10.3)
    assert [p for _, _, p in agent.processed] == [b"sleep 1; echo late\n", b"echo $$\n"]
    assert second.unacked == 0


def test_input_in_doubt_is_covered_by_fillers_and_never_wedges() -> None:
    first, agent = DataChannel(Role.CLIENT), OfficialAgent()
    first.send_data(PayloadType.OUTPUT, b"one\n", 0.0)
    exchange(first, agent, 0.1)
    # Two messages reach the agent but their acks are lost; a third never leaves.
    first.send_data(PayloadType.OUTPUT, b"two\n", 0.2)
    first.send_data(PayloadType.OUTPUT, b"three\n", 0.2)
    exchange(first, agent, 0.3, drop_acks=True)
    first.send_data(PayloadType.OUTPUT, b"lost\n", 0.4)
    first.data_to_send()
    state = first.sequence_state()
    assert (state.out_acked, state.out_next) == (1, 4)

    second = fresh_client(state)
    second.send_data(PayloadType.OUTPUT, b"echo after\n", 10.0)
    exchange(second, agent, 10.1)
    # 1 and 2 were had (dropped again, unacked); 3 was not: the filler took its place.
    assert agent.processed[1:] == [
        (1, PayloadType.OUTPUT, b"two\n"),
        (2, PayloadType.OUTPUT, b"three\n"),
        (3, PayloadType.SIZE, SIZE),
        (4, PayloadType.OUTPUT, b"echo after\n"),
    ]
    # The unacked fillers were forgotten once "echo after" was acked: no retransmission
    # for ever, no timeout.
    assert second.unacked == 0
    assert second.get_timer() is None
    assert second.sequence_state() == SequenceState(0, frozenset(), 5, 5)


def test_output_acked_ahead_by_the_dead_process_is_skipped() -> None:
    first, agent = DataChannel(Role.CLIENT), OfficialAgent()
    for word in (b"0", b"1", b"2"):
        agent.send(word, 0.0)
    frames = agent.take()
    # 0 and 2 arrive, 1 is lost: 2 is acked and held for reordering.
    for frame in (frames[0], frames[2]):
        first.receive_data(frame, 0.1)
    for frame in first.data_to_send():
        agent.receive(frame, 0.1)
    state = first.sequence_state()
    assert state.next_in == 1 and state.acked_ahead == {2}
    agent.send(b"3", 0.2)
    agent.take()
    second = fresh_client(state)
    agent.out.connection_made(10.0)
    agent.frames += agent.out.data_to_send()
    # 2 is gone with the first process (the agent will not send it again): skipped.
    assert exchange(second, agent, 10.1) == [b"1", b"3"]
    assert second.stats["skipped"] == 1
    assert second.sequence_state().next_in == 4


def test_client_session_restore_is_established_at_once() -> None:
    session = ClientSession()
    state = SequenceState(7, frozenset(), 3, 3)
    session.restore(
        session_type="Standard_Stream",
        agent_version="3.3.1142.0",
        sequence=state,
        size=(100, 30),
        now=1.0,
    )
    events = session.events_received()
    assert isinstance(events[0], SessionEstablished)
    assert events[0].session_type == "Standard_Stream"
    assert session.established and session.channel.sequence_state() == state
    session.connection_made(1.0)
    session.send_input(b"x", 1.0)
    (frame,) = session.data_to_send()
    assert ClientMessage.decode(frame).sequence_number == 3
    assert not [e for e in session.events_received() if isinstance(e, OutputReceived)]
