"""SigV4 verification, checked against botocore's own signer."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from typing import Any

import botocore.auth
import botocore.exceptions
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from websockets.datastructures import Headers

from ssmsh.emulator import DEFAULT_TARGET, EmulatorConfig
from ssmsh.emulator.sigv4 import SigV4Error, signing_key, verify_request
from tests.emulator.conftest import EmulatorThread, PlaceholderGateway, make_client

KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
URL = "http://127.0.0.1:4567"


def botocore_signed(
    method: str = "POST",
    url: str = URL + "/",
    body: bytes = b'{"Target": "i-1"}',
    service: str = "ssm",
    headers: dict[str, str] | None = None,
    key: str = KEY,
    secret: str = SECRET,
    token: str | None = None,
    region: str = "us-east-1",
) -> tuple[str, str, list[tuple[str, str]], bytes]:
    """(method, target, headers, body) of a request signed by botocore."""
    if headers is None:
        headers = {"X-Amz-Target": "AmazonSSM.StartSession"} if method == "POST" else {}
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(Credentials(key, secret, token), service, region).add_auth(request)
    prepared = request.prepare()
    items: list[tuple[str, Any]] = list(prepared.headers.items())
    pairs = [(k, v.decode() if isinstance(v, bytes) else str(v)) for k, v in items]
    pairs.append(("Host", url.split("/")[2]))
    target = str(prepared.url).split(url.split("/")[2], 1)[1] or "/"
    return method, target, pairs, body


def code_of(fn: Any) -> str:
    with pytest.raises(SigV4Error) as exc_info:
        fn()
    return exc_info.value.code


def test_signing_key_matches_the_aws_documentation_example() -> None:
    # The worked example of the SigV4 documentation (IAM, us-east-1, 20150830).
    key = signing_key(SECRET, "20150830", "us-east-1", "iam")
    assert key.hex() == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"


@pytest.mark.parametrize("service", ["ssm", "kms"])
def test_botocore_signed_request_verifies(service: str) -> None:
    method, target, headers, body = botocore_signed(service=service)
    info = verify_request(method, target, headers, body, (KEY, SECRET), service=service)
    assert info.verified
    assert (info.access_key, info.region, info.service) == (KEY, "us-east-1", service)
    assert "host" in info.signed_headers


def test_websocket_upgrade_get_with_query_verifies() -> None:
    url = URL + "/v1/data-channel/emulated-0123?role=publish_subscribe&cell-number=abc%2Fdef"
    method, target, headers, body = botocore_signed("GET", url, b"", "ssmmessages")
    assert target.startswith("/v1/data-channel/emulated-0123?")
    info = verify_request(method, target, Headers(headers), body, [(KEY, SECRET)])
    assert info.verified and info.service == "ssmmessages"


def test_security_token_is_reported() -> None:
    method, target, headers, body = botocore_signed(token="session-token")
    info = verify_request(method, target, headers, body, {KEY: SECRET})
    assert info.security_token == "session-token"


def test_without_credentials_only_the_form_is_checked() -> None:
    method, target, headers, body = botocore_signed(secret="anything")
    info = verify_request(method, target, headers, body, None)
    assert not info.verified


def test_wrong_secret_and_unknown_key() -> None:
    method, target, headers, body = botocore_signed(secret="wrong")
    assert code_of(lambda: verify_request(method, target, headers, body, (KEY, SECRET))) == (
        "InvalidSignatureException"
    )
    method, target, headers, body = botocore_signed(key="AKIDOTHER")
    assert code_of(lambda: verify_request(method, target, headers, body, (KEY, SECRET))) == (
        "UnrecognizedClientException"
    )


def test_rotated_credentials_are_all_accepted() -> None:
    pairs = [(KEY, SECRET), ("AKIDNEW", "new-secret")]
    for key, secret in pairs:
        method, target, headers, body = botocore_signed(key=key, secret=secret)
        assert verify_request(method, target, headers, body, pairs).access_key == key


@pytest.mark.parametrize(
    "tamper",
    ["body", "target-header", "path", "query", "signature"],
)
def test_tampering_is_detected(tamper: str) -> None:
    url = URL + "/?a=1"
    method, target, headers, body = botocore_signed(url=url)
    if tamper == "body":
        body = body + b" "
    elif tamper == "target-header":
        headers = [
            (k, "AmazonSSM.TerminateSession" if k == "X-Amz-Target" else v) for k, v in headers
        ]
    elif tamper == "path":
        target = target.replace("/", "/x", 1)
    elif tamper == "query":
        target = target.replace("a=1", "a=2")
    else:
        headers = [
            (k, v[:-1] + ("0" if v[-1] != "0" else "1") if k == "Authorization" else v)
            for k, v in headers
        ]
    assert code_of(lambda: verify_request(method, target, headers, body, (KEY, SECRET))) == (
        "InvalidSignatureException"
    )


def _with_header(headers: list[tuple[str, str]], name: str, value: str | None) -> list[Any]:
    kept = [(k, v) for k, v in headers if k.lower() != name.lower()]
    return kept if value is None else [*kept, (name, value)]


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "MissingAuthenticationTokenException"),
        ("", "IncompleteSignatureException"),
        ("Bearer abc", "IncompleteSignatureException"),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/ssm/aws4_request",
            "IncompleteSignatureException",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/2024/us-east-1/ssm/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
            "IncompleteSignatureException",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/ssm/other, "
            "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
            "IncompleteSignatureException",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/ssm/aws4_request, "
            "SignedHeaders=x-amz-date, Signature=" + "0" * 64,
            "IncompleteSignatureException",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/ssm/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=xyz",
            "IncompleteSignatureException",
        ),
    ],
)
def test_malformed_authorization(authorization: str | None, code: str) -> None:
    method, target, headers, body = botocore_signed()
    headers = _with_header(headers, "Authorization", authorization)
    headers = _with_header(headers, "X-Amz-Date", "20240101T000000Z")
    assert code_of(lambda: verify_request(method, target, headers, body, None)) == code


def test_date_problems() -> None:
    method, target, headers, body = botocore_signed()
    no_date = _with_header(headers, "X-Amz-Date", None)
    assert code_of(lambda: verify_request(method, target, no_date, body, None)) == (
        "IncompleteSignatureException"
    )
    other_day = _with_header(headers, "X-Amz-Date", "19990101T000000Z")
    assert code_of(lambda: verify_request(method, target, other_day, body, None)) == (
        "InvalidSignatureException"
    )
    # A correctly signed but stale request (16 minutes old).
    later = dt.datetime.now(dt.UTC).timestamp() + 16 * 60
    with pytest.raises(SigV4Error, match="Signature expired"):
        verify_request(method, target, headers, body, (KEY, SECRET), now=later)
    assert verify_request(method, target, headers, body, (KEY, SECRET), now=later - 120).verified


def test_scope_checks() -> None:
    method, target, headers, body = botocore_signed(service="kms", region="eu-west-1")
    with pytest.raises(SigV4Error, match="correct service: 'ssm'"):
        verify_request(method, target, headers, body, None, service="ssm")
    with pytest.raises(SigV4Error, match="valid region"):
        verify_request(method, target, headers, body, None, region="us-east-1")
    assert verify_request(method, target, headers, body, None, service=["ssm", "kms"])


def test_presigned_url_verifies() -> None:
    url = URL + "/v1/data-channel/emulated-1?role=publish_subscribe&cell-number=xyz"
    request = AWSRequest(method="GET", url=url)
    SigV4QueryAuth(Credentials(KEY, SECRET), "ssmmessages", "us-east-1", expires=60).add_auth(
        request
    )
    target = str(request.url).split("127.0.0.1:4567", 1)[1]
    headers = [("Host", "127.0.0.1:4567")]
    info = verify_request("GET", target, headers, b"", (KEY, SECRET))
    assert info.presigned and info.verified
    later = dt.datetime.now(dt.UTC).timestamp() + 120
    with pytest.raises(SigV4Error, match="expired"):
        verify_request("GET", target, headers, b"", (KEY, SECRET), now=later)
    tampered = target.replace("cell-number=xyz", "cell-number=xyw")
    assert code_of(lambda: verify_request("GET", tampered, headers, b"", (KEY, SECRET))) == (
        "InvalidSignatureException"
    )


@pytest.fixture
def fixed_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    moment = dt.datetime(2024, 5, 6, 7, 8, 9)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: moment)
    yield moment.replace(tzinfo=dt.UTC).timestamp()


def test_botocore_signatures_verify_at_a_fixed_time(fixed_time: float) -> None:
    url = URL + "/v1/data-channel/emulated-1?role=publish_subscribe&cell-number=xyz"
    method, target, headers, body = botocore_signed("GET", url, b"", "ssmmessages")
    assert verify_request(method, target, headers, body, (KEY, SECRET), now=fixed_time).verified
    _, _, posted, body = botocore_signed(
        body=b'{"x": 1}', headers={"Content-Type": "application/json"}, token="tok"
    )
    info = verify_request("POST", "/", posted, body, (KEY, SECRET), now=fixed_time)
    assert info.verified and info.security_token == "tok"
    with pytest.raises(SigV4Error, match="does not match"):
        verify_request("POST", "/", posted, body + b"x", (KEY, SECRET), now=fixed_time)


# -- against a running emulator with --credentials -----------------------------------------


@pytest.fixture
def secured() -> Iterator[EmulatorThread]:
    config = EmulatorConfig(credentials=[(KEY, SECRET), ("AKIDROTATED", "rotated-secret")])
    thread = EmulatorThread(config, PlaceholderGateway).start()
    try:
        yield thread
    finally:
        thread.stop()


def test_emulator_verifies_signatures(secured: EmulatorThread) -> None:
    good = make_client("ssm", secured.endpoint_url, KEY, SECRET)
    assert good.get_connection_status(Target=DEFAULT_TARGET)["Status"] == "connected"
    rotated = make_client("ssm", secured.endpoint_url, "AKIDROTATED", "rotated-secret")
    assert rotated.start_session(Target=DEFAULT_TARGET)["TokenValue"]
    kms = make_client("kms", secured.endpoint_url, KEY, "not-the-secret")
    with pytest.raises(botocore.exceptions.ClientError) as exc_info:
        kms.generate_data_key(KeyId="alias/x", NumberOfBytes=64)
    assert exc_info.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert "signature we calculated does not match" in str(exc_info.value)
    stranger = make_client("ssm", secured.endpoint_url, "AKIDSTRANGER", SECRET)
    with pytest.raises(botocore.exceptions.ClientError) as exc_info:
        stranger.start_session(Target=DEFAULT_TARGET)
    assert exc_info.value.response["Error"]["Code"] == "UnrecognizedClientException"
    # Refused calls changed nothing; the emulator keeps serving.
    assert len(secured.state.sessions) == 1
    assert good.describe_sessions(State="Active")["Sessions"]


# -- presign limits, the clock and payload hashes (issue #15) ------------------------------


def presigned_target(expires: int, when: dt.datetime | None = None) -> str:
    url = URL + "/v1/data-channel/emulated-1?role=publish_subscribe"
    request = AWSRequest(method="GET", url=url)
    auth = SigV4QueryAuth(Credentials(KEY, SECRET), "ssmmessages", "us-east-1", expires=expires)
    if when is None:
        auth.add_auth(request)
    else:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(botocore.auth, "get_current_datetime", lambda: when)
            auth.add_auth(request)
    return str(request.url).split("127.0.0.1:4567", 1)[1]


HOST = [("Host", "127.0.0.1:4567")]


@pytest.mark.parametrize("credentials", [None, (KEY, SECRET)])
def test_x_amz_expires_is_at_most_a_week(credentials: Any) -> None:
    assert verify_request("GET", presigned_target(604800), HOST, b"", (KEY, SECRET)).verified
    assert verify_request("GET", presigned_target(5), HOST, b"", credentials)
    with pytest.raises(SigV4Error, match="less than a week") as exc_info:
        verify_request("GET", presigned_target(604801), HOST, b"", credentials)
    assert exc_info.value.code == "AuthorizationQueryParametersError"
    good = presigned_target(60)
    for value, message in [
        ("1e20", "should be a number"),
        ("abc", "should be a number"),
        ("", "should be a number"),
        ("-1", "non-negative"),
        ("100000000000000000000", "less than a week"),
        ("9" * 5000, "less than a week"),
    ]:
        target = good.replace("X-Amz-Expires=60", f"X-Amz-Expires={value}")
        with pytest.raises(SigV4Error, match=message) as exc_info:
            verify_request("GET", target, HOST, b"", credentials)
        assert exc_info.value.code == "AuthorizationQueryParametersError"


@pytest.mark.parametrize("credentials", [None, (KEY, SECRET)])
def test_presigned_requests_expire_and_cannot_come_from_the_future(credentials: Any) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    for when, expires, message in [
        (now - dt.timedelta(days=2), 3600, "Signature expired"),
        (now - dt.timedelta(days=3650), 604800, "Signature expired"),
        (now - dt.timedelta(seconds=61), 60, "Signature expired"),
        (now + dt.timedelta(minutes=16), 3600, "not yet current"),
        (now.replace(year=9999), 604800, "not yet current"),
    ]:
        with pytest.raises(SigV4Error, match=message) as exc_info:
            verify_request("GET", presigned_target(expires, when), HOST, b"", credentials)
        assert exc_info.value.code == "InvalidSignatureException"
    # Within the clock skew AWS allows, and not yet expired.
    for when in (now + dt.timedelta(minutes=14), now - dt.timedelta(seconds=50)):
        assert verify_request("GET", presigned_target(60, when), HOST, b"", (KEY, SECRET))


def test_header_signatures_are_checked_against_the_clock_without_credentials() -> None:
    method, target, headers, body = botocore_signed()
    now = dt.datetime.now(dt.UTC).timestamp()
    assert verify_request(method, target, headers, body, None, now=now + 14 * 60)
    with pytest.raises(SigV4Error, match="Signature expired"):
        verify_request(method, target, headers, body, None, now=now + 16 * 60)
    with pytest.raises(SigV4Error, match="Signature not yet current"):
        verify_request(method, target, headers, body, None, now=now - 16 * 60)
    ancient = _with_header(headers, "X-Amz-Date", "00010101T000000Z")
    ancient = [
        (k, v.replace(v.split("/")[1], "00010101") if k == "Authorization" else v)
        for k, v in ancient
    ]
    with pytest.raises(SigV4Error, match="Signature expired"):
        verify_request(method, target, ancient, body, None)


@pytest.mark.parametrize("credentials", [None, (KEY, SECRET)])
def test_the_payload_hash_must_be_the_bodys(credentials: Any) -> None:
    body = b'{"Target": "i-1"}'
    true_hash = hashlib.sha256(body).hexdigest()
    signed_with = {"X-Amz-Target": "AmazonSSM.StartSession", "X-Amz-Content-SHA256": true_hash}
    method, target, headers, _ = botocore_signed(body=body, headers=signed_with)
    assert verify_request(method, target, headers, body, credentials)
    for replayed in (b'{"Target": "i-2"}', b""):
        with pytest.raises(SigV4Error, match="does not match what was computed") as exc_info:
            verify_request(method, target, headers, replayed, credentials)
        assert exc_info.value.code == "InvalidSignatureException"
    unsigned = {**signed_with, "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}
    method, target, headers, _ = botocore_signed(body=body, headers=unsigned)
    for replayed in (body, b'{"Target": "i-2"}'):
        with pytest.raises(SigV4Error, match="UNSIGNED-PAYLOAD") as exc_info:
            verify_request(method, target, headers, replayed, credentials)
        assert exc_info.value.code == "InvalidSignatureException"
    # Without a body there is nothing to sign: UNSIGNED-PAYLOAD is fine (WebSocket upgrade).
    url = URL + "/v1/data-channel/emulated-1?role=publish_subscribe"
    upgrade = {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}
    method, target, headers, _ = botocore_signed("GET", url, b"", "ssmmessages", upgrade)
    assert verify_request(method, target, headers, b"", (KEY, SECRET)).verified
    streaming = {**signed_with, "X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"}
    method, target, headers, _ = botocore_signed(body=body, headers=streaming)
    with pytest.raises(SigV4Error, match="Unsupported x-amz-content-sha256"):
        verify_request(method, target, headers, body, credentials)


def test_presigned_payloads() -> None:
    # A presigned URL carries no payload hash: the body's, or UNSIGNED-PAYLOAD for none.
    assert verify_request("GET", presigned_target(60), HOST, b"", (KEY, SECRET)).verified
    with pytest.raises(SigV4Error, match="does not match"):
        verify_request("GET", presigned_target(60), HOST, b"smuggled", (KEY, SECRET))
