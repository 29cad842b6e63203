"""Request validation against botocore's service models, worded the way AWS words it.

Every operation's input is checked here before the operation runs, from the shapes in
``botocore.loaders.Loader`` (see ``registry.service_model``): a member of the wrong JSON type
gives ``SerializationException`` (AWS fails to deserialize before it validates); missing
required members, lengths, patterns, enums and numeric ranges give one
``ValidationException`` listing every violation, e.g. ``1 validation error detected:
Value 'x' at 'documentVersion' failed to satisfy constraint: Member must satisfy regular
expression pattern: ...``. Members the model does not know are ignored, as AWS does.

An operation may leave some members' constraints to itself (``unchecked`` paths such as
``Filters.*.key``) where the service answers with a more specific code (InvalidFilterKey...).
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Collection
from typing import Any

from botocore.model import Shape

from ..errors import ServiceError

__all__ = ["ModelValidator", "camel", "validation_error"]


def camel(name: str) -> str:
    """The wire name AWS uses in messages: ``DocumentVersion`` -> ``documentVersion``."""
    return name[:1].lower() + name[1:]


def validation_error(violations: list[str]) -> ServiceError:
    """One ValidationException listing every violation, as AWS phrases it."""
    count = len(violations)
    noun = "error" if count == 1 else "errors"
    return ServiceError(
        "ValidationException", f"{count} validation {noun} detected: " + "; ".join(violations)
    )


def _render(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_render(v)}" for k, v in value.items()) + "}"
    return str(value)


@functools.lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    """The model's (Java) pattern in Python, or None for the few that use ``\\p{..}``."""
    try:
        return re.compile(pattern)
    except re.error:
        return None


class ModelValidator:
    """Validates one request body against an operation's input shape."""

    def __init__(self, unchecked: Collection[str] = ()) -> None:
        #: Member paths (``Filters.*.key``; ``*`` for any list index or map key) whose
        #: constraints the operation checks itself; types are still checked.
        self.unchecked = tuple(unchecked)
        self._violations: list[str] = []

    def validate(self, shape: Shape, body: dict[str, Any]) -> None:
        """Raise SerializationException or ValidationException for a bad ``body``."""
        self._violations = []
        self._structure(shape, body, "", "")
        if self._violations:
            raise validation_error(self._violations)

    # -- walking --------------------------------------------------------------------

    def _skipped(self, key: str) -> bool:
        parts = key.split(".")
        for pattern in self.unchecked:
            wanted = pattern.split(".")
            if len(parts) >= len(wanted) and all(
                w in ("*", p) for w, p in zip(wanted, parts, strict=False)
            ):
                return True
        return False

    def _violation(self, value: Any, wire: str, constraint: str) -> None:
        shown = "null" if value is None else f"'{_render(value)}'"
        self._violations.append(
            f"Value {shown} at '{wire}' failed to satisfy constraint: {constraint}"
        )

    def _structure(self, shape: Any, value: dict[str, Any], wire: str, key: str) -> None:
        required = set(shape.required_members)
        for name, member in shape.members.items():
            member_wire = f"{wire}.{camel(name)}" if wire else camel(name)
            member_key = f"{key}.{name}" if key else name
            item = value.get(name)
            if item is None:
                if name in required:
                    self._violation(None, member_wire, "Member must not be null")
                continue
            self._member(member, item, member_wire, member_key)

    def _member(self, shape: Any, value: Any, wire: str, key: str) -> None:
        kind = shape.type_name
        if kind == "structure":
            if not isinstance(value, dict):
                raise _type_error("an object", key)
            self._structure(shape, value, wire, key)
            return
        if kind == "list":
            if not isinstance(value, list):
                raise _type_error("a list", key)
            self._constraints(shape, value, len(value), wire, key)
            for index, item in enumerate(value, start=1):
                if item is not None:
                    self._member(shape.member, item, f"{wire}.{index}.member", f"{key}.*")
            return
        if kind == "map":
            if not isinstance(value, dict):
                raise _type_error("a map", key)
            self._constraints(shape, value, len(value), wire, key)
            for name, item in value.items():
                self._member(shape.key, name, wire, key)
                if item is not None:
                    self._member(shape.value, item, f"{wire}.{name}", f"{key}.*")
            return
        self._scalar(shape, kind, value, wire, key)

    def _scalar(self, shape: Any, kind: str, value: Any, wire: str, key: str) -> None:
        if kind == "string":
            if not isinstance(value, str):
                raise _type_error("a string", key)
            self._constraints(shape, value, len(value), wire, key)
        elif kind in ("integer", "long"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise _type_error("an integer", key)
            self._range(shape, value, wire, key)
        elif kind in ("float", "double", "timestamp"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _type_error("a number", key)
            self._range(shape, value, wire, key)
        elif kind == "boolean":
            if not isinstance(value, bool):
                raise _type_error("a boolean", key)
        elif kind == "blob":
            if not isinstance(value, str):
                raise _type_error("a string", key)
            try:
                decoded = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise ServiceError(
                    "SerializationException", f"{key} is not valid base64-encoded data."
                ) from None
            self._constraints(shape, value, len(decoded), wire, key)

    # -- constraints ----------------------------------------------------------------

    def _constraints(self, shape: Any, value: Any, length: int, wire: str, key: str) -> None:
        if self._skipped(key):
            return
        meta = shape.metadata
        low, high = meta.get("min"), meta.get("max")
        if low is not None and length < low:
            self._violation(value, wire, f"Member must have length greater than or equal to {low}")
        if high is not None and length > high:
            self._violation(value, wire, f"Member must have length less than or equal to {high}")
        if not isinstance(value, str) or shape.type_name != "string":
            return
        enum = meta.get("enum")
        if enum and value not in enum:
            self._violation(value, wire, f"Member must satisfy enum value set: [{', '.join(enum)}]")
        pattern = meta.get("pattern")
        compiled = _compiled(pattern) if pattern else None
        if compiled is not None and not compiled.fullmatch(value):
            self._violation(
                value, wire, f"Member must satisfy regular expression pattern: {pattern}"
            )

    def _range(self, shape: Any, value: float, wire: str, key: str) -> None:
        if self._skipped(key):
            return
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if low is not None and value < low:
            self._violation(value, wire, f"Member must have value greater than or equal to {low}")
        if high is not None and value > high:
            self._violation(value, wire, f"Member must have value less than or equal to {high}")


def _type_error(expected: str, key: str) -> ServiceError:
    return ServiceError("SerializationException", f"Expected {expected} value for {key}.")
