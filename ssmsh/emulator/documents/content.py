"""Document content: JSON and YAML in and out, and the checks AWS makes on it.

Session documents are checked the way the service checks them (schemaVersion ``1.0``,
a known ``sessionType``, typed parameters, known ``inputs``); Command documents only as
far as Run Command will need (schemaVersion 1.2/2.0/2.2 with ``runtimeConfig`` or
``mainSteps``); other types only for being an object with a schemaVersion. Failures
raise ServiceError ``InvalidDocumentContent`` or ``InvalidDocumentSchemaVersion``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from ..errors import ServiceError

__all__ = [
    "PARAMETER_TYPES",
    "PLACEHOLDER",
    "SESSION_TYPES",
    "invalid_content",
    "parameter_list",
    "parse_content",
    "placeholders",
    "platform_types",
    "render_content",
    "schema_version",
    "validate_content",
    "validate_parameters",
]

SESSION_TYPES = ("Standard_Stream", "InteractiveCommands", "NonInteractiveCommands", "Port")
PARAMETER_TYPES = ("String", "StringList", "Integer", "Boolean", "MapList", "StringMap")
_COMMAND_SCHEMAS = ("1.2", "2.0", "2.2")
_SESSION_KEYS = (
    "schemaVersion",
    "description",
    "sessionType",
    "inputs",
    "parameters",
    "properties",
)
_PARAMETER_KEYS = frozenset(
    {
        "type",
        "description",
        "default",
        "allowedValues",
        "allowedPattern",
        "displayType",
        "minItems",
        "maxItems",
        "minChars",
        "maxChars",
    }
)
_PARAMETER_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
#: ``{{ name }}`` references; ``{{ ssm:name }}`` ones name Parameter Store parameters.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.:/\-]+)\s*\}\}")
#: Session preferences (``inputs``) and the JSON type of each.
_INPUTS: dict[str, type] = {
    "s3BucketName": str,
    "s3KeyPrefix": str,
    "s3EncryptionEnabled": bool,
    "cloudWatchLogGroupName": str,
    "cloudWatchEncryptionEnabled": bool,
    "cloudWatchStreamingEnabled": bool,
    "kmsKeyId": str,
    "runAsEnabled": bool,
    "runAsDefaultUser": str,
    "idleSessionTimeout": str,
    "maxSessionDuration": str,
    "shellProfile": dict,
}
#: Minutes allowed for the two timeouts ("" means the default).
_MINUTES = {"idleSessionTimeout": 60, "maxSessionDuration": 1440}
_PLATFORMS = ["Windows", "Linux", "MacOS"]
_ACTION_PLATFORMS = {"aws:runShellScript": ["Linux", "MacOS"]}


def invalid_content(message: str) -> ServiceError:
    return ServiceError("InvalidDocumentContent", message)


# -- formats --------------------------------------------------------------------------


def parse_content(text: str, document_format: str) -> dict[str, Any]:
    """The content as data; InvalidDocumentContent if it is not an object in that format."""
    if document_format == "TEXT":
        raise invalid_content("The TEXT format is only for documents that are not JSON or YAML.")
    try:
        data = json.loads(text) if document_format == "JSON" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise invalid_content(f"The content is not valid {document_format}: {detail}") from None
    if not isinstance(data, dict):
        raise invalid_content(f"The content must be a {document_format} object.")
    return data


def render_content(data: Mapping[str, Any], document_format: str) -> str:
    """The content as text in ``document_format`` (JSON or YAML)."""
    if document_format == "YAML":
        text: str = yaml.safe_dump(
            dict(data), sort_keys=False, allow_unicode=True, explicit_start=True, width=4096
        )
        return text
    return json.dumps(data, indent=2, ensure_ascii=False)


def schema_version(data: Mapping[str, Any]) -> str:
    """``schemaVersion`` as text (YAML may have read ``1.0`` as a number)."""
    value = data.get("schemaVersion")
    return "" if value is None or isinstance(value, bool) else str(value)


# -- checks ---------------------------------------------------------------------------


def validate_content(data: Mapping[str, Any], document_type: str) -> None:
    """Check a document's content for its type, as CreateDocument/UpdateDocument do."""
    version = schema_version(data)
    if not version:
        raise invalid_content("The document has no schemaVersion.")
    if document_type == "Session":
        _validate_session(data, version)
    elif document_type == "Command":
        _validate_command(data, version)


def _validate_session(data: Mapping[str, Any], version: str) -> None:
    if version != "1.0":
        raise ServiceError(
            "InvalidDocumentSchemaVersion",
            f"Session documents support schemaVersion 1.0 only, not {version}.",
        )
    unknown = sorted(set(data) - set(_SESSION_KEYS))
    if unknown:
        raise invalid_content(
            f"Unknown top-level key(s) {', '.join(unknown)}: a Session document has only "
            f"{', '.join(_SESSION_KEYS)}."
        )
    session_type = data.get("sessionType")
    if session_type not in SESSION_TYPES:
        raise invalid_content(
            f"sessionType must be one of {', '.join(SESSION_TYPES)}, not {session_type!r}."
        )
    declared = _validate_parameters(data.get("parameters"))
    inputs = data.get("inputs")
    if inputs is None:
        if session_type == "Standard_Stream":
            raise invalid_content("A Standard_Stream document needs inputs.")
    else:
        _validate_inputs(inputs)
    properties = data.get("properties")
    if properties is not None and not isinstance(properties, dict):
        raise invalid_content("properties must be an object.")
    _check_references({"inputs": inputs, "properties": properties}, declared)


def _validate_command(data: Mapping[str, Any], version: str) -> None:
    if version not in _COMMAND_SCHEMAS:
        raise ServiceError(
            "InvalidDocumentSchemaVersion",
            f"Command documents support schemaVersion {', '.join(_COMMAND_SCHEMAS)}, "
            f"not {version}.",
        )
    declared = _validate_parameters(data.get("parameters"))
    if version == "1.2":
        runtime = data.get("runtimeConfig")
        if not isinstance(runtime, dict) or not runtime:
            raise invalid_content("A schemaVersion 1.2 document needs a runtimeConfig object.")
        _check_references({"runtimeConfig": runtime}, declared)
        return
    steps = data.get("mainSteps")
    if not isinstance(steps, list) or not steps:
        raise invalid_content(f"A schemaVersion {version} document needs mainSteps.")
    names: set[str] = set()
    for index, step in enumerate(steps, start=1):
        if not isinstance(step, dict) or not step.get("action") or not step.get("name"):
            raise invalid_content(f"mainSteps item {index} needs an action and a name.")
        if step["name"] in names:
            raise invalid_content(f"mainSteps has two steps named {step['name']!r}.")
        names.add(step["name"])
    _check_references({"mainSteps": steps}, declared)


def validate_parameters(parameters: Any) -> set[str]:
    """Check a ``parameters`` section; the declared names."""
    return _validate_parameters(parameters)


def _validate_parameters(parameters: Any) -> set[str]:
    if parameters is None:
        return set()
    if not isinstance(parameters, dict):
        raise invalid_content("parameters must be an object.")
    for name, definition in parameters.items():
        where = f'Parameter "{name}"'
        if not _PARAMETER_NAME.match(str(name)):
            raise invalid_content(f"{where}: names use letters, digits, '_', '.' and '-'.")
        if not isinstance(definition, dict):
            raise invalid_content(f"{where} must be an object.")
        unknown = sorted(set(definition) - _PARAMETER_KEYS)
        if unknown:
            raise invalid_content(f"{where} has unknown attribute(s) {', '.join(unknown)}.")
        kind = definition.get("type")
        if kind not in PARAMETER_TYPES:
            raise invalid_content(
                f"{where} has type {kind!r}; the types are {', '.join(PARAMETER_TYPES)}."
            )
        if "default" in definition and not _has_type(definition["default"], kind):
            raise invalid_content(f"{where} has a default value that is not a {kind}.")
        pattern = definition.get("allowedPattern")
        if pattern is not None:
            try:
                re.compile(str(pattern))
            except re.error as exc:
                raise invalid_content(f"{where} has an invalid allowedPattern: {exc}.") from None
        allowed = definition.get("allowedValues")
        if allowed is not None and not (
            isinstance(allowed, list) and all(isinstance(v, str) for v in allowed)
        ):
            raise invalid_content(f"{where}: allowedValues must be a list of strings.")
        for bound in ("minItems", "maxItems", "minChars", "maxChars"):
            value = definition.get(bound)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise invalid_content(f"{where}: {bound} must be a whole number.")
    return {str(name) for name in parameters}


def _has_type(value: Any, kind: str) -> bool:
    if kind == "String":
        return isinstance(value, str)
    if kind == "StringList":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "Integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "Boolean":
        return isinstance(value, bool)
    if kind == "MapList":
        return isinstance(value, list) and all(isinstance(v, dict) for v in value)
    return isinstance(value, dict)  # StringMap


def _validate_inputs(inputs: Any) -> None:
    if not isinstance(inputs, dict):
        raise invalid_content("inputs must be an object.")
    for key, value in inputs.items():
        expected = _INPUTS.get(key)
        if expected is None:
            raise invalid_content(f"Unknown input {key!r}; the inputs are {', '.join(_INPUTS)}.")
        if isinstance(value, str) and PLACEHOLDER.fullmatch(value.strip()):
            continue  # a parameter fills it in at StartSession
        if expected is bool:
            if not (isinstance(value, bool) or str(value).lower() in ("true", "false")):
                raise invalid_content(f"Input {key} must be true or false, not {value!r}.")
        elif expected is dict:
            if not isinstance(value, dict) or not all(
                k in ("windows", "linux") and isinstance(v, str) for k, v in value.items()
            ):
                raise invalid_content(
                    "Input shellProfile maps windows and/or linux to a string of commands."
                )
        elif not isinstance(value, str):
            raise invalid_content(f"Input {key} must be a string, not {value!r}.")
        elif key in _MINUTES and value and not _minutes_ok(value, _MINUTES[key]):
            raise invalid_content(
                f"Input {key} is a number of minutes from 1 to {_MINUTES[key]}, not {value!r}."
            )


def _minutes_ok(value: str, limit: int) -> bool:
    return value.isdigit() and 1 <= int(value) <= limit


def _check_references(sections: Mapping[str, Any], declared: set[str]) -> None:
    for section, value in sections.items():
        for name in placeholders(value):
            if not name.startswith("ssm:") and name not in declared:
                raise invalid_content(
                    f'{section} uses the parameter "{name}", which the document does not declare.'
                )


def placeholders(value: Any) -> Iterator[str]:
    """Every ``{{ name }}`` referenced anywhere in ``value``."""
    if isinstance(value, str):
        for match in PLACEHOLDER.finditer(value):
            yield match.group(1)
    elif isinstance(value, dict):
        for item in value.values():
            yield from placeholders(item)
    elif isinstance(value, list):
        for item in value:
            yield from placeholders(item)


# -- what DescribeDocument reports ----------------------------------------------------


def parameter_list(data: Mapping[str, Any]) -> list[dict[str, str]]:
    """DescribeDocument's Parameters: Name, Type, Description, DefaultValue (as text)."""
    result: list[dict[str, str]] = []
    parameters = data.get("parameters")
    if not isinstance(parameters, dict):
        return result
    for name, definition in parameters.items():
        if not isinstance(definition, dict):
            continue
        item = {"Name": str(name), "Type": _reported_type(definition.get("type"))}
        if definition.get("description") is not None:
            item["Description"] = str(definition["description"])
        if "default" in definition:
            default = definition["default"]
            item["DefaultValue"] = default if isinstance(default, str) else json.dumps(default)
        result.append(item)
    return result


def _reported_type(kind: Any) -> str:
    """A parameter's type as DescribeDocument reports it: the model's DocumentParameterType
    has String and StringList only, so list types (StringList, MapList, ``List<AWS::...>``)
    are StringList and the others (Integer, Boolean, StringMap, ``AWS::...``) String."""
    text = str(kind or "String")
    return (
        "StringList" if text in ("StringList", "MapList") or text.startswith("List<") else "String"
    )


def platform_types(data: Mapping[str, Any], document_type: str) -> list[str]:
    """The platforms a document runs on (Command: from its plugins; else all)."""
    if document_type != "Command":
        return list(_PLATFORMS)
    actions: list[str] = []
    runtime = data.get("runtimeConfig")
    if isinstance(runtime, dict):
        actions += [str(action) for action in runtime]
    steps = data.get("mainSteps")
    if isinstance(steps, list):
        actions += [str(step.get("action")) for step in steps if isinstance(step, dict)]
    found: list[str] = []
    for action in actions:
        for platform in _ACTION_PLATFORMS.get(action, _PLATFORMS):
            if platform not in found:
                found.append(platform)
    return [p for p in _PLATFORMS if p in found] or list(_PLATFORMS)
