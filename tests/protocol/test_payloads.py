"""Exact JSON bytes of every payload, and RemoteProtocolError as the only decode failure."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssmsh.exceptions import RemoteProtocolError
from ssmsh.protocol.constants import (
    CLIENT_VERSION,
    ActionStatus,
    ActionType,
    Flag,
    MessageType,
    SessionType,
)
from ssmsh.protocol.payloads import (
    Acknowledge,
    ChannelClosedPayload,
    EncChallenge,
    HandshakeComplete,
    HandshakeRequest,
    HandshakeResponse,
    OpenDataChannel,
    ProcessedClientAction,
    RequestedClientAction,
    TerminalSize,
    decode_exit_code,
    decode_flag,
    dumps,
    encode_exit_code,
    encode_flag,
)

FAST = settings(max_examples=150, deadline=None)
ID = "dd01e56b-ff48-483e-a508-b5f073f31b16"

# ------------------------------------------------------------------ acknowledge


def test_acknowledge_bytes() -> None:
    ack = Acknowledge(MessageType.OUTPUT_STREAM_DATA, ID, 2)
    assert ack.encode() == (
        b'{"AcknowledgedMessageType":"output_stream_data",'
        b'"AcknowledgedMessageId":"dd01e56b-ff48-483e-a508-b5f073f31b16",'
        b'"AcknowledgedMessageSequenceNumber":2,"IsSequentialMessage":true}'
    )
    assert len(ack.encode()) == 176
    assert Acknowledge.decode(ack.encode()) == ack


def test_acknowledge_decode_needs_only_the_sequence_number() -> None:
    ack = Acknowledge.decode(b'{"AcknowledgedMessageSequenceNumber":9}')
    assert ack.sequence_number == 9
    for bad in (
        b"{}",
        b'{"AcknowledgedMessageSequenceNumber":"9"}',
        b'{"AcknowledgedMessageSequenceNumber":true}',
        b'{"AcknowledgedMessageSequenceNumber":1.5}',
        b"[1]",
    ):
        with pytest.raises(RemoteProtocolError):
            Acknowledge.decode(bad)


# ------------------------------------------------------------------ channel_closed


def test_channel_closed_bytes() -> None:
    closed = ChannelClosedPayload("m-1", "2026-11-22T12:51:56.000Z", "i-0abc", "s-1", "bye")
    assert closed.encode() == (
        b'{"MessageId":"m-1","CreatedDate":"2026-11-22T12:51:56.000Z","DestinationId":"i-0abc",'
        b'"SessionId":"s-1","MessageType":"channel_closed","SchemaVersion":1,"Output":"bye"}'
    )
    assert ChannelClosedPayload.decode(closed.encode()) == closed


def test_channel_closed_decode_is_lenient() -> None:
    closed = ChannelClosedPayload.decode(b'{"SessionId":"s-1","Output":null,"SchemaVersion":"x"}')
    assert (closed.session_id, closed.output, closed.schema_version) == ("s-1", "", 1)
    assert ChannelClosedPayload.decode(b"{}").output == ""


# ------------------------------------------------------------------ size, flag, exit code


def test_terminal_size_bytes() -> None:
    assert TerminalSize(80, 24).encode() == b'{"cols":80,"rows":24}'
    assert TerminalSize(120, 30).encode() == b'{"cols":120,"rows":30}'
    assert TerminalSize.decode(b'{"rows":24,"cols":80}') == TerminalSize(80, 24)
    for bad in (b'{"cols":80}', b'{"cols":-1,"rows":1}', b'{"cols":80,"rows":"24"}'):
        with pytest.raises(RemoteProtocolError):
            TerminalSize.decode(bad)
    with pytest.raises(RemoteProtocolError, match="out of range"):
        TerminalSize.decode(b'{"cols":4294967296,"rows":1}')


@pytest.mark.parametrize(
    ("flag", "wire"),
    [
        (Flag.DISCONNECT_TO_PORT, b"\x00\x00\x00\x01"),
        (Flag.TERMINATE_SESSION, b"\x00\x00\x00\x02"),
        (Flag.CONNECT_TO_PORT_ERROR, b"\x00\x00\x00\x03"),
    ],
)
def test_flag_bytes(flag: Flag, wire: bytes) -> None:
    assert encode_flag(flag) == wire
    assert decode_flag(wire) == flag


@pytest.mark.parametrize("wire", [b"", b"\x02", b"\x00\x00\x02", b"\x00\x00\x00\x00\x02"])
def test_flag_must_be_four_bytes(wire: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="4 bytes"):
        decode_flag(wire)


def test_exit_code_bytes() -> None:
    assert encode_exit_code(0) == b"EXIT_CODE: 0"
    assert encode_exit_code(127) == b"EXIT_CODE: 127"
    for wire, code in [
        (b"EXIT_CODE: 3", 3),
        (b"EXIT_CODE:3", 3),
        (b"  EXIT_CODE: 42\n", 42),
        (b"7", 7),
        (b"EXIT_CODE: -1", -1),
    ]:
        assert decode_exit_code(wire) == code
    for bad in (b"", b"EXIT_CODE:", b"exit 3", b"EXIT_CODE: 3x", b"9" * 5000):
        with pytest.raises(RemoteProtocolError):
            decode_exit_code(bad)


# ------------------------------------------------------------------ handshake


def test_handshake_request_bytes() -> None:
    request = HandshakeRequest.for_session(
        "3.3.1142.0",
        SessionType.PORT,
        {"localPortNumber": "9999", "portNumber": "8765", "type": "LocalPortForwarding"},
    )
    # Byte for byte what the official agent sent in port-forward-mux-2-http-gets-ctrl-c.
    wire = (
        b'{"AgentVersion":"3.3.1142.0","RequestedClientActions":[{"ActionType":"SessionType",'
        b'"ActionParameters":{"SessionType":"Port","Properties":{"localPortNumber":"9999",'
        b'"portNumber":"8765","type":"LocalPortForwarding"}}}]}'
    )
    assert request.encode() == wire
    assert HandshakeRequest.decode(wire) == request


def test_handshake_request_with_kms_lists_kms_first() -> None:
    request = HandshakeRequest.for_session("3.2.582.0", SessionType.STANDARD_STREAM, None, "arn:k")
    assert request.encode() == (
        b'{"AgentVersion":"3.2.582.0","RequestedClientActions":['
        b'{"ActionType":"KMSEncryption","ActionParameters":{"KMSKeyId":"arn:k"}},'
        b'{"ActionType":"SessionType","ActionParameters":'
        b'{"SessionType":"Standard_Stream","Properties":null}}]}'
    )
    decoded = HandshakeRequest.decode(request.encode())
    assert [a.action_type for a in decoded.requested_actions] == [
        ActionType.KMS_ENCRYPTION,
        ActionType.SESSION_TYPE,
    ]


def test_handshake_request_decode() -> None:
    assert HandshakeRequest.decode(b"{}") == HandshakeRequest("", ())
    assert HandshakeRequest.decode(b'{"RequestedClientActions":null}').requested_actions == ()
    unknown = HandshakeRequest.decode(b'{"RequestedClientActions":[{"ActionType":"Foo"}]}')
    assert unknown.requested_actions == (RequestedClientAction("Foo", None),)
    for bad in (
        b'{"AgentVersion":3}',
        b'{"RequestedClientActions":{"a":1}}',
        b'{"RequestedClientActions":[1]}',
        b'{"RequestedClientActions":[{"ActionParameters":{}}]}',
    ):
        with pytest.raises(RemoteProtocolError):
            HandshakeRequest.decode(bad)


def test_handshake_response_bytes_kms_and_session_type() -> None:
    response = HandshakeResponse(
        "1.2.677.0",
        (
            ProcessedClientAction(
                ActionType.KMS_ENCRYPTION,
                ActionStatus.SUCCESS,
                {"KMSCipherTextKey": base64.b64encode(b"blob").decode(), "KMSCipherTextHash": None},
            ),
            ProcessedClientAction(ActionType.SESSION_TYPE, ActionStatus.SUCCESS),
        ),
    )
    assert response.encode() == (
        b'{"ClientVersion":"1.2.677.0","ProcessedClientActions":['
        b'{"ActionType":"KMSEncryption","ActionStatus":1,"ActionResult":'
        b'{"KMSCipherTextKey":"YmxvYg==","KMSCipherTextHash":null},"Error":""},'
        b'{"ActionType":"SessionType","ActionStatus":1,"ActionResult":null,"Error":""}],'
        b'"Errors":null}'
    )
    assert HandshakeResponse.decode(response.encode()) == response


def test_handshake_response_recorded_bytes() -> None:
    response = HandshakeResponse(
        "1.2.677.0", (ProcessedClientAction(ActionType.SESSION_TYPE, ActionStatus.SUCCESS),)
    )
    assert response.encode() == (
        b'{"ClientVersion":"1.2.677.0","ProcessedClientActions":[{"ActionType":"SessionType",'
        b'"ActionStatus":1,"ActionResult":null,"Error":""}],"Errors":null}'
    )


def test_handshake_response_empty_actions_is_a_list_and_errors_null() -> None:
    assert HandshakeResponse().encode() == (
        b'{"ClientVersion":"' + CLIENT_VERSION.encode() + b'","ProcessedClientActions":[],'
        b'"Errors":null}'
    )


def test_handshake_response_unknown_action_quirk_and_errors() -> None:
    response = HandshakeResponse(
        "1.2.677.0",
        (
            # The official client puts Unsupported (3) into ActionResult, leaving status 0.
            ProcessedClientAction("Foo", 0, ActionStatus.UNSUPPORTED, "Unsupported action Foo"),
            ProcessedClientAction(
                ActionType.SESSION_TYPE,
                ActionStatus.FAILED,
                None,
                "Failed to process action SessionType: Unknown session type Bar",
            ),
        ),
        ("Unsupported action Foo", "Unknown session type Bar"),
    )
    assert response.encode() == (
        b'{"ClientVersion":"1.2.677.0","ProcessedClientActions":['
        b'{"ActionType":"Foo","ActionStatus":0,"ActionResult":3,"Error":"Unsupported action Foo"},'
        b'{"ActionType":"SessionType","ActionStatus":2,"ActionResult":null,'
        b'"Error":"Failed to process action SessionType: Unknown session type Bar"}],'
        b'"Errors":["Unsupported action Foo","Unknown session type Bar"]}'
    )
    decoded = HandshakeResponse.decode(response.encode())
    assert decoded == response
    assert not decoded.processed_actions[0].succeeded


def test_handshake_response_decode_errors() -> None:
    for bad in (
        b'{"ClientVersion":1}',
        b'{"ProcessedClientActions":{"a":1}}',
        b'{"ProcessedClientActions":["x"]}',
        b'{"Errors":"boom"}',
    ):
        with pytest.raises(RemoteProtocolError):
            HandshakeResponse.decode(bad)


def test_handshake_complete_bytes() -> None:
    complete = HandshakeComplete(1000000, "Handshake Complete")
    assert (
        complete.encode()
        == b'{"HandshakeTimeToComplete":1000000,"CustomerMessage":"Handshake Complete"}'
    )
    assert HandshakeComplete.decode(complete.encode()) == complete
    recorded = b'{"HandshakeTimeToComplete":203127071,"CustomerMessage":""}'
    assert HandshakeComplete.decode(recorded).encode() == recorded
    assert HandshakeComplete.decode(b'{"HandshakeTimeToComplete":true}') == HandshakeComplete()


def test_challenge_bytes() -> None:
    challenge = EncChallenge(bytes(range(5)))
    assert challenge.encode() == b'{"Challenge":"AAECAwQ="}'
    assert EncChallenge.decode(challenge.encode()) == challenge
    for bad in (
        b"{}",
        b'{"Challenge":1}',
        b'{"Challenge":"not base64!"}',
        '{"Challenge":"é"}'.encode(),
    ):
        with pytest.raises(RemoteProtocolError):
            EncChallenge.decode(bad)


# ------------------------------------------------------------------ OpenDataChannel


def test_open_data_channel_key_order() -> None:
    opened = OpenDataChannel(
        "3f2b8e8e-1c1a-4b8f-9a0e-2a6b0c9d7e11",
        "TOKEN",
        "a1b2c3d4-0000-4000-8000-000000000001",
        "1.2.0.0",
    )
    assert opened.encode() == (
        '{"MessageSchemaVersion":"1.0","RequestId":"3f2b8e8e-1c1a-4b8f-9a0e-2a6b0c9d7e11",'
        '"TokenValue":"TOKEN","ClientId":"a1b2c3d4-0000-4000-8000-000000000001",'
        '"ClientVersion":"1.2.0.0"}'
    )
    assert OpenDataChannel.decode(opened.encode()) == opened
    assert OpenDataChannel.decode(opened.encode().encode()) == opened


def test_open_data_channel_never_shows_the_token() -> None:
    opened = OpenDataChannel("r", "secret-token-value", "c")
    assert "secret-token-value" not in repr(opened)
    assert "secret-token-value" not in str(opened)


def test_open_data_channel_needs_a_token() -> None:
    for bad in ('{"RequestId":"r"}', '{"TokenValue":5}', "\ud800", "[]"):
        with pytest.raises(RemoteProtocolError):
            OpenDataChannel.decode(bad)


# ------------------------------------------------------------------ Go-style JSON


def test_dumps_is_compact_and_escapes_like_go() -> None:
    assert dumps({"a": [1, True, None], "b": "x"}) == b'{"a":[1,true,null],"b":"x"}'
    assert dumps({"m": "<a&b>"}) == b'{"m":"\\u003ca\\u0026b\\u003e"}'
    assert dumps({"m": "é"}) == '{"m":"é"}'.encode()


# ------------------------------------------------------------------ decode robustness

DECODERS: list[Callable[[bytes], Any]] = [
    Acknowledge.decode,
    ChannelClosedPayload.decode,
    TerminalSize.decode,
    HandshakeRequest.decode,
    HandshakeResponse.decode,
    HandshakeComplete.decode,
    EncChallenge.decode,
    OpenDataChannel.decode,
    decode_flag,
    decode_exit_code,
]

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
json_values = st.recursive(
    json_scalars | st.text(st.characters(max_codepoint=0x7F), max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
keys = st.sampled_from(
    [
        "AcknowledgedMessageSequenceNumber",
        "cols",
        "rows",
        "AgentVersion",
        "RequestedClientActions",
        "ActionType",
        "ClientVersion",
        "ProcessedClientActions",
        "Errors",
        "ActionStatus",
        "HandshakeTimeToComplete",
        "CustomerMessage",
        "Challenge",
        "TokenValue",
        "Output",
        "SchemaVersion",
    ]
)
# Objects with the right keys and random values: the shapes most likely to trip a decoder.
near_misses = st.dictionaries(
    keys, json_values | st.lists(st.dictionaries(keys, json_values, max_size=3), max_size=2)
)


def only_remote_errors(data: bytes) -> None:
    for decoder in DECODERS:
        with contextlib.suppress(RemoteProtocolError):
            decoder(data)


@FAST
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_remote_protocol_error(data: bytes) -> None:
    only_remote_errors(data)


@settings(max_examples=300, deadline=None)
@given(value=json_values | near_misses)
def test_arbitrary_json_raises_only_remote_protocol_error(value: Any) -> None:
    only_remote_errors(json.dumps(value).encode())


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 100_000,
        b'{"a":' * 100_000,
        b"1" * 5000,
        b"\xff\xfe\x00\x00",
        b"\xef\xbb\xbf{}",
        b'{"a":1e999}',
        b"NaN",
        b"",
    ],
    ids=["deep-array", "deep-object", "huge-int", "utf32-bom", "utf8-bom", "inf", "nan", "empty"],
)
def test_hostile_json(data: bytes) -> None:
    only_remote_errors(data)
