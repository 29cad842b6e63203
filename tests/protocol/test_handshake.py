"""Client-side handshake processing: exact HandshakeResponse shapes (notes §7.3)."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssmsh.exceptions import (
    EncryptionError,
    HandshakeError,
    LocalProtocolError,
    RemoteProtocolError,
)
from ssmsh.protocol.crypto import Encrypter
from ssmsh.protocol.handshake import (
    DataKey,
    answer_encryption_challenge,
    implied_session_type,
    parse_handshake_complete,
    parse_handshake_request,
    process_handshake_request,
    requested_kms_key_id,
    resolve_session_type,
)
from ssmsh.protocol.payloads import EncChallenge, HandshakeRequest

DATA_KEY = DataKey(bytes(range(64)), b"blob-for-the-agent")
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/abc"

# The request recorded in traces/port-forward-mux-2-http-gets-ctrl-c.jsonl, and the
# official plugin's answer to it (with its ClientVersion).
TRACE_REQUEST = (
    b'{"AgentVersion":"3.3.1142.0","RequestedClientActions":[{"ActionType":"SessionType",'
    b'"ActionParameters":{"SessionType":"Port","Properties":{"localPortNumber":"9999",'
    b'"portNumber":"8765","type":"LocalPortForwarding"}}}]}'
)
TRACE_RESPONSE = (
    b'{"ClientVersion":"1.2.677.0","ProcessedClientActions":[{"ActionType":"SessionType",'
    b'"ActionStatus":1,"ActionResult":null,"Error":""}],"Errors":null}'
)


def request(*actions: dict[str, object], agent: str = "3.3.1142.0") -> HandshakeRequest:
    raw = json.dumps({"AgentVersion": agent, "RequestedClientActions": list(actions)})
    return parse_handshake_request(raw.encode())


def session_action(name: str, properties: object = None) -> dict[str, object]:
    return {
        "ActionType": "SessionType",
        "ActionParameters": {"SessionType": name, "Properties": properties},
    }


def kms_action(key: str = KEY_ARN) -> dict[str, object]:
    return {"ActionType": "KMSEncryption", "ActionParameters": {"KMSKeyId": key}}


# ------------------------------------------------------------------ session types


def test_port_handshake_matches_the_trace_byte_for_byte() -> None:
    result = process_handshake_request(
        parse_handshake_request(TRACE_REQUEST), client_version="1.2.677.0"
    )
    assert result.response.encode() == TRACE_RESPONSE
    assert result.session_type == "Port"
    assert result.session_properties == {
        "localPortNumber": "9999",
        "portNumber": "8765",
        "type": "LocalPortForwarding",
    }
    assert result.agent_version == "3.3.1142.0"
    assert result.encrypter is None
    assert result.errors == ()


@pytest.mark.parametrize(
    "name", ["Standard_Stream", "InteractiveCommands", "NonInteractiveCommands"]
)
def test_shell_family_maps_to_standard_stream(name: str) -> None:
    props = {"linux": {"commands": "top"}}
    result = process_handshake_request(request(session_action(name, props)))
    assert result.session_type == "Standard_Stream"
    assert result.session_properties == props
    assert json.loads(result.response.encode())["ProcessedClientActions"][0]["ActionStatus"] == 1


@pytest.mark.parametrize("params", [{"SessionType": "Telnet"}, {"SessionType": 7}, None, [], {}])
def test_unknown_session_type(params: object) -> None:
    req = request({"ActionType": "SessionType", "ActionParameters": params})
    result = process_handshake_request(req, client_version="1.2.779.0")
    name = "Telnet" if params == {"SessionType": "Telnet"} else ""
    assert result.session_type is None
    assert result.session_type_error == f"Unknown session type {name}"
    assert json.loads(result.response.encode()) == {
        "ClientVersion": "1.2.779.0",
        "ProcessedClientActions": [
            {
                "ActionType": "SessionType",
                "ActionStatus": 2,
                "ActionResult": None,
                "Error": f"Failed to process action SessionType: Unknown session type {name}",
            }
        ],
        "Errors": [f"Unknown session type {name}"],
    }


def test_resolve_session_type_raises_handshake_error() -> None:
    with pytest.raises(HandshakeError, match="Unknown session type Foo"):
        resolve_session_type({"SessionType": "Foo"})
    assert resolve_session_type({"SessionType": "Port"}) == ("Port", None)


def test_empty_request_gives_empty_list_not_null() -> None:
    result = process_handshake_request(request(), client_version="1.2.779.0")
    assert result.response.encode() == (
        b'{"ClientVersion":"1.2.779.0","ProcessedClientActions":[],"Errors":null}'
    )
    assert result.session_type is None


def test_unknown_action_quirk() -> None:
    req = request({"ActionType": "Foo", "ActionParameters": {"x": 1}}, session_action("Port"))
    result = process_handshake_request(req, client_version="1.2.779.0")
    assert result.response.encode() == (
        b'{"ClientVersion":"1.2.779.0","ProcessedClientActions":['
        b'{"ActionType":"Foo","ActionStatus":0,"ActionResult":3,"Error":"Unsupported action Foo"},'
        b'{"ActionType":"SessionType","ActionStatus":1,"ActionResult":null,"Error":""}],'
        b'"Errors":["Unsupported action Foo"]}'
    )
    assert result.session_type == "Port"  # an unknown action does not stop the session


# ------------------------------------------------------------------ KMS


def test_kms_key_id_lookup() -> None:
    assert requested_kms_key_id(request(session_action("Port"))) is None
    assert requested_kms_key_id(request(kms_action(), session_action("Port"))) == KEY_ARN
    assert requested_kms_key_id(request(kms_action(""))) is None
    bad = request({"ActionType": "KMSEncryption", "ActionParameters": "nope"})
    assert requested_kms_key_id(bad) is None


def test_kms_success_in_request_order() -> None:
    req = request(kms_action(), session_action("Standard_Stream"))
    result = process_handshake_request(req, DATA_KEY, client_version="1.2.779.0")
    blob = base64.b64encode(b"blob-for-the-agent").decode()
    assert result.response.encode() == (
        b'{"ClientVersion":"1.2.779.0","ProcessedClientActions":['
        b'{"ActionType":"KMSEncryption","ActionStatus":1,"ActionResult":'
        b'{"KMSCipherTextKey":"' + blob.encode() + b'","KMSCipherTextHash":null},"Error":""},'
        b'{"ActionType":"SessionType","ActionStatus":1,"ActionResult":null,"Error":""}],'
        b'"Errors":null}'
    )
    assert result.encrypter is not None
    agent = Encrypter.for_agent(DATA_KEY.plaintext)
    assert agent.decrypt(result.encrypter.encrypt(b"hi")) == b"hi"
    assert result.kms_error is None


def test_order_follows_the_request() -> None:
    req = request(session_action("Port"), kms_action())
    result = process_handshake_request(req, DATA_KEY)
    types = [a.action_type for a in result.response.processed_actions]
    assert types == ["SessionType", "KMSEncryption"]


def test_kms_failure_from_the_app() -> None:
    req = request(kms_action(), session_action("Standard_Stream"))
    result = process_handshake_request(
        req, "AccessDeniedException: not allowed", client_version="1.2.779.0"
    )
    body = json.loads(result.response.encode())
    assert body["ProcessedClientActions"][0] == {
        "ActionType": "KMSEncryption",
        "ActionStatus": 2,
        "ActionResult": None,
        "Error": "Failed to process action KMSEncryption: AccessDeniedException: not allowed",
    }
    assert body["Errors"] == ["AccessDeniedException: not allowed"]
    assert result.encrypter is None
    assert result.kms_error == "AccessDeniedException: not allowed"
    assert result.session_type == "Standard_Stream"


def test_kms_bad_data_key_size() -> None:
    req = request(kms_action())
    result = process_handshake_request(req, DataKey(bytes(32), b"blob"))
    assert result.encrypter is None
    assert result.kms_error is not None and "64 bytes" in result.kms_error


def test_kms_missing_key_id_fails_without_a_data_key() -> None:
    result = process_handshake_request(request(kms_action("")))
    assert result.kms_error == "KMSKeyId is missing from the request"
    assert result.response.processed_actions[0].action_status == 2


def test_kms_requested_but_not_provided_is_a_caller_bug() -> None:
    with pytest.raises(LocalProtocolError):
        process_handshake_request(request(kms_action()))


def test_data_key_repr_hides_plaintext() -> None:
    assert "plaintext" not in repr(DATA_KEY)


# ------------------------------------------------------------------ challenge, complete


def test_challenge_round_trip() -> None:
    agent = Encrypter.for_agent(DATA_KEY.plaintext)
    client = Encrypter.for_client(DATA_KEY.plaintext)
    secret = bytes(range(64))
    answer = answer_encryption_challenge(client, EncChallenge(agent.encrypt(secret)).encode())
    assert list(json.loads(answer)) == ["Challenge"]
    assert agent.decrypt(EncChallenge.decode(answer).challenge) == secret


def test_challenge_with_wrong_key() -> None:
    agent = Encrypter.for_agent(DATA_KEY.plaintext)
    wrong = Encrypter.for_client(bytes(64))
    with pytest.raises(EncryptionError):
        answer_encryption_challenge(wrong, EncChallenge(agent.encrypt(b"x")).encode())


@pytest.mark.parametrize("payload", [b"", b"{", b"[]", b'{"Challenge":5}', b'{"Challenge":"@@"}'])
def test_challenge_garbage(payload: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        answer_encryption_challenge(Encrypter.for_client(DATA_KEY.plaintext), payload)


def test_handshake_complete() -> None:
    done = parse_handshake_complete(
        b'{"HandshakeTimeToComplete":203127071,"CustomerMessage":"hello"}'
    )
    assert done.customer_message == "hello"
    assert done.handshake_time_to_complete == 203127071


@pytest.mark.parametrize("payload", [b"", b"nope", b"[1]", b'"x"'])
def test_garbage_request(payload: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_handshake_request(payload)


@given(st.binary(max_size=200))
def test_request_fuzz(payload: bytes) -> None:
    try:
        req = parse_handshake_request(payload)
    except RemoteProtocolError:
        return
    result = process_handshake_request(req, DATA_KEY)
    assert len(result.response.processed_actions) == len(req.requested_actions)


def test_implied_session_type() -> None:
    assert implied_session_type(1) == "Standard_Stream"
    for ptype in (2, 3, 10, 11, 12):
        assert implied_session_type(ptype) is None


@given(st.text(max_size=20), st.text(max_size=20), st.text(max_size=20))
def test_any_agent_text_gives_an_encodable_response(atype: str, stype: str, error: str) -> None:
    # json.dumps escapes lone surrogates as \udxxx, which JSON allows and UTF-8 does not.
    raw = json.dumps(
        {
            "AgentVersion": "3.0",
            "RequestedClientActions": [
                {"ActionType": atype, "ActionParameters": {"SessionType": stype}},
                session_action(stype),
                kms_action(),
            ],
        }
    ).encode()
    result = process_handshake_request(parse_handshake_request(raw), error)
    body = json.loads(result.response.encode())
    assert len(body["ProcessedClientActions"]) == 3
    assert "\ud800" not in str(result.session_type_error)


def test_lone_surrogates_become_replacement_characters() -> None:
    raw = b'{"AgentVersion":"1","RequestedClientActions":[{"ActionType":"X\\ud800"}]}'
    result = process_handshake_request(parse_handshake_request(raw))
    assert json.loads(result.response.encode())["Errors"] == ["Unsupported action X\ufffd"]
