"""The data-channel state machine over a fake lossy link, with a hand-stepped clock."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssmsh.exceptions import LocalProtocolError
from ssmsh.protocol.constants import MessageType, PayloadType
from ssmsh.protocol.crypto import Encrypter
from ssmsh.protocol.datachannel import ChannelConfig, DataChannel, Role
from ssmsh.protocol.events import (
    ChannelClosedReceived,
    MessageDropped,
    PayloadReceived,
    PublicationPaused,
    PublicationStarted,
    RetransmissionTimeout,
)
from ssmsh.protocol.message import ClientMessage, format_wire_id
from ssmsh.protocol.payloads import Acknowledge, ChannelClosedPayload
from ssmsh.protocol.rtt import RttConfig, RttEstimator

from .fakelink import Conditions, FakeLink

OUTPUT = PayloadType.OUTPUT
INPUT = MessageType.INPUT_STREAM_DATA
OUT = MessageType.OUTPUT_STREAM_DATA
ACK = MessageType.ACKNOWLEDGE
TRACES = sorted((Path(__file__).resolve().parents[2] / "protocol" / "traces").glob("*.jsonl"))


def pair(
    client_config: ChannelConfig | None = None,
    agent_config: ChannelConfig | None = None,
    **link: Any,
) -> tuple[DataChannel, DataChannel, FakeLink]:
    client = DataChannel(Role.CLIENT, client_config)
    agent = DataChannel(Role.AGENT, agent_config)
    return client, agent, FakeLink(client, agent, **link)


def drop_first(message_type: str, sequence_number: int | None = None, count: int = 1) -> Any:
    """A pipe filter losing the first ``count`` frames of a type (and sequence number)."""
    left = [count]

    def keep(message: ClientMessage, now: float) -> bool:
        matches = message.message_type == message_type and (
            sequence_number is None or message.sequence_number == sequence_number
        )
        if matches and left[0] > 0:
            left[0] -= 1
            return False
        return True

    return keep


def blackhole(message: ClientMessage, now: float) -> bool:
    return False


def gateway_message(message_type: str, payload: bytes = b"") -> bytes:
    return ClientMessage(message_type, 1, 1, 0, 3, uuid.uuid4(), 0, payload).encode()


def acked_sequence_numbers(link: FakeLink, direction: str) -> list[int]:
    return [
        Acknowledge.decode(s.message.payload).sequence_number for s in link.sent(direction, ACK)
    ]


# ------------------------------------------------------------------ reliable delivery

PROFILES = {
    "clean": Conditions(delay=0.02),
    "jitter-reorder": Conditions(delay=0.01, jitter=0.05, reorder=0.2, reorder_delay=0.1),
    "lossy": Conditions(delay=0.02, jitter=0.03, drop=0.15, duplicate=0.1, reorder=0.1),
    "awful": Conditions(delay=0.05, jitter=0.2, drop=0.3, duplicate=0.3, reorder=0.3),
}


def exchange(link: FakeLink, count: int, gap: float, respect_writable: bool = False) -> None:
    """Both sides send ``count`` distinct payloads, ``gap`` seconds apart, then drain."""
    sent = {"client": 0, "agent": 0}
    while sent["client"] < count or sent["agent"] < count:
        for name, channel in (("client", link.client), ("agent", link.agent)):
            if sent[name] < count and (channel.writable or not respect_writable):
                channel.send_data(OUTPUT, f"{name}-{sent[name]}".encode(), link.now)
                sent[name] += 1
        link.advance(gap)
    link.run()


def check_exchange(link: FakeLink, count: int) -> None:
    assert link.payloads("agent") == [f"client-{i}".encode() for i in range(count)]
    assert link.payloads("client") == [f"agent-{i}".encode() for i in range(count)]
    assert [e.sequence_number for e in link.received("client")] == list(range(count))
    assert link.idle()
    for side in ("client", "agent"):
        for event in link.events[side]:
            # The only other event allowed: a full reorder buffer refusing a message,
            # which the sender's retransmission then repairs.
            if not isinstance(event, PayloadReceived):
                assert isinstance(event, MessageDropped), event
                assert "reorder buffer full" in event.reason and not event.fatal
    # A retransmission is the identical frame: same id, same CreatedDate, same bytes.
    copies: dict[tuple[str, int], ClientMessage] = {}
    for sent in link.wire:
        if sent.message.message_type in (INPUT, OUT):
            key = (sent.direction, sent.message.sequence_number)
            assert copies.setdefault(key, sent.message) == sent.message


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("seed", range(8))
def test_every_payload_arrives_once_and_in_order(profile: str, seed: int) -> None:
    conditions = PROFILES[profile]
    _, _, link = pair(seed=seed, c2a=conditions, a2c=conditions)
    exchange(link, 150, gap=0.004)
    check_exchange(link, 150)


@pytest.mark.parametrize("seed", range(4))
def test_delivery_with_a_small_window_and_a_polite_producer(seed: int) -> None:
    config = ChannelConfig(max_in_flight=5, high_water=12, reorder_capacity=8)
    conditions = PROFILES["lossy"]
    _, _, link = pair(config, config, seed=seed, c2a=conditions, a2c=conditions)
    exchange(link, 300, gap=0.001, respect_writable=True)
    check_exchange(link, 300)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    count=st.integers(1, 60),
    gap=st.sampled_from([0.0, 0.001, 0.05]),
    delay=st.floats(0.0, 0.3),
    jitter=st.floats(0.0, 0.3),
    drop=st.floats(0.0, 0.5),
    duplicate=st.floats(0.0, 0.5),
    reorder=st.floats(0.0, 0.5),
    capacity=st.sampled_from([1, 3, 10_000]),
)
def test_delivery_under_random_conditions(
    seed: int,
    count: int,
    gap: float,
    delay: float,
    jitter: float,
    drop: float,
    duplicate: float,
    reorder: float,
    capacity: int,
) -> None:
    conditions = Conditions(delay, jitter, drop, duplicate, reorder)
    config = ChannelConfig(reorder_capacity=capacity, max_retransmissions=10_000)
    _, _, link = pair(config, config, seed=seed, c2a=conditions, a2c=conditions)
    exchange(link, count, gap)
    check_exchange(link, count)


# ------------------------------------------------------------------ retransmission timing


def test_one_lost_message_is_retransmitted_exactly_once_at_the_rto() -> None:
    client, _agent, link = pair(c2a=Conditions(delay=0.01), a2c=Conditions(delay=0.01))
    link.c2a.filter = drop_first(INPUT)
    client.send_data(OUTPUT, b"x", link.now)
    assert client.get_timer() == pytest.approx(0.2)
    link.run()
    assert link.transmissions("c>a", 0) == [0.0, pytest.approx(0.2)]
    assert link.payloads("agent") == [b"x"]
    assert acked_sequence_numbers(link, "a>c") == [0]
    assert client.unacked == 0
    assert client.get_timer() is None
    # Karn: the retransmitted message gave no sample; the RTO stays backed off.
    assert client.rtt.samples == 0
    assert client.rtt.srtt == pytest.approx(0.1)
    assert client.rtt.rto == pytest.approx(0.4)
    # The next message is sent once: its sample resets the backoff (R = 0.02).
    link.advance(1.0)
    client.send_data(OUTPUT, b"y", link.now)
    link.run()
    assert client.rtt.samples == 1
    assert client.rtt.rttvar == pytest.approx(0.25 * (0.1 - 0.02))
    assert client.rtt.srtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.02)
    assert client.rtt.rto == pytest.approx(0.09 + 4 * 0.02)
    assert len(link.transmissions("c>a", 1)) == 1


def test_exponential_backoff_up_to_the_maximum_rto() -> None:
    client, _, link = pair()
    link.c2a.filter = blackhole
    client.send_data(OUTPUT, b"x", 0.0)
    link.advance(5.0)
    expected = [0.0, 0.2, 0.6, 1.4, 2.4, 3.4, 4.4]
    assert link.transmissions("c>a", 0) == [pytest.approx(t) for t in expected]


def test_every_expired_message_is_retransmitted_not_only_the_head() -> None:
    client, _agent, link = pair()
    link.c2a.filter = blackhole
    for i in range(3):
        client.send_data(OUTPUT, b"m%d" % i, 0.0)
    link.advance(0.3)
    for seq in range(3):
        assert link.transmissions("c>a", seq) == [0.0, pytest.approx(0.2)]
    link.c2a.filter = None
    link.run()
    assert link.payloads("agent") == [b"m0", b"m1", b"m2"]


def test_retransmission_timeout_after_max_retransmissions() -> None:
    client, _, link = pair(ChannelConfig(max_retransmissions=3))
    link.c2a.filter = blackhole
    client.send_data(OUTPUT, b"x", 0.0)
    link.advance(10.0)
    assert link.transmissions("c>a", 0) == [pytest.approx(t) for t in (0.0, 0.2, 0.6, 1.4)]
    assert link.events["client"] == [RetransmissionTimeout(sequence_number=0, attempts=3)]
    assert client.get_timer() is None
    link.advance(10.0)
    assert len(link.transmissions("c>a", 0)) == 4
    assert len(link.events["client"]) == 1


# ------------------------------------------------------------------ RTT estimation


def reference_rtt(samples: list[float]) -> list[tuple[float, float, float]]:
    """SRTT, RTTVAR and RTO after each sample (notes §6.2)."""
    srtt, rttvar, out = 0.1, 0.0, []
    for r in samples:
        rttvar = 0.75 * rttvar + 0.25 * abs(srtt - r)
        srtt = 0.875 * srtt + 0.125 * r
        out.append((srtt, rttvar, min(srtt + max(0.01, 4 * rttvar), 1.0)))
    return out


def test_acks_update_srtt_rttvar_and_rto() -> None:
    one_way = [0.01, 0.05, 0.02, 0.06, 0.003, 0.04]
    client, _, link = pair()
    expected = reference_rtt([2 * d for d in one_way])
    for i, d in enumerate(one_way):
        assert 2 * d < client.rtt.rto  # no retransmission may muddy the sample
        link.c2a.conditions = link.a2c.conditions = Conditions(delay=d)
        client.send_data(OUTPUT, b"%d" % i, link.now)
        link.run()
        srtt, rttvar, rto = expected[i]
        assert client.rtt.srtt == pytest.approx(srtt)
        assert client.rtt.rttvar == pytest.approx(rttvar)
        assert client.rtt.rto == pytest.approx(rto)
        link.advance(1.0)
    assert client.rtt.samples == len(one_way)
    assert client.stats["retransmitted"] == 0


def test_karn_no_sample_when_the_first_copy_was_only_late() -> None:
    client, agent, link = pair(c2a=Conditions(delay=0.3), a2c=Conditions(delay=0.25))
    client.send_data(OUTPUT, b"x", 0.0)
    link.run()
    assert link.transmissions("c>a", 0) == [0.0, pytest.approx(0.2)]
    assert client.rtt.samples == 0
    assert client.rtt.srtt == pytest.approx(0.1)
    assert agent.stats["duplicates"] == 1
    assert acked_sequence_numbers(link, "a>c") == [0, 0]  # the duplicate is re-acked
    assert client.stats["stale_acks"] == 1
    assert link.payloads("agent") == [b"x"]


def test_rtt_estimator_rules() -> None:
    rtt = RttEstimator()
    assert (rtt.srtt, rtt.rttvar, rtt.rto) == (0.1, 0.0, 0.2)
    rtt.update(5.0)
    assert rtt.rto == 1.0  # capped
    for _ in range(200):
        rtt.update(0.05)
    assert rtt.srtt == pytest.approx(0.05)
    assert rtt.rto == pytest.approx(0.05 + 0.01)  # the granularity floor
    rtt.update(-1.0)  # a clock step back counts as zero
    assert rtt.srtt == pytest.approx(0.875 * 0.05)
    base = rtt.rto
    rtt.back_off()
    assert rtt.rto == pytest.approx(2 * base)
    for _ in range(20):
        rtt.back_off()
    assert rtt.rto == 1.0
    rtt.update(0.05)
    assert rtt.rto < 0.2  # a fresh sample ends the backoff
    floor = RttEstimator(RttConfig(min_rto=0.3))
    floor.update(0.001)
    assert floor.rto == 0.3


# ------------------------------------------------------------------ receiving


def test_duplicates_are_delivered_once_and_re_acked() -> None:
    client, agent, link = pair()
    link.c2a.filter = drop_first(ACK)
    agent.send_data(OUTPUT, b"hello", 0.0)
    link.run()
    assert link.payloads("client") == [b"hello"]
    assert acked_sequence_numbers(link, "c>a") == [0, 0]
    assert client.stats["duplicates"] == 1
    assert agent.unacked == 0


def test_reorder_buffer_is_bounded_and_overflow_recovers_by_retransmission() -> None:
    _client, agent, link = pair(ChannelConfig(reorder_capacity=4))
    link.a2c.filter = drop_first(OUT, sequence_number=0)
    for i in range(10):
        agent.send_data(OUTPUT, b"%d" % i, 0.0)
    link.advance(0.1)
    # 1..4 are buffered and acked; 5..9 find the buffer full: dropped, not acked.
    assert acked_sequence_numbers(link, "c>a") == [1, 2, 3, 4]
    dropped = [e for e in link.events["client"] if isinstance(e, MessageDropped)]
    assert len(dropped) == 5
    assert all("reorder buffer full" in e.reason and not e.fatal for e in dropped)
    assert link.payloads("client") == []
    link.run()
    assert link.payloads("client") == [b"%d" % i for i in range(10)]
    # The acks of 1..4 (R = 0.02 each, all back at 0.02) moved the RTO before seq 0
    # expired, and the timer runs from the last ack that brought news (RFC 6298 5.3).
    rto = reference_rtt([0.02] * 4)[-1][2]
    assert link.transmissions("a>c", 0) == [0.0, pytest.approx(0.02 + rto)]
    assert link.transmissions("a>c", 1) == [0.0]
    assert link.transmissions("a>c", 7) == [0.0, pytest.approx(0.02 + rto)]
    assert agent.unacked == 0


def test_no_retransmission_while_acks_come() -> None:
    """A burst queued behind a slow consumer is acked one by one, later than an RTO: while
    acks keep coming, nothing is sent twice (it was 6% of a cp upload's messages)."""
    client, agent = DataChannel(Role.CLIENT), DataChannel(Role.AGENT)
    client.connection_made(0.0)
    agent.connection_made(0.0)
    for i in range(50):
        client.send_data(OUTPUT, b"%d" % i, 0.0)
    wire = client.data_to_send()
    assert len(wire) == 50
    # The agent takes one message every 50 ms (a pty drained slowly): acks trickle back.
    for i, frame in enumerate(wire):
        now = 0.05 * (i + 1)
        client.handle_timer(now)
        assert client.stats["retransmitted"] == 0, i
        agent.receive_data(frame, now)
        for ack in agent.data_to_send():
            client.receive_data(ack, now)
    assert client.unacked == 0 and client.stats["retransmitted"] == 0


def test_gap_is_acked_at_once_and_drained_in_order() -> None:
    _client, agent, link = pair()
    link.a2c.filter = drop_first(OUT, sequence_number=1)
    for i in range(4):
        agent.send_data(OUTPUT, b"%d" % i, 0.0)
    link.advance(0.05)
    assert acked_sequence_numbers(link, "c>a") == [0, 2, 3]
    assert link.payloads("client") == [b"0"]
    link.run()
    assert link.payloads("client") == [b"0", b"1", b"2", b"3"]
    assert acked_sequence_numbers(link, "c>a") == [0, 2, 3, 1]


# ------------------------------------------------------------------ window and backpressure


def test_window_and_backpressure_step_by_step() -> None:
    config = ChannelConfig(max_in_flight=4, high_water=8)
    client, agent = DataChannel(Role.CLIENT, config), DataChannel(Role.AGENT)
    writable = []
    for i in range(10):
        client.send_data(OUTPUT, b"%d" % i, 0.0)
        writable.append(client.writable)
    assert writable == [True] * 7 + [False] * 3
    assert client.unacked == 10
    frames = client.data_to_send()
    assert [ClientMessage.decode(f).sequence_number for f in frames] == [0, 1, 2, 3]
    for frame in frames:
        agent.receive_data(frame, 0.01)
    acks = agent.data_to_send()
    released, writable = [], []
    for ack in acks:
        client.receive_data(ack, 0.02)
        released.append([ClientMessage.decode(f).sequence_number for f in client.data_to_send()])
        writable.append(client.writable)
    # Each ack lets exactly one queued message out; writable returns below high_water.
    assert released == [[4], [5], [6], [7]]
    assert writable == [False, False, True, True]
    assert client.unacked == 6


def test_window_and_backpressure_over_the_link() -> None:
    client, _agent, link = pair(ChannelConfig(max_in_flight=4, high_water=8))
    for i in range(10):
        client.send_data(OUTPUT, b"%d" % i, 0.0)
    assert not client.writable
    link.run()
    assert link.payloads("agent") == [b"%d" % i for i in range(10)]  # nothing evicted
    # Each queued message went out the moment the ack that opened the window arrived.
    first_sent = {s.message.sequence_number: s.time for s in reversed(link.sent("c>a", INPUT))}
    ack_arrival = {
        Acknowledge.decode(s.message.payload).sequence_number: s.time + 0.01
        for s in link.sent("a>c", ACK)
    }
    for seq in range(4, 10):
        assert first_sent[seq] == pytest.approx(ack_arrival[seq - 4])
    assert client.stats["retransmitted"] == 0


# ------------------------------------------------------------------ connection loss


def test_nothing_is_sent_while_down_and_everything_unacked_goes_out_on_reconnect() -> None:
    client, agent, link = pair()
    for i in range(3):
        client.send_data(OUTPUT, b"%d" % i, link.now)
    agent.send_data(OUTPUT, b"a0", link.now)
    link.go_down()  # the frames already on the wire are lost
    for i in range(3, 5):
        client.send_data(OUTPUT, b"%d" % i, link.now)
    agent.send_data(OUTPUT, b"a1", link.now)
    wire_before = len(link.wire)
    assert client.get_timer() is None and agent.get_timer() is None
    link.advance(5.0)
    assert len(link.wire) == wire_before
    assert link.payloads("agent") == []
    link.come_up()
    assert link.transmissions("c>a", 0) == [0.0, 5.0]
    assert link.transmissions("c>a", 4) == [5.0]
    link.run()
    assert link.payloads("agent") == [b"0", b"1", b"2", b"3", b"4"]
    assert link.payloads("client") == [b"a0", b"a1"]
    assert link.idle()


def test_a_message_received_while_down_is_delivered_and_re_acked_later() -> None:
    client = DataChannel(Role.CLIENT)
    agent = DataChannel(Role.AGENT)
    agent.send_data(OUTPUT, b"x", 0.0)
    (frame,) = agent.data_to_send()
    client.connection_lost()
    client.receive_data(frame, 0.01)
    assert client.events_received() == [PayloadReceived(OUTPUT, b"x", 0)]
    assert client.data_to_send() == []  # no transport: no ack
    client.connection_made(0.02)
    assert client.data_to_send() == []
    client.receive_data(frame, 0.3)  # the agent's retransmission
    assert client.events_received() == []
    (ack,) = client.data_to_send()
    agent.receive_data(ack, 0.31)
    assert agent.unacked == 0


# ------------------------------------------------------------------ publication


def is_paused(channel: DataChannel) -> bool:
    return channel.paused


def test_pause_and_start_publication() -> None:
    client, agent, link = pair()
    client.send_data(OUTPUT, b"before", 0.0)
    link.go_down()
    link.come_up()  # nothing pending on the wire, the retransmission of "before" is out
    client.receive_data(gateway_message("pause_publication"), link.now)
    client.receive_data(gateway_message("pause_publication"), link.now)
    assert is_paused(client)
    link.c2a.clear()
    client.send_data(OUTPUT, b"while paused", link.now)
    assert client.get_timer() is None
    link.advance(3.0)
    assert link.payloads("agent") == []
    # Acks still flow while paused (the official agent does the same).
    agent.send_data(OUTPUT, b"to client", link.now)
    link.advance(0.1)
    assert link.payloads("client") == [b"to client"]
    client.receive_data(gateway_message("start_publication"), link.now)
    client.receive_data(gateway_message("start_publication"), link.now)
    assert not is_paused(client)
    link.run()
    assert link.payloads("agent") == [b"before", b"while paused"]
    assert [e for e in link.events["client"] if not isinstance(e, PayloadReceived)] == [
        PublicationPaused(),
        PublicationStarted(),
    ]


# ------------------------------------------------------------------ bad input


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_never_raises(data: bytes) -> None:
    client = DataChannel(Role.CLIENT)
    client.receive_data(data, 1.0)
    assert all(isinstance(e, MessageDropped) for e in client.events_received())
    assert client.expected_sequence_number == 0


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 255), st.integers(0, 20))
def test_mutated_frames_never_raise(position: int, mask: int, cut: int) -> None:
    agent = DataChannel(Role.AGENT)
    agent.send_data(OUTPUT, b"some output", 0.0)
    agent.send_data(PayloadType.HANDSHAKE_REQUEST, b'{"AgentVersion":"3.0"}', 0.0)
    client = DataChannel(Role.CLIENT)
    for frame in agent.data_to_send():
        raw = bytearray(frame)
        raw[position % len(raw)] ^= mask
        for data in (bytes(raw), frame[: len(frame) - cut], frame + bytes(cut)):
            client.receive_data(data, 0.1)
    for event in client.events_received():
        assert isinstance(event, (MessageDropped, PayloadReceived))


def test_invalid_frames_are_dropped_with_an_event() -> None:
    client = DataChannel(Role.CLIENT)
    client.receive_data(b"\x00" * 10, 0.0)
    bad_ack = ClientMessage(ACK, 1, 1, 0, 3, uuid.uuid4(), 0, b"not json").encode()
    client.receive_data(bad_ack, 0.0)
    events = client.events_received()
    assert all(isinstance(e, MessageDropped) and not e.fatal for e in events)
    reasons = [e.reason for e in events if isinstance(e, MessageDropped)]
    assert len(reasons) == 2
    assert "invalid frame" in reasons[0]
    assert "acknowledge" in reasons[1]
    assert client.data_to_send() == []
    assert client.stats["dropped"] == 2


def test_other_message_types_are_ignored() -> None:
    client = DataChannel(Role.CLIENT)
    for mtype in ("agent_session_state", INPUT, "something_new"):
        frame = ClientMessage(mtype, 1, 1, 0, 0, uuid.uuid4(), 1, b"x").encode()
        client.receive_data(frame, 0.0)
    assert client.events_received() == []
    assert client.data_to_send() == []
    assert client.stats["ignored"] == 3


def test_unknown_ack_is_ignored() -> None:
    client = DataChannel(Role.CLIENT)
    ack = Acknowledge(INPUT, str(uuid.uuid4()), 99).encode()
    client.receive_data(ClientMessage(ACK, 1, 1, 0, 3, uuid.uuid4(), 0, ack).encode(), 0.0)
    assert client.events_received() == []
    assert client.stats["stale_acks"] == 1


def test_channel_closed_is_reported_and_not_acked() -> None:
    client = DataChannel(Role.CLIENT)
    payload = ChannelClosedPayload("m", "d", "i-1", "s-1", "Session terminated")
    client.receive_data(gateway_message("channel_closed", payload.encode()), 0.0)
    client.receive_data(gateway_message("channel_closed", b"garbage"), 0.0)
    assert client.events_received() == [
        ChannelClosedReceived(payload),
        ChannelClosedReceived(ChannelClosedPayload("", "", "", "", "")),
    ]
    assert client.data_to_send() == []


# ------------------------------------------------------------------ sending rules


def test_send_refuses_empty_payloads_and_a_closed_channel() -> None:
    client = DataChannel(Role.CLIENT)
    with pytest.raises(LocalProtocolError):
        client.send_data(OUTPUT, b"", 0.0)
    client.close()
    with pytest.raises(LocalProtocolError):
        client.send_data(OUTPUT, b"x", 0.0)


def test_large_output_is_split() -> None:
    client, _, link = pair(ChannelConfig(max_payload_size=4))
    assert client.send_data(OUTPUT, b"abcdefghij", 0.0) == 2
    assert client.send_data(PayloadType.SIZE, b'{"cols":80,"rows":24}', 0.0) == 3
    link.run()
    assert link.payloads("agent") == [b"abcd", b"efgh", b"ij", b'{"cols":80,"rows":24}']


def test_encryption_applies_to_the_right_payload_types() -> None:
    key = bytes(range(64))
    client, agent, link = pair()
    client.cipher = Encrypter.for_client(key)
    agent.cipher = Encrypter.for_agent(key)
    client.send_data(OUTPUT, b"ls\r", 0.0)
    client.send_data(PayloadType.SIZE, b'{"cols":80,"rows":24}', 0.0)
    for ptype in (OUTPUT, PayloadType.ERROR, PayloadType.STDERR, PayloadType.EXIT_CODE):
        agent.send_data(ptype, b"p%d" % ptype, 0.0)
    link.run()
    assert link.payloads("agent") == [b"ls\r", b'{"cols":80,"rows":24}']
    assert link.payloads("client") == [b"p1", b"p2", b"p11", b"p12"]
    on_wire = {
        (s.direction, s.message.payload_type): s.message.payload
        for s in link.wire
        if s.message.message_type in (INPUT, OUT)
    }
    assert len(on_wire["c>a", OUTPUT]) == 3 + 28
    assert on_wire["c>a", PayloadType.SIZE] == b'{"cols":80,"rows":24}'
    assert on_wire["a>c", PayloadType.ERROR] == b"p2"
    for ptype in (OUTPUT, PayloadType.STDERR, PayloadType.EXIT_CODE):
        assert len(on_wire["a>c", ptype]) == len(b"p%d" % ptype) + 28


def test_a_payload_that_fails_authentication_is_fatal_and_not_acked() -> None:
    key = bytes(range(64))
    client = DataChannel(Role.CLIENT)
    client.cipher = Encrypter.for_client(key)
    wrong = DataChannel(Role.AGENT)
    wrong.cipher = Encrypter.for_agent(bytes(64))
    wrong.send_data(OUTPUT, b"secret", 0.0)
    (frame,) = wrong.data_to_send()
    client.receive_data(frame, 0.0)
    (event,) = client.events_received()
    assert isinstance(event, MessageDropped) and event.fatal
    assert client.data_to_send() == []
    assert client.expected_sequence_number == 0


# ------------------------------------------------------------------ wire shapes and traces


def test_frame_shapes_match_the_recordings() -> None:
    config = ChannelConfig(epoch_offset=1_700_000_000.0)
    client, agent, link = pair(config, config)
    agent.send_data(OUTPUT, b"$ ", 0.5)
    agent.send_data(OUTPUT, b"more", 0.5)
    client.send_data(PayloadType.SIZE, b'{"cols":120,"rows":30}', 0.5)
    link.run()
    by_kind: dict[tuple[str, str, int], ClientMessage] = {}
    for sent in link.wire:
        m = sent.message
        by_kind.setdefault((sent.direction, m.message_type, m.sequence_number), m)
        assert m.schema_version == 1
    first, second = by_kind["a>c", OUT, 0], by_kind["a>c", OUT, 1]
    assert (first.flags, second.flags) == (1, 0)  # SYN on the agent's sequence 0 only
    assert first.created_date == 1_700_000_000_500
    assert by_kind["c>a", INPUT, 0].flags == 0
    for direction in ("c>a", "a>c"):
        for sent in link.sent(direction, ACK):
            assert (sent.message.sequence_number, sent.message.flags) == (0, 3)
            assert sent.message.payload_type == PayloadType.UNDEFINED
    ack = Acknowledge.decode(link.sent("c>a", ACK)[0].message.payload)
    assert ack == Acknowledge(OUT, str(first.message_id), 0, True)


def test_acks_are_the_encoded_acknowledge_payload() -> None:
    client, agent, _ = pair(ChannelConfig(epoch_offset=1_700_000_000.0))
    for seq in range(3):
        agent.send_data(OUTPUT, b"x" * (seq + 1), 0.0)
        (frame,) = agent.data_to_send()
        sent = ClientMessage.decode(frame)
        client.receive_data(frame, 0.25)
        (ack_frame,) = client.data_to_send()
        ack = ClientMessage.decode(ack_frame)
        expected = ClientMessage(
            message_type=ACK,
            schema_version=1,
            created_date=1_700_000_000_250,
            sequence_number=0,
            flags=3,
            message_id=ack.message_id,
            payload_type=0,
            payload=Acknowledge(OUT, str(sent.message_id), seq, True).encode(),
        )
        assert ack_frame == expected.encode()
    assert client.stats["delivered"] == 3


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _frame(record: dict[str, Any]) -> bytes:
    return ClientMessage(
        record["message_type"],
        record["schema_version"],
        record["created_date"],
        record["sequence_number"],
        record["flags"],
        uuid.UUID(record["message_id"]),
        record["payload_type"],
        base64.b64decode(record["payload_b64"]),
    ).encode()


def _same_shape(ours: ClientMessage, record: dict[str, Any]) -> None:
    """Equal in everything but the random MessageId and the clock-derived CreatedDate."""
    assert ours.message_type == record["message_type"]
    assert ours.schema_version == record["schema_version"]
    assert ours.sequence_number == record["sequence_number"]
    assert ours.flags == record["flags"]
    assert ours.payload_type == record["payload_type"]
    assert ours.payload == base64.b64decode(record["payload_b64"])


def _replay(path: Path, role: Role) -> tuple[DataChannel, int]:
    """Play one side of a recording against our DataChannel, frame by frame.

    Frames the recorded peer sent are fed in; frames the recorded side sent must come out
    of our channel in the same order and shape (acks byte for byte in their payload).
    """
    ours, theirs = ("cli>age", "age>cli") if role is Role.CLIENT else ("age>cli", "cli>age")
    channel = DataChannel(role)
    records = _channel_records(path, role)
    start = _records(path)[0]["t"]
    # Input that reached the agent as it was ending went unacknowledged there
    # (interactive-command-exit-5); ours still acks it.
    recorded_acks = {
        _acked_record(r) for r in records if r["dir"] == "age>cli" and r["message_type"] == ACK
    }
    never_acked = {
        r["sequence_number"]
        for r in records
        if r["dir"] == "cli>age"
        and r["message_type"] != ACK
        and r["sequence_number"] not in recorded_acks
    }
    pending: list[ClientMessage] = []
    checked = 0
    for record in records:
        now = record["t"] - start
        direction = record["dir"]
        from_gateway = "mgs>cli" if role is Role.CLIENT else "mgs>age"
        if direction in (theirs, from_gateway):
            channel.receive_data(_frame(record), now)
        elif direction == ours:
            if record["message_type"] != ACK:
                if record["sequence_number"] < channel.next_sequence_number:
                    continue  # the recorded side retransmitted; ours has its own timer
                payload = base64.b64decode(record["payload_b64"])
                channel.send_data(record["payload_type"], payload, now)
            pending.extend(ClientMessage.decode(f) for f in channel.data_to_send())
            # Acks and data are matched separately: the official agent sometimes writes its
            # output before the ack of the input that caused it; ours acks at once.
            is_ack = record["message_type"] == ACK
            index = next(i for i, m in enumerate(pending) if (m.message_type == ACK) == is_ack)
            _same_shape(pending.pop(index), record)
            checked += 1
        else:
            continue
        pending.extend(ClientMessage.decode(f) for f in channel.data_to_send())
    if role is Role.AGENT:
        pending = [m for m in pending if not (m.message_type == ACK and _acked(m) in never_acked)]
    assert pending == []
    return channel, checked


def _channel_records(path: Path, role: Role) -> list[dict[str, Any]]:
    """The records of one channel: a client process's from its first connection on."""
    records = _records(path)
    if role is Role.CLIENT:
        # Frames the agent sent before the plugin connected never reached it.
        opened = next(
            i for i, r in enumerate(records) if r["dir"] == "in?" and "ClientVersion" in r["text"]
        )
        records = records[opened:]
    # A second client connection with a new ClientId is a new process with sequence state
    # of its own (shell-client-sigkill-resume): another channel, not this one's.
    openings = [
        i for i, r in enumerate(records) if r["dir"] == "in?" and "ClientVersion" in r["text"]
    ]
    if len(openings) > 1 and _client_id(records[openings[0]]) != _client_id(records[openings[1]]):
        records = records[: openings[1]]
        if role is Role.CLIENT:  # what the agent sent after the client died never reached it
            last = max(r["t"] for r in records if r["dir"] == "cli>age")
            records = [r for r in records if not (r["dir"] == "age>cli" and r["t"] > last)]
    return records


def _client_id(record: dict[str, Any]) -> str:
    return str(json.loads(record["text"]).get("ClientId", ""))


def _payload(record: dict[str, Any]) -> bytes:
    return base64.b64decode(record.get("payload_b64") or "")


def _acked_record(record: dict[str, Any]) -> int:
    return int(json.loads(_payload(record))["AcknowledgedMessageSequenceNumber"])


def _acked(message: ClientMessage) -> int:
    return int(json.loads(message.payload)["AcknowledgedMessageSequenceNumber"])


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.stem)
def test_client_replay_of_recorded_sessions(path: Path) -> None:
    channel, checked = _replay(path, Role.CLIENT)
    assert checked >= 2
    events = channel.events_received()
    delivered = [e.payload for e in events if isinstance(e, PayloadReceived)]
    recorded: list[bytes] = []
    records = _channel_records(path, Role.CLIENT)
    for record in records:
        if record["dir"] == "age>cli" and record["message_type"] == OUT:
            payload = base64.b64decode(record["payload_b64"])
            if record["sequence_number"] == len(recorded):
                recorded.append(payload)
    assert delivered == recorded
    closed = [e for e in events if isinstance(e, ChannelClosedReceived)]
    assert len(closed) == any(r["dir"] == "mgs>cli" for r in records)


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.stem)
def test_agent_replay_of_recorded_sessions(path: Path) -> None:
    channel, checked = _replay(path, Role.AGENT)
    assert checked >= 1  # interactive-command-exit-5: one Output and nothing else
    delivered = [e.payload for e in channel.events_received() if isinstance(e, PayloadReceived)]
    recorded = [
        base64.b64decode(r["payload_b64"])
        for r in _records(path)
        if r["dir"] == "cli>age" and r["message_type"] == INPUT
    ]
    assert delivered == recorded


# ------------------------------------------------------- the official agent's resending


def _seqs(frames: list[bytes]) -> list[int]:
    return [ClientMessage.decode(f).sequence_number for f in frames]


def _ack_of(frame: bytes) -> bytes:
    sent = ClientMessage.decode(frame)
    return ClientMessage(
        ACK,
        1,
        1,
        0,
        3,
        uuid.uuid4(),
        0,
        Acknowledge(OUT, str(sent.message_id), sent.sequence_number, True).encode(),
    ).encode()


def test_oldest_resend_sends_only_the_oldest_on_a_100_ms_tick() -> None:
    """As protocol/traces/shell-client-sigkill-resume-nopub shows: while seq 3 is unacked it
    alone is re-sent; seq 4 waits, sent once; after reconnecting nothing goes at once, then
    one message per tick, in order."""
    agent = DataChannel(Role.AGENT, ChannelConfig(resend="oldest"))
    for text in (b"a", b"b", b"c"):
        agent.send_data(OUTPUT, text, 0.0)
    first = agent.data_to_send()
    assert _seqs(first) == [0, 1, 2]
    resent: list[int] = []
    now = 0.0
    for _ in range(10):
        when = agent.get_timer()
        assert when is not None
        assert abs(when / 0.1 - round(when / 0.1)) < 1e-6  # on the 100 ms tick
        now = when
        agent.handle_timer(now)
        resent += _seqs(agent.data_to_send())
    assert set(resent) == {0}  # never 1 or 2 while 0 is unacked
    assert len(resent) >= 2
    # A new connection, much later: nothing is sent at once, and not before the next tick.
    now += 5.0
    agent.connection_lost()
    agent.connection_made(now)
    assert agent.data_to_send() == []
    when = agent.get_timer()
    assert when is not None and now < when <= now + 0.1 + 1e-9
    # 0 is acknowledged: 1 (overdue too) waits for the next tick, then goes alone.
    agent.receive_data(_ack_of(first[0]), now + 0.01)
    when = agent.get_timer()
    assert when is not None and when > now + 0.01
    agent.handle_timer(when)
    assert _seqs(agent.data_to_send()) == [1]


def test_selective_resend_is_the_default_and_resends_everything_expired() -> None:
    agent = DataChannel(Role.AGENT)
    for text in (b"a", b"b"):
        agent.send_data(OUTPUT, text, 0.0)
    agent.data_to_send()
    when = agent.get_timer()
    assert when is not None
    agent.handle_timer(when)
    assert _seqs(agent.data_to_send()) == [0, 1]


def test_resend_mode_is_checked() -> None:
    with pytest.raises(ValueError, match="resend"):
        ChannelConfig(resend="sometimes")


def test_message_ids_can_be_injected() -> None:
    # Like crypto nonces: a deterministic source gives byte-for-byte reproducible frames,
    # for data messages and for acknowledgements alike.
    counter = iter(range(1, 1000))

    def ids() -> bytes:
        return next(counter).to_bytes(16, "big")

    sender = DataChannel(Role.CLIENT, message_ids=ids)
    sender.send_data(PayloadType.OUTPUT, b"hi", now=1.0)
    (frame,) = sender.data_to_send()
    sent = ClientMessage.decode(frame)
    assert str(sent.message_id) == format_wire_id((1).to_bytes(16, "big"))

    receiver = DataChannel(Role.AGENT, message_ids=ids)
    receiver.receive_data(frame, now=1.0)
    (ack,) = receiver.data_to_send()
    assert str(ClientMessage.decode(ack).message_id) == format_wire_id((2).to_bytes(16, "big"))
