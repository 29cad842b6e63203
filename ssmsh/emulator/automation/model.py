"""Automation records: executions, their step executions, and the approvals they wait for.

Pure data, no I/O: the engine (``engine.py``) moves these records through their states,
``render.py`` puts them in botocore's shapes.

Statuses are the eight of AWS's "Understanding automation statuses" (the model's
AutomationExecutionStatus enum has more, for Change Manager and other features the
emulator does not have): an execution is Pending until it starts, InProgress, Waiting
while a step waits for a signal (``aws:approve``, ``aws:pause``), Cancelling after
StopAutomationExecution, then Success, Failed, TimedOut or Cancelled. A step is
Pending until it runs (and stays so if the execution never reaches it), InProgress,
Waiting, then Success, Failed, TimedOut or Cancelled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from typing import Any

from ..documents.automation import Runbook, Step

__all__ = [
    "TERMINAL",
    "Approval",
    "ExecutionRecord",
    "Status",
    "StepRecord",
]


class Status(enum.StrEnum):
    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    WAITING = "Waiting"
    SUCCESS = "Success"
    TIMED_OUT = "TimedOut"
    CANCELLING = "Cancelling"
    CANCELLED = "Cancelled"
    FAILED = "Failed"


TERMINAL = frozenset({Status.SUCCESS, Status.TIMED_OUT, Status.CANCELLED, Status.FAILED})


@dataclasses.dataclass(slots=True)
class Approval:
    """What an ``aws:approve`` step waits for, and the decisions it got."""

    approvers: list[str]
    min_required: int
    message: str = ""
    #: (principal ARN, "Approved" or "Rejected", comment, time), in order.
    decisions: list[tuple[str, str, str, float]] = dataclasses.field(default_factory=list)
    #: Set whenever a decision arrives.
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    @property
    def outcome(self) -> str | None:
        """ "Approved", "Rejected", or None while more approvals are needed."""
        if any(d[1] == "Rejected" for d in self.decisions):
            return "Rejected"
        approvals = sum(1 for d in self.decisions if d[1] == "Approved")
        return "Approved" if approvals >= self.min_required else None


@dataclasses.dataclass(slots=True)
class StepRecord:
    """One run of one step (a step run again through ``nextStep`` gets a new record)."""

    step: Step
    step_execution_id: str
    status: Status = Status.PENDING
    start: float | None = None
    end: float | None = None
    #: The step's inputs with every reference filled in (typed values).
    inputs: dict[str, Any] | None = None
    #: Outputs by name, each a list of strings as the API shows them.
    outputs: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    response: str = ""
    response_code: str = ""
    failure_message: str = ""
    #: FailureDetails.FailureType: Action, Verification, Timeout...
    failure_type: str = ""
    #: What a Waiting step waits for: ``approve`` or ``resume``.
    waiting_for: str | None = None
    approval: Approval | None = None
    #: Set by a Resume signal (``aws:pause``).
    resumed: asyncio.Event | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


@dataclasses.dataclass(slots=True)
class ExecutionRecord:
    """One StartAutomationExecution and all it did."""

    execution_id: str
    document_name: str
    document_version: str
    runbook: Runbook
    #: Every declared parameter with its effective value, as lists of strings.
    parameters: dict[str, list[str]]
    #: The same, typed (what ``{{ name }}`` references get).
    values: dict[str, Any]
    executed_by: str
    created: float
    mode: str = "Auto"
    client_token: str | None = None
    tags: list[dict[str, str]] = dataclasses.field(default_factory=list)
    status: Status = Status.PENDING
    start: float | None = None
    end: float | None = None
    failure_message: str = ""
    #: Step executions: one per step of the runbook, then one per repeated run.
    steps: list[StepRecord] = dataclasses.field(default_factory=list)
    current: StepRecord | None = None
    #: ``step.Output`` -> typed value, for references and the document outputs.
    step_values: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: A critical step failed and its onFailure moved on: the end status is Failed.
    critical_failure: bool = False

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def record_for(self, step: Step) -> StepRecord | None:
        """The not-yet-run record of ``step`` (None once every record of it has run)."""
        for record in self.steps:
            if record.step.name == step.name and record.status == Status.PENDING:
                return record
        return None
