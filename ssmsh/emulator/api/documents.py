"""SSM documents: CreateDocument, UpdateDocument, UpdateDocumentDefaultVersion,
DescribeDocument, GetDocument, ListDocuments and DeleteDocument."""

from __future__ import annotations

import logging
from typing import Any

from ..documents import AMAZON, Document, DocumentStore, DocumentVersion
from ..documents.content import parameter_list, platform_types, schema_version
from ..errors import ServiceError
from ..httpserver import HttpRequest
from .awsjson import (
    Body,
    epoch,
    invalid_filter_key,
    key_values_filters,
    member_list,
    page_result,
    string,
)
from .registry import ApiContext, Registry

__all__ = ["DocumentsApi"]

logger = logging.getLogger(__name__)

_LEGACY_FILTER_KEYS = ("Name", "Owner", "PlatformTypes", "DocumentType")
_FILTER_KEYS = ("Name", "Owner", "PlatformTypes", "DocumentType", "TargetType", "SearchKeyword")


class DocumentsApi:
    """The account's documents and the AWS-owned ones."""

    def __init__(self, context: ApiContext) -> None:
        self.state = context.state

    @property
    def store(self) -> DocumentStore:
        return self.state.documents

    def register(self, registry: Registry) -> None:
        registry.add("ssm", "CreateDocument", self.create_document)
        registry.add("ssm", "UpdateDocument", self.update_document)
        registry.add("ssm", "UpdateDocumentDefaultVersion", self.update_document_default_version)
        registry.add("ssm", "DescribeDocument", self.describe_document)
        registry.add("ssm", "GetDocument", self.get_document)
        registry.add(
            "ssm", "ListDocuments", self.list_documents, unchecked=("DocumentFilterList.*.key",)
        )
        registry.add("ssm", "DeleteDocument", self.delete_document)

    async def create_document(self, body: Body, request: HttpRequest) -> Body:
        tags = [{"Key": t["Key"], "Value": t["Value"]} for t in member_list(body, "Tags")]
        document = self.store.create(
            string(body, "Name", required=True) or "",
            string(body, "Content", required=True) or "",
            document_type=string(body, "DocumentType") or "Command",
            document_format=string(body, "DocumentFormat") or "JSON",
            version_name=string(body, "VersionName"),
            target_type=string(body, "TargetType"),
            display_name=string(body, "DisplayName"),
            tags=tags,
        )
        logger.info("document %s created (%s)", document.name, document.document_type)
        return {"DocumentDescription": self._description(document, document.version())}

    async def update_document(self, body: Body, request: HttpRequest) -> Body:
        name = string(body, "Name", required=True) or ""
        version = self.store.update(
            name,
            string(body, "Content", required=True) or "",
            document_version=string(body, "DocumentVersion"),
            document_format=string(body, "DocumentFormat") or "JSON",
            version_name=string(body, "VersionName"),
            target_type=string(body, "TargetType"),
            display_name=string(body, "DisplayName"),
        )
        document = self.store.get(name)
        logger.info("document %s: version %d added", document.name, version.version)
        return {"DocumentDescription": self._description(document, version)}

    async def update_document_default_version(self, body: Body, request: HttpRequest) -> Body:
        document = self.store.set_default_version(
            string(body, "Name", required=True) or "",
            string(body, "DocumentVersion", required=True) or "",
        )
        default = document.version()
        description: Body = {"Name": document.name, "DefaultVersion": str(default.version)}
        if default.version_name:
            description["DefaultVersionName"] = default.version_name
        return {"Description": description}

    async def describe_document(self, body: Body, request: HttpRequest) -> Body:
        document = self.store.get(string(body, "Name", required=True) or "")
        version = document.version(string(body, "DocumentVersion"), string(body, "VersionName"))
        return {"Document": self._description(document, version)}

    async def get_document(self, body: Body, request: HttpRequest) -> Body:
        document = self.store.get(string(body, "Name", required=True) or "")
        version = document.version(string(body, "DocumentVersion"), string(body, "VersionName"))
        wanted = string(body, "DocumentFormat")
        if wanted == "TEXT" and version.document_format != "TEXT":
            raise ServiceError(
                "ValidationException",
                f"Document {document.name} is {version.document_format}; ask for JSON or YAML.",
            )
        result: Body = {
            "Name": document.name,
            "CreatedDate": epoch(version.created),
            "DocumentVersion": str(version.version),
            "Status": "Active",
            "Content": version.content_as(wanted),
            "DocumentType": document.document_type,
            "DocumentFormat": wanted or version.document_format,
        }
        _put(result, "DisplayName", document.display_name)
        _put(result, "VersionName", version.version_name)
        return result

    async def list_documents(self, body: Body, request: HttpRequest) -> Body:
        documents = list(self.store)
        for index, item in enumerate(member_list(body, "DocumentFilterList"), start=1):
            key, value = string(item, "key", True) or "", string(item, "value", True) or ""
            if key not in _LEGACY_FILTER_KEYS:
                wire = f"documentFilterList.{index}.member.key"
                raise invalid_filter_key(key, wire, _LEGACY_FILTER_KEYS)
            documents = [d for d in documents if self._matches(d, (key, value), exact=True)]
        filters = key_values_filters(body, "Filters")
        for key, values in filters:
            if key not in _FILTER_KEYS and not key.startswith("tag:"):
                raise ServiceError(
                    "InvalidFilterKey",
                    f"The filter key {key} is not valid; use {', '.join(_FILTER_KEYS)} or "
                    "tag:NAME.",
                )
            if key == "Owner" and len(values) > 1:
                raise ServiceError(
                    "ValidationException", "Only one Owner can be given in a request."
                )
            documents = [d for d in documents if self._matches(d, (key, values))]
        return page_result(
            documents, "ListDocuments", body, 50, "DocumentIdentifiers", self._identifier
        )

    async def delete_document(self, body: Body, request: HttpRequest) -> Body:
        name = string(body, "Name", required=True) or ""
        self.store.delete(name, string(body, "DocumentVersion"), string(body, "VersionName"))
        logger.info("document %s deleted", name)
        return {}

    # -- rendering and filtering ------------------------------------------------------

    def _description(self, document: Document, version: DocumentVersion) -> Body:
        data = version.data
        result: Body = {
            "Hash": version.hash,
            "HashType": "Sha256",
            "Name": document.name,
            "Owner": document.owner,
            "CreatedDate": epoch(version.created),
            "Status": "Active",
            "DocumentVersion": str(version.version),
            "Parameters": parameter_list(data),
            "PlatformTypes": platform_types(data, document.document_type),
            "DocumentType": document.document_type,
            "SchemaVersion": schema_version(data),
            "LatestVersion": str(document.latest_version),
            "DefaultVersion": str(document.default_version),
            "DocumentFormat": version.document_format,
            "Tags": list(document.tags),
        }
        if isinstance(data.get("description"), str):
            result["Description"] = data["description"]
        _put(result, "DisplayName", document.display_name)
        _put(result, "VersionName", version.version_name)
        _put(result, "TargetType", version.target_type)
        return result

    def _identifier(self, document: Document) -> Body:
        version = document.version()
        result: Body = {
            "Name": document.name,
            "CreatedDate": epoch(document.created),
            "Owner": document.owner,
            "PlatformTypes": platform_types(version.data, document.document_type),
            "DocumentVersion": str(version.version),
            "DocumentType": document.document_type,
            "SchemaVersion": schema_version(version.data),
            "DocumentFormat": version.document_format,
            "Tags": list(document.tags),
        }
        _put(result, "DisplayName", document.display_name)
        _put(result, "VersionName", version.version_name)
        _put(result, "TargetType", version.target_type)
        return result

    def _matches(self, document: Document, item: tuple[str, Any], *, exact: bool = False) -> bool:
        key, raw = item
        values: list[str] = [raw] if isinstance(raw, str) else list(raw)
        version = document.version()
        if key == "Name":
            if exact:
                return document.name in values
            return any(document.name.startswith(v) for v in values)
        if key == "Owner":
            return any(self._owned_by(document, v) for v in values)
        if key == "PlatformTypes":
            platforms = platform_types(version.data, document.document_type)
            return any(v in platforms for v in values)
        if key == "DocumentType":
            return document.document_type in values
        if key == "TargetType":
            return version.target_type in values
        if key == "SearchKeyword":
            return any(v.lower() in document.name.lower() for v in values)
        tags = {t["Key"]: t["Value"] for t in document.tags}
        return key[4:] in tags and (not values or tags[key[4:]] in values)  # tag:NAME

    def _owned_by(self, document: Document, owner: str) -> bool:
        if owner in ("Self", "Private"):
            return document.owner == self.store.account
        if owner == "Amazon":
            return document.owner == AMAZON
        if owner == "All":
            return True
        if owner in ("Public", "ThirdParty"):
            return False  # nothing is shared with the emulated account
        return document.owner == owner


def _put(result: Body, key: str, value: str | None) -> None:
    if value:
        result[key] = value
