"""State Manager records: associations, their versions and their executions.

No I/O. An association's settings are kept as the request members that define it (in
botocore's names: ``Name``, ``Targets``, ``ScheduleExpression``...), one dict per
version. An execution is one run of the association: one Run Command command on the
targets it resolved to, whose invocations give each target's status.

Statuses (what AWS does, and how we know): the user guide's association history
samples show executions and targets with Status and DetailedStatus ``Success``,
ResourceType ``ManagedInstance``, ``ResourceCountByStatus`` written ``{Success=1}``,
targets' OutputSource ``{OutputSourceId: <command id>, OutputSourceType: RunCommand}``,
and executions listed newest first; AssociationOverview's Status is Pending, Success or
Failed (API reference). The rest is our choice, in the same spirit: a target's Status
is Pending (the command is not yet picked up), InProgress, Success or Failed, and its
DetailedStatus is the invocation's Run Command StatusDetails (Failed,
ExecutionTimedOut, DeliveryTimedOut, Cancelled, Terminated...). An execution is Pending
until a target starts, InProgress until every target has ended, then Success if every
target succeeded (also when it had no target at all), else Failed. The association's
Overview is its latest execution's (Pending while that runs), ``Pending`` / ``Creating``
before its first. Every execution has its own ExecutionId: the 2018 release notes said an
association without a schedule reuses its AssociationId, the current model no longer
does, and StartAssociationsOnce runs of such an association could not be told apart.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..commands import CommandRecord, Detail, InvocationRecord
from .schedule import Schedule

__all__ = [
    "SETTINGS",
    "AssociationExecution",
    "AssociationRecord",
    "AssociationVersion",
    "TargetResult",
    "count_text",
]

#: The request members that make up an association version.
SETTINGS = (
    "Name",
    "InstanceId",
    "DocumentVersion",
    "Parameters",
    "Targets",
    "ScheduleExpression",
    "OutputLocation",
    "AssociationName",
    "AutomationTargetParameterName",
    "MaxErrors",
    "MaxConcurrency",
    "ComplianceSeverity",
    "SyncCompliance",
    "ApplyOnlyAtCronInterval",
    "CalendarNames",
    "TargetLocations",
    "ScheduleOffset",
    "Duration",
    "TargetMaps",
    "AlarmConfiguration",
    "AssociationDispatchAssumeRole",
)
RESOURCE_TYPE = "ManagedInstance"


@dataclasses.dataclass(frozen=True, slots=True)
class TargetResult:
    """One resource of an execution (DescribeAssociationExecutionTargets)."""

    resource_id: str
    status: str
    detailed_status: str
    last_execution_date: float
    output_source_id: str
    resource_type: str = RESOURCE_TYPE


def _target_status(invocation: InvocationRecord) -> tuple[str, str]:
    detail = invocation.detail
    if detail in (Detail.PENDING, Detail.DELAYED):
        return "Pending", "Pending"
    if detail in (Detail.IN_PROGRESS, Detail.CANCELLING):
        return "InProgress", "InProgress"
    if detail == Detail.SUCCESS:
        return "Success", "Success"
    return "Failed", str(detail)


def count_text(counts: dict[str, int]) -> str:
    """``{Failed=3, Success=17}``, as AWS writes ResourceCountByStatus."""
    return "{" + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) + "}"


@dataclasses.dataclass(slots=True)
class AssociationExecution:
    """One run of an association."""

    execution_id: str
    association_id: str
    association_version: str
    created: float
    command: CommandRecord | None = None
    #: When every target had ended.
    ended: float | None = None
    #: (Status, DetailedStatus) when no command could be sent (the document is gone...).
    error: tuple[str, str] | None = None

    def targets(self) -> list[TargetResult]:
        if self.command is None:
            return []
        results = []
        for invocation in self.command.invocations.values():
            status, detailed = _target_status(invocation)
            when = invocation.end or invocation.start or self.created
            results.append(
                TargetResult(
                    invocation.instance_id, status, detailed, when, self.command.command_id
                )
            )
        return results

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for target in self.targets():
            counts[target.status] = counts.get(target.status, 0) + 1
        return counts

    @property
    def status(self) -> tuple[str, str]:
        """(Status, DetailedStatus)."""
        if self.error is not None:
            return self.error
        statuses = [t.status for t in self.targets()]
        if statuses and all(s == "Pending" for s in statuses):
            return "Pending", "Pending"
        if any(s in ("Pending", "InProgress") for s in statuses):
            return "InProgress", "InProgress"
        if all(s == "Success" for s in statuses):
            return "Success", "Success"
        return "Failed", "Failed"

    @property
    def finished(self) -> bool:
        return self.status[0] in ("Success", "Failed")


@dataclasses.dataclass(slots=True)
class AssociationVersion:
    number: int
    created: float
    settings: dict[str, Any]
    schedule: Schedule | None


@dataclasses.dataclass(slots=True)
class AssociationRecord:
    association_id: str
    created: float
    versions: list[AssociationVersion]
    updated: float
    tags: list[dict[str, str]] = dataclasses.field(default_factory=list)
    #: Oldest first.
    executions: list[AssociationExecution] = dataclasses.field(default_factory=list)
    #: When the current schedule started (rate expressions count from here).
    anchor: float = 0.0

    @property
    def latest(self) -> AssociationVersion:
        return self.versions[-1]

    @property
    def settings(self) -> dict[str, Any]:
        return self.latest.settings

    def version(self, number: int) -> AssociationVersion | None:
        return next((v for v in self.versions if v.number == number), None)

    @property
    def last_execution_date(self) -> float | None:
        ended = [e.ended for e in self.executions if e.ended is not None]
        return max(ended) if ended else None

    @property
    def last_successful_execution_date(self) -> float | None:
        ended = [
            e.ended for e in self.executions if e.ended is not None and e.status[0] == "Success"
        ]
        return max(ended) if ended else None

    def overview(self) -> dict[str, Any]:
        """AssociationOverview: from the latest execution (Pending/Creating before one)."""
        if not self.executions:
            return {"Status": "Pending", "DetailedStatus": "Creating"}
        latest = self.executions[-1]
        status, detailed = latest.status
        if not latest.finished:
            status = "Pending"
        return {
            "Status": status,
            "DetailedStatus": detailed,
            "AssociationStatusAggregatedCount": latest.counts(),
        }
