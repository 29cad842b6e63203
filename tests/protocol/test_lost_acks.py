"""A lost ack against an agent that drops duplicates without acking them.

The agent here is our agent channel with ``ack_duplicates=False``: the receive rules
of amazon-ssm-agent 3.2.923.0 and older (``datachannel.go``, ``handleStreamDataMessage``:
the expected message is processed and acked, one ahead is acked and buffered, one
processed already is dropped unacked). From 3.2.1041.0 on the agent acks that one again
(``ack_duplicates=True``, our default), and a lost ack is repaired by itself.
"""

from __future__ import annotations

from ssmsh.protocol.constants import MessageType, PayloadType
from ssmsh.protocol.datachannel import ChannelConfig, DataChannel, Role, SequenceState
from ssmsh.protocol.events import RetransmissionTimeout
from ssmsh.protocol.message import ClientMessage
from ssmsh.protocol.session import ClientSession
from ssmsh.protocol.versions import agent_acks_duplicates

from .fakelink import FakeLink

SIZE = b'{"cols":80,"rows":24}'


def _pair(*, reack: bool = False, presume: bool = True, retransmissions: int = 300) -> FakeLink:
    client = DataChannel(Role.CLIENT, ChannelConfig(max_retransmissions=retransmissions))
    client.presume_lost_acks = presume
    client.probe = (PayloadType.SIZE, SIZE)
    agent = DataChannel(Role.AGENT, ChannelConfig(ack_duplicates=reack))
    return FakeLink(client, agent)


def _no_acks(message: ClientMessage, now: float) -> bool:
    return message.message_type != MessageType.ACKNOWLEDGE


def _input(link: FakeLink) -> list[bytes]:
    """What the agent processed, without the probes (Size)."""
    return [e.payload for e in link.received("agent") if e.payload_type == PayloadType.OUTPUT]


def _lose_ack_of(link: FakeLink, payload: bytes) -> None:
    """Send ``payload``; the agent processes it, its ack is lost with the link."""
    link.a2c.filter = _no_acks
    link.client.send_data(PayloadType.OUTPUT, payload, link.now)
    link.advance(0.05)
    assert _input(link)[-1] == payload
    link.go_down()
    link.a2c.filter = None
    link.advance(1.0)
    link.come_up()


def _timed_out(link: FakeLink) -> bool:
    return any(isinstance(e, RetransmissionTimeout) for e in link.events["client"])


def test_without_the_guard_a_lost_ack_kills_the_session() -> None:
    # What the guard is for: the agent drops the retransmission for ever.
    link = _pair(presume=False, retransmissions=10)
    _lose_ack_of(link, b"echo one\n")
    link.advance(30)
    assert _timed_out(link)


def test_ack_lost_with_the_link_then_the_session_carries_on() -> None:
    link = _pair()
    link.client.send_data(PayloadType.OUTPUT, b"stty size\n", 0.0)
    link.agent.send_data(PayloadType.OUTPUT, b"$ ", 0.0)
    link.advance(0.5)
    _lose_ack_of(link, b"echo one\n")
    # Nothing else to send: the probe (a Size) gives the evidence.
    link.advance(10)
    assert link.client.unacked == 0 and not _timed_out(link)
    assert link.client.stats["presumed_delivered"] == 1
    assert 1 <= link.client.stats["probes"] <= 4
    # Both ways on, once each, in order.
    link.client.send_data(PayloadType.OUTPUT, b"echo two\n", link.now)
    link.agent.send_data(PayloadType.OUTPUT, b"one\r\ntwo\r\n", link.now)
    link.advance(2)
    assert _input(link) == [b"stty size\n", b"echo one\n", b"echo two\n"]
    assert link.payloads("client") == [b"$ ", b"one\r\ntwo\r\n"]
    assert link.idle()


def test_typing_after_the_reconnect_is_evidence_enough() -> None:
    link = _pair()
    link.client.probe = None  # no probe: the user's own input tests the suspect
    _lose_ack_of(link, b"a")
    for i in range(8):
        link.client.send_data(PayloadType.OUTPUT, b"k%d" % i, link.now)
        link.advance(0.5)
    link.advance(5)
    assert link.client.unacked == 0 and not _timed_out(link)
    assert link.client.stats["presumed_delivered"] == 1
    assert link.client.stats["probes"] == 0
    assert _input(link) == [b"a", *(b"k%d" % i for i in range(8))]


def test_many_acks_lost_at_once() -> None:
    link = _pair()
    link.a2c.filter = _no_acks
    for i in range(50):
        link.client.send_data(PayloadType.OUTPUT, b"m%d" % i, link.now)
    link.advance(0.05)
    link.go_down()
    link.a2c.filter = None
    link.come_up()
    link.advance(10)
    assert link.client.unacked == 0 and not _timed_out(link)
    assert link.client.stats["presumed_delivered"] == 50
    assert _input(link) == [b"m%d" % i for i in range(50)]


def test_a_message_really_lost_is_still_retransmitted_and_delivered() -> None:
    link = _pair()
    link.client.send_data(PayloadType.OUTPUT, b"first", 0.0)
    link.advance(0.5)
    # "lost" never reaches the agent; "after" does (acked, buffered); then the link dies.
    link.c2a.filter = lambda m, now: m.payload != b"lost"
    link.client.send_data(PayloadType.OUTPUT, b"lost", link.now)
    link.client.send_data(PayloadType.OUTPUT, b"after", link.now)
    link.advance(0.05)
    link.go_down()
    link.c2a.filter = None
    link.come_up()
    link.advance(10)
    assert _input(link) == [b"first", b"lost", b"after"]
    assert link.client.stats["presumed_delivered"] == 0
    assert link.idle() and not _timed_out(link)


def test_lost_on_two_links_in_a_row_still_delivered() -> None:
    link = _pair()
    lost = True
    link.c2a.filter = lambda m, now: not (lost and m.payload == b"lost")
    link.client.send_data(PayloadType.OUTPUT, b"lost", 0.0)
    link.client.send_data(PayloadType.OUTPUT, b"after", 0.0)
    for _ in range(2):
        link.advance(0.3)
        link.go_down()
        link.come_up()
    link.advance(0.3)
    lost = False
    link.advance(10)
    assert _input(link) == [b"lost", b"after"]
    assert link.client.stats["presumed_delivered"] == 0 and link.idle()


def test_an_agent_that_acks_duplicates_needs_no_probe() -> None:
    link = _pair(reack=True)
    _lose_ack_of(link, b"echo one\n")
    link.advance(10)
    assert link.idle()
    assert link.client.stats["presumed_delivered"] == 0 and link.client.stats["probes"] == 0
    assert link.agent.stats["duplicates"] == 1


def test_probes_are_bounded_when_the_agent_acks_nothing() -> None:
    link = _pair(retransmissions=20)
    _lose_ack_of(link, b"x")
    link.a2c.filter = _no_acks
    link.advance(60)
    assert _timed_out(link)
    assert link.client.stats["probes"] == 4  # presume_after per link, none answered
    assert link.client.stats["presumed_delivered"] == 0
    # Each new link may probe again, up to max_probes in all.
    for _ in range(40):
        link.go_down()
        link.come_up()
        link.advance(5)
    assert link.client.stats["probes"] <= ChannelConfig().max_probes


def test_the_agent_channel_drops_duplicates_unacked_when_told() -> None:
    for reack, acks in ((True, 2), (False, 1)):
        agent = DataChannel(Role.AGENT, ChannelConfig(ack_duplicates=reack))
        client = DataChannel(Role.CLIENT)
        client.send_data(PayloadType.OUTPUT, b"x", 0.0)
        (frame,) = client.data_to_send()
        agent.receive_data(frame, 0.0)
        agent.receive_data(frame, 0.1)
        sent = [ClientMessage.decode(f) for f in agent.data_to_send()]
        assert [m.message_type for m in sent] == [MessageType.ACKNOWLEDGE] * acks
        assert agent.stats["delivered"] == 1 and agent.stats["duplicates"] == 1


def test_the_client_guards_unless_the_agent_is_known_to_reack() -> None:
    assert agent_acks_duplicates("3.2.1041.0") and agent_acks_duplicates("3.3.1142.0")
    assert not agent_acks_duplicates("3.2.923.0")
    assert not agent_acks_duplicates("")  # a shell without KMS does not handshake
    for version, guarded in (("3.3.1142.0", False), ("3.2.923.0", True), ("", True)):
        session = ClientSession()
        session.restore(
            session_type="Standard_Stream",
            agent_version=version,
            sequence=SequenceState(0, frozenset(), 0, 0),
            size=(100, 30),
            now=0.0,
        )
        assert session.channel.presume_lost_acks is guarded
        assert session.channel.probe == (PayloadType.SIZE, b'{"cols":100,"rows":30}')
