"""ClientMessage codec: round trips, the decoder's only failure mode, and every reject reason."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssmsh.exceptions import InvalidMessage, LocalProtocolError
from ssmsh.protocol.constants import MessageType, PayloadType
from ssmsh.protocol.message import (
    HEADER_LENGTH,
    HEADER_SIZE,
    ClientMessage,
    format_wire_id,
    new_wire_id,
    pack_frame,
    type_field,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_VISIBLE = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
message_types = st.one_of(
    st.sampled_from([t.value for t in MessageType]),
    # Printable ASCII, 1-32 bytes, inner spaces allowed, none at the ends.
    st.builds(
        lambda first, middle, last: (first + middle + last)[:32].rstrip(),
        st.text(_VISIBLE, min_size=1, max_size=1),
        st.text(st.sampled_from("abc_ -"), max_size=30),
        st.text(_VISIBLE, max_size=1),
    ),
)
nonnil_uuids = st.uuids().filter(lambda u: u.int != 0)


@st.composite
def messages(draw: st.DrawFn) -> ClientMessage:
    mtype = draw(message_types)
    empty_ok = mtype in (MessageType.START_PUBLICATION, MessageType.PAUSE_PUBLICATION)
    return ClientMessage(
        message_type=mtype,
        schema_version=draw(st.integers(0, 2**32 - 1)),
        created_date=draw(st.integers(1, 2**64 - 1)),
        sequence_number=draw(st.integers(-(2**63), 2**63 - 1)),
        flags=draw(st.integers(0, 2**64 - 1)),
        message_id=draw(nonnil_uuids),
        payload_type=draw(st.integers(0, 2**32 - 1)),
        payload=draw(st.binary(min_size=0 if empty_ok else 1, max_size=300)),
    )


def valid_frame(payload: bytes = b"payload", **changes: object) -> bytes:
    fields: dict[str, object] = {
        "message_type": MessageType.OUTPUT_STREAM_DATA,
        "schema_version": 1,
        "created_date": 1700000000000,
        "sequence_number": 7,
        "flags": 0,
        "message_id": uuid.UUID("11111111-2222-4333-8444-555555555555"),
        "payload_type": PayloadType.OUTPUT,
        "payload": payload,
    }
    fields.update(changes)
    return ClientMessage(**fields).encode()  # type: ignore[arg-type]


def patched(frame: bytes, offset: int, data: bytes) -> bytes:
    raw = bytearray(frame)
    raw[offset : offset + len(data)] = data
    return bytes(raw)


# ------------------------------------------------------------------ round trips


@FAST
@given(messages())
def test_round_trip(message: ClientMessage) -> None:
    frame = message.encode()
    assert len(frame) == HEADER_SIZE + len(message.payload)
    assert ClientMessage.decode(frame) == message


@FAST
@given(messages())
def test_layout(message: ClientMessage) -> None:
    frame = message.encode()
    header_length, raw_type, schema = struct.unpack_from(">I32sI", frame)
    assert header_length == HEADER_LENGTH == 116
    assert raw_type == message.message_type.encode().ljust(32, b" ")
    assert schema == message.schema_version
    assert struct.unpack_from(">QqQ", frame, 40) == (
        message.created_date,
        message.sequence_number,
        message.flags,
    )
    assert frame[64:72] == message.message_id.bytes[8:]
    assert frame[72:80] == message.message_id.bytes[:8]
    assert frame[80:112] == hashlib.sha256(message.payload).digest()
    assert struct.unpack_from(">II", frame, 112) == (message.payload_type, len(message.payload))
    assert frame[120:] == message.payload


# ------------------------------------------------------------------ the fast path


@FAST
@given(messages())
def test_pack_frame_writes_what_encode_writes(message: ClientMessage) -> None:
    raw = message.message_id.bytes
    frame = pack_frame(
        type_field(message.message_type),
        message.created_date,
        message.sequence_number,
        message.flags,
        raw[8:] + raw[:8],
        message.payload_type,
        message.payload,
        message.schema_version,
    )
    assert frame == message.encode()


def test_new_wire_ids_are_random_version_4_uuids_in_wire_order() -> None:
    ids = {new_wire_id() for _ in range(1000)}
    assert len(ids) == 1000
    for field in ids:
        value = uuid.UUID(bytes=field[8:] + field[:8])
        assert value.version == 4 and value.variant == uuid.RFC_4122
        assert format_wire_id(field) == str(value)
        message = ClientMessage.decode(
            pack_frame(type_field("acknowledge"), 1, 0, 3, field, 0, b"{}")
        )
        assert message.message_id == value


def test_type_field_refuses_what_encode_refuses() -> None:
    assert type_field("acknowledge") == b"acknowledge".ljust(32, b" ")
    for bad in ("", " x", "\u00e9", "a\tb", "x" * 33):
        with pytest.raises(LocalProtocolError):
            type_field(bad)


# ------------------------------------------------------------------ decoder robustness


def decode_or_invalid(data: bytes) -> ClientMessage | None:
    """The decoder's contract: a message, or InvalidMessage, nothing else."""
    try:
        message = ClientMessage.decode(data)
    except InvalidMessage:
        return None
    # Whatever it accepts is stable under re-encoding (the decoder is more lenient than
    # the encoder: it takes NUL-padded or odd types and empty payloads that we never send).
    try:
        frame = message.encode()
    except LocalProtocolError:
        return message
    assert ClientMessage.decode(frame) == message
    return message


@FAST
@given(st.binary(max_size=400))
def test_arbitrary_bytes(data: bytes) -> None:
    decode_or_invalid(data)


@FAST
@given(st.binary(min_size=120, max_size=400))
def test_arbitrary_header_sized_bytes(data: bytes) -> None:
    decode_or_invalid(data)


@FAST
@given(
    messages(),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1, max_size=4),
)
def test_flipped_bytes(message: ClientMessage, flips: list[tuple[int, int]]) -> None:
    original = message.encode()
    raw = bytearray(original)
    for position, mask in flips:
        raw[position % len(raw)] ^= mask
    touched = {i for i in range(len(raw)) if raw[i] != original[i]}
    decoded = decode_or_invalid(bytes(raw))
    guarded = message.message_type not in ("start_publication", "pause_publication")
    # Any change to the digest or the payload itself is caught.
    if guarded and any(80 <= i < 112 or i >= 120 for i in touched):
        assert decoded is None


@FAST
@given(messages(), st.data())
def test_truncations(message: ClientMessage, data: st.DataObject) -> None:
    frame = message.encode()
    cut = data.draw(st.integers(0, len(frame) - 1))
    guarded = message.message_type not in ("start_publication", "pause_publication")
    decoded = decode_or_invalid(frame[:cut])
    if cut < HEADER_SIZE or guarded:
        assert decoded is None


@FAST
@given(messages(), st.binary(min_size=1, max_size=50))
def test_trailing_garbage(message: ClientMessage, garbage: bytes) -> None:
    decoded = decode_or_invalid(message.encode() + garbage)
    if message.message_type not in ("start_publication", "pause_publication"):
        assert decoded is None


def test_every_prefix_of_a_frame_is_rejected() -> None:
    frame = valid_frame(b"hello world")
    for cut in range(len(frame)):
        with pytest.raises(InvalidMessage):
            ClientMessage.decode(frame[:cut])
    assert ClientMessage.decode(frame).payload == b"hello world"


def test_non_bytes_input_is_invalid() -> None:
    with pytest.raises(InvalidMessage, match="expected bytes"):
        ClientMessage.decode("not bytes")  # type: ignore[arg-type]


# ------------------------------------------------------------------ reject reasons


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        pytest.param(b"", "short frame", id="empty"),
        pytest.param(valid_frame()[:119], "short frame", id="119 bytes"),
        pytest.param(patched(valid_frame(), 0, b"\0\0\0\0"), "bad header length 0", id="hl=0"),
        pytest.param(patched(valid_frame(), 0, b"\0\0\0\x78"), "bad header length 120", id="hl"),
        pytest.param(
            patched(valid_frame(), 4, b"\xc3\x28".ljust(32, b" ")), "not valid UTF-8", id="utf8"
        ),
        pytest.param(patched(valid_frame(), 4, b" " * 32), "empty message type", id="spaces"),
        pytest.param(patched(valid_frame(), 4, b"\0" * 32), "empty message type", id="nuls"),
        pytest.param(
            patched(valid_frame(), 4, b"\0 \t\n\0".ljust(32, b"\0")),
            "empty message type",
            id="nul-and-whitespace",
        ),
        pytest.param(patched(valid_frame(), 80, bytes(32)), "digest mismatch", id="digest"),
        pytest.param(patched(valid_frame(), 120, b"X"), "digest mismatch", id="payload"),
        pytest.param(valid_frame()[:-1], "truncated payload: 6 of 7", id="truncated"),
        pytest.param(valid_frame() + b"!!", "2 trailing bytes", id="trailing"),
        pytest.param(
            patched(valid_frame(), 116, b"\0\0\0\x03"), "4 trailing bytes", id="short-length"
        ),
        pytest.param(
            patched(valid_frame(), 40, bytes(8)), "created date is zero", id="created-date"
        ),
    ],
)
def test_invalid_message_reasons(frame: bytes, reason: str) -> None:
    with pytest.raises(InvalidMessage, match=reason):
        ClientMessage.decode(frame)


def test_payload_length_zero_skips_the_digest_check() -> None:
    # Like the official Validate(): the digest is only checked when PayloadLength != 0.
    frame = patched(valid_frame(b"x"), 80, bytes(32))[:-1]
    frame = patched(frame, 116, bytes(4))
    message = ClientMessage.decode(frame)
    assert message.payload == b""


def test_nul_padded_message_type_is_accepted() -> None:
    frame = patched(valid_frame(), 4, b"output_stream_data".ljust(32, b"\0"))
    assert ClientMessage.decode(frame).message_type == MessageType.OUTPUT_STREAM_DATA


@pytest.mark.parametrize("mtype", ["start_publication", "pause_publication"])
def test_publication_messages_are_not_validated(mtype: str) -> None:
    raw = bytearray(valid_frame(b"", message_type=mtype))
    raw[40:48] = bytes(8)  # created date 0
    raw[80:112] = b"\xee" * 32  # wrong digest
    raw += b"anything"  # payload that disagrees with PayloadLength
    message = ClientMessage.decode(bytes(raw))
    assert message.message_type == mtype
    assert message.created_date == 0
    assert message.payload == b"anything"


def test_header_length_is_checked_even_for_publication_messages() -> None:
    frame = patched(valid_frame(b"", message_type="start_publication"), 0, b"\0\0\0\0")
    with pytest.raises(InvalidMessage, match="header length"):
        ClientMessage.decode(frame)


# ------------------------------------------------------------------ encode refusals


def make(**changes: object) -> ClientMessage:
    fields: dict[str, object] = {
        "message_type": MessageType.INPUT_STREAM_DATA,
        "schema_version": 1,
        "created_date": 1,
        "sequence_number": 0,
        "flags": 0,
        "message_id": uuid.uuid4(),
        "payload_type": 1,
        "payload": b"x",
    }
    fields.update(changes)
    return ClientMessage(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("mtype", [t.value for t in MessageType])
def test_empty_payload_is_refused_except_for_publication(mtype: str) -> None:
    message = make(message_type=mtype, payload=b"")
    if mtype in ("start_publication", "pause_publication"):
        frame = message.encode()
        assert len(frame) == HEADER_SIZE
        assert ClientMessage.decode(frame) == message
    else:
        with pytest.raises(LocalProtocolError, match="empty payload"):
            message.encode()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        pytest.param({"message_id": uuid.UUID(int=0)}, "nil UUID", id="nil-uuid"),
        pytest.param({"message_type": "x" * 33}, "1-32 bytes", id="type-33"),
        pytest.param({"message_type": ""}, "1-32 bytes", id="type-empty"),
        pytest.param({"message_type": "dätä"}, "not ASCII", id="type-non-ascii"),
        pytest.param({"message_type": " data"}, "whitespace", id="type-leading-space"),
        pytest.param({"message_type": "data\t"}, "whitespace", id="type-trailing-tab"),
        pytest.param({"message_type": "da\x00ta"}, "printable", id="type-nul"),
        pytest.param({"schema_version": -1}, "schema version", id="schema<0"),
        pytest.param({"schema_version": 2**32}, "schema version", id="schema>u32"),
        pytest.param({"created_date": -1}, "created date", id="created<0"),
        pytest.param({"created_date": 2**64}, "created date", id="created>u64"),
        pytest.param({"sequence_number": 2**63}, "sequence number", id="seq>i64"),
        pytest.param({"sequence_number": -(2**63) - 1}, "sequence number", id="seq<i64"),
        pytest.param({"flags": -1}, "flags", id="flags<0"),
        pytest.param({"flags": 2**64}, "flags", id="flags>u64"),
        pytest.param({"payload_type": -1}, "payload type", id="ptype<0"),
        pytest.param({"payload_type": 2**32}, "payload type", id="ptype>u32"),
    ],
)
def test_encode_refuses(changes: dict[str, object], reason: str) -> None:
    with pytest.raises(LocalProtocolError, match=reason):
        make(**changes).encode()


def test_32_byte_message_type_is_the_limit() -> None:
    message = make(message_type="y" * 32)
    assert ClientMessage.decode(message.encode()).message_type == "y" * 32


def test_inner_spaces_in_message_type_survive() -> None:
    message = make(message_type="a b")
    assert ClientMessage.decode(message.encode()).message_type == "a b"


def test_extreme_values_round_trip() -> None:
    for seq in (-(2**63), -1, 0, 2**63 - 1):
        message = make(
            sequence_number=seq,
            created_date=2**64 - 1,
            flags=2**64 - 1,
            schema_version=2**32 - 1,
            payload_type=2**32 - 1,
            message_id=uuid.UUID(int=2**128 - 1),
        )
        assert ClientMessage.decode(message.encode()) == message


def test_a_forked_child_draws_different_ids() -> None:
    new_wire_id()  # the pool now holds unused random bytes
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, new_wire_id())
        os._exit(0)
    os.close(write)
    child = os.read(read, 16)
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 16 and child != new_wire_id()


def test_import_has_no_side_effects() -> None:
    # Sans-I/O: importing the codec neither reads the OS's randomness nor registers an
    # at-fork hook; the first random id does both.
    code = (
        "from ssmsh.protocol import message as m; "
        "print(m._random._fork_safe); m.new_wire_id(); print(m._random._fork_safe)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
