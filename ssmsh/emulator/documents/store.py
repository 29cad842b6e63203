"""The account's SSM documents: versions, the default version, owners and tags.

Holds what CreateDocument, UpdateDocument, UpdateDocumentDefaultVersion,
DescribeDocument, GetDocument, ListDocuments and DeleteDocument work on, for every
document type (Session, Command for Run Command, Automation runbooks). Refusals raise
ServiceError with the codes the real service uses. No I/O.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Iterator
from typing import Any

from ..errors import ServiceError
from .automation import parse_runbook
from .builtin import AWS_DOCUMENTS, DEFAULT_DOCUMENT, preferences_content
from .content import invalid_content, parse_content, render_content, validate_content

__all__ = [
    "AMAZON",
    "Document",
    "DocumentStore",
    "DocumentVersion",
    "document_name",
    "missing_document",
]

#: Owner of the AWS-provided documents.
AMAZON = "Amazon"
#: CreateDocument/UpdateDocument refuse larger content (MaxDocumentSizeExceeded).
MAX_CONTENT_BYTES = 64 * 1024
#: UpdateDocument refuses a version beyond this many (DocumentVersionLimitExceeded).
MAX_VERSIONS = 1000
_RESERVED_PREFIXES = ("aws", "amazon", "amzn")


def document_name(name: str) -> str:
    """A document name from a name or an ARN (``arn:aws:ssm:…:document/NAME``)."""
    if name.startswith("arn:") and ":document/" in name:
        return name.rsplit(":document/", 1)[1]
    return name


@dataclasses.dataclass(slots=True)
class DocumentVersion:
    """One version of a document's content."""

    version: int
    content: str
    document_format: str
    data: dict[str, Any]
    created: float
    version_name: str | None = None
    target_type: str | None = None

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.content.encode()).hexdigest()

    def content_as(self, document_format: str | None) -> str:
        """The content in ``document_format``, converted if it was stored in another."""
        if document_format is None or document_format == self.document_format:
            return self.content
        return render_content(self.data, document_format)


@dataclasses.dataclass(slots=True)
class Document:
    """A named document and all its versions."""

    name: str
    document_type: str
    owner: str
    created: float
    versions: dict[int, DocumentVersion] = dataclasses.field(default_factory=dict)
    default_version: int = 1
    display_name: str | None = None
    tags: list[dict[str, str]] = dataclasses.field(default_factory=list)

    @property
    def latest_version(self) -> int:
        return max(self.versions)

    @property
    def amazon_owned(self) -> bool:
        return self.owner == AMAZON

    def version(
        self, selector: str | None = None, version_name: str | None = None
    ) -> DocumentVersion:
        """The version named by ``$LATEST``, ``$DEFAULT``, a number or a VersionName."""
        if version_name is not None:
            for candidate in self.versions.values():
                if candidate.version_name == version_name and (
                    selector is None or self._number(selector) == candidate.version
                ):
                    return candidate
            raise _bad_version(self.name, version_name)
        number = self.default_version if selector is None else self._number(selector)
        found = self.versions.get(number)
        if found is None:
            raise _bad_version(self.name, selector or "")
        return found

    def _number(self, selector: str) -> int:
        if selector == "$LATEST":
            return self.latest_version
        if selector == "$DEFAULT":
            return self.default_version
        if selector.isdigit():
            return int(selector)
        raise _bad_version(self.name, selector)


def _bad_version(name: str, selector: str) -> ServiceError:
    return ServiceError("InvalidDocumentVersion", f"Document {name} has no version {selector!r}.")


def missing_document(name: str) -> ServiceError:
    """InvalidDocument for a name that names no document."""
    return ServiceError("InvalidDocument", f"Document with name {name} does not exist.")


def _check_size(content: str) -> None:
    if len(content.encode()) > MAX_CONTENT_BYTES:
        raise ServiceError(
            "MaxDocumentSizeExceeded",
            f"The content is {len(content.encode())} bytes; a document may have at most "
            f"{MAX_CONTENT_BYTES}.",
        )


class DocumentStore:
    """Every document the emulated account can see, by name."""

    def __init__(self, account: str, region: str, now: float | None = None) -> None:
        self.account = account
        self.region = region
        self._documents: dict[str, Document] = {}
        when = time.time() if now is None else now
        for name, (document_type, data) in AWS_DOCUMENTS.items():
            self._add(name, document_type, AMAZON, render_content(data, "JSON"), "JSON", when)
        self._add(
            DEFAULT_DOCUMENT,
            "Session",
            account,
            render_content(preferences_content(), "JSON"),
            "JSON",
            when,
        )

    def _add(
        self, name: str, document_type: str, owner: str, content: str, fmt: str, when: float
    ) -> Document:
        document = Document(name, document_type, owner, when)
        data = parse_content(content, fmt)
        document.versions[1] = DocumentVersion(1, content, fmt, data, when)
        self._documents[name] = document
        return document

    def __iter__(self) -> Iterator[Document]:
        return iter(sorted(self._documents.values(), key=lambda d: d.name))

    def find(self, name: str) -> Document | None:
        """The document named ``name`` (or by ARN), or None."""
        return self._documents.get(document_name(name))

    def get(self, name: str) -> Document:
        """The document, or InvalidDocument."""
        document = self.find(name)
        if document is None:
            raise missing_document(document_name(name))
        return document

    def arn(self, document: Document) -> str:
        account = "" if document.amazon_owned else self.account
        return f"arn:aws:ssm:{self.region}:{account}:document/{document.name}"

    # -- changes --------------------------------------------------------------------

    def create(
        self,
        name: str,
        content: str,
        *,
        document_type: str = "Command",
        document_format: str = "JSON",
        version_name: str | None = None,
        target_type: str | None = None,
        display_name: str | None = None,
        tags: list[dict[str, str]] | None = None,
        now: float | None = None,
    ) -> Document:
        """CreateDocument: version 1, which is also the default."""
        if name.lower().startswith(_RESERVED_PREFIXES):
            raise ServiceError(
                "ValidationException",
                f"Document name {name} is reserved: names may not begin with aws, amazon or amzn.",
            )
        _check_size(content)
        data = parse_content(content, document_format)
        self._check_type(name, document_type, data)
        validate_content(data, document_type)
        if document_type == "Automation":
            parse_runbook(data)
        if name in self._documents:
            raise ServiceError("DocumentAlreadyExists", f"Document {name} already exists.")
        when = time.time() if now is None else now
        document = Document(
            name, document_type, self.account, when, display_name=display_name, tags=tags or []
        )
        document.versions[1] = DocumentVersion(
            1, content, document_format, data, when, version_name, target_type
        )
        self._documents[name] = document
        return document

    def update(
        self,
        name: str,
        content: str,
        *,
        document_version: str | None = None,
        document_format: str = "JSON",
        version_name: str | None = None,
        target_type: str | None = None,
        display_name: str | None = None,
        now: float | None = None,
    ) -> DocumentVersion:
        """UpdateDocument: a new latest version (the default version does not move)."""
        document = self._owned(name, "updated")
        if document_version not in (None, "$LATEST", str(document.latest_version)):
            raise ServiceError(
                "InvalidDocumentVersion",
                f"Only the latest version of {document.name} ({document.latest_version}) can "
                f"be updated, not {document_version}.",
            )
        _check_size(content)
        data = parse_content(content, document_format)
        self._check_type(document.name, document.document_type, data)
        validate_content(data, document.document_type)
        if document.document_type == "Automation":
            parse_runbook(data)
        digest = hashlib.sha256(content.encode()).hexdigest()
        if any(v.hash == digest for v in document.versions.values()):
            raise ServiceError(
                "DuplicateDocumentContent",
                f"Version {document.latest_version} of {document.name} already has this content.",
            )
        if version_name is not None and any(
            v.version_name == version_name for v in document.versions.values()
        ):
            raise ServiceError(
                "DuplicateDocumentVersionName",
                f"Document {document.name} already has a version named {version_name}.",
            )
        if len(document.versions) >= MAX_VERSIONS:
            raise ServiceError(
                "DocumentVersionLimitExceeded",
                f"Document {document.name} has {MAX_VERSIONS} versions; delete some first.",
            )
        number = document.latest_version + 1
        latest = document.versions[document.latest_version]
        version = DocumentVersion(
            number,
            content,
            document_format,
            data,
            time.time() if now is None else now,
            version_name,
            target_type if target_type is not None else latest.target_type,
        )
        document.versions[number] = version
        if display_name is not None:
            document.display_name = display_name
        return version

    def set_default_version(self, name: str, document_version: str) -> Document:
        """UpdateDocumentDefaultVersion."""
        document = self.get(name)
        if document.amazon_owned:
            raise ServiceError(
                "InvalidDocument",
                f"Document {document.name} is owned by Amazon: its default version is fixed.",
            )
        document.default_version = document.version(document_version).version
        return document

    def delete(
        self,
        name: str,
        document_version: str | None = None,
        version_name: str | None = None,
    ) -> None:
        """DeleteDocument: one version (not the default one), or the whole document."""
        document = self._owned(name, "deleted")
        if document_version is None and version_name is None:
            del self._documents[document.name]
            return
        version = document.version(document_version, version_name)
        if version.version == document.default_version:
            raise ServiceError(
                "InvalidDocumentOperation",
                f"Version {version.version} is the default version of {document.name}: make "
                "another version the default, or delete the whole document.",
            )
        del document.versions[version.version]

    def _owned(self, name: str, action: str) -> Document:
        document = self.get(name)
        if document.amazon_owned:
            raise ServiceError(
                "InvalidDocumentOperation",
                f"Document {document.name} is owned by Amazon and can't be {action}.",
            )
        return document

    @staticmethod
    def _check_type(name: str, document_type: str, data: dict[str, Any]) -> None:
        if name == DEFAULT_DOCUMENT and (
            document_type != "Session" or data.get("sessionType") != "Standard_Stream"
        ):
            raise invalid_content(
                f"{DEFAULT_DOCUMENT} holds Session Manager preferences: it must be a Session "
                "document with sessionType Standard_Stream."
            )
