"""Values in an Automation execution: typed parameters, ``{{ references }}`` filled into a
step's inputs, outputs picked with selectors, ISO 8601 durations and times.

No I/O. What AWS does, and how we know:

- a reference that is a whole string keeps its value's type (a StringList parameter in
  ``Approvers: "{{ approvers }}"`` gives a list; an Integer parameter an integer); a list
  holding one such reference to a list is that list (``InstanceIds: ["{{ ids }}"]``, as
  the ``aws:runCommand`` reference's example writes it); inside a longer string a value
  is written as text (JSON for lists and maps). From the user guide's runbook examples.
- system variables (user guide, "Automation system variables"):
  ``automation:EXECUTION_ID``, ``automation:DOCUMENT_NAME``, ``global:ACCOUNT_ID``,
  ``global:REGION``, ``global:AWS_PARTITION``, ``global:AWS_URL_SUFFIX``, ``global:DATE``
  (``yyyy-MM-dd``), ``global:DATE_TIME`` (``yyyy-MM-dd_HH.mm.ss``), ``global:DATE_TIME_ISO``,
  all in UTC; ``ssm:`` (Parameter Store) references are left as written: the emulator has
  no Parameter Store.
- selectors are the JSONPath subset the guide lists ("Using JSONPath in runbooks"): ``$``,
  ``.key``, ``[n]`` and the deep scan ``..key``, which gives a list.
- an output value in the API is a list of strings: String as is, Integer and Boolean
  written out, StringList one string per item, StringMap as JSON, MapList one JSON object
  per item.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..documents.content import PLACEHOLDER
from ..errors import ServiceError

__all__ = [
    "MissingReference",
    "api_values",
    "fill",
    "invalid_parameters",
    "iso_duration",
    "iso_time",
    "select",
    "system_variables",
    "typed_parameters",
]


class MissingReference(Exception):
    """A ``{{ reference }}`` with no value (an output of a step that did not give it)."""


def typed_parameters(
    definitions: Mapping[str, Mapping[str, Any]], values: Mapping[str, Any]
) -> dict[str, Any]:
    """Checked parameter values (strings, lists of strings) in their declared types."""
    typed: dict[str, Any] = {}
    for name, value in values.items():
        kind = str((definitions.get(name) or {}).get("type", "String"))
        typed[name] = _typed(kind, value)
    return typed


def _typed(kind: str, value: Any) -> Any:
    if isinstance(value, str):
        if kind == "Integer" and re.fullmatch(r"-?[0-9]+", value):
            return int(value)
        if kind == "Boolean" and value in ("true", "false"):
            return value == "true"
        if kind == "StringMap":
            return _json(value)
    if kind == "MapList" and isinstance(value, list):
        return [_json(item) if isinstance(item, str) else item for item in value]
    return value


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def api_values(value: Any) -> list[str]:
    """A value as the API lists it: a list of strings."""
    if isinstance(value, list):
        return [item if isinstance(item, str) else json.dumps(item) for item in value]
    if isinstance(value, str):
        return [value]
    return [json.dumps(value)]


def system_variables(
    execution_id: str, document_name: str, region: str, account: str, now: float
) -> dict[str, str]:
    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    return {
        "automation:EXECUTION_ID": execution_id,
        "automation:DOCUMENT_NAME": document_name,
        "global:ACCOUNT_ID": account,
        "global:REGION": region,
        "global:AWS_PARTITION": "aws",
        "global:AWS_URL_SUFFIX": "amazonaws.com",
        "global:DATE": moment.strftime("%Y-%m-%d"),
        "global:DATE_TIME": moment.strftime("%Y-%m-%d_%H.%M.%S"),
        "global:DATE_TIME_ISO": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def fill(value: Any, lookup: Callable[[str], Any]) -> Any:
    """``value`` with every reference replaced by ``lookup(name)`` (MissingReference
    propagates); ``ssm:`` references stay as written."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value.strip())
        if whole and not whole.group(1).startswith("ssm:"):
            return lookup(whole.group(1))

        def text(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("ssm:"):
                return match.group(0)
            found = lookup(name)
            return found if isinstance(found, str) else json.dumps(found)

        return PLACEHOLDER.sub(text, value)
    if isinstance(value, dict):
        return {key: fill(item, lookup) for key, item in value.items()}
    if isinstance(value, list):
        filled = [fill(item, lookup) for item in value]
        if (
            len(value) == 1
            and isinstance(value[0], str)
            and PLACEHOLDER.fullmatch(value[0].strip())
            and isinstance(filled[0], list)
        ):
            return filled[0]
        return filled
    return value


# -- selectors --------------------------------------------------------------------------

_TOKEN = re.compile(r"\.\.([A-Za-z0-9_\-]+)|\.([A-Za-z0-9_\-]+)|\[(\d+)\]")


def select(document: Any, selector: str) -> Any:
    """The part of ``document`` a JSONPath ``selector`` picks (MissingReference if none)."""
    if not selector.startswith("$"):
        raise MissingReference(selector)
    current: list[Any] = [document]
    scanning = False
    position = 1
    while position < len(selector):
        match = _TOKEN.match(selector, position)
        if match is None:
            raise MissingReference(selector)
        position = match.end()
        deep, key, index = match.groups()
        if deep is not None:
            scanning = True
            current = [found for item in current for found in _deep(item, deep)]
        elif key is not None:
            current = [item[key] for item in current if isinstance(item, dict) and key in item]
        else:
            number = int(index)
            current = [
                item[number] for item in current if isinstance(item, list) and len(item) > number
            ]
        if not current:
            raise MissingReference(selector)
    return current if scanning else current[0]


def _deep(value: Any, key: str) -> list[Any]:
    found: list[Any] = []
    if isinstance(value, dict):
        if key in value:
            found.append(value[key])
        for item in value.values():
            found.extend(_deep(item, key))
    elif isinstance(value, list):
        for item in value:
            found.extend(_deep(item, key))
    return found


# -- times ------------------------------------------------------------------------------

_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def iso_duration(text: str) -> float:
    """Seconds in an ISO 8601 duration (``PT10M``, ``P1DT2H``); ValueError otherwise."""
    match = _DURATION.match(text.strip())
    if match is None or text.strip() in ("P", "PT") or text.strip().endswith("T"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as PT10M")
    parts = {k: float(v) for k, v in match.groupdict().items() if v is not None}
    return (
        parts.get("weeks", 0) * 604800
        + parts.get("days", 0) * 86400
        + parts.get("hours", 0) * 3600
        + parts.get("minutes", 0) * 60
        + parts.get("seconds", 0)
    )


def iso_time(text: str) -> float:
    """Epoch seconds of an ISO 8601 time (UTC when it names no zone); ValueError otherwise."""
    moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def invalid_parameters(message: str) -> ServiceError:
    return ServiceError("InvalidAutomationExecutionParametersException", message)
