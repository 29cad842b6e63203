"""The SSM and KMS operations over awsJson1.1, as an :class:`HttpServer` handler.

``POST /`` with ``X-Amz-Target: AmazonSSM.<Op>`` or ``TrentService.<Op>`` and a JSON
body; errors are ``{"__type": code, "message": text}`` with status 400 (client) or
500 (internal), which botocore turns into ``ClientError`` with the same code.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from .awsjson import (
    Body,
    blob,
    epoch,
    integer,
    member_list,
    paginate,
    string,
    string_map,
)
from .config import EmulatorConfig, is_loopback
from .errors import ServiceError
from .httpserver import HttpRequest, HttpResponse
from .sigv4 import verify_request
from .state import ACTIVE_STATUSES, EmulatorState, SessionRecord, TargetRecord

__all__ = ["CONTENT_TYPE", "ApiHandler"]

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-amz-json-1.1"
_SERVICES = {"AmazonSSM": "ssm", "TrentService": "kms"}
_SESSION_FILTER_KEYS = (
    "InvokedAfter",
    "InvokedBefore",
    "Target",
    "Owner",
    "Status",
    "SessionId",
    "AccessType",
)
_INSTANCE_FILTER_KEYS = (
    "InstanceIds",
    "AgentVersion",
    "PingStatus",
    "PlatformTypes",
    "ActivationIds",
    "IamRole",
    "ResourceType",
    "AssociationStatus",
)

Operation = Callable[[Body, HttpRequest], Awaitable[Body]]


# -- the handler --------------------------------------------------------------------


class ApiHandler:
    """Answers SSM and KMS API requests from the shared :class:`EmulatorState`."""

    def __init__(self, state: EmulatorState, config: EmulatorConfig) -> None:
        self.state = state
        self.config = config
        #: Number of requests answered, by ``Service.Operation`` (errors included).
        self.calls: dict[str, int] = {}
        self._operations: dict[str, Operation] = {
            "AmazonSSM.StartSession": self.start_session,
            "AmazonSSM.ResumeSession": self.resume_session,
            "AmazonSSM.TerminateSession": self.terminate_session,
            "AmazonSSM.DescribeSessions": self.describe_sessions,
            "AmazonSSM.GetConnectionStatus": self.get_connection_status,
            "AmazonSSM.DescribeInstanceInformation": self.describe_instance_information,
            "TrentService.GenerateDataKey": self.generate_data_key,
            "TrentService.Decrypt": self.decrypt,
        }

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = str(uuid.uuid4())
        headers = (("x-amzn-RequestId", request_id),)
        target = request.header("x-amz-target") or ""
        try:
            body = await self._dispatch(request, target)
        except ServiceError as exc:
            if exc.status >= 500:
                logger.warning("%s failed: %s", target or request.method, exc.code)
            else:
                logger.info("%s refused: %s: %s", target or request.method, exc.code, exc.message)
            return HttpResponse.json(exc.status, exc.to_json(), CONTENT_TYPE, headers)
        except Exception:
            logger.exception("internal error in %s", target or request.method)
            error = ServiceError("InternalServerError", "An internal error occurred.", 500)
            return HttpResponse.json(500, error.to_json(), CONTENT_TYPE, headers)
        return HttpResponse.json(200, body, CONTENT_TYPE, headers)

    async def _dispatch(self, request: HttpRequest, target: str) -> Body:
        prefix, _, _ = target.partition(".")
        service = _SERVICES.get(prefix)
        verify_request(
            request.method,
            request.target,
            request.headers,
            request.body,
            self.config.credentials,
            service=service if service is not None else tuple(_SERVICES.values()),
        )
        operation = self._operations.get(target)
        self.calls[target or "?"] = self.calls.get(target or "?", 0) + 1
        if request.method != "POST" or request.path != "/" or operation is None:
            raise ServiceError(
                "UnknownOperationException",
                f"Unknown operation {target!r}." if target else "Missing X-Amz-Target header.",
            )
        try:
            body = json.loads(request.body) if request.body.strip() else {}
        except (ValueError, UnicodeDecodeError):
            raise ServiceError(
                "SerializationException", "The request body is not valid JSON."
            ) from None
        if not isinstance(body, dict):
            raise ServiceError(
                "SerializationException", "Start of structure or map found where not expected."
            )
        return await operation(body, request)

    def _base_url(self, request: HttpRequest) -> str | None:
        """The gateway URL as the client can reach it, for a wildcard bind."""
        base = self.state.stream_base_url
        if not base or is_loopback(self.config.host) or self.config.host not in ("0.0.0.0", "::"):
            return None
        host_header = request.header("host") or ""
        hostname = urlsplit(f"//{host_header}").hostname
        split = urlsplit(base)
        if not hostname or split.port is None:
            return None
        host = f"[{hostname}]" if ":" in hostname else hostname
        return f"{split.scheme}://{host}:{split.port}"

    # -- SSM ------------------------------------------------------------------------

    async def start_session(self, body: Body, request: HttpRequest) -> Body:
        target = string(body, "Target", required=True)
        assert target is not None
        document = string(body, "DocumentName")
        reason = string(body, "Reason") or ""
        if len(reason) > 256:
            raise ServiceError(
                "ValidationException",
                "1 validation error detected: Value at 'reason' failed to satisfy constraint: "
                "Member must have length less than or equal to 256",
            )
        raw_parameters = body.get("Parameters")
        parameters: dict[str, list[str]] | None = None
        if raw_parameters is not None:
            if not isinstance(raw_parameters, dict) or not all(
                isinstance(v, list) and all(isinstance(x, str) for x in v)
                for v in raw_parameters.values()
            ):
                raise ServiceError(
                    "SerializationException", "Parameters must map names to lists of strings."
                )
            if any(not x for v in raw_parameters.values() for x in v):
                raise ServiceError(
                    "ValidationException",
                    "1 validation error detected: Value at 'parameters' failed to satisfy "
                    "constraint: Member must have length greater than or equal to 1",
                )
            parameters = raw_parameters
        session = self.state.start_session(
            target, document, parameters, reason, base_url=self._base_url(request)
        )
        logger.info(
            "session %s started on %s (%s)", session.session_id, target, session.session_type
        )
        return {
            "SessionId": session.session_id,
            "TokenValue": session.token,
            "StreamUrl": session.stream_url,
        }

    async def resume_session(self, body: Body, request: HttpRequest) -> Body:
        session_id = string(body, "SessionId", required=True)
        assert session_id is not None
        session = self.state.resume_session(session_id, base_url=self._base_url(request))
        result: Body = {"SessionId": session.session_id}
        if session.token is not None:
            result["TokenValue"] = session.token
            result["StreamUrl"] = session.stream_url
            logger.info("session %s resumed: new token issued", session_id)
        else:
            logger.info(
                "session %s is over (%s): resumed without a token", session_id, session.status.value
            )
        return result

    async def terminate_session(self, body: Body, request: HttpRequest) -> Body:
        session_id = string(body, "SessionId", required=True)
        assert session_id is not None
        await self.state.terminate_session(session_id, "Session terminated by TerminateSession.")
        logger.info("session %s terminated by TerminateSession", session_id)
        return {"SessionId": session_id}

    async def describe_sessions(self, body: Body, request: HttpRequest) -> Body:
        state_name = string(body, "State", required=True)
        if state_name not in ("Active", "History"):
            raise ServiceError(
                "ValidationException",
                f"1 validation error detected: Value '{state_name}' at 'state' failed to "
                "satisfy constraint: Member must satisfy enum value set: [Active, History]",
            )
        active = state_name == "Active"
        sessions = [
            s for s in self.state.sessions.values() if (s.status in ACTIVE_STATUSES) == active
        ]
        for index, item in enumerate(member_list(body, "Filters"), start=1):
            sessions = self._filter_sessions(sessions, item, index)
        sessions.sort(key=lambda s: (-s.start_date, s.session_id))
        page, token = paginate(sessions, "DescribeSessions", body, 20, 1, 200)
        result: Body = {"Sessions": [self._session_info(s) for s in page]}
        if token is not None:
            result["NextToken"] = token
        return result

    def _filter_sessions(
        self, sessions: list[SessionRecord], item: Any, index: int
    ) -> list[SessionRecord]:
        if not isinstance(item, dict):
            raise ServiceError("SerializationException", "Each filter must be an object.")
        key, value = string(item, "key", True), string(item, "value", True)
        assert key is not None and value is not None
        if key not in _SESSION_FILTER_KEYS:
            raise ServiceError(
                "InvalidFilterKey",
                f"Value '{key}' at 'filters.{index}.member.key' failed to satisfy constraint: "
                f"Member must satisfy enum value set: [{', '.join(_SESSION_FILTER_KEYS)}]",
            )
        if key in ("InvokedAfter", "InvokedBefore"):
            try:
                when = dt.datetime.fromisoformat(value)
            except ValueError:
                raise ServiceError(
                    "ValidationException",
                    f"Filter {key} needs a date like 2018-08-29T00:00:00Z, not {value!r}.",
                ) from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            stamp = when.timestamp()
            if key == "InvokedAfter":
                return [s for s in sessions if s.start_date >= stamp]
            return [s for s in sessions if s.start_date <= stamp]
        if key == "Target":
            return [s for s in sessions if s.target_id == value]
        if key == "Owner":
            return [s for s in sessions if value in (s.owner, s.owner.rsplit("/", 1)[-1])]
        if key == "Status":
            return [s for s in sessions if s.status.value == value]
        if key == "SessionId":
            return [s for s in sessions if s.session_id == value]
        return [s for s in sessions if value == "Standard"]  # AccessType

    def _session_info(self, session: SessionRecord) -> Body:
        info: Body = {
            "SessionId": session.session_id,
            "Target": session.target_id,
            "Status": session.status.value,
            "StartDate": epoch(session.start_date),
            "DocumentName": session.document_name,
            "Owner": session.owner,
            "AccessType": "Standard",
        }
        if session.end_date is not None:
            info["EndDate"] = epoch(session.end_date)
        if session.reason:
            info["Reason"] = session.reason
        if session.end_reason and session.status not in ACTIVE_STATUSES:
            info["Details"] = session.end_reason
        if self.state.max_session_duration is not None:
            info["MaxSessionDuration"] = str(max(1, round(self.state.max_session_duration / 60)))
        return info

    async def get_connection_status(self, body: Body, request: HttpRequest) -> Body:
        target = string(body, "Target", required=True)
        return {"Target": target, "Status": self.state.connection_status(target or "")}

    async def describe_instance_information(self, body: Body, request: HttpRequest) -> Body:
        targets = sorted(self.state.targets.values(), key=lambda t: t.instance_id)
        for item in member_list(body, "InstanceInformationFilterList"):
            if not isinstance(item, dict):
                raise ServiceError("SerializationException", "Each filter must be an object.")
            key = string(item, "key", True)
            values = member_list(item, "valueSet")
            assert key is not None
            if key not in _INSTANCE_FILTER_KEYS:
                raise ServiceError("InvalidFilterKey", f"The filter key {key} is not valid.")
            self._check_values(key, values)
            if key == "InstanceIds":
                unknown = [v for v in values if v not in self.state.targets]
                if unknown:
                    raise ServiceError(
                        "InvalidInstanceId", f"Instances {unknown} not found or not managed."
                    )
            targets = [t for t in targets if _target_matches(t, key, values)]
        for item in member_list(body, "Filters"):
            if not isinstance(item, dict):
                raise ServiceError("SerializationException", "Each filter must be an object.")
            key = string(item, "Key", True)
            values = member_list(item, "Values")
            assert key is not None
            if not (key in _INSTANCE_FILTER_KEYS or key.startswith("tag:") or key == "tag-key"):
                raise ServiceError("InvalidFilterKey", f"The filter key {key} is not valid.")
            self._check_values(key, values)
            targets = [t for t in targets if _target_matches(t, key, values)]
        page, token = paginate(targets, "DescribeInstanceInformation", body, 50, 5, 50)
        result: Body = {"InstanceInformationList": [_instance_info(t) for t in page]}
        if token is not None:
            result["NextToken"] = token
        return result

    @staticmethod
    def _check_values(key: str, values: list[Any]) -> None:
        if not values or not all(isinstance(v, str) and v for v in values):
            raise ServiceError(
                "InvalidInstanceInformationFilterValue",
                f"The filter {key} needs one or more non-empty string values.",
            )

    # -- KMS ------------------------------------------------------------------------

    async def generate_data_key(self, body: Body, request: HttpRequest) -> Body:
        key_id = string(body, "KeyId", required=True)
        assert key_id is not None
        data_key = self.state.kms.generate_data_key(
            key_id,
            integer(body, "NumberOfBytes", -(2**31), 2**31 - 1),
            string(body, "KeySpec"),
            string_map(body, "EncryptionContext"),
        )
        return {
            "CiphertextBlob": base64.b64encode(data_key.ciphertext_blob).decode(),
            "Plaintext": base64.b64encode(data_key.plaintext).decode(),
            "KeyId": data_key.key_arn,
        }

    async def decrypt(self, body: Body, request: HttpRequest) -> Body:
        ciphertext = blob(body, "CiphertextBlob", required=True)
        assert ciphertext is not None
        plaintext, key_arn = self.state.kms.decrypt_with_key(
            ciphertext, string_map(body, "EncryptionContext"), string(body, "KeyId")
        )
        return {
            "KeyId": key_arn,
            "Plaintext": base64.b64encode(plaintext).decode(),
            "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        }


def _target_matches(target: TargetRecord, key: str, values: list[str]) -> bool:
    if key == "InstanceIds":
        return target.instance_id in values
    if key == "PingStatus":
        return target.ping_status in values
    if key == "AgentVersion":
        return target.agent_version in values
    if key == "PlatformTypes":
        return target.platform_type in values
    if key == "ResourceType":
        return "EC2Instance" in values
    if key == "AssociationStatus":
        return "Success" in values
    if key.startswith("tag:"):
        return target.all_tags.get(key[4:]) in values
    if key == "tag-key":
        return any(v in target.all_tags for v in values)
    return False  # ActivationIds, IamRole: emulated instances have none


def _instance_info(target: TargetRecord) -> Body:
    return {
        "InstanceId": target.instance_id,
        "PingStatus": target.ping_status,
        "LastPingDateTime": epoch(target.last_ping),
        "AgentVersion": target.agent_version,
        "IsLatestVersion": False,
        "PlatformType": target.platform_type,
        "PlatformName": target.platform_name,
        "PlatformVersion": "",
        "ResourceType": "EC2Instance",
        "IPAddress": "127.0.0.1",
        "ComputerName": f"{target.name or target.instance_id}.emulated.local",
        "AssociationStatus": "Success",
        "SourceId": target.instance_id,
        "SourceType": "AWS::EC2::Instance",
    }
