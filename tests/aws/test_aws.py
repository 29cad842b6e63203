"""The boto3 boundary: error mapping, SigV4 for the upgrade, target resolution, KMS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from botocore import exceptions as boto
from botocore.credentials import ReadOnlyCredentials

from ssmsh.aws import AwsSettings, SsmSessions, StaticCredentials, aws_error, is_presigned
from ssmsh.aws.sessions import ABANDONED_START_WAIT
from ssmsh.aws.signing import sign_upgrade
from ssmsh.emulator import DEFAULT_TARGET, Emulator, EmulatorConfig, TargetRecord
from ssmsh.emulator.sigv4 import verify_request
from ssmsh.exceptions import AwsError, UsageError
from tests.conftest import scaled

CREDS = StaticCredentials("AKIDAWSLAYERTEST0001", "aws-layer-secret", "session-token-xyz")


def client_error(code: str, message: str, op: str = "StartSession") -> boto.ClientError:
    return boto.ClientError({"Error": {"Code": code, "Message": message}}, op)


@pytest.mark.parametrize(
    ("exc", "code", "text"),
    [
        (
            client_error("AccessDeniedException", "not\nallowed"),
            "AccessDeniedException",
            "access denied by AWS for op: not allowed",
        ),
        (
            client_error("ExpiredTokenException", "expired"),
            "ExpiredTokenException",
            "the AWS credentials have expired",
        ),
        (
            client_error("TargetNotConnected", "i-1 is not connected."),
            "TargetNotConnected",
            "is the SSM agent running",
        ),
        (client_error("Weird", "odd"), "Weird", "op failed: Weird: odd"),
        (boto.NoCredentialsError(), "NoCredentials", "no AWS credentials found"),
        (boto.NoRegionError(), "NoRegion", "no AWS region configured"),
        (boto.ProfileNotFound(profile="p"), "NoProfile", "AWS profile 'p' not found"),
        (
            boto.EndpointConnectionError(endpoint_url="http://x"),
            "EndpointConnectionError",
            "cannot reach the AWS endpoint http://x",
        ),
        (boto.ConnectTimeoutError(endpoint_url="http://y"), "Timeout", "timed out talking"),
        (boto.SSOTokenLoadError(error_msg="x"), "SSOToken", "aws sso login"),
        (ValueError("bad url"), "", "op failed: bad url"),
    ],
)
def test_error_mapping_gives_one_line(exc: BaseException, code: str, text: str) -> None:
    error = aws_error(exc, "op")
    assert isinstance(error, AwsError)
    assert error.code == code
    assert text in str(error)
    assert "\n" not in str(error)


def test_presigned_urls_are_recognised() -> None:
    assert not is_presigned("wss://ssmmessages.eu-west-1.amazonaws.com/v1/data-channel/s?role=x")
    assert is_presigned("wss://h/v1/data-channel/s?role=x&X-Amz-Signature=abc")
    assert is_presigned("wss://h/p?x-amz-credential=abc")


def test_upgrade_signature_verifies() -> None:
    url = "wss://ssmmessages.eu-west-1.amazonaws.com/v1/data-channel/s-1?role=publish_subscribe&cell-number=AAAA"
    creds = ReadOnlyCredentials(CREDS.access_key, CREDS.secret_key, CREDS.session_token)
    headers = sign_upgrade(url, creds, "eu-west-1")
    assert set(headers) == {"Authorization", "X-Amz-Date", "X-Amz-Security-Token"}
    assert "/eu-west-1/ssmmessages/aws4_request" in headers["Authorization"]
    headers = {**headers, "Host": "ssmmessages.eu-west-1.amazonaws.com"}
    info = verify_request(
        "GET",
        "/v1/data-channel/s-1?role=publish_subscribe&cell-number=AAAA",
        headers,
        b"",
        {CREDS.access_key: CREDS.secret_key},
        service="ssmmessages",
    )
    assert info is not None
    with pytest.raises(Exception, match="ignature"):
        verify_request(
            "GET",
            "/v1/data-channel/s-2?role=publish_subscribe",
            headers,
            b"",
            {CREDS.access_key: CREDS.secret_key},
            service="ssmmessages",
        )


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    config = EmulatorConfig(
        targets=[
            TargetRecord(DEFAULT_TARGET, name="web-1"),
            TargetRecord("i-0123456789abcdef1", name="twin"),
            TargetRecord("i-0123456789abcdef2", name="twin", ping_status="ConnectionLost"),
            TargetRecord("i-0123456789abcdef3", name="pair"),
            TargetRecord("i-0123456789abcdef4", name="pair"),
        ],
        kms_keys=["alias/ssm"],
    )
    async with Emulator(config) as emu:
        yield emu


def sessions_for(emulator: Emulator) -> SsmSessions:
    return SsmSessions(
        AwsSettings(region="us-east-1", endpoint_url=emulator.endpoint_url, credentials=CREDS)
    )


async def test_resolve_target(emulator: Emulator) -> None:
    sessions = sessions_for(emulator)
    assert await sessions.resolve_target("i-0123456789abcdef0") == "i-0123456789abcdef0"
    assert await sessions.resolve_target("mi-0123456789abcdef0") == "mi-0123456789abcdef0"
    assert await sessions.resolve_target("web-1") == DEFAULT_TARGET
    assert await sessions.resolve_target("twin") == "i-0123456789abcdef1"  # the online one
    with pytest.raises(UsageError, match="several managed instances are named 'pair'"):
        await sessions.resolve_target("pair")
    with pytest.raises(UsageError, match="no managed instance named 'ghost'"):
        await sessions.resolve_target("ghost")


async def test_session_calls(emulator: Emulator) -> None:
    sessions = sessions_for(emulator)
    info = await sessions.start_session(DEFAULT_TARGET, reason="testing")
    assert info.stream.stream_url.startswith("ws://127.0.0.1:")
    assert emulator.state.sessions[info.session_id].reason == "testing"
    resumed = await sessions.resume_session(info.session_id)
    assert resumed is not None and resumed.token_value != info.stream.token_value
    await sessions.terminate_session(info.session_id)
    assert await sessions.resume_session(info.session_id) is None  # no token: it is over
    with pytest.raises(AwsError) as caught:
        await sessions.start_session(DEFAULT_TARGET, document_name="No-Such-Doc")
    assert caught.value.code == "InvalidDocument"


async def test_generate_data_key_uses_the_session_context(emulator: Emulator) -> None:
    sessions = sessions_for(emulator)
    key = await sessions.generate_data_key("alias/ssm", "sess-1", DEFAULT_TARGET)
    assert len(key.plaintext) == 64 and key.ciphertext_blob
    plaintext, _ = emulator.state.kms.decrypt_with_key(
        key.ciphertext_blob, {"aws:ssm:SessionId": "sess-1", "aws:ssm:TargetId": DEFAULT_TARGET}
    )
    assert plaintext == key.plaintext
    with pytest.raises(AwsError) as caught:
        await sessions.generate_data_key("alias/unknown", "sess-1", DEFAULT_TARGET)
    assert caught.value.code == "NotFoundException"


async def test_signing_uses_the_session_credentials(emulator: Emulator) -> None:
    sessions = sessions_for(emulator)
    info = await sessions.start_session(DEFAULT_TARGET)
    headers = await sessions.sign_stream_url(info.stream.stream_url)
    assert CREDS.access_key in headers["Authorization"]
    assert headers["X-Amz-Security-Token"] == CREDS.session_token
    assert await sessions.sign_stream_url(info.stream.stream_url + "&X-Amz-Signature=x") == {}


async def test_a_start_session_given_up_on_is_terminated_when_it_answers(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while StartSession is under way: the session it makes is not left open."""
    api = emulator.api
    started = asyncio.Event()
    original = api.start_session

    async def slow_start(body: Any, request: Any) -> Any:
        started.set()
        await asyncio.sleep(0.3)  # the answer comes after the caller gave up
        return await original(body, request)

    monkeypatch.setitem(api._operations, "AmazonSSM.StartSession", slow_start)
    sessions = sessions_for(emulator)
    task = asyncio.create_task(sessions.start_session(DEFAULT_TARGET))
    await asyncio.wait_for(started.wait(), scaled(10))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (session,) = emulator.state.sessions.values()
    assert session.ended  # terminated before the cancellation went on


async def test_a_start_session_that_never_answers_delays_the_stop_briefly(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = emulator.api
    started = asyncio.Event()

    async def hung(body: Any, request: Any) -> Any:
        started.set()
        await asyncio.sleep(3600)

    monkeypatch.setitem(api._operations, "AmazonSSM.StartSession", hung)
    sessions = sessions_for(emulator)
    task = asyncio.create_task(sessions.start_session(DEFAULT_TARGET))
    await asyncio.wait_for(started.wait(), scaled(10))
    loop = asyncio.get_running_loop()
    stopped_at = loop.time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert loop.time() - stopped_at < ABANDONED_START_WAIT + scaled(1)


async def test_resolve_target_by_what_users_know(emulator: Emulator) -> None:
    sessions = sessions_for(emulator)
    # The emulator's computer names are NAME.emulated.local (or ID.emulated.local).
    assert await sessions.resolve_target("web-1.emulated.local") == DEFAULT_TARGET
    assert await sessions.resolve_target("Name=web-1") == DEFAULT_TARGET  # TAG=VALUE
    assert await sessions.resolve_target("WEB-1") == DEFAULT_TARGET  # its host name
    with pytest.raises(UsageError, match="several managed instances match 'i-0123'"):
        await sessions.resolve_target("i-0123")
    # Every emulated instance has 127.0.0.1: ambiguous, and the candidates are listed.
    with pytest.raises(UsageError, match=r"several managed instances match '127.0.0.1': i-"):
        await sessions.resolve_target("127.0.0.1")
    with pytest.raises(UsageError, match="no managed instance is tagged Env=nowhere"):
        await sessions.resolve_target("Env=nowhere")
    with pytest.raises(UsageError, match="TAG=VALUE"):
        await sessions.resolve_target("nothing-by-that-name")
