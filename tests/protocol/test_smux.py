"""Tests for the Sans-I/O smux v1 session (ssmsh.protocol.smux)."""

from __future__ import annotations

import itertools
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssmsh.exceptions import LocalProtocolError, RemoteProtocolError
from ssmsh.protocol.smux import (
    HEADER_SIZE,
    MAX_FRAME_SIZE,
    Cmd,
    Frame,
    SmuxEvent,
    SmuxFailed,
    SmuxSession,
    StreamData,
    StreamFinished,
    StreamOpened,
    StreamState,
)

# The byte examples of protocol notes §9.6.
SYN_3 = bytes.fromhex("01 00 00 00 03 00 00 00")
PSH_3_HI = bytes.fromhex("01 02 02 00 03 00 00 00 68 69")
FIN_3 = bytes.fromhex("01 01 00 00 03 00 00 00")
SYN_5 = bytes.fromhex("01 00 00 00 05 00 00 00")
NOP = bytes.fromhex("01 03 00 00 00 00 00 00")


def raw(
    version: int, cmd: int, stream_id: int, data: bytes = b"", length: int | None = None
) -> bytes:
    """A frame built by hand, so tests can produce what Frame.encode refuses to."""
    size = len(data) if length is None else length
    return struct.pack("<BBHI", version, cmd, size, stream_id) + data


def feed(session: SmuxSession, data: bytes, sizes: list[int], now: float = 0.0) -> None:
    """Feed ``data`` in chunks whose sizes cycle through ``sizes``."""
    pos = 0
    for size in itertools.cycle(sizes):
        if pos >= len(data):
            break
        session.receive_data(data[pos : pos + size], now)
        pos += size


# ------------------------------------------------------------------ frames


@pytest.mark.parametrize(
    ("frame", "wire"),
    [
        (Frame(Cmd.SYN, 3), SYN_3),
        (Frame(Cmd.PSH, 3, b"hi"), PSH_3_HI),
        (Frame(Cmd.FIN, 3), FIN_3),
        (Frame(Cmd.SYN, 5), SYN_5),
        (Frame(Cmd.NOP, 0), NOP),
    ],
)
def test_frame_golden(frame: Frame, wire: bytes) -> None:
    assert frame.encode() == wire
    assert Frame.decode(wire) == frame


def test_frame_header_is_little_endian() -> None:
    wire = Frame(Cmd.PSH, 0x01020304, b"x" * 0x0102).encode()
    assert wire[:8] == bytes([1, 2, 0x02, 0x01, 0x04, 0x03, 0x02, 0x01])


def test_frame_parse_incremental() -> None:
    wire = SYN_3 + PSH_3_HI
    assert Frame.parse(wire[:7]) == (None, 0)
    assert Frame.parse(wire, 8)[0] == Frame(Cmd.PSH, 3, b"hi")
    assert Frame.parse(wire[:17], 8) == (None, 8)
    assert Frame.parse(wire) == (Frame(Cmd.SYN, 3), 8)


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (SYN_3[:5], "truncated"),
        (PSH_3_HI[:-1], "truncated"),
        (SYN_3 + b"\x00", "trailing"),
        (raw(2, 0, 3), "version 2"),
        (raw(0, 2, 3, b"x"), "version 0"),
        (raw(1, 4, 3), "cmd 4"),
        (raw(1, 255, 3), "cmd 255"),
    ],
)
def test_frame_decode_errors(wire: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        Frame.decode(wire)


@pytest.mark.parametrize(
    "frame",
    [
        Frame(Cmd.PSH, 3, b"x" * 65536),
        Frame(Cmd.SYN, -1),
        Frame(Cmd.SYN, 2**32),
        Frame(Cmd.NOP, 0, version=256),
    ],
)
def test_frame_encode_out_of_range(frame: Frame) -> None:
    with pytest.raises(LocalProtocolError):
        frame.encode()


@given(
    cmd=st.sampled_from(Cmd),
    stream_id=st.integers(0, 2**32 - 1),
    data=st.binary(max_size=300),
)
def test_frame_round_trip(cmd: Cmd, stream_id: int, data: bytes) -> None:
    frame = Frame(cmd, stream_id, data)
    assert Frame.decode(frame.encode()) == frame


# ---------------------------------------------------------- sending side


def test_client_golden_session_bytes() -> None:
    client = SmuxSession(True)
    stream = client.open_stream()
    assert stream == 3
    client.send(stream, b"hi")
    # Protocol notes §4.8 (e): one data message carrying SYN 3 + PSH "hi".
    assert client.data_to_send() == bytes.fromhex("010000000300000001020200030000006869")
    client.close_stream(stream)
    assert client.data_to_send() == FIN_3
    assert client.open_stream() == 5
    assert client.data_to_send() == SYN_5
    assert client.data_to_send() == b""


def test_stream_ids() -> None:
    client = SmuxSession(True)
    assert [client.open_stream() for _ in range(4)] == [3, 5, 7, 9]
    server = SmuxSession(False)
    assert [server.open_stream() for _ in range(3)] == [2, 4, 6]


def test_open_stream_skips_ids_the_peer_took() -> None:
    server = SmuxSession(False)
    server.receive_data(raw(1, 0, 2) + raw(1, 0, 4), 0.0)
    assert server.events_received() == [StreamOpened(2), StreamOpened(4)]
    assert server.open_stream() == 6


def test_stream_ids_exhausted() -> None:
    client = SmuxSession(True)
    client._next_id = 2**32 - 3  # white-box: jump to the end of the id space
    assert client.open_stream() == 2**32 - 1
    with pytest.raises(LocalProtocolError, match="exhausted"):
        client.open_stream()


def test_send_splits_at_max_frame_size() -> None:
    client = SmuxSession(True)
    stream = client.open_stream()
    client.data_to_send()
    payload = bytes(range(256)) * 280  # 71680 bytes
    client.send(stream, payload)
    wire = client.data_to_send()
    frames = []
    pos = 0
    while pos < len(wire):
        frame, pos = Frame.parse(wire, pos)
        assert frame is not None
        frames.append(frame)
    assert [len(f.data) for f in frames] == [
        MAX_FRAME_SIZE,
        MAX_FRAME_SIZE,
        71680 - 2 * MAX_FRAME_SIZE,
    ]
    assert all(f.cmd is Cmd.PSH and f.stream_id == 3 for f in frames)
    assert b"".join(f.data for f in frames) == payload


def test_send_custom_frame_size_and_empty() -> None:
    client = SmuxSession(True, max_frame_size=3)
    stream = client.open_stream()
    client.data_to_send()
    client.send(stream, b"")
    assert client.data_to_send() == b""
    client.send(stream, b"abcdefg")
    assert client.data_to_send() == raw(1, 2, 3, b"abc") + raw(1, 2, 3, b"def") + raw(1, 2, 3, b"g")


def test_send_copies_mutable_buffers() -> None:
    client = SmuxSession(True)
    stream = client.open_stream()
    client.data_to_send()
    buf = bytearray(b"abc")
    client.send(stream, buf)
    client.send(stream, memoryview(buf)[1:])
    buf[:] = b"xyz"
    assert client.data_to_send() == raw(1, 2, 3, b"abc") + raw(1, 2, 3, b"bc")


def test_send_on_bad_stream_raises() -> None:
    client = SmuxSession(True)
    with pytest.raises(LocalProtocolError, match="not open"):
        client.send(3, b"x")
    stream = client.open_stream()
    client.close_stream(stream)
    with pytest.raises(LocalProtocolError, match="not open"):
        client.send(stream, b"x")


def test_close_stream_is_idempotent() -> None:
    client = SmuxSession(True)
    stream = client.open_stream()
    client.data_to_send()
    client.close_stream(stream)
    client.close_stream(stream)
    client.close_stream(99)
    assert client.data_to_send() == FIN_3
    assert client.streams == {3: StreamState.LOCAL_CLOSED}


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="max_frame_size"):
        SmuxSession(True, max_frame_size=0)
    with pytest.raises(ValueError, match="max_frame_size"):
        SmuxSession(True, max_frame_size=65536)
    with pytest.raises(ValueError, match="keepalive"):
        SmuxSession(True, keepalive=True, keepalive_interval=40, keepalive_timeout=30)
    SmuxSession(True, keepalive=False, keepalive_interval=40, keepalive_timeout=30)


# -------------------------------------------------------- receiving side


def test_half_close_from_peer_then_local() -> None:
    server = SmuxSession(False)
    server.receive_data(SYN_3 + PSH_3_HI + FIN_3, 0.0)
    assert server.events_received() == [StreamOpened(3), StreamData(3, b"hi"), StreamFinished(3)]
    assert server.streams == {3: StreamState.REMOTE_CLOSED}
    # The peer's FIN closes only its half: we may still write.
    server.send(3, b"reply")
    server.close_stream(3)
    assert server.data_to_send() == raw(1, 2, 3, b"reply") + FIN_3
    assert server.streams == {}


def test_local_close_still_receives_until_peer_fin() -> None:
    client = SmuxSession(True)
    stream = client.open_stream()
    client.close_stream(stream)
    client.receive_data(raw(1, 2, 3, b"late") + FIN_3, 0.0)
    assert client.events_received() == [StreamData(3, b"late"), StreamFinished(3)]
    assert client.streams == {}
    assert client.dropped_frames == 0


def test_data_after_full_close_or_fin_is_dropped_and_counted() -> None:
    server = SmuxSession(False)
    server.receive_data(SYN_3 + FIN_3, 0.0)
    server.receive_data(raw(1, 2, 3, b"after fin"), 0.0)  # peer broke its own FIN
    server.close_stream(3)
    server.receive_data(raw(1, 2, 3, b"gone"), 0.0)  # fully closed
    server.receive_data(raw(1, 2, 77, b"never opened"), 0.0)
    assert server.events_received() == [StreamOpened(3), StreamFinished(3)]
    assert server.dropped_frames == 3
    assert server.dropped_bytes == len(b"after fin") + len(b"gone") + len(b"never opened")
    assert not server.closed


def test_duplicate_syn_and_stray_fin_are_ignored() -> None:
    server = SmuxSession(False)
    server.receive_data(SYN_3 + PSH_3_HI + SYN_3 + raw(1, 1, 9) + PSH_3_HI, 0.0)
    assert server.events_received() == [StreamOpened(3), StreamData(3, b"hi"), StreamData(3, b"hi")]
    server.receive_data(FIN_3 + FIN_3, 0.0)
    assert server.events_received() == [StreamFinished(3)]


def test_syn_reopens_a_forgotten_id() -> None:
    server = SmuxSession(False)
    server.receive_data(SYN_3 + FIN_3, 0.0)
    server.close_stream(3)
    server.receive_data(SYN_3 + PSH_3_HI, 0.0)
    assert server.events_received() == [
        StreamOpened(3),
        StreamFinished(3),
        StreamOpened(3),
        StreamData(3, b"hi"),
    ]


def test_receive_accepts_frames_longer_than_max_frame_size() -> None:
    server = SmuxSession(False, max_frame_size=16)
    big = bytes(range(256)) * 255 + b"abc"  # 65283 bytes
    server.receive_data(SYN_3 + raw(1, 2, 3, big), 0.0)
    assert server.events_received() == [StreamOpened(3), StreamData(3, big)]


def test_bodies_on_non_psh_frames_are_skipped() -> None:
    server = SmuxSession(False)
    wire = raw(1, 0, 3, b"xyz") + raw(1, 3, 0, b"\x01\x02") + PSH_3_HI + raw(1, 1, 3, b"!")
    feed(server, wire, [1])
    assert server.events_received() == [StreamOpened(3), StreamData(3, b"hi"), StreamFinished(3)]


def test_empty_psh_and_nop_produce_no_events() -> None:
    server = SmuxSession(False)
    server.receive_data(SYN_3 + raw(1, 2, 3) + NOP + raw(1, 2, 99), 0.0)
    assert server.events_received() == [StreamOpened(3)]
    assert server.dropped_frames == 0


def test_peer_may_open_streams_on_a_client() -> None:
    client = SmuxSession(True)
    client.receive_data(raw(1, 0, 2) + raw(1, 2, 2, b"push"), 0.0)
    assert client.events_received() == [StreamOpened(2), StreamData(2, b"push")]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (raw(2, 0, 3), "unsupported smux version 2"),
        (raw(0, 3, 0), "unsupported smux version 0"),
        (raw(1, 4, 3, b"\x00" * 8), "unknown smux cmd 4"),
        (raw(1, 200, 3), "unknown smux cmd 200"),
    ],
)
@pytest.mark.parametrize("sizes", [[1], [3, 5], [10_000]])
def test_protocol_error_kills_session(bad: bytes, reason: str, sizes: list[int]) -> None:
    server = SmuxSession(False, keepalive=True, now=0.0)
    feed(server, SYN_3 + PSH_3_HI + bad + PSH_3_HI + FIN_3, sizes)
    events = server.events_received()
    assert events == [
        StreamOpened(3),
        StreamData(3, b"hi"),
        SmuxFailed(f"protocol error: {reason}"),
    ]
    assert server.closed
    assert server.error == f"protocol error: {reason}"
    assert server.get_timer() is None
    server.receive_data(SYN_5, 1.0)
    server.handle_timer(100.0)
    assert server.events_received() == []
    assert server.data_to_send() == b""
    with pytest.raises(LocalProtocolError, match="closed"):
        server.open_stream()
    with pytest.raises(LocalProtocolError, match="closed"):
        server.send(3, b"x")
    server.close_stream(3)  # cleanup paths stay quiet


def test_bad_cmd_is_detected_from_the_header_alone() -> None:
    server = SmuxSession(False)
    server.receive_data(raw(1, 9, 3, length=1000), 0.0)  # the announced body never comes
    assert server.events_received() == [SmuxFailed("protocol error: unknown smux cmd 9")]


def test_local_close() -> None:
    client = SmuxSession(True)
    stream = client.open_stream()
    client.close()
    assert client.closed
    client.receive_data(PSH_3_HI, 0.0)
    assert client.events_received() == []
    with pytest.raises(LocalProtocolError):
        client.send(stream, b"x")


# ------------------------------------------------------------ properties


_op = st.one_of(
    st.tuples(st.just("open")),
    st.tuples(st.just("send"), st.integers(0, 20), st.binary(max_size=200)),
    st.tuples(st.just("close"), st.integers(0, 20)),
)


# A stream state as the other end sees it.
_MIRROR = {
    StreamState.OPEN: StreamState.OPEN,
    StreamState.LOCAL_CLOSED: StreamState.REMOTE_CLOSED,
    StreamState.REMOTE_CLOSED: StreamState.LOCAL_CLOSED,
    None: None,
}


def _collect(events: list[SmuxEvent]) -> tuple[list[int], dict[int, bytearray], list[int]]:
    opened: list[int] = []
    data: dict[int, bytearray] = {}
    finished: list[int] = []
    for event in events:
        if isinstance(event, StreamOpened):
            assert event.stream_id not in opened
            opened.append(event.stream_id)
            data[event.stream_id] = bytearray()
        elif isinstance(event, StreamData):
            assert event.stream_id in opened and event.stream_id not in finished
            assert event.data
            data[event.stream_id] += event.data
        elif isinstance(event, StreamFinished):
            assert event.stream_id in opened and event.stream_id not in finished
            finished.append(event.stream_id)
        else:
            pytest.fail(f"unexpected {event!r}")
    return opened, data, finished


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    client_ops=st.lists(_op, max_size=60),
    server_ops=st.lists(_op.filter(lambda op: op[0] != "open"), max_size=40),
    frame_size=st.sampled_from([1, 7, 64, MAX_FRAME_SIZE]),
    sizes_up=st.lists(st.integers(1, 300), min_size=1, max_size=8),
    sizes_down=st.lists(st.integers(1, 300), min_size=1, max_size=8),
    byte_by_byte=st.booleans(),
)
def test_interleaved_streams_survive_any_chunking(
    client_ops: list[tuple[object, ...]],
    server_ops: list[tuple[object, ...]],
    frame_size: int,
    sizes_up: list[int],
    sizes_down: list[int],
    byte_by_byte: bool,
) -> None:
    if byte_by_byte:
        sizes_up = sizes_down = [1]
    client = SmuxSession(True, max_frame_size=frame_size)
    server = SmuxSession(False, max_frame_size=frame_size)

    def run(
        session: SmuxSession, ops: list[tuple[object, ...]], ids: list[int]
    ) -> tuple[dict[int, bytearray], set[int]]:
        sent: dict[int, bytearray] = {i: bytearray() for i in ids}
        closed: set[int] = set()
        for op in ops:
            if op[0] == "open":
                stream_id = session.open_stream()
                ids.append(stream_id)
                sent[stream_id] = bytearray()
            elif ids:
                stream_id = ids[int(str(op[1])) % len(ids)]
                if op[0] == "send" and stream_id not in closed:
                    assert isinstance(op[2], bytes)
                    session.send(stream_id, op[2])
                    sent[stream_id] += op[2]
                elif op[0] == "close":
                    session.close_stream(stream_id)
                    closed.add(stream_id)
        return sent, closed

    # Client -> server.
    client_ids: list[int] = []
    sent_up, closed_up = run(client, client_ops, client_ids)
    feed(server, client.data_to_send(), sizes_up)
    opened, received, finished = _collect(server.events_received())
    assert opened == client_ids
    assert set(finished) == closed_up
    assert {i: bytes(d) for i, d in received.items()} == {i: bytes(d) for i, d in sent_up.items()}

    # Server -> client on the streams it saw, including ones the client half-closed.
    sent_down, closed_down = run(server, server_ops, list(opened))
    feed(client, server.data_to_send(), sizes_down)
    events = client.events_received()
    assert not any(isinstance(e, StreamOpened) for e in events)
    _, received_down, finished_down = _collect([StreamOpened(i) for i in client_ids] + events)
    assert set(finished_down) == closed_down
    assert {i: bytes(d) for i, d in received_down.items()} == {
        i: bytes(d) for i, d in sent_down.items()
    }

    # Stream tables agree: fully closed streams are gone on both sides.
    for stream_id in client_ids:
        up, down = stream_id in closed_up, stream_id in closed_down
        expected = {
            (False, False): StreamState.OPEN,
            (True, False): StreamState.LOCAL_CLOSED,
            (False, True): StreamState.REMOTE_CLOSED,
            (True, True): None,
        }[(up, down)]
        assert client.streams.get(stream_id) is expected
        assert server.streams.get(stream_id) is _MIRROR[expected]
    assert client.dropped_frames == server.dropped_frames == 0
    assert not client.closed and not server.closed


def _check_events(session: SmuxSession, events: list[SmuxEvent]) -> None:
    for index, event in enumerate(events):
        assert isinstance(event, StreamOpened | StreamData | StreamFinished | SmuxFailed)
        if isinstance(event, SmuxFailed):
            assert index == len(events) - 1
            assert session.closed


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2000), sizes=st.lists(st.integers(1, 64), min_size=1, max_size=5))
def test_fuzz_random_bytes_never_raise(data: bytes, sizes: list[int]) -> None:
    session = SmuxSession(False)
    feed(session, data, sizes)
    _check_events(session, session.events_received())


_fuzz_frame = st.builds(
    raw,
    version=st.sampled_from([1, 1, 1, 1, 1, 1, 2]),
    cmd=st.sampled_from([0, 1, 2, 2, 2, 3, 4]),
    stream_id=st.integers(0, 6),
    data=st.binary(max_size=20),
)


@settings(max_examples=300, deadline=None)
@given(
    frames=st.lists(_fuzz_frame, max_size=40),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=5),
)
def test_fuzz_framed_garbage_never_raises(frames: list[bytes], sizes: list[int]) -> None:
    session = SmuxSession(True, keepalive=True, now=0.0)
    feed(session, b"".join(frames), sizes)
    events = session.events_received()
    _check_events(session, events)
    for state in session.streams.values():
        assert isinstance(state, StreamState)
    session.handle_timer(1000.0)


def test_whole_and_chunked_feeding_agree() -> None:
    rng = random.Random(1234)
    client = SmuxSession(True, max_frame_size=100)
    ids = [client.open_stream() for _ in range(5)]
    for _ in range(200):
        client.send(rng.choice(ids), rng.randbytes(rng.randrange(1, 300)))
    for stream_id in ids[:3]:
        client.close_stream(stream_id)
    wire = client.data_to_send()
    whole = SmuxSession(False)
    whole.receive_data(wire, 0.0)
    reference = whole.events_received()
    for sizes in ([1], [7], [HEADER_SIZE], [HEADER_SIZE + 100], [999, 1, 2], [len(wire)]):
        chunked = SmuxSession(False)
        feed(chunked, wire, sizes)
        assert chunked.events_received() == reference, sizes


# -------------------------------------------------------------- keepalive


def test_keepalive_nop_timing() -> None:
    session = SmuxSession(True, keepalive=True, now=100.0)
    assert session.get_timer() == 110.0
    session.handle_timer(109.0)
    assert session.data_to_send() == b""
    session.handle_timer(110.0)
    assert session.data_to_send() == NOP
    assert session.get_timer() == 120.0
    session.receive_data(NOP, 115.0)
    session.handle_timer(120.0)
    assert session.data_to_send() == NOP
    assert session.get_timer() == 130.0
    session.handle_timer(130.0)
    session.handle_timer(140.0)
    assert session.data_to_send() == NOP + NOP
    assert session.get_timer() == 145.0  # 115 + 30: the timeout comes before the next NOP
    assert session.events_received() == []
    session.handle_timer(144.9)
    assert not session.closed
    session.handle_timer(145.0)
    assert session.events_received() == [SmuxFailed("keepalive timeout")]
    assert (session.closed, session.error) == (True, "keepalive timeout")
    assert session.get_timer() is None
    assert session.data_to_send() == b""


def test_keepalive_late_timer_sends_one_nop() -> None:
    session = SmuxSession(True, keepalive=True, now=0.0)
    session.handle_timer(25.0)
    assert session.data_to_send() == NOP
    assert session.get_timer() == 30.0  # the timeout (0 + 30) is earlier than 25 + 10
    session.receive_data(b"\x01", 29.0)
    assert session.get_timer() == 35.0


def test_keepalive_clock_starts_lazily() -> None:
    session = SmuxSession(True, keepalive=True)
    assert session.get_timer() is None
    session.receive_data(b"", 50.0)
    assert session.get_timer() == 60.0
    other = SmuxSession(True, keepalive=True)
    other.handle_timer(7.0)
    assert other.data_to_send() == b""
    assert other.get_timer() == 17.0


def test_keepalive_pair_stays_alive() -> None:
    """Two keepalive sessions driven by hand-stepped timers exchange NOPs for 1000 s."""
    a = SmuxSession(True, keepalive=True, now=0.0)
    b = SmuxSession(False, keepalive=True, keepalive_interval=7.0, now=0.0)
    now = 0.0
    nops = {id(a): 0, id(b): 0}
    while now < 1000.0:
        timers = [t for t in (a.get_timer(), b.get_timer()) if t is not None]
        now = min(timers)
        for session, peer in ((a, b), (b, a)):
            session.handle_timer(now)
            wire = session.data_to_send()
            nops[id(session)] += len(wire) // HEADER_SIZE
            peer.receive_data(wire, now)
    assert not a.closed and not b.closed
    assert a.events_received() == b.events_received() == []
    assert nops[id(a)] == 100
    assert nops[id(b)] == 142


def test_keepalive_off_never_sends_nop() -> None:
    session = SmuxSession(True, now=0.0)
    assert session.get_timer() is None
    for now in (0.0, 10.0, 30.0, 1e6):
        session.handle_timer(now)
    assert session.data_to_send() == b""
    assert session.events_received() == []
    assert not session.closed
