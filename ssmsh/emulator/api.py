"""The SSM and KMS operations over awsJson1.1, as an :class:`HttpServer` handler.

``POST /`` with ``X-Amz-Target: AmazonSSM.<Op>`` or ``TrentService.<Op>`` and a JSON
body; errors are ``{"__type": code, "message": text}`` with status 400 (client) or
500 (internal), which botocore turns into ``ClientError`` with the same code.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

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

Body = dict[str, Any]
Operation = Callable[[Body, HttpRequest], Awaitable[Body]]


# -- input helpers ------------------------------------------------------------------


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _required(body: Body, name: str) -> Any:
    if body.get(name) is None:
        raise ServiceError(
            "ValidationException",
            f"1 validation error detected: Value null at '{_camel(name)}' failed to satisfy "
            "constraint: Member must not be null",
        )
    return body[name]


def _string(body: Body, name: str, required: bool = False) -> str | None:
    value = _required(body, name) if required else body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ServiceError("SerializationException", f"Expected a string value for {name}.")
    return value


def _integer(body: Body, name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ServiceError("SerializationException", f"Expected an integer value for {name}.")
    if not low <= value <= high:
        raise ServiceError(
            "ValidationException",
            f"1 validation error detected: Value '{value}' at '{_camel(name)}' failed to "
            f"satisfy constraint: Member must have value between {low} and {high}",
        )
    return value


def _list(body: Body, name: str) -> list[Any]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ServiceError("SerializationException", f"Expected a list value for {name}.")
    return value


def _string_map(body: Body, name: str) -> dict[str, str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ServiceError("SerializationException", f"Expected a map of strings for {name}.")
    return value


def _blob(body: Body, name: str, required: bool = False) -> bytes | None:
    value = _string(body, name, required)
    if value is None:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ServiceError(
            "SerializationException", f"{name} is not valid base64-encoded data."
        ) from None


def _epoch(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# -- pagination ---------------------------------------------------------------------


def _query_digest(operation: str, body: Body) -> str:
    query = {k: v for k, v in body.items() if k not in ("NextToken", "MaxResults")}
    text = json.dumps([operation, query], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _page(
    items: list[Any], operation: str, body: Body, default: int, low: int, high: int
) -> tuple[list[Any], str | None]:
    limit = _integer(body, "MaxResults", low, high) or default
    token = _string(body, "NextToken")
    offset = 0
    if token is not None:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
            offset = int(decoded["o"])
            valid = decoded["q"] == _query_digest(operation, body) and offset >= 0
        except (ValueError, KeyError, TypeError, binascii.Error):
            valid = False
        if not valid:
            raise ServiceError("InvalidNextToken", "The specified token is not valid.")
    page = items[offset : offset + limit]
    next_offset = offset + limit
    if next_offset >= len(items):
        return page, None
    raw = json.dumps({"o": next_offset, "q": _query_digest(operation, body)}).encode()
    return page, base64.urlsafe_b64encode(raw).decode()


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
        target = _string(body, "Target", required=True)
        assert target is not None
        document = _string(body, "DocumentName")
        reason = _string(body, "Reason") or ""
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
        session_id = _string(body, "SessionId", required=True)
        assert session_id is not None
        session = self.state.resume_session(session_id, base_url=self._base_url(request))
        result: Body = {"SessionId": session.session_id}
        if session.token is not None:
            result["TokenValue"] = session.token
            result["StreamUrl"] = session.stream_url
        return result

    async def terminate_session(self, body: Body, request: HttpRequest) -> Body:
        session_id = _string(body, "SessionId", required=True)
        assert session_id is not None
        await self.state.terminate_session(session_id, "Session terminated by TerminateSession.")
        return {"SessionId": session_id}

    async def describe_sessions(self, body: Body, request: HttpRequest) -> Body:
        state_name = _string(body, "State", required=True)
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
        for index, item in enumerate(_list(body, "Filters"), start=1):
            sessions = self._filter_sessions(sessions, item, index)
        sessions.sort(key=lambda s: (-s.start_date, s.session_id))
        page, token = _page(sessions, "DescribeSessions", body, 20, 1, 200)
        result: Body = {"Sessions": [self._session_info(s) for s in page]}
        if token is not None:
            result["NextToken"] = token
        return result

    def _filter_sessions(
        self, sessions: list[SessionRecord], item: Any, index: int
    ) -> list[SessionRecord]:
        if not isinstance(item, dict):
            raise ServiceError("SerializationException", "Each filter must be an object.")
        key, value = _string(item, "key", True), _string(item, "value", True)
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
            "StartDate": _epoch(session.start_date),
            "DocumentName": session.document_name,
            "Owner": session.owner,
            "AccessType": "Standard",
        }
        if session.end_date is not None:
            info["EndDate"] = _epoch(session.end_date)
        if session.reason:
            info["Reason"] = session.reason
        if session.end_reason and session.status not in ACTIVE_STATUSES:
            info["Details"] = session.end_reason
        if self.state.max_session_duration is not None:
            info["MaxSessionDuration"] = str(max(1, round(self.state.max_session_duration / 60)))
        return info

    async def get_connection_status(self, body: Body, request: HttpRequest) -> Body:
        target = _string(body, "Target", required=True)
        return {"Target": target, "Status": self.state.connection_status(target or "")}

    async def describe_instance_information(self, body: Body, request: HttpRequest) -> Body:
        targets = sorted(self.state.targets.values(), key=lambda t: t.instance_id)
        for item in _list(body, "InstanceInformationFilterList"):
            if not isinstance(item, dict):
                raise ServiceError("SerializationException", "Each filter must be an object.")
            key = _string(item, "key", True)
            values = _list(item, "valueSet")
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
        for item in _list(body, "Filters"):
            if not isinstance(item, dict):
                raise ServiceError("SerializationException", "Each filter must be an object.")
            key = _string(item, "Key", True)
            values = _list(item, "Values")
            assert key is not None
            if not (key in _INSTANCE_FILTER_KEYS or key.startswith("tag:") or key == "tag-key"):
                raise ServiceError("InvalidFilterKey", f"The filter key {key} is not valid.")
            self._check_values(key, values)
            targets = [t for t in targets if _target_matches(t, key, values)]
        page, token = _page(targets, "DescribeInstanceInformation", body, 50, 5, 50)
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
        key_id = _string(body, "KeyId", required=True)
        assert key_id is not None
        data_key = self.state.kms.generate_data_key(
            key_id,
            _integer(body, "NumberOfBytes", -(2**31), 2**31 - 1),
            _string(body, "KeySpec"),
            _string_map(body, "EncryptionContext"),
        )
        return {
            "CiphertextBlob": base64.b64encode(data_key.ciphertext_blob).decode(),
            "Plaintext": base64.b64encode(data_key.plaintext).decode(),
            "KeyId": data_key.key_arn,
        }

    async def decrypt(self, body: Body, request: HttpRequest) -> Body:
        blob = _blob(body, "CiphertextBlob", required=True)
        assert blob is not None
        plaintext, key_arn = self.state.kms.decrypt_with_key(
            blob, _string_map(body, "EncryptionContext"), _string(body, "KeyId")
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
        "LastPingDateTime": _epoch(target.last_ping),
        "AgentVersion": target.agent_version,
        "IsLatestVersion": False,
        "PlatformType": target.platform_type,
        "PlatformName": target.platform_name,
        "PlatformVersion": "",
        "ResourceType": "EC2Instance",
        "IPAddress": "127.0.0.1",
        "ComputerName": f"{target.name}.emulated.local",
        "AssociationStatus": "Success",
        "SourceId": target.instance_id,
        "SourceType": "AWS::EC2::Instance",
    }
