"""State Manager: CreateAssociation, DescribeAssociation, ListAssociations,
ListAssociationVersions, UpdateAssociation, DeleteAssociation, StartAssociationsOnce,
DescribeAssociationExecutions and DescribeAssociationExecutionTargets.

Requests arrive validated against botocore's model; the
:class:`~ssmsh.emulator.associations.AssociationEngine` keeps the associations and runs
them. Filters, after the API reference and the user guide's association history page:

- ListAssociations: InstanceId (the association's own, or an instance its targets
  match now), Name (the document), AssociationId, AssociationName,
  AssociationStatusName (the overview's Status), LastExecutedBefore / LastExecutedAfter
  (ISO 8601 times); ResourceGroupName and CloudConnectorId match nothing here. Oldest
  association first.
- DescribeAssociationExecutions: ExecutionId and Status with EQUAL, CreatedTime (ISO
  8601, ``2018-04-10T19:15:38.372Z``) with EQUAL (to the millisecond), LESS_THAN or
  GREATER_THAN; another Type is ValidationException. Newest execution first.
- DescribeAssociationExecutionTargets: Status, ResourceId and ResourceType, each equal.
All filters of a request apply together; every list pages with MaxResults/NextToken.
"""

from __future__ import annotations

import datetime as dt

from ..associations import AssociationEngine, AssociationExecution, AssociationRecord
from ..associations.render import (
    association_shape,
    description_shape,
    execution_shape,
    target_shape,
    version_shape,
)
from ..commands.send import resolve_targets
from ..errors import ServiceError
from ..httpserver import HttpRequest
from .awsjson import Body, member_list, page_result, string
from .registry import ApiContext, Registry

__all__ = ["AssociationsApi"]

_TARGET_FIELDS = {"Status": "status", "ResourceId": "resource_id", "ResourceType": "resource_type"}


class AssociationsApi:
    """The account's State Manager associations."""

    def __init__(self, context: ApiContext, engine: AssociationEngine) -> None:
        self.state = context.state
        self.engine = engine

    def register(self, registry: Registry) -> None:
        for name, handler in (
            ("CreateAssociation", self.create_association),
            ("DescribeAssociation", self.describe_association),
            ("ListAssociations", self.list_associations),
            ("ListAssociationVersions", self.list_association_versions),
            ("UpdateAssociation", self.update_association),
            ("DeleteAssociation", self.delete_association),
            ("StartAssociationsOnce", self.start_associations_once),
            ("DescribeAssociationExecutions", self.describe_association_executions),
            ("DescribeAssociationExecutionTargets", self.describe_association_execution_targets),
        ):
            registry.add("ssm", name, handler)

    async def create_association(self, body: Body, request: HttpRequest) -> Body:
        tags = [{"Key": t["Key"], "Value": t["Value"]} for t in member_list(body, "Tags")]
        association = self.engine.create(body, tags)
        return {"AssociationDescription": description_shape(association, association.latest)}

    async def describe_association(self, body: Body, request: HttpRequest) -> Body:
        association = self._find(body)
        version = association.latest
        wanted = string(body, "AssociationVersion")
        if wanted not in (None, "$LATEST"):
            found = association.version(int(wanted))
            if found is None:
                raise ServiceError(
                    "InvalidAssociationVersion",
                    f"Association {association.association_id} has no version {wanted}.",
                )
            version = found
        return {"AssociationDescription": description_shape(association, version)}

    async def list_associations(self, body: Body, request: HttpRequest) -> Body:
        associations = list(self.engine.associations.values())
        for item in member_list(body, "AssociationFilterList"):
            key, value = str(item["key"]), str(item["value"])
            associations = [a for a in associations if self._matches(a, key, value)]
        return page_result(
            associations, "ListAssociations", body, 50, "Associations", association_shape
        )

    async def list_association_versions(self, body: Body, request: HttpRequest) -> Body:
        association = self.engine.get(string(body, "AssociationId", required=True) or "")
        return page_result(
            list(association.versions),
            "ListAssociationVersions",
            body,
            50,
            "AssociationVersions",
            lambda version: version_shape(association, version),
        )

    async def update_association(self, body: Body, request: HttpRequest) -> Body:
        association = self.engine.update(string(body, "AssociationId", required=True) or "", body)
        return {"AssociationDescription": description_shape(association, association.latest)}

    async def delete_association(self, body: Body, request: HttpRequest) -> Body:
        self.engine.delete(self._find(body).association_id)
        return {}

    async def start_associations_once(self, body: Body, request: HttpRequest) -> Body:
        self.engine.start_once(str(i) for i in member_list(body, "AssociationIds"))
        return {}

    async def describe_association_executions(self, body: Body, request: HttpRequest) -> Body:
        association = self.engine.get(string(body, "AssociationId", required=True) or "")
        executions = association.executions[::-1]
        for item in member_list(body, "Filters"):
            key, value, kind = str(item["Key"]), str(item["Value"]), str(item["Type"])
            executions = [e for e in executions if _execution_matches(e, key, value, kind)]
        return page_result(
            executions,
            "DescribeAssociationExecutions",
            body,
            50,
            "AssociationExecutions",
            execution_shape,
        )

    async def describe_association_execution_targets(
        self, body: Body, request: HttpRequest
    ) -> Body:
        association = self.engine.get(string(body, "AssociationId", required=True) or "")
        execution_id = string(body, "ExecutionId", required=True) or ""
        execution = next(
            (e for e in association.executions if e.execution_id == execution_id), None
        )
        if execution is None:
            raise ServiceError(
                "AssociationExecutionDoesNotExist",
                f"Association {association.association_id} has no execution {execution_id}.",
            )
        targets = execution.targets()
        for item in member_list(body, "Filters"):
            key, value = str(item["Key"]), str(item["Value"])
            targets = [t for t in targets if getattr(t, _TARGET_FIELDS[key]) == value]
        return page_result(
            targets,
            "DescribeAssociationExecutionTargets",
            body,
            50,
            "AssociationExecutionTargets",
            lambda target: target_shape(execution, target),
        )

    # -- helpers ----------------------------------------------------------------------

    def _find(self, body: Body) -> AssociationRecord:
        association_id = string(body, "AssociationId")
        if association_id is not None:
            return self.engine.get(association_id)
        name, instance_id = string(body, "Name"), string(body, "InstanceId")
        if name is None or instance_id is None:
            raise ServiceError(
                "ValidationException",
                "Name an association by AssociationId, or by Name and InstanceId.",
            )
        return self.engine.legacy(name, instance_id)

    def _matches(self, association: AssociationRecord, key: str, value: str) -> bool:
        settings = association.settings
        if key == "InstanceId":
            if settings.get("InstanceId") is not None:
                return bool(settings["InstanceId"] == value)
            try:
                found = resolve_targets(self.state, settings.get("Targets") or [], wildcard=True)
            except ServiceError:
                return False
            return any(t.instance_id == value for t in found)
        if key in ("Name", "AssociationName"):
            return bool(settings.get(key) == value)
        if key == "AssociationId":
            return association.association_id == value
        if key == "AssociationStatusName":
            return bool(association.overview()["Status"] == value)
        if key in ("LastExecutedBefore", "LastExecutedAfter"):
            last = association.last_execution_date
            moment = _time(key, value)
            if last is None:
                return False
            return last < moment if key == "LastExecutedBefore" else last > moment
        return False  # ResourceGroupName, CloudConnectorId


def _time(key: str, value: str) -> float:
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ServiceError(
            "ValidationException",
            f"{key} takes a time such as 2024-06-30T12:00:00.000Z, not {value!r}.",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _execution_matches(execution: AssociationExecution, key: str, value: str, kind: str) -> bool:
    if key != "CreatedTime" and kind != "EQUAL":
        raise ServiceError("ValidationException", f"The {key} filter takes Type EQUAL only.")
    if key == "ExecutionId":
        return execution.execution_id == value
    if key == "Status":
        return execution.status[0] == value
    moment = _time(key, value)
    created = execution.created
    if kind == "EQUAL":
        return round(created, 3) == round(moment, 3)
    return created < moment if kind == "LESS_THAN" else created > moment
