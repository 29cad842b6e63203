"""State Manager records in botocore's shapes: AssociationDescription, Association,
AssociationVersionInfo, AssociationExecution and AssociationExecutionTarget.

A setting the association was not given is left out, except ``DocumentVersion``
(``$DEFAULT``, as AWS's create-association sample answers), ``ApplyOnlyAtCronInterval``
(false) and ``SyncCompliance`` (AUTO, the API reference's default). An association made
with the deprecated InstanceId also carries the per-instance ``Status``.
"""

from __future__ import annotations

from typing import Any

from .model import (
    SETTINGS,
    AssociationExecution,
    AssociationRecord,
    AssociationVersion,
    TargetResult,
    count_text,
)

__all__ = [
    "association_shape",
    "description_shape",
    "execution_shape",
    "target_shape",
    "version_shape",
]

Body = dict[str, Any]

_DEFAULTS: Body = {
    "DocumentVersion": "$DEFAULT",
    "ApplyOnlyAtCronInterval": False,
    "SyncCompliance": "AUTO",
}
_SUMMARY: tuple[str, ...] = (
    "Name",
    "InstanceId",
    "DocumentVersion",
    "Targets",
    "ScheduleExpression",
    "AssociationName",
    "ScheduleOffset",
    "Duration",
    "TargetMaps",
)
_NOT_IN_VERSION_INFO = ("InstanceId", "AlarmConfiguration", "AutomationTargetParameterName")
_VERSION_INFO = tuple(k for k in SETTINGS if k not in _NOT_IN_VERSION_INFO)


def _epoch(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _settings(version: AssociationVersion, keys: tuple[str, ...] = SETTINGS) -> Body:
    result: Body = {}
    for key in keys:
        value = version.settings.get(key, _DEFAULTS.get(key))
        if value is not None:
            result[key] = value
    return result


def description_shape(association: AssociationRecord, version: AssociationVersion) -> Body:
    result = _settings(version)
    overview = association.overview()
    result.update(
        AssociationId=association.association_id,
        AssociationVersion=str(version.number),
        Date=_epoch(association.created),
        LastUpdateAssociationDate=_epoch(association.updated),
        Overview=overview,
    )
    last = association.last_execution_date
    if last is not None:
        result["LastExecutionDate"] = _epoch(last)
    success = association.last_successful_execution_date
    if success is not None:
        result["LastSuccessfulExecutionDate"] = _epoch(success)
    if "InstanceId" in version.settings:
        result["Status"] = {
            "Date": _epoch(last if last is not None else association.created),
            "Name": overview["Status"],
            "Message": f"{overview['Status']}: {overview['DetailedStatus']}",
        }
    return result


def association_shape(association: AssociationRecord) -> Body:
    """ListAssociations' Association."""
    result = _settings(association.latest, _SUMMARY)
    result.update(
        AssociationId=association.association_id,
        AssociationVersion=str(association.latest.number),
        Overview=association.overview(),
    )
    last = association.last_execution_date
    if last is not None:
        result["LastExecutionDate"] = _epoch(last)
    return result


def version_shape(association: AssociationRecord, version: AssociationVersion) -> Body:
    """ListAssociationVersions' AssociationVersionInfo."""
    result = _settings(version, _VERSION_INFO)
    result.update(
        AssociationId=association.association_id,
        AssociationVersion=str(version.number),
        CreatedDate=_epoch(version.created),
    )
    return result


def execution_shape(execution: AssociationExecution) -> Body:
    status, detailed = execution.status
    result: Body = {
        "AssociationId": execution.association_id,
        "AssociationVersion": execution.association_version,
        "ExecutionId": execution.execution_id,
        "Status": status,
        "DetailedStatus": detailed,
        "CreatedTime": _epoch(execution.created),
        "ResourceCountByStatus": count_text(execution.counts()),
    }
    if execution.ended is not None:
        result["LastExecutionDate"] = _epoch(execution.ended)
    return result


def target_shape(execution: AssociationExecution, target: TargetResult) -> Body:
    return {
        "AssociationId": execution.association_id,
        "AssociationVersion": execution.association_version,
        "ExecutionId": execution.execution_id,
        "ResourceId": target.resource_id,
        "ResourceType": target.resource_type,
        "Status": target.status,
        "DetailedStatus": target.detailed_status,
        "LastExecutionDate": _epoch(target.last_execution_date),
        "OutputSource": {
            "OutputSourceId": target.output_source_id,
            "OutputSourceType": "RunCommand",
        },
    }
