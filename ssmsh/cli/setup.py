"""``ssmsh setup``: a Session document of ssmsh's own, for ``ssmsh exec``.

AWS-StartNonInteractiveCommand, the document every account has, makes the official
agent merge the command's stderr into its stdout and report no exit status (it does
both only for documents whose ``properties`` set ``separateOutputStream``:
``protocol/traces/noninteractive-*-exit-5.jsonl``). ``ssmsh exec`` gets the status
back anyway (:mod:`ssmsh.protocol.status_trailer`), but only a document can keep
stderr apart. ``ssmsh setup`` creates one, :data:`EXEC_DOCUMENT`, through
CreateDocument (or brings it up to date), and remembers, on this machine, that it
exists for this profile, region and endpoint; ``exec`` then uses it there. Should it
be gone or refused later (deleted, or an IAM policy that allows only AWS's
documents), ``exec`` falls back to AWS's document and forgets it.

The note is a small JSON file under ``$XDG_CACHE_HOME/ssmsh`` (``~/.cache/ssmsh``):
looking the document up on every run would cost a round trip each time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from ..exceptions import UsageError
from ..terminal.tty import Terminal
from .common import add_common_options
from .config import xdg_dir
from .errors import EXIT_OK
from .portsession import session_service
from .runtime import Reporter

__all__ = [
    "EXEC_DOCUMENT",
    "EXEC_DOCUMENT_CONTENT",
    "SETUP_DESCRIPTION",
    "configure_setup",
    "forget_exec_document",
    "remembered_exec_document",
    "run_setup",
]

logger = logging.getLogger(__name__)

#: The document ``ssmsh setup`` creates and ``ssmsh exec`` uses once it exists.
EXEC_DOCUMENT = "ssmsh-StartNonInteractiveCommand"

_PLATFORM = {"commands": "{{ command }}", "runAsElevated": False, "separateOutputStream": True}

#: Its content: AWS-StartNonInteractiveCommand's shape, with separate output streams.
EXEC_DOCUMENT_CONTENT: dict[str, Any] = {
    "schemaVersion": "1.0",
    "description": "ssmsh exec: run one command without a terminal, with its stdout and "
    "stderr apart and its exit status reported by the agent.",
    "sessionType": "NonInteractiveCommands",
    "parameters": {
        "command": {"type": "String", "description": "The command line to run."},
    },
    "properties": {"linux": dict(_PLATFORM), "macos": dict(_PLATFORM), "windows": dict(_PLATFORM)},
}


SETUP_DESCRIPTION = (
    f"Create (or update) the Session document {EXEC_DOCUMENT} in the "
    "account and region, so that ssmsh exec gets the command's stderr apart from its "
    "stdout and its exit status from the agent. Needs ssm:CreateDocument (and, to "
    "update it, ssm:GetDocument, ssm:UpdateDocument, ssm:UpdateDocumentDefaultVersion); "
    "exec then needs ssm:StartSession on it. Without it exec still reports the exit "
    "status, with stderr merged into stdout."
)


def configure_setup(parser: argparse.ArgumentParser) -> None:
    """``ssmsh setup``'s arguments."""
    parser.add_argument(
        "--print",
        action="store_true",
        help="only print the document's content (to create it by other means)",
    )
    add_common_options(parser, suppress=True)


async def run_setup(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    content = json.dumps(EXEC_DOCUMENT_CONTENT, indent=2)
    if args.print:
        print(content)
        return EXIT_OK
    if args.local:
        raise UsageError("--local starts a new emulator each time: there is nothing to set up")
    async with session_service(args, reporter) as aws:
        result = await aws.put_session_document(EXEC_DOCUMENT, content)
        region = aws.region or "the default region"
    remember_exec_document(args, EXEC_DOCUMENT)
    print(f"{EXEC_DOCUMENT}: {result} in {region}; ssmsh exec uses it from now on.")
    return EXIT_OK


# -------------------------------------------------------------- the local note


def _note_path() -> Path:
    return xdg_dir("XDG_CACHE_HOME", ".cache") / "exec-documents.json"


def _key(args: argparse.Namespace) -> str:
    """Which account view a document belongs to: profile, region and endpoint."""
    env = os.environ
    profile = getattr(args, "profile", None) or env.get("AWS_PROFILE") or "default"
    region = (
        getattr(args, "region", None)
        or env.get("AWS_REGION")
        or env.get("AWS_DEFAULT_REGION")
        or ""
    )
    endpoint = (
        getattr(args, "endpoint_url", None)
        or env.get("AWS_ENDPOINT_URL_SSM")
        or env.get("AWS_ENDPOINT_URL")
        or ""
    )
    return f"{profile}|{region}|{endpoint}"


def _read_notes() -> dict[str, str]:
    try:
        data = json.loads(_note_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items() if isinstance(v, str)}


def _write_notes(notes: dict[str, str]) -> None:
    path = _note_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".exec-documents.")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(notes, handle, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only home: exec keeps using AWS's document
        logger.debug("cannot write %s: %s", path, exc)
        with contextlib.suppress(OSError, UnboundLocalError):
            os.unlink(tmp)


def remember_exec_document(args: argparse.Namespace, name: str) -> None:
    notes = _read_notes()
    notes[_key(args)] = name
    _write_notes(notes)


def remembered_exec_document(args: argparse.Namespace) -> str | None:
    """The document ``ssmsh setup`` made for this profile, region and endpoint, if any."""
    if getattr(args, "local", False):
        return None
    return _read_notes().get(_key(args))


def forget_exec_document(args: argparse.Namespace) -> None:
    notes = _read_notes()
    if notes.pop(_key(args), None) is not None:
        _write_notes(notes)
