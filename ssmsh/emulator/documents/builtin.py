"""The documents every emulated account starts with.

The AWS-owned ones (Owner ``Amazon``) mirror the structure of the public documents of
the same name: session type, parameters with their types, defaults and allowed patterns,
and the ``properties`` the agent receives. Descriptions are our own words.

``SSM-SessionManagerRunShell`` is different: in AWS it belongs to the account. It does
not exist until someone saves Session Manager preferences (console, or CreateDocument);
after that UpdateDocument is how preferences change. The emulator starts with it already
created (version 1, the default preferences below), as in an account whose preferences
were saved once, so that UpdateDocument works at once and CreateDocument answers
DocumentAlreadyExists, as it would there. It can be deleted and created again; while it
does not exist, sessions get the default preferences (see ``session.py``).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "AWS_DOCUMENTS",
    "DEFAULT_DOCUMENT",
    "DEFAULT_PREFERENCES",
    "HOST_PATTERN",
    "LOCAL_PORT_PATTERN",
    "PORT_PATTERN",
    "preferences_content",
]

#: The document StartSession uses when no DocumentName is given (the account's
#: Session Manager preferences).
DEFAULT_DOCUMENT = "SSM-SessionManagerRunShell"

#: A TCP port, 1-65535.
PORT_PATTERN = (
    r"^([1-9]|[1-9][0-9]{1,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}"
    r"|655[0-2][0-9]|6553[0-5])$"
)
#: A local port, 0-65535 (0: any free port).
LOCAL_PORT_PATTERN = (
    r"^([0-9]|[1-9][0-9]{1,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}"
    r"|655[0-2][0-9]|6553[0-5])$"
)
#: A host name or address: three characters or more, no shell metacharacters.
HOST_PATTERN = r"^[^,$^&\(\)!;'\"<>\`{}\[\]\|#=]{3,}$"

#: Session Manager preferences as the console saves them the first time.
DEFAULT_PREFERENCES: dict[str, Any] = {
    "s3BucketName": "",
    "s3KeyPrefix": "",
    "s3EncryptionEnabled": True,
    "cloudWatchLogGroupName": "",
    "cloudWatchEncryptionEnabled": True,
    "cloudWatchStreamingEnabled": True,
    "kmsKeyId": "",
    "runAsEnabled": False,
    "runAsDefaultUser": "",
    "idleSessionTimeout": "20",
    "maxSessionDuration": "",
    "shellProfile": {"windows": "", "linux": ""},
}


def preferences_content(inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """SSM-SessionManagerRunShell's content for the given preferences."""
    return {
        "schemaVersion": "1.0",
        "description": "Session Manager preferences of this account and Region.",
        "sessionType": "Standard_Stream",
        "inputs": json.loads(json.dumps(DEFAULT_PREFERENCES if inputs is None else inputs)),
    }


def _port(default: str, description: str) -> dict[str, Any]:
    return {
        "type": "String",
        "description": description,
        "allowedPattern": PORT_PATTERN,
        "default": default,
    }


_LOCAL_PORT = {
    "type": "String",
    "description": "(Optional) Local port to listen on; 0 picks a free port.",
    "allowedPattern": LOCAL_PORT_PATTERN,
    "default": "0",
}


def _command_document(session_type: str, description: str) -> dict[str, Any]:
    per_platform = {"commands": "{{command}}", "runAsElevated": False}
    return {
        "schemaVersion": "1.0",
        "description": description,
        "sessionType": session_type,
        "parameters": {
            "command": {"type": "String", "description": "The command line to run."},
        },
        "properties": {
            "windows": dict(per_platform),
            "linux": dict(per_platform),
            "macos": dict(per_platform),
        },
    }


#: Amazon-owned documents by name: (document type, content).
AWS_DOCUMENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "AWS-StartSSHSession": (
        "Session",
        {
            "schemaVersion": "1.0",
            "description": "Tunnels an SSH connection to the instance through Session Manager.",
            "sessionType": "Port",
            "parameters": {
                "portNumber": _port("22", "(Optional) Port of the SSH server on the instance."),
            },
            "properties": {"portNumber": "{{ portNumber }}"},
        },
    ),
    "AWS-StartPortForwardingSession": (
        "Session",
        {
            "schemaVersion": "1.0",
            "description": "Forwards a local port to a port on the instance.",
            "sessionType": "Port",
            "parameters": {
                "portNumber": _port("80", "(Optional) Port on the instance to forward to."),
                "localPortNumber": _LOCAL_PORT,
            },
            "properties": {
                "portNumber": "{{ portNumber }}",
                "type": "LocalPortForwarding",
                "localPortNumber": "{{ localPortNumber }}",
            },
        },
    ),
    "AWS-StartPortForwardingSessionToRemoteHost": (
        "Session",
        {
            "schemaVersion": "1.0",
            "description": "Forwards a local port, through the instance, to another host.",
            "sessionType": "Port",
            "parameters": {
                "host": {
                    "type": "String",
                    "description": "(Required) Host name or address the instance connects to.",
                    "allowedPattern": HOST_PATTERN,
                },
                "portNumber": _port("80", "(Optional) Port on the remote host."),
                "localPortNumber": _LOCAL_PORT,
            },
            "properties": {
                "portNumber": "{{ portNumber }}",
                "type": "LocalPortForwarding",
                "localPortNumber": "{{ localPortNumber }}",
                "host": "{{ host }}",
            },
        },
    ),
    "AWS-StartInteractiveCommand": (
        "Session",
        _command_document("InteractiveCommands", "Runs one command on the instance in a terminal."),
    ),
    "AWS-StartNonInteractiveCommand": (
        "Session",
        _command_document(
            "NonInteractiveCommands", "Runs one command on the instance without a terminal."
        ),
    ),
    "AWS-RunShellScript": (
        "Command",
        {
            "schemaVersion": "1.2",
            "description": "Runs shell commands or a script on Linux and macOS instances.",
            "parameters": {
                "commands": {
                    "type": "StringList",
                    "description": "(Required) The commands or script to run.",
                    "minItems": 1,
                    "displayType": "textarea",
                },
                "workingDirectory": {
                    "type": "String",
                    "default": "",
                    "description": "(Optional) Directory to run the commands in.",
                    "maxChars": 4096,
                },
                "executionTimeout": {
                    "type": "String",
                    "default": "3600",
                    "description": "(Optional) Seconds before the command counts as failed "
                    "(at most 172800).",
                    "allowedPattern": "([1-9][0-9]{0,4})|(1[0-6][0-9]{4})|(17[0-1][0-9]{3})"
                    "|(172[0-7][0-9]{2})|(172800)",
                },
            },
            "runtimeConfig": {
                "aws:runShellScript": {
                    "properties": [
                        {
                            "id": "0.aws:runShellScript",
                            "runCommand": "{{ commands }}",
                            "workingDirectory": "{{ workingDirectory }}",
                            "timeoutSeconds": "{{ executionTimeout }}",
                        }
                    ]
                }
            },
        },
    ),
}
