"""Answers checked against botocore's output shapes, for the emulator's tests.

botocore parses answers leniently (unknown members are dropped, enums are not checked),
so a misspelt member or a status outside the model would pass unseen. :func:`check_outputs`
wraps the emulator's operations so that every answer is walked against its operation's
output shape: members the shape does not have, missing required members, JSON types and
enum values. Lengths and patterns are not checked: AWS's own answers break some
(``"OverriddenParameters": {}`` for a map of at least one entry, in the user guide; the
model's date pattern for ``ExecutionElapsedTime``, which holds ``PT0.056S``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from ssmsh.emulator.api.registry import service_model
from ssmsh.emulator.errors import ServiceError

__all__ = ["check_outputs", "shape_errors"]


def shape_errors(shape: Any, value: Any, path: str = "") -> list[str]:
    """What in ``value`` does not fit ``shape``."""
    kind = shape.type_name
    where = path or "answer"
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{where}: not an object"]
        errors = [f"{where}.{k}: not in {shape.name}" for k in value if k not in shape.members]
        errors += [f"{where}.{k}: required" for k in shape.required_members if k not in value]
        for key, item in value.items():
            if key in shape.members and item is not None:
                errors += shape_errors(shape.members[key], item, f"{path}.{key}")
        return errors
    if kind == "list":
        if not isinstance(value, list):
            return [f"{where}: not a list"]
        return [
            e for i, v in enumerate(value) for e in shape_errors(shape.member, v, f"{path}[{i}]")
        ]
    if kind == "map":
        if not isinstance(value, dict):
            return [f"{where}: not a map"]
        return [e for k, v in value.items() for e in shape_errors(shape.value, v, f"{path}.{k}")]
    if kind == "string":
        if not isinstance(value, str):
            return [f"{where}: not a string"]
        enum = shape.metadata.get("enum")
        if enum and value not in enum:
            return [f"{where}: {value!r} not in {shape.name}"]
        return []
    if kind in ("integer", "long"):
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{where}: not an integer"]
    if kind in ("double", "float", "timestamp"):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{where}: not a number"]
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{where}: not a boolean"]
    return []


def check_outputs(api: Any, operations: Iterable[str]) -> list[str]:
    """Check every answer of ``operations`` (SSM names); the list of what did not fit.

    An answer that does not fit is also refused (code ``ShapeMismatch``, HTTP 500), so the
    test that got it sees why.
    """
    model = service_model("ssm")
    found: list[str] = []
    for name in operations:
        target = f"AmazonSSM.{name}"
        shape = model.operation_model(name).output_shape
        original = api._operations[target]

        @functools.wraps(original)
        async def checked(
            body: Any, request: Any, _original: Any = original, _shape: Any = shape
        ) -> Any:
            answer = await _original(body, request)
            errors = shape_errors(_shape, answer) if _shape is not None else []
            if errors:
                found.extend(errors)
                raise ServiceError("ShapeMismatch", "; ".join(errors), 500)
            return answer

        api._operations[target] = checked
    return found
