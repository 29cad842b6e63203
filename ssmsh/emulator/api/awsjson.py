"""Shared helpers of the service areas: typed member access, paging and filters.

Requests reach an operation already validated against botocore's model
(``validation.py``), so the accessors here only convert; they still refuse a wrong JSON
type (``SerializationException``) for operations called directly. Page tokens are opaque
and bound to the query they came from (``InvalidNextToken`` otherwise).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import ServiceError
from .validation import camel, validation_error

__all__ = [
    "Body",
    "KeyValuesFilter",
    "blob",
    "epoch",
    "integer",
    "invalid_filter_key",
    "key_values_filters",
    "member_list",
    "page_result",
    "paginate",
    "require_member",
    "string",
    "string_map",
]

Body = dict[str, Any]
#: A ``{"Key": k, "Values": [...]}`` filter as (key, values).
KeyValuesFilter = tuple[str, list[str]]


def require_member(body: Body, name: str) -> Any:
    if body.get(name) is None:
        raise validation_error(
            [f"Value null at '{camel(name)}' failed to satisfy constraint: Member must not be null"]
        )
    return body[name]


def string(body: Body, name: str, required: bool = False) -> str | None:
    value = require_member(body, name) if required else body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ServiceError("SerializationException", f"Expected a string value for {name}.")
    return value


def integer(body: Body, name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ServiceError("SerializationException", f"Expected an integer value for {name}.")
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


# -- filters --------------------------------------------------------------------------


def invalid_filter_key(key: str, wire: str, allowed: Iterable[str]) -> ServiceError:
    """InvalidFilterKey for a key outside the filter's enum, worded like a validation error."""
    return ServiceError(
        "InvalidFilterKey",
        f"Value '{key}' at '{wire}' failed to satisfy constraint: "
        f"Member must satisfy enum value set: [{', '.join(allowed)}]",
    )


def key_values_filters(
    body: Body, name: str, key: str = "Key", values: str = "Values"
) -> list[KeyValuesFilter]:
    """A list of ``{Key, Values}`` filters as (key, values) pairs (missing values: [])."""
    result: list[KeyValuesFilter] = []
    for item in member_list(body, name):
        if not isinstance(item, dict):
            raise ServiceError("SerializationException", "Each filter must be an object.")
        result.append((string(item, key, True) or "", [str(v) for v in member_list(item, values)]))
    return result


# -- pagination -----------------------------------------------------------------------


def _query_digest(operation: str, body: Body) -> str:
    query = {k: v for k, v in body.items() if k not in ("NextToken", "MaxResults")}
    text = json.dumps([operation, query], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def paginate(
    items: list[Any], operation: str, body: Body, default: int
) -> tuple[list[Any], str | None]:
    """One page of ``items`` for ``MaxResults`` (else ``default``) and ``NextToken``."""
    limit = integer(body, "MaxResults") or default
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


def page_result(
    items: list[Any],
    operation: str,
    body: Body,
    default: int,
    key: str,
    render: Callable[[Any], Body],
) -> Body:
    """``{key: [render(item)...], "NextToken": ...}`` for one page of ``items``."""
    page, token = paginate(items, operation, body, default)
    result: Body = {key: [render(item) for item in page]}
    if token is not None:
        result["NextToken"] = token
    return result
