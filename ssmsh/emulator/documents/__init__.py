"""SSM documents in the emulator: the store, their content, and Session documents at StartSession.

- ``store.py``: the account's documents, with versions, owners and tags;
- ``content.py``: JSON/YAML content and the checks AWS makes on it;
- ``automation.py``: Automation runbooks (schemaVersion 0.3), checked and parsed;
- ``builtin.py``: the documents every account starts with (the AWS-owned Session
  documents, AWS-RunShellScript, and the account's SSM-SessionManagerRunShell);
- ``session.py``: a Session document applied to StartSession's Parameters.
"""

from __future__ import annotations

from .builtin import DEFAULT_DOCUMENT
from .session import (
    DOCUMENTS,
    Parameter,
    ResolvedDocument,
    SessionDocument,
    resolve_document,
    resolve_session,
)
from .store import (
    AMAZON,
    Document,
    DocumentStore,
    DocumentVersion,
    document_name,
    missing_document,
)

__all__ = [
    "AMAZON",
    "DEFAULT_DOCUMENT",
    "DOCUMENTS",
    "Document",
    "DocumentStore",
    "DocumentVersion",
    "Parameter",
    "ResolvedDocument",
    "SessionDocument",
    "document_name",
    "missing_document",
    "resolve_document",
    "resolve_session",
]
