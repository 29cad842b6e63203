"""Golden vectors (protocol/vectors/*.json) and recorded sessions (protocol/traces/*.jsonl).

The frames come from the official serializer and from real sessions; our encoder must
reproduce them byte for byte and our decoder must read them back field for field.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ssmsh.exceptions import InvalidMessage, RemoteProtocolError
from ssmsh.protocol.constants import Flag, MessageType, PayloadType
from ssmsh.protocol.message import ClientMessage
from ssmsh.protocol.payloads import (
    Acknowledge,
    ChannelClosedPayload,
    HandshakeComplete,
    HandshakeRequest,
    HandshakeResponse,
    OpenDataChannel,
    TerminalSize,
    decode_exit_code,
    decode_flag,
    encode_flag,
)
from ssmsh.protocol.smux import Cmd, Frame

PROTOCOL = Path(__file__).resolve().parents[2] / "protocol"
VECTORS = PROTOCOL / "vectors"
TRACES = sorted((PROTOCOL / "traces").glob("*.jsonl"))

#: How each invalid-frame reason code in messages.json shows up in InvalidMessage's text.
REASONS = {
    "short": "short frame",
    "header_length": "header length",
    "type_utf8": "not valid UTF-8",
    "type_empty": "empty message type",
    "created_date": "created date is zero",
    "digest": "digest mismatch",
    "truncated": "truncated payload",
    "trailing": "trailing bytes",
}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text())
    return data


MESSAGES = load("messages.json")
ENCODING = load("encoding.json")


def message_from_fields(fields: dict[str, Any], payload: bytes) -> ClientMessage:
    return ClientMessage(
        message_type=fields["message_type"],
        schema_version=fields["schema_version"],
        created_date=fields["created_date"],
        sequence_number=fields["sequence_number"],
        flags=fields["flags"],
        message_id=uuid.UUID(fields["message_id"]),
        payload_type=fields["payload_type"],
        payload=payload,
    )


def assert_fields(message: ClientMessage, fields: dict[str, Any]) -> None:
    assert message.message_type == fields["message_type"]
    assert message.schema_version == fields["schema_version"]
    assert message.created_date == fields["created_date"]
    assert message.sequence_number == fields["sequence_number"]
    assert message.flags == fields["flags"]
    assert str(message.message_id) == fields["message_id"]
    assert message.payload_type == fields["payload_type"]
    assert len(message.payload) == fields["payload_length"]


# ------------------------------------------------------------------ official frames


@pytest.mark.parametrize("vector", MESSAGES["frames"], ids=lambda v: v["name"])
def test_official_frame_decodes(vector: dict[str, Any]) -> None:
    raw = bytes.fromhex(vector["hex"])
    assert len(raw) == vector["length"]
    message = ClientMessage.decode(raw)
    fields = vector["fields"]
    assert_fields(message, fields)
    assert message.payload.hex() == fields["payload_hex"]
    assert hashlib.sha256(message.payload).hexdigest() == fields["payload_digest"]


@pytest.mark.parametrize("vector", MESSAGES["frames"], ids=lambda v: v["name"])
def test_official_frame_encodes_byte_for_byte(vector: dict[str, Any]) -> None:
    fields = vector["fields"]
    message = message_from_fields(fields, bytes.fromhex(fields["payload_hex"]))
    assert message.encode().hex() == vector["hex"]


def test_official_decode_is_also_accepted_as_bytearray_and_memoryview() -> None:
    raw = bytes.fromhex(MESSAGES["frames"][1]["hex"])
    assert ClientMessage.decode(bytearray(raw)) == ClientMessage.decode(raw)
    assert ClientMessage.decode(memoryview(raw)) == ClientMessage.decode(raw)


def test_ack_vector_payload_is_our_acknowledge_encoding() -> None:
    vector = MESSAGES["frames"][0]
    payload = bytes.fromhex(vector["fields"]["payload_hex"])
    expected = vector["payload_json"]
    ack = Acknowledge.decode(payload)
    assert ack == Acknowledge(
        expected["AcknowledgedMessageType"],
        expected["AcknowledgedMessageId"],
        expected["AcknowledgedMessageSequenceNumber"],
        expected["IsSequentialMessage"],
    )
    assert ack.encode() == payload
    # The whole frame, built as our data channel builds acks: seq 0, flags 3, type 0.
    frame = ClientMessage(
        MessageType.ACKNOWLEDGE,
        1,
        1503434274948,
        0,
        3,
        uuid.UUID("00112233-4455-4677-8899-aabbccddeeff"),
        PayloadType.UNDEFINED,
        Acknowledge(
            MessageType.OUTPUT_STREAM_DATA, "dd01e56b-ff48-483e-a508-b5f073f31b16", 2
        ).encode(),
    ).encode()
    assert frame.hex() == vector["hex"]


def test_message_id_halves_are_swapped_on_the_wire() -> None:
    raw = bytes.fromhex(MESSAGES["frames"][1]["hex"])
    assert raw[64:80].hex() == "a508b5f073f31b16" + "dd01e56bff48483e"
    assert str(ClientMessage.decode(raw).message_id) == "dd01e56b-ff48-483e-a508-b5f073f31b16"


@pytest.mark.parametrize("vector", MESSAGES["tails"], ids=lambda v: v["name"])
def test_frames_known_by_their_tail(vector: dict[str, Any]) -> None:
    payload = bytes.fromhex(vector["payload_hex"])
    frame = ClientMessage(
        MessageType.INPUT_STREAM_DATA,
        1,
        1503434274948,
        0,
        0,
        uuid.UUID("dd01e56b-ff48-483e-a508-b5f073f31b16"),
        vector["payload_type"],
        payload,
    ).encode()
    assert frame[80:112].hex() == vector["digest"]
    assert frame[112:].hex() == vector["tail_hex"]


def test_tail_payloads_are_our_payload_encodings() -> None:
    size, flag = MESSAGES["tails"]
    assert TerminalSize(80, 24).encode().hex() == size["payload_hex"]
    assert size["payload_type"] == PayloadType.SIZE
    assert encode_flag(Flag.TERMINATE_SESSION).hex() == flag["payload_hex"]
    assert decode_flag(bytes.fromhex(flag["payload_hex"])) == Flag.TERMINATE_SESSION
    assert flag["payload_type"] == PayloadType.FLAG


# ------------------------------------------------------------------ invalid frames


@pytest.mark.parametrize("vector", MESSAGES["invalid"], ids=lambda v: v["name"])
def test_invalid_frame_is_rejected_with_its_reason(vector: dict[str, Any]) -> None:
    with pytest.raises(InvalidMessage, match=REASONS[vector["reason"]]):
        ClientMessage.decode(bytes.fromhex(vector["hex"]))


def test_validation_order_matches_the_official_one() -> None:
    *failing, (last_hex, last_reason) = (
        (v["hex"], v["reason"]) for v in MESSAGES["validation_order"]
    )
    for hex_, reason in failing:
        with pytest.raises(InvalidMessage, match=REASONS[reason]):
            ClientMessage.decode(bytes.fromhex(hex_))
    assert last_reason is None
    assert ClientMessage.decode(bytes.fromhex(last_hex)).payload == b"payload"


@pytest.mark.parametrize(
    "vector", MESSAGES["publication_without_payload"], ids=lambda v: v["message_type"]
)
def test_publication_messages_skip_validation(vector: dict[str, Any]) -> None:
    message = ClientMessage.decode(bytes.fromhex(vector["hex"]))
    assert message.message_type == vector["message_type"]
    assert message.payload == b""


# ------------------------------------------------------------------ integer helpers

_SIZES = {"uint32": 4, "uint64": 8}


def _size(vector: dict[str, Any]) -> int:
    if vector["type"] in _SIZES:
        return _SIZES[vector["type"]]
    if vector["type"] == "bytes" and vector["op"] == "put":
        return len(bytes.fromhex(vector["value"]))
    size: int = vector["length"]
    return size


def _reference(vector: dict[str, Any]) -> Any:
    """The helper semantics the vectors pin down: big-endian, bounds-checked, padded strings."""
    buf = bytearray.fromhex(vector["buffer_hex"])
    offset, size = vector["offset"], _size(vector)
    if offset < 0 or offset + size > len(buf):
        raise IndexError("offset")
    if vector["op"] == "get":
        chunk = bytes(buf[offset : offset + size])
        if vector["type"] in _SIZES:
            return int.from_bytes(chunk, "big")
        if vector["type"] == "string":
            return chunk.strip(b"\x00").decode().strip()
        return chunk.hex()
    if vector["type"] in _SIZES:
        value = vector["value"].to_bytes(size, "big")
    elif vector["type"] == "string":
        if len(vector["value"]) > size:
            raise IndexError("space")
        value = vector["value"].encode().ljust(size, b" ")
    else:
        value = bytes.fromhex(vector["value"])
    buf[offset : offset + size] = value
    return buf.hex()


@pytest.mark.parametrize("vector", ENCODING["vectors"], ids=lambda v: v["name"])
def test_integer_and_string_helper_vectors(vector: dict[str, Any]) -> None:
    if "error" in vector:
        with pytest.raises(IndexError, match=vector["error"]):
            _reference(vector)
    elif vector["op"] == "put":
        assert _reference(vector) == vector["expected_hex"]
    else:
        assert _reference(vector) == vector["value"]


_BASE = ClientMessage(
    MessageType.INPUT_STREAM_DATA,
    1,
    1503434274948,
    1,
    0,
    uuid.UUID("dd01e56b-ff48-483e-a508-b5f073f31b16"),
    PayloadType.OUTPUT,
    b"payload",
)


def _field_bytes(vector: dict[str, Any]) -> bytes:
    """The bytes a vector's value occupies in its buffer (after put, or before get)."""
    after = bytes.fromhex(vector["expected_hex"] if vector["op"] == "put" else vector["buffer_hex"])
    return after[vector["offset"] : vector["offset"] + _size(vector)]


@pytest.mark.parametrize(
    "vector",
    [v for v in ENCODING["vectors"] if v["type"] == "uint64" and "error" not in v],
    ids=lambda v: v["name"],
)
def test_uint64_vectors_in_our_frame_fields(vector: dict[str, Any]) -> None:
    """CreatedDate (offset 40) and SequenceNumber (offset 48) use the same 8-byte encoding."""
    value, field = vector["value"], _field_bytes(vector)
    frame = ClientMessage(
        _BASE.message_type, 1, value, value, value, _BASE.message_id, 1, b"x"
    ).encode()
    assert frame[40:48] == field
    assert frame[48:56] == field
    assert frame[56:64] == field
    decoded = ClientMessage.decode(frame)
    assert (decoded.created_date, decoded.sequence_number, decoded.flags) == (value, value, value)


@pytest.mark.parametrize(
    "vector",
    [v for v in ENCODING["vectors"] if v["type"] == "uint32" and "error" not in v],
    ids=lambda v: v["name"],
)
def test_uint32_vectors_in_our_frame_fields(vector: dict[str, Any]) -> None:
    """SchemaVersion (offset 36) and PayloadType (offset 112) are 4-byte big-endian."""
    value, field = vector["value"], _field_bytes(vector)
    frame = ClientMessage(
        _BASE.message_type, value, 1, 1, 0, _BASE.message_id, value, b"x"
    ).encode()
    assert frame[36:40] == field
    assert frame[112:116] == field
    decoded = ClientMessage.decode(frame)
    assert (decoded.schema_version, decoded.payload_type) == (value, value)


@pytest.mark.parametrize(
    "vector",
    [v for v in ENCODING["vectors"] if v["type"] == "string" and "error" not in v],
    ids=lambda v: v["name"],
)
def test_string_vectors_in_our_message_type_field(vector: dict[str, Any]) -> None:
    """The MessageType field: space-padded on encode; NULs and spaces trimmed on decode."""
    field = _field_bytes(vector)
    if vector["op"] == "put":
        frame = ClientMessage(vector["value"], 1, 1, 1, 0, _BASE.message_id, 1, b"x").encode()
        assert frame[4 : 4 + len(field)] == field
        assert frame[4:36] == vector["value"].encode().ljust(32, b" ")
    for pad in (b"\x00", b" "):
        raw = bytearray(_BASE.encode())
        raw[4:36] = field.ljust(32, pad)
        assert ClientMessage.decode(bytes(raw)).message_type == vector["value"]


# ------------------------------------------------------------------ crypto, smux, versions
# The modules that use these vectors have their own tests; here the JSON files are
# checked against the reference libraries, so that a bad vector cannot slip in.


def test_crypto_vectors_are_consistent() -> None:
    data = load("crypto.json")
    key = bytes.fromhex(data["data_key_hex"])
    assert len(key) == 64
    assert data["client_decryption_key_hex"] == key[:32].hex()
    assert data["client_encryption_key_hex"] == key[32:].hex()
    for vector in data["vectors"]:
        lo, hi = vector["key_range"]
        wire = bytes.fromhex(vector["wire_hex"])
        nonce = bytes.fromhex(vector["nonce_hex"])
        assert wire[:12] == nonce
        assert len(wire) == len(bytes.fromhex(vector["plaintext_hex"])) + 28
        plain = AESGCM(key[lo:hi]).decrypt(wire[:12], wire[12:], None)
        assert plain.hex() == vector["plaintext_hex"]
    challenge = data["challenge"]
    request = base64.b64decode(challenge["request_payload"]["Challenge"])
    response = base64.b64decode(challenge["response_payload"]["Challenge"])
    assert request.hex() == challenge["request_wire_hex"]
    assert response.hex() == challenge["response_wire_hex"]
    plain = AESGCM(key[:32]).decrypt(request[:12], request[12:], None)
    assert plain.hex() == challenge["plaintext_hex"]
    assert AESGCM(key[32:]).decrypt(response[:12], response[12:], None) == plain
    for bad in data["tampered"]:
        lo, hi = bad["key_range"]
        wire = bytes.fromhex(bad["wire_hex"])
        with pytest.raises(InvalidTag):
            AESGCM(key[lo:hi]).decrypt(wire[:12], wire[12:], None)


def test_smux_vectors_are_consistent() -> None:
    data = load("smux.json")
    for frame in data["frames"]:
        raw = bytes.fromhex(frame["hex"])
        assert struct.unpack_from("<BBHI", raw) == (
            frame["version"],
            frame["cmd_value"],
            frame["length"],
            frame["stream_id"],
        )
        assert raw[8:].hex() == frame["data_hex"]
        assert len(raw) == 8 + frame["length"]
    syn3, psh3 = data["frames"][0]["hex"], data["frames"][1]["hex"]
    assert data["streams"][0]["hex"] == syn3 + psh3
    # The payload of official frame (e) is exactly that stream.
    assert MESSAGES["frames"][3]["fields"]["payload_hex"] == syn3 + psh3


SMUX = load("smux.json")


@pytest.mark.parametrize("vector", SMUX["frames"], ids=lambda v: v["name"])
def test_smux_frame_vectors(vector: dict[str, Any]) -> None:
    frame = Frame(Cmd[vector["cmd"]], vector["stream_id"], bytes.fromhex(vector["data_hex"]))
    assert frame.encode().hex() == vector["hex"]
    assert Frame.decode(bytes.fromhex(vector["hex"])) == frame


@pytest.mark.parametrize("vector", SMUX["streams"], ids=lambda v: v["name"])
def test_smux_stream_vectors(vector: dict[str, Any]) -> None:
    data, offset, frames = bytes.fromhex(vector["hex"]), 0, []
    while offset < len(data):
        frame, offset = Frame.parse(data, offset)
        assert frame is not None
        frames.append(frame)
    assert b"".join(f.encode() for f in frames) == data
    if vector["frames"] is not None:
        expected = [SMUX["frames"][i] for i in vector["frames"]]
        assert [f.encode().hex() for f in frames] == [e["hex"] for e in expected]


@pytest.mark.parametrize("vector", SMUX["invalid"], ids=lambda v: v["name"])
def test_smux_invalid_vectors(vector: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError):
        Frame.decode(bytes.fromhex(vector["hex"]))


def test_version_vectors_are_consistent() -> None:
    data = load("versions.json")
    thresholds = data["thresholds"]

    def newer(version: str, threshold: str) -> bool:
        parts, limit = version.split("."), threshold.split(".")
        if len(parts) != len(limit) or not all(p.isdigit() for p in parts):
            return False
        return [int(p) for p in parts] > [int(p) for p in limit]

    for case in data["cases"]:
        assert newer(case["agent_version"], thresholds[case["feature"]]) is case["expected"], case


# ------------------------------------------------------------------ recorded sessions


def _trace_frames() -> list[tuple[str, dict[str, Any]]]:
    frames = []
    for path in TRACES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            record = json.loads(line)
            if record["dir"] != "in?":
                frames.append((f"{path.stem}:{number}", record))
    return frames


TRACE_FRAMES = _trace_frames()


def test_all_recordings_are_present() -> None:
    assert len(TRACES) == 18  # the first set (5) and the second (13)
    assert len(TRACE_FRAMES) >= 90


@pytest.mark.parametrize(("where", "record"), TRACE_FRAMES, ids=[w for w, _ in TRACE_FRAMES])
def test_recorded_frame_round_trips(where: str, record: dict[str, Any]) -> None:
    assert record["digest_ok"] is True
    assert record["header_length"] == 116
    payload = base64.b64decode(record["payload_b64"])
    assert len(payload) == record["payload_length"]
    frame = message_from_fields(record, payload).encode()
    assert len(frame) == 120 + len(payload)
    message = ClientMessage.decode(frame)
    assert_fields(message, record)
    assert message.payload == payload


@pytest.mark.parametrize(("where", "record"), TRACE_FRAMES, ids=[w for w, _ in TRACE_FRAMES])
def test_recorded_payload_decodes(where: str, record: dict[str, Any]) -> None:
    """Every recorded payload decodes with our types; official ones re-encode exactly."""
    payload = base64.b64decode(record["payload_b64"])
    mtype, ptype = record["message_type"], record["payload_type"]
    genuine = record["dir"] in ("cli>age", "age>cli")
    if mtype == MessageType.ACKNOWLEDGE:
        ack = Acknowledge.decode(payload)
        assert ack.is_sequential
        assert ack.encode() == payload
        assert (record["sequence_number"], record["flags"], ptype) == (0, 3, 0)
    elif mtype == MessageType.CHANNEL_CLOSED:
        closed = ChannelClosedPayload.decode(payload)
        assert closed.session_id == record["sid"]
    elif mtype in (MessageType.START_PUBLICATION, MessageType.PAUSE_PUBLICATION):
        assert payload == b""
    elif mtype in (MessageType.INPUT_STREAM_DATA, MessageType.OUTPUT_STREAM_DATA):
        # Agent data carries SYN on sequence 0 only; client data never has flags.
        expect_flags = int(
            mtype == MessageType.OUTPUT_STREAM_DATA and record["sequence_number"] == 0
        )
        assert record["flags"] == expect_flags
        decoder: Any = {
            PayloadType.SIZE: TerminalSize,
            PayloadType.HANDSHAKE_REQUEST: HandshakeRequest,
            PayloadType.HANDSHAKE_RESPONSE: HandshakeResponse,
            PayloadType.HANDSHAKE_COMPLETE: HandshakeComplete,
        }.get(ptype)
        if decoder is not None:
            assert decoder.decode(payload).encode() == payload
        elif ptype == PayloadType.FLAG:
            assert decode_flag(payload) in (Flag.TERMINATE_SESSION, Flag.CONNECT_TO_PORT_ERROR)
        elif ptype == PayloadType.EXIT_CODE:
            assert decode_exit_code(payload) == 5 and payload == b"EXIT_CODE: 5"
        else:
            assert ptype in (PayloadType.OUTPUT, PayloadType.STDERR)
    else:
        assert mtype == MessageType.AGENT_SESSION_STATE
        assert json.loads(payload)["SessionId"] == record["sid"]
    assert genuine or record["dir"].startswith(("mgs>", "age>mgs"))


def test_recorded_open_data_channel_frames() -> None:
    clients = []
    for path in TRACES:
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record["dir"] != "in?":
                continue
            text = record["text"]
            opened = OpenDataChannel.decode(text)
            assert opened.message_schema_version == "1.0"
            if "ClientVersion" in text:  # the plugin's frame: five keys, in order
                assert opened.client_version == "1.2.677.0"
                assert opened.encode() == text
                clients.append((path.stem, opened))
    # After the drop in shell-client-drop-resume the client re-opens with a new token
    # and request id but the same ClientId.
    resumed = [o for stem, o in clients if stem == "shell-client-drop-resume"]
    assert len(resumed) == 2
    assert resumed[0].client_id == resumed[1].client_id
    assert resumed[0].token_value != resumed[1].token_value
    assert resumed[0].request_id != resumed[1].request_id


def test_recorded_flags() -> None:
    """The client's TerminateSession (Ctrl-C) and the agent's ConnectToPortError (a refusal)."""
    flags = {
        (r["dir"], base64.b64decode(r["payload_b64"]))
        for _, r in TRACE_FRAMES
        if r.get("payload_type") == PayloadType.FLAG
    }
    assert flags == {("cli>age", b"\x00\x00\x00\x02"), ("age>cli", b"\x00\x00\x00\x03")}


def test_payload_decoders_reject_garbage_only_with_remote_protocol_error() -> None:
    for decoder in (Acknowledge, TerminalSize, HandshakeRequest, HandshakeComplete):
        with pytest.raises(RemoteProtocolError):
            decoder.decode(b"\xff not json")


def test_vector_files_match_their_generator() -> None:
    script = PROTOCOL.parent / "scripts" / "make_vectors.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
