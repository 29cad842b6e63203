"""Typed payloads with the exact JSON shapes of the official implementation.

Every ``encode()`` produces compact JSON with the official key order; every
``decode()`` raises :class:`~ssmsh.exceptions.RemoteProtocolError` (and nothing
else) on malformed input.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
import struct
from typing import Any

from ..exceptions import RemoteProtocolError
from .constants import CLIENT_VERSION, ActionStatus, ActionType

__all__ = [
    "Acknowledge",
    "ChannelClosedPayload",
    "EncChallenge",
    "HandshakeComplete",
    "HandshakeRequest",
    "HandshakeResponse",
    "OpenDataChannel",
    "ProcessedClientAction",
    "RequestedClientAction",
    "TerminalSize",
    "decode_exit_code",
    "decode_flag",
    "dumps",
    "encode_exit_code",
    "encode_flag",
]

_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}

#: Most actions a HandshakeRequest may ask for (the agent asks for two at most).
MAX_REQUESTED_ACTIONS = 16


def dumps(obj: Any) -> bytes:
    """Compact JSON as Go's encoding/json writes it (``<``, ``>``, ``&`` escaped)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    if "<" in text or ">" in text or "&" in text:
        text = re.sub(r"[<>&]", lambda m: _GO_ESCAPES[m.group()], text)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from peer JSON: U+FFFD, as Go writes them
        return re.sub("[\ud800-\udfff]", "\ufffd", text).encode("utf-8")


def _loads_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RemoteProtocolError(f"{what}: invalid JSON ({exc})") from None
    except RecursionError:
        raise RemoteProtocolError(f"{what}: JSON nested too deeply") from None
    if not isinstance(obj, dict):
        raise RemoteProtocolError(f"{what}: expected a JSON object")
    return obj


def _field(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    if key not in obj:
        raise RemoteProtocolError(f"{what}: missing {key}")
    value = obj[key]
    # bool is an int subclass: never accept it where a number is expected.
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise RemoteProtocolError(f"{what}: {key} has the wrong type")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


@dataclasses.dataclass(frozen=True, slots=True)
class Acknowledge:
    """Payload of an ``acknowledge`` message."""

    message_type: str
    message_id: str
    sequence_number: int
    is_sequential: bool = True

    def encode(self) -> bytes:
        return dumps(
            {
                "AcknowledgedMessageType": self.message_type,
                "AcknowledgedMessageId": self.message_id,
                "AcknowledgedMessageSequenceNumber": self.sequence_number,
                "IsSequentialMessage": self.is_sequential,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> Acknowledge:
        what = "acknowledge"
        obj = _loads_object(data, what)
        seq = _field(obj, "AcknowledgedMessageSequenceNumber", int, what)
        return cls(
            message_type=str(obj.get("AcknowledgedMessageType", "")),
            message_id=str(obj.get("AcknowledgedMessageId", "")),
            sequence_number=seq,
            is_sequential=bool(obj.get("IsSequentialMessage", True)),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ChannelClosedPayload:
    """Payload of a ``channel_closed`` message; clients only use ``output``."""

    message_id: str
    created_date: str
    destination_id: str
    session_id: str
    output: str = ""
    schema_version: int = 1

    def encode(self) -> bytes:
        return dumps(
            {
                "MessageId": self.message_id,
                "CreatedDate": self.created_date,
                "DestinationId": self.destination_id,
                "SessionId": self.session_id,
                "MessageType": "channel_closed",
                "SchemaVersion": self.schema_version,
                "Output": self.output,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> ChannelClosedPayload:
        obj = _loads_object(data, "channel_closed")
        schema = obj.get("SchemaVersion", 1)
        return cls(
            message_id=str(obj.get("MessageId", "")),
            created_date=str(obj.get("CreatedDate", "")),
            destination_id=str(obj.get("DestinationId", "")),
            session_id=str(obj.get("SessionId", "")),
            output=str(obj.get("Output", "") or ""),
            schema_version=schema if isinstance(schema, int) else 1,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class TerminalSize:
    """PayloadType.SIZE: ``{"cols":C,"rows":R}``."""

    cols: int
    rows: int

    def encode(self) -> bytes:
        return dumps({"cols": self.cols, "rows": self.rows})

    @classmethod
    def decode(cls, data: bytes) -> TerminalSize:
        what = "terminal size"
        obj = _loads_object(data, what)
        cols = _field(obj, "cols", int, what)
        rows = _field(obj, "rows", int, what)
        if not (0 <= cols <= 0xFFFFFFFF and 0 <= rows <= 0xFFFFFFFF):
            raise RemoteProtocolError(f"{what}: out of range")
        return cls(cols, rows)


@dataclasses.dataclass(frozen=True, slots=True)
class RequestedClientAction:
    """One entry of ``RequestedClientActions``; parameters stay raw JSON values."""

    action_type: str
    action_parameters: Any = None

    def to_json(self) -> dict[str, Any]:
        return {"ActionType": self.action_type, "ActionParameters": self.action_parameters}


@dataclasses.dataclass(frozen=True, slots=True)
class HandshakeRequest:
    """PayloadType.HANDSHAKE_REQUEST (agent → client)."""

    agent_version: str
    requested_actions: tuple[RequestedClientAction, ...] = ()

    def encode(self) -> bytes:
        return dumps(
            {
                "AgentVersion": self.agent_version,
                "RequestedClientActions": [a.to_json() for a in self.requested_actions],
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> HandshakeRequest:
        what = "handshake request"
        obj = _loads_object(data, what)
        version = obj.get("AgentVersion", "")
        if not isinstance(version, str):
            raise RemoteProtocolError(f"{what}: AgentVersion has the wrong type")
        raw_actions = obj.get("RequestedClientActions") or []
        if not isinstance(raw_actions, list):
            raise RemoteProtocolError(f"{what}: RequestedClientActions is not a list")
        if len(raw_actions) > MAX_REQUESTED_ACTIONS:
            # The agent asks for two at most (SessionType, KMSEncryption); answering
            # thousands would build (and retransmit) a response of any size.
            raise RemoteProtocolError(
                f"{what}: {len(raw_actions)} actions requested (at most "
                f"{MAX_REQUESTED_ACTIONS} are answered)"
            )
        actions = []
        for raw in raw_actions:
            if not isinstance(raw, dict):
                raise RemoteProtocolError(f"{what}: an action is not an object")
            atype = _field(raw, "ActionType", str, what)
            actions.append(RequestedClientAction(atype, raw.get("ActionParameters")))
        return cls(version, tuple(actions))

    @classmethod
    def for_session(
        cls,
        agent_version: str,
        session_type: str,
        properties: Any = None,
        kms_key_id: str | None = None,
    ) -> HandshakeRequest:
        """Build the request an agent sends (used by the emulator)."""
        actions = []
        if kms_key_id:
            actions.append(
                RequestedClientAction(ActionType.KMS_ENCRYPTION, {"KMSKeyId": kms_key_id})
            )
        actions.append(
            RequestedClientAction(
                ActionType.SESSION_TYPE, {"SessionType": session_type, "Properties": properties}
            )
        )
        return cls(agent_version, tuple(actions))


@dataclasses.dataclass(frozen=True, slots=True)
class ProcessedClientAction:
    action_type: str
    action_status: int
    action_result: Any = None
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "ActionType": self.action_type,
            "ActionStatus": self.action_status,
            "ActionResult": self.action_result,
            "Error": self.error,
        }

    @property
    def succeeded(self) -> bool:
        return self.action_status == ActionStatus.SUCCESS


@dataclasses.dataclass(frozen=True, slots=True)
class HandshakeResponse:
    """PayloadType.HANDSHAKE_RESPONSE (client → agent, never encrypted)."""

    client_version: str = CLIENT_VERSION
    processed_actions: tuple[ProcessedClientAction, ...] = ()
    errors: tuple[str, ...] = ()

    def encode(self) -> bytes:
        return dumps(
            {
                "ClientVersion": self.client_version,
                "ProcessedClientActions": [a.to_json() for a in self.processed_actions],
                "Errors": list(self.errors) if self.errors else None,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> HandshakeResponse:
        what = "handshake response"
        obj = _loads_object(data, what)
        version = obj.get("ClientVersion", "")
        raw_actions = obj.get("ProcessedClientActions") or []
        raw_errors = obj.get("Errors") or []
        if not isinstance(version, str) or not isinstance(raw_actions, list):
            raise RemoteProtocolError(f"{what}: malformed")
        if not isinstance(raw_errors, list):
            raise RemoteProtocolError(f"{what}: Errors is not a list")
        actions = []
        for raw in raw_actions:
            if not isinstance(raw, dict):
                raise RemoteProtocolError(f"{what}: an action is not an object")
            status = raw.get("ActionStatus", 0)
            actions.append(
                ProcessedClientAction(
                    action_type=str(raw.get("ActionType", "")),
                    action_status=status if isinstance(status, int) else 0,
                    action_result=raw.get("ActionResult"),
                    error=str(raw.get("Error", "") or ""),
                )
            )
        return cls(version, tuple(actions), tuple(str(e) for e in raw_errors))


@dataclasses.dataclass(frozen=True, slots=True)
class HandshakeComplete:
    """PayloadType.HANDSHAKE_COMPLETE; the duration is in nanoseconds (Go time.Duration)."""

    handshake_time_to_complete: int = 0
    customer_message: str = ""

    def encode(self) -> bytes:
        return dumps(
            {
                "HandshakeTimeToComplete": self.handshake_time_to_complete,
                "CustomerMessage": self.customer_message,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> HandshakeComplete:
        obj = _loads_object(data, "handshake complete")
        duration = obj.get("HandshakeTimeToComplete", 0)
        message = obj.get("CustomerMessage", "")
        return cls(
            duration if isinstance(duration, int) and not isinstance(duration, bool) else 0,
            message if isinstance(message, str) else "",
        )


@dataclasses.dataclass(frozen=True, slots=True)
class EncChallenge:
    """PayloadType.ENC_CHALLENGE_REQUEST / _RESPONSE: ``{"Challenge":"<base64>"}``."""

    challenge: bytes

    def encode(self) -> bytes:
        return dumps({"Challenge": base64.b64encode(self.challenge).decode("ascii")})

    @classmethod
    def decode(cls, data: bytes) -> EncChallenge:
        what = "encryption challenge"
        obj = _loads_object(data, what)
        text = _field(obj, "Challenge", str, what)
        try:
            return cls(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            raise RemoteProtocolError(f"{what}: Challenge is not base64") from None


@dataclasses.dataclass(frozen=True, slots=True)
class OpenDataChannel:
    """The first (text) WebSocket frame after every (re)connect."""

    request_id: str
    token_value: str
    client_id: str
    client_version: str = CLIENT_VERSION
    message_schema_version: str = "1.0"

    def encode(self) -> str:
        return dumps(
            {
                "MessageSchemaVersion": self.message_schema_version,
                "RequestId": self.request_id,
                "TokenValue": self.token_value,
                "ClientId": self.client_id,
                "ClientVersion": self.client_version,
            }
        ).decode("utf-8")

    @classmethod
    def decode(cls, data: str | bytes) -> OpenDataChannel:
        what = "OpenDataChannel"
        try:
            raw = data.encode("utf-8") if isinstance(data, str) else data
        except UnicodeEncodeError:
            raise RemoteProtocolError(f"{what}: not valid text") from None
        obj = _loads_object(raw, what)
        return cls(
            request_id=str(obj.get("RequestId", "")),
            token_value=_field(obj, "TokenValue", str, what),
            client_id=str(obj.get("ClientId", "")),
            client_version=str(obj.get("ClientVersion", "")),
            message_schema_version=str(obj.get("MessageSchemaVersion", "")),
        )

    def __repr__(self) -> str:  # never show the token
        return (
            f"OpenDataChannel(request_id={self.request_id!r}, token_value='***', "
            f"client_id={self.client_id!r}, client_version={self.client_version!r})"
        )


_FLAG = struct.Struct(">I")


def encode_flag(flag: int) -> bytes:
    """A PayloadType.FLAG payload: 4-byte big-endian."""
    return _FLAG.pack(flag)


def decode_flag(data: bytes) -> int:
    if len(data) != _FLAG.size:
        raise RemoteProtocolError(f"flag payload must be 4 bytes, got {len(data)}")
    value: int = _FLAG.unpack(data)[0]
    return value


_EXIT_CODE_RE = re.compile(rb"^\s*(?:EXIT_CODE:\s*)?(-?\d+)\s*$")


def encode_exit_code(code: int) -> bytes:
    """A PayloadType.EXIT_CODE payload as the agent writes it."""
    return f"EXIT_CODE: {code}".encode("ascii")


def decode_exit_code(data: bytes) -> int:
    """Parse ``EXIT_CODE: <n>`` (or a bare number)."""
    match = _EXIT_CODE_RE.match(data)
    if not match:
        raise RemoteProtocolError(f"unrecognised exit code payload {data[:40]!r}")
    try:
        return int(match.group(1))
    except ValueError:  # more digits than int() accepts
        raise RemoteProtocolError("exit code out of range") from None
