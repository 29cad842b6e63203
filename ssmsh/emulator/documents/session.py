"""Session documents applied to StartSession: parameters, properties and preferences.

:func:`resolve_session` checks StartSession's Parameters against a Session document's
declarations (``InvalidParameters`` for undefined, missing, multi-valued or non-matching
values), fills ``{{ parameter }}`` placeholders into its ``properties`` and ``inputs``,
and works out the session's effective preferences (``inputs``).

Whose preferences apply: the account's ``SSM-SessionManagerRunShell`` preferences apply
to every session, whatever its document; a document's own ``inputs`` override them key
by key. Sources: the AWS guide "Create Session Manager preferences (command line)"
(https://docs.aws.amazon.com/systems-manager/latest/userguide/getting-started-create-preferences-cli.html)
describes custom Session documents' inputs as overriding the account-level settings; an
AWS engineer answering a port-forwarding question about AWS-StartPortForwardingSession
pointed to the idle-timeout and maximum-duration preferences
(https://github.com/aws/session-manager-plugin/issues/83, 2024-05-03); and the agent
receives a KMS key with Port sessions (AWS-StartPortForwardingSession has no inputs, so
it can only come from the account's preferences) and deliberately does not encrypt them
(amazon-ssm-agent ``agent/session/plugins/sessionplugin/sessionplugin.go``,
``isEncryptionEnabled``).

The older interface is kept: :data:`DOCUMENTS` (built-in Session documents as
:class:`SessionDocument`, which tests may extend) and :func:`resolve_document`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any

from ..errors import ServiceError
from .builtin import AWS_DOCUMENTS, DEFAULT_DOCUMENT, DEFAULT_PREFERENCES
from .content import PLACEHOLDER
from .store import document_name, missing_document

__all__ = [
    "DEFAULT_DOCUMENT",
    "DOCUMENTS",
    "Parameter",
    "ResolvedDocument",
    "SessionDocument",
    "fill_parameters",
    "parameter_values",
    "resolve_document",
    "resolve_session",
]

_COMMAND_TYPES = ("InteractiveCommands", "NonInteractiveCommands")
_BOOLEAN_INPUTS = (
    "s3EncryptionEnabled",
    "cloudWatchEncryptionEnabled",
    "cloudWatchStreamingEnabled",
    "runAsEnabled",
)
_PLATFORM_KEYS = ("linux", "windows", "macos")


@dataclasses.dataclass(frozen=True, slots=True)
class Parameter:
    """One String parameter of a document; ``default`` None means required."""

    name: str
    default: str | None = None
    allowed_pattern: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class SessionDocument:
    """A Session document in short form (see :meth:`content` for the full one)."""

    name: str
    #: Standard_Stream, InteractiveCommands, NonInteractiveCommands or Port.
    session_type: str
    parameters: tuple[Parameter, ...] = ()
    #: Handshake properties; string values may reference ``{{ parameter }}``.
    properties: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: Name of the parameter holding the command line, for the command documents.
    command_parameter: str | None = None

    def content(self) -> dict[str, Any]:
        """The document's content, as CreateDocument would take it."""
        parameters: dict[str, Any] = {}
        for param in self.parameters:
            definition: dict[str, Any] = {"type": "String"}
            if param.default is not None:
                definition["default"] = param.default
            if param.allowed_pattern is not None:
                definition["allowedPattern"] = param.allowed_pattern
            parameters[param.name] = definition
        properties: dict[str, Any] = dict(self.properties)
        if self.command_parameter:
            command = {"commands": f"{{{{ {self.command_parameter} }}}}", "runAsElevated": False}
            properties = {key: dict(command) for key in _PLATFORM_KEYS}
        return {
            "schemaVersion": "1.0",
            "sessionType": self.session_type,
            "parameters": parameters,
            "properties": properties,
        }

    @classmethod
    def from_content(cls, name: str, data: Mapping[str, Any]) -> SessionDocument:
        definitions = data.get("parameters") or {}
        parameters = tuple(
            Parameter(key, d.get("default"), d.get("allowedPattern"))
            for key, d in definitions.items()
        )
        session_type = str(data.get("sessionType"))
        properties = dict(data.get("properties") or {})
        command: str | None = None
        if session_type in _COMMAND_TYPES:
            match = PLACEHOLDER.fullmatch(str(properties.get("linux", {}).get("commands", "")))
            command = match.group(1) if match else None
            properties = {}
        return cls(name, session_type, parameters, properties, command)


@dataclasses.dataclass(frozen=True, slots=True)
class ResolvedDocument:
    """A document applied to StartSession's Parameters."""

    name: str
    session_type: str
    #: Properties for the handshake (empty for non-Port session types).
    properties: dict[str, Any]
    #: Every parameter with its effective value (defaults filled in), as lists of strings.
    parameters: dict[str, list[str]]
    command: str | None
    #: The document's whole ``properties`` with the parameters filled in.
    document_properties: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: The session's effective preferences: the account's, overridden by the document's.
    inputs: dict[str, Any] = dataclasses.field(default_factory=dict)


def _invalid(message: str) -> ServiceError:
    return ServiceError("InvalidParameters", message)


def _values(
    name: str, definitions: Mapping[str, Any], given: Mapping[str, list[str]]
) -> dict[str, Any]:
    """Each declared parameter's effective value (str, or list for the list types)."""
    for key in given:
        if key not in definitions:
            raise _invalid(f'Parameter "{key}" is not defined in document {name}.')
    values: dict[str, Any] = {}
    for key, definition in definitions.items():
        kind = definition.get("type", "String")
        supplied = given.get(key)
        if supplied is None:
            if "default" not in definition:
                raise _invalid(f'Parameter "{key}" is required but was not provided.')
            values[key] = definition["default"]
            continue
        if kind in ("StringList", "MapList"):
            _check_count(key, definition, len(supplied))
            items = list(supplied)
        elif len(supplied) != 1:
            raise _invalid(f'Parameter "{key}" expects one value but {len(supplied)} were given.')
        else:
            items = [supplied[0]]
        for value in items:
            _check_value(key, kind, definition, value)
        values[key] = items if kind in ("StringList", "MapList") else items[0]
    return values


def _check_count(key: str, definition: Mapping[str, Any], count: int) -> None:
    low, high = definition.get("minItems"), definition.get("maxItems")
    if (low is not None and count < low) or (high is not None and count > high):
        raise _invalid(
            f'Parameter "{key}" has {count} values; it takes from {low or 0} to '
            f"{high if high is not None else 'any number of'}."
        )


def _check_value(key: str, kind: str, definition: Mapping[str, Any], value: str) -> None:
    if kind == "Boolean" and value not in ("true", "false"):
        raise _invalid(f'Parameter "{key}" is a Boolean: "true" or "false", not "{value}".')
    if kind == "Integer" and not re.fullmatch(r"-?[0-9]+", value):
        raise _invalid(f'Parameter "{key}" is an Integer, not "{value}".')
    pattern = definition.get("allowedPattern")
    if pattern is not None and not re.match(pattern, value):
        raise _invalid(f'Parameter "{key}" has value "{value}" not matching "{pattern}".')
    allowed = definition.get("allowedValues")
    if allowed is not None and value not in allowed:
        raise _invalid(f'Parameter "{key}" has value "{value}", not one of {", ".join(allowed)}.')
    low, high = definition.get("minChars"), definition.get("maxChars")
    if (low is not None and len(value) < low) or (high is not None and len(value) > high):
        raise _invalid(f'Parameter "{key}" has {len(value)} characters, out of range.')


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _substitute(value: Any, values: Mapping[str, Any]) -> Any:
    """``value`` with every ``{{ name }}`` filled in (a lone placeholder keeps its type)."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole and not whole.group(1).startswith("ssm:"):
            return json.loads(json.dumps(values.get(whole.group(1), "")))

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            return match.group(0) if name.startswith("ssm:") else _text(values.get(name, ""))

        return PLACEHOLDER.sub(fill, value)
    if isinstance(value, dict):
        return {key: _substitute(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, values) for item in value]
    return value


def _normalized(inputs: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(inputs)
    for key in _BOOLEAN_INPUTS:
        if isinstance(result.get(key), str):
            result[key] = result[key].strip().lower() == "true"
    for key in ("idleSessionTimeout", "maxSessionDuration"):
        if result.get(key) is not None:
            result[key] = _text(result[key])
    profile = result.get("shellProfile")
    result["shellProfile"] = {
        "windows": "",
        "linux": "",
        **(profile if isinstance(profile, dict) else {}),
    }
    return result


def resolve_session(
    name: str,
    data: Mapping[str, Any],
    parameters: Mapping[str, list[str]] | None = None,
    *,
    preferences: Mapping[str, Any] | None = None,
    platform: str = "Linux",
) -> ResolvedDocument:
    """Apply StartSession's Parameters to a Session document's content ``data``.

    ``preferences`` are the account's (SSM-SessionManagerRunShell's) resolved inputs;
    None means the built-in defaults. ``platform`` picks the command of a command
    document (``properties.linux`` for Linux targets...).
    """
    values = _values(name, data.get("parameters") or {}, dict(parameters or {}))
    session_type = str(data.get("sessionType"))
    document_properties = _substitute(dict(data.get("properties") or {}), values)
    own_inputs = _substitute(dict(data.get("inputs") or {}), values)
    base = DEFAULT_PREFERENCES if preferences is None else preferences
    command: str | None = None
    if session_type in _COMMAND_TYPES:
        command = _command(document_properties, platform)
    return ResolvedDocument(
        name=name,
        session_type=session_type,
        properties=dict(document_properties) if session_type == "Port" else {},
        parameters={
            key: [_text(v) for v in value] if isinstance(value, list) else [_text(value)]
            for key, value in values.items()
        },
        command=command,
        document_properties=document_properties,
        inputs=_normalized({**base, **own_inputs}),
    )


def _command(properties: Mapping[str, Any], platform: str) -> str | None:
    wanted = platform.lower()
    keys = [wanted] + [k for k in _PLATFORM_KEYS if k != wanted]
    for key in keys:
        section = properties.get(key)
        if isinstance(section, dict) and section.get("commands") is not None:
            commands = section["commands"]
            return (
                "\n".join(map(_text, commands)) if isinstance(commands, list) else _text(commands)
            )
    return None


def _document_list() -> list[SessionDocument]:
    documents = [SessionDocument(DEFAULT_DOCUMENT, "Standard_Stream")]
    for name, (document_type, data) in AWS_DOCUMENTS.items():
        if document_type == "Session":
            documents.append(SessionDocument.from_content(name, data))
    return documents


#: The built-in Session documents by name, in short form.
DOCUMENTS: dict[str, SessionDocument] = {doc.name: doc for doc in _document_list()}


def resolve_document(
    name: str | None, parameters: Mapping[str, list[str]] | None
) -> ResolvedDocument:
    """Validate StartSession's DocumentName and Parameters against :data:`DOCUMENTS`.

    Raises ServiceError ``InvalidDocument`` for an unknown document and
    ``InvalidParameters`` for undefined, missing, multi-valued or non-matching parameters.
    """
    doc_name = document_name(name) if name else DEFAULT_DOCUMENT
    doc = DOCUMENTS.get(doc_name)
    if doc is None:
        raise missing_document(doc_name)
    return resolve_session(doc.name, doc.content(), parameters)


#: Shared with Run Command (``ssmsh.emulator.commands``): the same parameter checks
#: (InvalidParameters) and ``{{ name }}`` substitution as for Session documents.
parameter_values = _values
fill_parameters = _substitute
