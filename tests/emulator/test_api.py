"""The SSM and KMS API of the emulator, driven by real boto3 clients over HTTP."""

from __future__ import annotations

import re
from typing import Any

import botocore.exceptions
import pytest

from ssmsh.emulator import DEFAULT_TARGET, SessionStatus
from tests.emulator.conftest import EmulatorThread


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
