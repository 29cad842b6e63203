"""awsJson1.1 request members: type checks, AWS-style validation messages, pagination.

Wrong JSON types give ``SerializationException``; missing required members and values
out of range give ``ValidationException`` worded like AWS's; page tokens are opaque
and bound to the query they came from (``InvalidNextToken`` otherwise).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from .errors import ServiceError

__all__ = [
    "Body",
    "blob",
    "epoch",
    "integer",
    "member_list",
    "paginate",
    "require_member",
    "string",
    "string_map",
]

Body = dict[str, Any]


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def require_member(body: Body, name: str) -> Any:
    if body.get(name) is None:
        raise ServiceError(
            "ValidationException",
            f"1 validation error detected: Value null at '{_camel(name)}' failed to satisfy "
            "constraint: Member must not be null",
        )
    return body[name]


def string(body: Body, name: str, required: bool = False) -> str | None:
    value = require_member(body, name) if required else body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ServiceError("SerializationException", f"Expected a string value for {name}.")
    return value


def integer(body: Body, name: str, low: int, high: int) -> int | None:
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


def member_list(body: Body, name: str) -> list[Any]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ServiceError("SerializationException", f"Expected a list value for {name}.")
    return value


def string_map(body: Body, name: str) -> dict[str, str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ServiceError("SerializationException", f"Expected a map of strings for {name}.")
    return value


def blob(body: Body, name: str, required: bool = False) -> bytes | None:
    value = string(body, name, required)
    if value is None:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ServiceError(
            "SerializationException", f"{name} is not valid base64-encoded data."
        ) from None


def epoch(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# -- pagination ---------------------------------------------------------------------


def _query_digest(operation: str, body: Body) -> str:
    query = {k: v for k, v in body.items() if k not in ("NextToken", "MaxResults")}
    text = json.dumps([operation, query], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def paginate(
    items: list[Any], operation: str, body: Body, default: int, low: int, high: int
) -> tuple[list[Any], str | None]:
    limit = integer(body, "MaxResults", low, high) or default
    token = string(body, "NextToken")
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
