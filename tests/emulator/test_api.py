"""The SSM and KMS API of the emulator, driven by real boto3 clients over HTTP."""

from __future__ import annotations

import concurrent.futures
import json
import re
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import botocore.exceptions
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ssmsh.emulator import DEFAULT_TARGET, EmulatorConfig, SessionStatus, TargetRecord
from ssmsh.emulator.api import ApiHandler
from ssmsh.emulator.httpserver import HttpRequest
from ssmsh.emulator.state import EmulatorState, SessionRecord
from tests.conftest import scaled
from tests.emulator.conftest import (
    ACCESS_KEY,
    SECRET_KEY,
    EmulatorThread,
    PlaceholderGateway,
    make_client,
)


def error_code(exc_info: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> str:
    return str(exc_info.value.response["Error"]["Code"])


def client_error(fn: Any, **kwargs: Any) -> tuple[str, str, int]:
    with pytest.raises(botocore.exceptions.ClientError) as exc_info:
        fn(**kwargs)
    response = exc_info.value.response
    return (
        str(response["Error"]["Code"]),
        str(response["Error"]["Message"]),
        int(response["ResponseMetadata"]["HTTPStatusCode"]),
    )


# -- StartSession ---------------------------------------------------------------------


def test_start_session_default_shell(emu: EmulatorThread, ssm: Any) -> None:
    response = ssm.start_session(Target=DEFAULT_TARGET)
    session_id = response["SessionId"]
    assert re.fullmatch(r"emulated-[0-9a-f]{17}", session_id)
    assert response["TokenValue"]
    gateway_url = emu.emulator.gateway.url
    assert response["StreamUrl"].startswith(
        f"{gateway_url}/v1/data-channel/{session_id}?role=publish_subscribe&cell-number="
    )
    record = emu.state.sessions[session_id]
    assert record.session_type == "Standard_Stream"
    assert record.document_name == "SSM-SessionManagerRunShell"
    assert record.status is SessionStatus.CONNECTING
    assert record.token == response["TokenValue"]
    assert emu.call(emu.state.check_token, session_id, response["TokenValue"]) is record


@pytest.mark.parametrize(
    ("document", "parameters", "session_type", "properties"),
    [
        ("AWS-StartSSHSession", {}, "Port", {"portNumber": "22"}),
        ("AWS-StartSSHSession", {"portNumber": ["2222"]}, "Port", {"portNumber": "2222"}),
        (
            "AWS-StartPortForwardingSession",
            {"portNumber": ["8765"], "localPortNumber": ["9999"]},
            "Port",
            {"portNumber": "8765", "type": "LocalPortForwarding", "localPortNumber": "9999"},
        ),
        (
            "AWS-StartPortForwardingSession",
            {},
            "Port",
            {"portNumber": "80", "type": "LocalPortForwarding", "localPortNumber": "0"},
        ),
        (
            "AWS-StartPortForwardingSessionToRemoteHost",
            {"host": ["db.internal"], "portNumber": ["5432"]},
            "Port",
            {
                "portNumber": "5432",
                "type": "LocalPortForwarding",
                "localPortNumber": "0",
                "host": "db.internal",
            },
        ),
        ("AWS-StartInteractiveCommand", {"command": ["top"]}, "InteractiveCommands", {}),
        (
            "AWS-StartNonInteractiveCommand",
            {"command": ["echo hi"]},
            "NonInteractiveCommands",
            {},
        ),
        ("SSM-SessionManagerRunShell", {}, "Standard_Stream", {}),
    ],
)
def test_start_session_documents(
    emu: EmulatorThread,
    ssm: Any,
    document: str,
    parameters: dict[str, list[str]],
    session_type: str,
    properties: dict[str, str],
) -> None:
    response = ssm.start_session(
        Target=DEFAULT_TARGET, DocumentName=document, Parameters=parameters, Reason="test"
    )
    record = emu.state.sessions[response["SessionId"]]
    assert record.session_type == session_type
    assert record.properties == properties
    assert record.document_name == document
    assert record.reason == "test"
    if "command" in parameters:
        assert record.command == parameters["command"][0]
    else:
        assert record.command is None


def test_start_session_document_by_arn(emu: EmulatorThread, ssm: Any) -> None:
    arn = "arn:aws:ssm:us-east-1::document/AWS-StartSSHSession"
    response = ssm.start_session(Target=DEFAULT_TARGET, DocumentName=arn)
    assert emu.state.sessions[response["SessionId"]].document_name == "AWS-StartSSHSession"


def test_start_session_unknown_target(ssm: Any) -> None:
    code, message, status = client_error(ssm.start_session, Target="i-00000000000000000")
    assert (code, status) == ("TargetNotConnected", 400)
    assert message == "i-00000000000000000 is not connected."


def test_start_session_malformed_target(ssm: Any) -> None:
    code, _, status = client_error(ssm.start_session, Target="not a target!")
    assert (code, status) == ("InvalidTarget", 400)


def test_start_session_disconnected_target(emu: EmulatorThread, ssm: Any) -> None:
    emu.call(emu.emulator.disconnect_instance, DEFAULT_TARGET)
    code, _, _ = client_error(ssm.start_session, Target=DEFAULT_TARGET)
    assert code == "TargetNotConnected"
    emu.call(emu.emulator.reconnect_instance, DEFAULT_TARGET)
    assert ssm.start_session(Target=DEFAULT_TARGET)["TokenValue"]


def test_start_session_unknown_document(ssm: Any) -> None:
    code, message, _ = client_error(
        ssm.start_session, Target=DEFAULT_TARGET, DocumentName="AWS-NoSuchDocument"
    )
    assert code == "InvalidDocument"
    assert message == "Document with name AWS-NoSuchDocument does not exist."


@pytest.mark.parametrize(
    ("document", "parameters", "fragment"),
    [
        ("AWS-StartSSHSession", {"bogus": ["1"]}, '"bogus" is not defined'),
        ("AWS-StartSSHSession", {"portNumber": ["0"]}, "not matching"),
        ("AWS-StartSSHSession", {"portNumber": ["65536"]}, "not matching"),
        ("AWS-StartSSHSession", {"portNumber": ["22", "23"]}, "expects one value"),
        ("AWS-StartPortForwardingSession", {"localPortNumber": ["x"]}, "not matching"),
        ("AWS-StartPortForwardingSessionToRemoteHost", {}, '"host" is required'),
        ("AWS-StartPortForwardingSessionToRemoteHost", {"host": ["a;b"]}, "not matching"),
        ("AWS-StartInteractiveCommand", {}, '"command" is required'),
        ("SSM-SessionManagerRunShell", {"x": ["1"]}, '"x" is not defined'),
    ],
)
def test_start_session_invalid_parameters(
    ssm: Any, document: str, parameters: dict[str, list[str]], fragment: str
) -> None:
    code, message, status = client_error(
        ssm.start_session, Target=DEFAULT_TARGET, DocumentName=document, Parameters=parameters
    )
    assert (code, status) == ("InvalidParameters", 400)
    assert fragment in message


# -- ResumeSession / TerminateSession -------------------------------------------------


def test_resume_session_issues_a_new_token(emu: EmulatorThread, ssm: Any) -> None:
    started = ssm.start_session(Target=DEFAULT_TARGET)
    session_id = started["SessionId"]
    resumed = ssm.resume_session(SessionId=session_id)
    assert resumed["SessionId"] == session_id
    assert resumed["TokenValue"] and resumed["TokenValue"] != started["TokenValue"]
    assert resumed["StreamUrl"].split("?")[0] == started["StreamUrl"].split("?")[0]
    # Only the newest token opens the data channel.
    with pytest.raises(Exception, match="invalid token"):
        emu.call(emu.state.check_token, session_id, started["TokenValue"])
    assert emu.call(emu.state.check_token, session_id, resumed["TokenValue"])


def test_resume_unknown_session(ssm: Any) -> None:
    code, _, status = client_error(ssm.resume_session, SessionId="emulated-00000000000000000")
    assert (code, status) == ("DoesNotExistException", 400)


def test_terminate_session(emu: EmulatorThread, ssm: Any) -> None:
    started = ssm.start_session(Target=DEFAULT_TARGET)
    session_id = started["SessionId"]
    assert ssm.terminate_session(SessionId=session_id)["SessionId"] == session_id
    record = emu.state.sessions[session_id]
    assert record.status is SessionStatus.TERMINATED
    assert record.end_date is not None
    assert emu.emulator.gateway.terminated == [session_id]  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="terminated"):
        emu.call(emu.state.check_token, session_id, started["TokenValue"])
    # A terminated session resumes with no token, like the real service.
    resumed = ssm.resume_session(SessionId=session_id)
    assert resumed["SessionId"] == session_id
    assert "TokenValue" not in resumed and "StreamUrl" not in resumed
    # Terminating again is harmless.
    assert ssm.terminate_session(SessionId=session_id)["SessionId"] == session_id
    assert emu.emulator.gateway.terminated == [session_id]  # type: ignore[attr-defined]


def test_timed_out_session_resumes_without_token(emu: EmulatorThread, ssm: Any) -> None:
    session_id = ssm.start_session(Target=DEFAULT_TARGET)["SessionId"]
    emu.call(emu.state.end_session, session_id, "Session timed out (idle).")
    resumed = ssm.resume_session(SessionId=session_id)
    assert "TokenValue" not in resumed


def test_terminate_unknown_session_succeeds(ssm: Any) -> None:
    assert ssm.terminate_session(SessionId="emulated-123")["SessionId"] == "emulated-123"


# -- GetConnectionStatus ----------------------------------------------------------------


def test_get_connection_status(emu: EmulatorThread, ssm: Any) -> None:
    response = ssm.get_connection_status(Target=DEFAULT_TARGET)
    assert (response["Target"], response["Status"]) == (DEFAULT_TARGET, "connected")
    emu.call(emu.emulator.disconnect_instance, DEFAULT_TARGET)
    assert ssm.get_connection_status(Target=DEFAULT_TARGET)["Status"] == "notconnected"
    emu.call(emu.emulator.reconnect_instance, DEFAULT_TARGET)
    assert ssm.get_connection_status(Target=DEFAULT_TARGET)["Status"] == "connected"
    assert ssm.get_connection_status(Target="i-0ffffffffffffffff")["Status"] == "notconnected"


# -- DescribeSessions -------------------------------------------------------------------


def test_describe_sessions_active_and_history(emu: EmulatorThread, ssm: Any) -> None:
    first = ssm.start_session(Target=DEFAULT_TARGET, Reason="one")["SessionId"]
    second = ssm.start_session(Target=DEFAULT_TARGET, DocumentName="AWS-StartSSHSession")[
        "SessionId"
    ]
    ssm.terminate_session(SessionId=first)
    active = ssm.describe_sessions(State="Active")["Sessions"]
    history = ssm.describe_sessions(State="History")["Sessions"]
    assert [s["SessionId"] for s in active] == [second]
    assert [s["SessionId"] for s in history] == [first]
    assert active[0]["Status"] == "Connecting"
    assert active[0]["DocumentName"] == "AWS-StartSSHSession"
    assert active[0]["Target"] == DEFAULT_TARGET
    assert active[0]["Owner"].endswith(":user/emulated")
    assert "EndDate" not in active[0]
    ended = history[0]
    assert ended["Status"] == "Terminated"
    assert ended["Reason"] == "one"
    assert ended["EndDate"] >= ended["StartDate"]


def test_describe_sessions_filters(emu: EmulatorThread, ssm: Any) -> None:
    emu.call(emu.state.add_target, TargetRecord("i-0aaaaaaaaaaaaaaaa", name="second"))
    a = ssm.start_session(Target=DEFAULT_TARGET)["SessionId"]
    b = ssm.start_session(Target="i-0aaaaaaaaaaaaaaaa")["SessionId"]
    emu.call(emu.state.set_status, b, SessionStatus.CONNECTED)

    def ids(*filters: tuple[str, str]) -> set[str]:
        response = ssm.describe_sessions(
            State="Active", Filters=[{"key": k, "value": v} for k, v in filters]
        )
        return {s["SessionId"] for s in response["Sessions"]}

    assert ids(("Target", DEFAULT_TARGET)) == {a}
    assert ids(("Target", "i-0aaaaaaaaaaaaaaaa")) == {b}
    assert ids(("Status", "Connected")) == {b}
    assert ids(("SessionId", a)) == {a}
    assert ids(("Owner", "emulated")) == {a, b}
    assert ids(("Owner", "arn:aws:iam::123456789012:user/emulated")) == {a, b}
    assert ids(("Owner", "someone-else")) == set()
    assert ids(("InvokedAfter", "2000-01-01T00:00:00Z")) == {a, b}
    assert ids(("InvokedBefore", "2000-01-01T00:00:00Z")) == set()
    assert ids(("Target", DEFAULT_TARGET), ("Status", "Connected")) == set()
    code, _, _ = client_error(
        ssm.describe_sessions, State="Active", Filters=[{"key": "InvokedAfter", "value": "x"}]
    )
    assert code == "ValidationException"


def test_describe_sessions_bad_state_and_filter_key(ssm: Any) -> None:
    code, _, _ = client_error(ssm.describe_sessions, State="Everything")
    assert code == "ValidationException"
    code, _, _ = client_error(
        ssm.describe_sessions, State="Active", Filters=[{"key": "Color", "value": "red"}]
    )
    assert code == "InvalidFilterKey"


def test_describe_sessions_pagination(emu: EmulatorThread, ssm: Any) -> None:
    started = {ssm.start_session(Target=DEFAULT_TARGET)["SessionId"] for _ in range(7)}
    seen: list[str] = []
    pages = 0
    kwargs: dict[str, Any] = {"State": "Active", "MaxResults": 3}
    while True:
        response = ssm.describe_sessions(**kwargs)
        pages += 1
        assert len(response["Sessions"]) <= 3
        seen += [s["SessionId"] for s in response["Sessions"]]
        if "NextToken" not in response:
            break
        kwargs["NextToken"] = response["NextToken"]
    assert pages == 3
    assert sorted(seen) == sorted(started) and len(seen) == 7
    # The botocore paginator agrees.
    paginator = ssm.get_paginator("describe_sessions")
    items = [
        s["SessionId"]
        for page in paginator.paginate(State="Active", PaginationConfig={"PageSize": 2})
        for s in page["Sessions"]
    ]
    assert items == seen


def test_describe_sessions_invalid_next_token(ssm: Any) -> None:
    code, _, _ = client_error(ssm.describe_sessions, State="Active", NextToken="garbage")
    assert code == "InvalidNextToken"
    for _ in range(3):
        ssm.start_session(Target=DEFAULT_TARGET)
    token = ssm.describe_sessions(State="Active", MaxResults=1)["NextToken"]
    # A token belongs to its query.
    code, _, _ = client_error(ssm.describe_sessions, State="History", NextToken=token)
    assert code == "InvalidNextToken"


def test_describe_sessions_max_results_range(ssm: Any) -> None:
    code, _, _ = client_error(ssm.describe_sessions, State="Active", MaxResults=201)
    assert code == "ValidationException"


# -- DescribeInstanceInformation -----------------------------------------------------


@pytest.fixture
def many_targets(emu: EmulatorThread) -> list[str]:
    ids = [f"i-0{n:016x}" for n in range(1, 8)]
    for n, instance_id in enumerate(ids):
        target = TargetRecord(
            instance_id, name=f"web-{n}", tags={"env": "prod" if n % 2 else "dev"}
        )
        emu.call(emu.state.add_target, target)
    return ids


def test_describe_instance_information(emu: EmulatorThread, ssm: Any) -> None:
    info = ssm.describe_instance_information()["InstanceInformationList"]
    assert len(info) == 1
    item = info[0]
    assert item["InstanceId"] == DEFAULT_TARGET
    assert item["PingStatus"] == "Online"
    assert item["AgentVersion"] == "3.3.1142.0"
    assert item["PlatformType"] == "Linux"
    assert item["ResourceType"] == "EC2Instance"
    assert item["ComputerName"].startswith("emulated")
    emu.call(emu.emulator.disconnect_instance, DEFAULT_TARGET)
    item = ssm.describe_instance_information()["InstanceInformationList"][0]
    assert item["PingStatus"] == "ConnectionLost"


def test_describe_instance_information_filters(
    emu: EmulatorThread, ssm: Any, many_targets: list[str]
) -> None:
    def ids(**kwargs: Any) -> list[str]:
        return [
            i["InstanceId"]
            for i in ssm.describe_instance_information(**kwargs)["InstanceInformationList"]
        ]

    assert ids(Filters=[{"Key": "InstanceIds", "Values": many_targets[:2]}]) == many_targets[:2]
    assert ids(Filters=[{"Key": "tag:Name", "Values": ["web-3"]}]) == [many_targets[3]]
    assert ids(Filters=[{"Key": "tag:Name", "Values": ["emulated"]}]) == [DEFAULT_TARGET]
    assert ids(Filters=[{"Key": "tag:env", "Values": ["prod"]}]) == many_targets[1::2]
    assert len(ids(Filters=[{"Key": "tag-key", "Values": ["env"]}])) == 7
    assert ids(
        InstanceInformationFilterList=[{"key": "InstanceIds", "valueSet": [many_targets[4]]}]
    ) == [many_targets[4]]
    emu.call(emu.emulator.disconnect_instance, many_targets[0])
    assert ids(Filters=[{"Key": "PingStatus", "Values": ["ConnectionLost"]}]) == many_targets[:1]
    code, _, _ = client_error(
        ssm.describe_instance_information, Filters=[{"Key": "Color", "Values": ["x"]}]
    )
    assert code == "InvalidFilterKey"
    code, _, _ = client_error(
        ssm.describe_instance_information,
        InstanceInformationFilterList=[{"key": "InstanceIds", "valueSet": ["i-0fffffffffffffff0"]}],
    )
    assert code == "InvalidInstanceId"


def test_describe_instance_information_pagination(ssm: Any, many_targets: list[str]) -> None:
    paginator = ssm.get_paginator("describe_instance_information")
    pages = list(paginator.paginate(PaginationConfig={"PageSize": 5}))
    assert [len(p["InstanceInformationList"]) for p in pages] == [5, 3]
    ids = [i["InstanceId"] for p in pages for i in p["InstanceInformationList"]]
    assert ids == sorted([DEFAULT_TARGET, *many_targets])


# -- KMS ------------------------------------------------------------------------------


@pytest.fixture
def kemu() -> Iterator[EmulatorThread]:
    """An emulator with KMS keys and a target that forces encryption."""
    config = EmulatorConfig(
        kms_keys=["alias/ssmsh-test", "1234abcd-12ab-34cd-56ef-1234567890ab"],
        targets=[
            TargetRecord(DEFAULT_TARGET),
            TargetRecord("i-0eeeeeeeeeeeeeeee", name="encrypted", kms_key_id="alias/forced"),
        ],
    )
    thread = EmulatorThread(config, PlaceholderGateway).start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture
def kkms(kemu: EmulatorThread) -> Any:
    return make_client("kms", kemu.endpoint_url)


def test_generate_data_key_and_decrypt(kemu: EmulatorThread, kkms: Any) -> None:
    emu, kms = kemu, kkms
    context = {"aws:ssm:SessionId": "emulated-1", "aws:ssm:TargetId": DEFAULT_TARGET}
    key = kms.generate_data_key(
        KeyId="alias/ssmsh-test", NumberOfBytes=64, EncryptionContext=context
    )
    assert len(key["Plaintext"]) == 64
    assert key["KeyId"].startswith("arn:aws:kms:us-east-1:123456789012:key/")
    decrypted = kms.decrypt(CiphertextBlob=key["CiphertextBlob"], EncryptionContext=context)
    assert decrypted["Plaintext"] == key["Plaintext"]
    assert decrypted["KeyId"] == key["KeyId"]
    # The agent side decrypts in-process with the same result.
    assert emu.call(emu.state.kms.decrypt, key["CiphertextBlob"], context) == key["Plaintext"]
    # Any way of naming the key works.
    for key_id in (key["KeyId"], key["KeyId"].rsplit("/", 1)[1], "alias/ssmsh-test"):
        assert kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")["KeyId"] == key["KeyId"]
    plain = kms.generate_data_key(KeyId="1234abcd-12ab-34cd-56ef-1234567890ab", KeySpec="AES_128")
    assert len(plain["Plaintext"]) == 16


def test_decrypt_checks_the_encryption_context(kkms: Any) -> None:
    kms = kkms
    context = {"aws:ssm:SessionId": "emulated-1", "aws:ssm:TargetId": DEFAULT_TARGET}
    blob = kms.generate_data_key(
        KeyId="alias/ssmsh-test", NumberOfBytes=64, EncryptionContext=context
    )["CiphertextBlob"]
    for other in ({}, {**context, "aws:ssm:SessionId": "emulated-2"}, {**context, "x": "y"}):
        code, _, status = client_error(kms.decrypt, CiphertextBlob=blob, EncryptionContext=other)
        assert (code, status) == ("InvalidCiphertextException", 400)
    tampered = bytearray(blob)
    tampered[-1] ^= 1
    code, _, _ = client_error(
        kms.decrypt, CiphertextBlob=bytes(tampered), EncryptionContext=context
    )
    assert code == "InvalidCiphertextException"
    code, _, _ = client_error(kms.decrypt, CiphertextBlob=b"garbage", EncryptionContext=context)
    assert code == "InvalidCiphertextException"
    code, _, _ = client_error(
        kms.decrypt,
        CiphertextBlob=blob,
        EncryptionContext=context,
        KeyId="1234abcd-12ab-34cd-56ef-1234567890ab",
    )
    assert code == "IncorrectKeyException"


def test_kms_unknown_key_and_bad_sizes(kkms: Any) -> None:
    kms = kkms
    code, message, _ = client_error(kms.generate_data_key, KeyId="alias/nope", NumberOfBytes=64)
    assert code == "NotFoundException" and "alias/nope" in message
    code, _, _ = client_error(
        kms.generate_data_key, KeyId="00000000-0000-0000-0000-000000000000", NumberOfBytes=64
    )
    assert code == "NotFoundException"
    code, _, _ = client_error(kms.generate_data_key, KeyId="alias/ssmsh-test")
    assert code == "ValidationException"
    code, _, _ = client_error(
        kms.generate_data_key, KeyId="alias/ssmsh-test", NumberOfBytes=64, KeySpec="AES_256"
    )
    assert code == "ValidationException"
    code, _, _ = client_error(kms.generate_data_key, KeyId="alias/ssmsh-test", NumberOfBytes=1025)
    assert code == "ValidationException"


def test_target_kms_key_forces_encryption(kemu: EmulatorThread, kkms: Any) -> None:
    emu, kms = kemu, kkms
    ssm = make_client("ssm", kemu.endpoint_url)
    session_id = ssm.start_session(Target="i-0eeeeeeeeeeeeeeee")["SessionId"]
    assert emu.state.sessions[session_id].kms_key_id == "alias/forced"
    plain = ssm.start_session(Target=DEFAULT_TARGET)["SessionId"]
    assert emu.state.sessions[plain].kms_key_id is None
    # The target's key is known to KMS.
    assert kms.generate_data_key(KeyId="alias/forced", NumberOfBytes=64)["Plaintext"]


# -- raw HTTP: malformed requests get AWS-shaped errors, and the server keeps serving ------


def raw_exchange(endpoint_url: str, data: bytes, read_all: bool = True) -> bytes:
    """Send bytes on a fresh connection; return everything until the server closes."""
    split = urlsplit(endpoint_url)
    with socket.create_connection((split.hostname, split.port), timeout=scaled(5)) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
            if not read_all:
                break
        return b"".join(chunks)


def signed_request(
    endpoint_url: str,
    target: str | None,
    body: bytes,
    service: str = "ssm",
    secret: str = SECRET_KEY,
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    """An HTTP/1.1 request signed by botocore's own SigV4 signer."""
    headers = {"Content-Type": "application/x-amz-json-1.1", **(extra_headers or {})}
    if target is not None:
        headers["X-Amz-Target"] = target
    request = AWSRequest(method="POST", url=endpoint_url + "/", data=body, headers=headers)
    SigV4Auth(Credentials(ACCESS_KEY, secret), service, "us-east-1").add_auth(request)
    prepared = request.prepare()
    lines = ["POST / HTTP/1.1", f"Host: {urlsplit(endpoint_url).netloc}"]
    skip = ("host", "content-length")
    lines += [f"{k}: {v}" for k, v in prepared.headers.items() if k.lower() not in skip]
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def parse_response(raw: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, json.loads(body) if body else None


def assert_still_serving(ssm: Any) -> None:
    assert ssm.get_connection_status(Target=DEFAULT_TARGET)["Status"] == "connected"


@pytest.mark.parametrize(
    ("target", "body", "code"),
    [
        ("AmazonSSM.StartSession", b"{not json", "SerializationException"),
        ("AmazonSSM.StartSession", b"[1, 2]", "SerializationException"),
        ("AmazonSSM.StartSession", b"\xff\xfe", "SerializationException"),
        ("AmazonSSM.StartSession", b'{"Target": 5}', "SerializationException"),
        (
            "AmazonSSM.StartSession",
            b'{"Target": "i-1", "Parameters": []}',
            "SerializationException",
        ),
        ("AmazonSSM.StartSession", b"{}", "ValidationException"),
        ("AmazonSSM.StartSession", b"", "ValidationException"),
        (
            "AmazonSSM.DescribeSessions",
            b'{"State": "Active", "MaxResults": "x"}',
            "SerializationException",
        ),
        (
            "AmazonSSM.DescribeSessions",
            b'{"State": "Active", "Filters": [1]}',
            "SerializationException",
        ),
        (
            "AmazonSSM.DescribeInstanceInformation",
            b'{"Filters": [{"Key": "tag:Name", "Values": []}]}',
            "InvalidInstanceInformationFilterValue",
        ),
        (
            "AmazonSSM.StartSession",
            b'{"Target": "i-0123456789abcdef0", "Parameters": {"x": [""]}}',
            "ValidationException",
        ),
        ("AmazonSSM.NoSuchOperation", b"{}", "UnknownOperationException"),
        ("AmazonSSM.", b"{}", "UnknownOperationException"),
        (None, b"{}", "UnknownOperationException"),
        ("TrentService.Decrypt", b'{"CiphertextBlob": "!!notbase64"}', "SerializationException"),
        (
            "TrentService.Decrypt",
            b'{"CiphertextBlob": "AAAA", "EncryptionContext": {"a": 1}}',
            "SerializationException",
        ),
        ("TrentService.CreateKey", b"{}", "UnknownOperationException"),
    ],
)
def test_malformed_api_requests(
    emu: EmulatorThread, ssm: Any, target: str | None, body: bytes, code: str
) -> None:
    service = "kms" if target and target.startswith("TrentService") else "ssm"
    raw = raw_exchange(emu.endpoint_url, signed_request(emu.endpoint_url, target, body, service))
    status, headers, payload = parse_response(raw)
    assert status == 400
    assert headers["content-type"] == "application/x-amz-json-1.1"
    assert headers["x-amzn-requestid"]
    assert payload["__type"] == code
    assert payload["message"]
    assert_still_serving(ssm)


def test_unsigned_request(emu: EmulatorThread, ssm: Any) -> None:
    request = (
        b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: AmazonSSM.StartSession\r\n"
        b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
    )
    status, _, payload = parse_response(raw_exchange(emu.endpoint_url, request))
    assert (status, payload["__type"]) == (400, "MissingAuthenticationTokenException")
    assert_still_serving(ssm)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"\x00\x01\x02garbage\r\n\r\n", 400),
        (b"GET\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", 413),
        (b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 400),
        (b"POST / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Length: 3\r\n\r\n",
            400,
        ),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", 431),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nshort", 400),
    ],
)
def test_malformed_http(emu: EmulatorThread, ssm: Any, data: bytes, status: int) -> None:
    split = urlsplit(emu.endpoint_url)
    with socket.create_connection((split.hostname, split.port), timeout=scaled(5)) as sock:
        sock.sendall(data)
        if data.endswith(b"short"):
            sock.shutdown(socket.SHUT_WR)  # the body never completes
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    got, headers, payload = parse_response(raw)
    assert got == status
    assert headers["connection"] == "close"
    assert payload["message"]
    assert_still_serving(ssm)


def test_keep_alive_chunked_and_expect_continue(emu: EmulatorThread) -> None:
    body = b'{"Target": "i-0123456789abcdef0"}'
    one = signed_request(emu.endpoint_url, "AmazonSSM.GetConnectionStatus", body)
    keep = one.replace(b"Connection: close", b"Connection: keep-alive")
    # Same request, chunked, with Expect: 100-continue.
    head, _, _ = one.partition(b"\r\n\r\n")
    head = head.replace(f"Content-Length: {len(body)}".encode(), b"Transfer-Encoding: chunked")
    head += b"\r\nExpect: 100-continue"
    chunked = head + b"\r\n\r\n" + b"5\r\n" + body[:5] + b"\r\n"
    chunked += f"{len(body) - 5:x};ext=1\r\n".encode() + body[5:] + b"\r\n0\r\n\r\n"
    raw = raw_exchange(emu.endpoint_url, keep + chunked)
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert raw.count(b"HTTP/1.1 200 OK") == 2
    assert b"HTTP/1.1 100 Continue\r\n\r\n" in raw
    assert raw.count(b'"Status":"connected"') == 2


def test_http_1_0_and_head(emu: EmulatorThread) -> None:
    raw = raw_exchange(emu.endpoint_url, b"GET / HTTP/1.0\r\n\r\n")
    status, headers, payload = parse_response(raw)
    assert status == 400 and headers["connection"] == "close"
    assert payload["__type"] == "MissingAuthenticationTokenException"


def test_internal_error_is_a_500_and_the_server_keeps_serving(
    emu: EmulatorThread, ssm: Any
) -> None:
    session_id = ssm.start_session(Target=DEFAULT_TARGET)["SessionId"]

    async def broken(session: SessionRecord) -> None:
        raise RuntimeError("gateway bug")

    def install() -> None:
        emu.state.on_terminate = broken

    emu.call(install)
    code, message, status = client_error(ssm.terminate_session, SessionId=session_id)
    assert (code, status) == ("InternalServerError", 500)
    assert "gateway bug" not in message
    assert_still_serving(ssm)


def test_signed_for_the_wrong_service(emu: EmulatorThread) -> None:
    request = signed_request(emu.endpoint_url, "AmazonSSM.GetConnectionStatus", b"{}", "kms")
    status, _, payload = parse_response(raw_exchange(emu.endpoint_url, request))
    assert (status, payload["__type"]) == (400, "InvalidSignatureException")
    assert "correct service" in payload["message"]


def test_many_concurrent_clients(emu: EmulatorThread) -> None:
    client = make_client("ssm", emu.endpoint_url)  # botocore clients are thread-safe

    def call(_: int) -> str:
        return str(client.start_session(Target=DEFAULT_TARGET)["SessionId"])

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(call, range(24)))
    assert len(set(ids)) == 24
    assert set(ids) <= set(emu.state.sessions)


async def test_stream_url_follows_the_host_header_on_a_wildcard_bind() -> None:
    # In-process, nothing is bound: the handler is called directly.
    config = EmulatorConfig(host="0.0.0.0")
    state = EmulatorState(targets=[TargetRecord(DEFAULT_TARGET)])
    state.stream_base_url = "ws://0.0.0.0:40719"
    handler = ApiHandler(state, config)
    body = json.dumps({"Target": DEFAULT_TARGET}).encode()
    headers = {"X-Amz-Target": "AmazonSSM.StartSession", "Host": "devbox.lan:43117"}
    unsigned = AWSRequest(method="POST", url="http://devbox.lan:43117/", data=body, headers=headers)
    SigV4Auth(Credentials("AKID", "secret"), "ssm", "us-east-1").add_auth(unsigned)
    signed = dict(unsigned.headers.items())
    request = HttpRequest("POST", "/", "HTTP/1.1", tuple({**headers, **signed}.items()), body)
    response = await handler(request)
    assert response.status == 200
    stream_url = json.loads(response.body)["StreamUrl"]
    assert stream_url.startswith("ws://devbox.lan:40719/v1/data-channel/emulated-")
    # On a specific address the gateway's own URL is used unchanged.
    handler = ApiHandler(state, EmulatorConfig(host="127.0.0.1"))
    state.stream_base_url = "ws://127.0.0.1:40719"
    response = await handler(request)
    assert json.loads(response.body)["StreamUrl"].startswith("ws://127.0.0.1:40719/")


def test_describe_instance_properties_gives_names_and_filters(
    emu: EmulatorThread, ssm: Any
) -> None:
    """What the console lists nodes with: DescribeInstanceInformation's fields and the Name
    tag; InstancePropertyFilterList and FiltersWithOperator."""
    pages = ssm.get_paginator("describe_instance_properties").paginate(
        PaginationConfig={"PageSize": 5}
    )
    found = [p for page in pages for p in page["InstanceProperties"]]
    assert [(p["InstanceId"], p.get("Name")) for p in found] == [
        (t.instance_id, t.name or None)
        for t in sorted(emu.emulator.state.targets.values(), key=lambda t: t.instance_id)
    ]
    first = found[0]["InstanceId"]
    by_id = ssm.describe_instance_properties(
        InstancePropertyFilterList=[{"key": "InstanceIds", "valueSet": [first]}]
    )["InstanceProperties"]
    assert [p["InstanceId"] for p in by_id] == [first]
    others = ssm.describe_instance_properties(
        FiltersWithOperator=[{"Key": "InstanceIds", "Values": [first], "Operator": "NotEqual"}]
    )["InstanceProperties"]
    assert first not in [p["InstanceId"] for p in others]
    assert len(others) == len(found) - 1
    code, _, _ = client_error(
        ssm.describe_instance_properties,
        InstancePropertyFilterList=[{"key": "Nope", "valueSet": ["x"]}],
    )
    assert code in ("InvalidFilterKey", "ValidationException")
