"""The Session documents the emulator knows, and StartSession parameter validation.

Each document mirrors the public AWS document of the same name: its parameters (with
their defaults and allowed patterns) and the ``properties`` the agent receives, which
become the SessionType action's Properties in the handshake for ``Port`` sessions.
Parameter values are strings, as in the real documents (``{"portNumber": "22"}``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from .errors import ServiceError

__all__ = [
    "DEFAULT_DOCUMENT",
    "DOCUMENTS",
    "Parameter",
    "ResolvedDocument",
    "SessionDocument",
    "resolve_document",
]

#: The document StartSession uses when no DocumentName is given.
DEFAULT_DOCUMENT = "SSM-SessionManagerRunShell"

_PORT = (
    r"^([1-9]|[1-9][0-9]{1,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}"
    r"|655[0-2][0-9]|6553[0-5])$"
)
_LOCAL_PORT = (
    r"^([0-9]|[1-9][0-9]{1,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}"
    r"|655[0-2][0-9]|6553[0-5])$"
)
_HOST = r"^[^,$^&\(\)!;'\"<>\`{}\[\]\|#=]{3,}$"


@dataclasses.dataclass(frozen=True, slots=True)
class Parameter:
    """One String parameter of a document; ``default`` None means required."""

    name: str
    default: str | None = None
    allowed_pattern: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class SessionDocument:
    name: str
    #: Standard_Stream, InteractiveCommands, NonInteractiveCommands or Port.
    session_type: str
    parameters: tuple[Parameter, ...] = ()
    #: Handshake properties; string values may reference ``{{ parameter }}``.
    properties: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: Name of the parameter holding the command line, for the command documents.
    command_parameter: str | None = None


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


def _document_list() -> list[SessionDocument]:
    port = Parameter("portNumber", "80", _PORT)
    local_port = Parameter("localPortNumber", "0", _LOCAL_PORT)
    return [
        SessionDocument(DEFAULT_DOCUMENT, "Standard_Stream"),
        SessionDocument(
            "AWS-StartSSHSession",
            "Port",
            (Parameter("portNumber", "22", _PORT),),
            {"portNumber": "{{ portNumber }}"},
        ),
        SessionDocument(
            "AWS-StartPortForwardingSession",
            "Port",
            (port, local_port),
            {
                "portNumber": "{{ portNumber }}",
                "type": "LocalPortForwarding",
                "localPortNumber": "{{ localPortNumber }}",
            },
        ),
        SessionDocument(
            "AWS-StartPortForwardingSessionToRemoteHost",
            "Port",
            (Parameter("host", None, _HOST), port, local_port),
            {
                "portNumber": "{{ portNumber }}",
                "type": "LocalPortForwarding",
                "localPortNumber": "{{ localPortNumber }}",
                "host": "{{ host }}",
            },
        ),
        SessionDocument(
            "AWS-StartInteractiveCommand",
            "InteractiveCommands",
            (Parameter("command"),),
            command_parameter="command",
        ),
        SessionDocument(
            "AWS-StartNonInteractiveCommand",
            "NonInteractiveCommands",
            (Parameter("command"),),
            command_parameter="command",
        ),
    ]


#: Known documents by name.
DOCUMENTS: dict[str, SessionDocument] = {doc.name: doc for doc in _document_list()}

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")


def _document_name(name: str | None) -> str:
    if not name:
        return DEFAULT_DOCUMENT
    # An ARN names the document after "document/".
    if name.startswith("arn:") and ":document/" in name:
        return name.rsplit(":document/", 1)[1]
    return name


def _invalid(message: str) -> ServiceError:
    return ServiceError("InvalidParameters", message)


def resolve_document(
    name: str | None, parameters: Mapping[str, list[str]] | None
) -> ResolvedDocument:
    """Validate StartSession's DocumentName and Parameters like the service does.

    Raises ServiceError ``InvalidDocument`` for an unknown document and
    ``InvalidParameters`` for undefined, missing, multi-valued or non-matching parameters.
    """
    doc_name = _document_name(name)
    doc = DOCUMENTS.get(doc_name)
    if doc is None:
        raise ServiceError("InvalidDocument", f"Document with name {doc_name} does not exist.")
    given = dict(parameters or {})
    known = {p.name for p in doc.parameters}
    for key in given:
        if key not in known:
            raise _invalid(f'Parameter "{key}" is not defined in document {doc.name}.')
    values: dict[str, str] = {}
    for param in doc.parameters:
        supplied = given.get(param.name)
        if supplied is None:
            if param.default is None:
                raise _invalid(f'Parameter "{param.name}" is required but was not provided.')
            values[param.name] = param.default
            continue
        if len(supplied) != 1:
            raise _invalid(
                f'Parameter "{param.name}" expects one value but {len(supplied)} were given.'
            )
        value = supplied[0]
        if param.allowed_pattern is not None and not re.match(param.allowed_pattern, value):
            raise _invalid(
                f'Parameter "{param.name}" has value "{value}" not matching '
                f'"{param.allowed_pattern}".'
            )
        values[param.name] = value
    properties: dict[str, Any] = {
        key: _PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), template)
        for key, template in doc.properties.items()
    }
    command = values.get(doc.command_parameter) if doc.command_parameter else None
    return ResolvedDocument(
        name=doc.name,
        session_type=doc.session_type,
        properties=properties,
        parameters={key: [value] for key, value in values.items()},
        command=command,
    )
