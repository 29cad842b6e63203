"""How an Automation execution reads: its steps as a timeline, what a waiting step waits for.

Pure functions of the API's objects (GetAutomationExecution's AutomationExecution and its
StepExecutions, as botocore parses them): no calls, no output. A step's ``Inputs`` are its
filled-in inputs with each value written as JSON (``"Message": "\\"Restart?\\""``);
an ``aws:approve`` step's ``Outputs`` hold ``ApprovalStatus`` and ``ApproverDecisions``
(each decision a JSON object) once it is decided.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from .listing import duration, local_time
from .sessionlist import short_owner

__all__ = [
    "RUNNING",
    "SUCCEEDED",
    "Waiting",
    "execution_header",
    "finished",
    "step_detail",
    "step_heading",
    "step_line",
    "step_widths",
    "waiting_for",
]

#: AutomationExecutionStatus values (botocore's SSM model) of an execution or a step that
#: has not ended; every other value is final.
RUNNING = frozenset(
    {
        "Pending",
        "InProgress",
        "Waiting",
        "Cancelling",
        "PendingApproval",
        "Approved",
        "Scheduled",
        "RunbookInProgress",
        "PendingChangeCalendarOverride",
        "ChangeCalendarOverrideApproved",
    }
)
#: The final statuses that mean it worked.
SUCCEEDED = frozenset({"Success", "CompletedWithSuccess"})

#: Output values longer than this are cut in the timeline (``--json`` has them whole).
OUTPUT_WIDTH = 100
#: Outputs that the approval lines already show.
_APPROVAL_OUTPUTS = ("ApprovalStatus", "ApproverDecisions")


def finished(status: str) -> bool:
    return bool(status) and status not in RUNNING


def _time(value: Any) -> dt.datetime | None:
    return value if isinstance(value, dt.datetime) else None


def _input(step: Mapping[str, Any], name: str) -> Any:
    """An input's value (JSON-decoded when it is JSON text, as AWS writes them)."""
    raw = (step.get("Inputs") or {}).get(name)
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


@dataclasses.dataclass(frozen=True)
class Waiting:
    """What a waiting step waits for: an approval (``aws:approve``) or a Resume."""

    step: str
    action: str
    since: dt.datetime | None
    #: ``Approve`` for an approval, ``Resume`` for ``aws:pause``, else the action's name.
    signal: str
    message: str = ""
    approvers: tuple[str, ...] = ()
    required: int = 0

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "StepName": self.step,
            "Action": self.action,
            "Signal": self.signal,
            "Since": self.since,
        }
        if self.signal == "Approve":
            result.update(
                Message=self.message,
                Approvers=list(self.approvers),
                MinRequiredApprovals=self.required,
            )
        return result

    def approvers_text(self) -> str:
        names = ", ".join(short_owner(a) for a in self.approvers) or "-"
        needed = f"{self.required} approval{'s' if self.required != 1 else ''} needed"
        return f"{names} ({needed})"


def waiting_for(execution: Mapping[str, Any]) -> Waiting | None:
    """The step an execution waits at, if it waits (status ``Waiting``)."""
    if execution.get("AutomationExecutionStatus") != "Waiting":
        return None
    steps: Sequence[Mapping[str, Any]] = execution.get("StepExecutions") or []
    current = execution.get("CurrentStepName")
    found = [s for s in steps if s.get("StepStatus") == "Waiting"]
    found.sort(key=lambda s: s.get("StepName") != current)
    if not found:
        # Not among the steps listed (StepExecutionsTruncated): the current step says what.
        action = str(execution.get("CurrentAction") or "")
        if not current or not action:
            return None
        signal = {"aws:approve": "Approve", "aws:pause": "Resume"}.get(action, action)
        return Waiting(str(current), action, None, signal, required=1)
    step = found[0]
    action = str(step.get("Action") or "")
    since = _time(step.get("ExecutionStartTime"))
    name = str(step.get("StepName") or "")
    if action == "aws:approve":
        approvers = _input(step, "Approvers")
        if isinstance(approvers, str):
            approvers = [approvers]
        listed = tuple(str(a) for a in approvers) if isinstance(approvers, list) else ()
        required = _input(step, "MinRequiredApprovals")
        try:
            count = int(required) if required is not None else 1
        except (TypeError, ValueError):
            count = 1
        message = _input(step, "Message")
        return Waiting(
            name, action, since, "Approve", "" if message is None else str(message), listed, count
        )
    return Waiting(name, action, since, "Resume" if action == "aws:pause" else action)


# -- the timeline -----------------------------------------------------------------------


def execution_header(execution: Mapping[str, Any], now: dt.datetime) -> list[str]:
    """The lines above the steps: what ran, its status, when and by whom, its parameters."""
    status = str(execution.get("AutomationExecutionStatus") or "?")
    document = str(execution.get("DocumentName") or "?")
    version = execution.get("DocumentVersion")
    lines = [
        f"Execution:  {execution.get('AutomationExecutionId', '?')}",
        f"Runbook:    {document}" + (f" (version {version})" if version else ""),
    ]
    where = ""
    if not finished(status) and execution.get("CurrentStepName"):
        action = execution.get("CurrentAction")
        where = f", at step {execution['CurrentStepName']}" + (f" ({action})" if action else "")
    lines.append(f"Status:     {status}{where}")
    start, end = (
        _time(execution.get("ExecutionStartTime")),
        _time(execution.get("ExecutionEndTime")),
    )
    if start is not None:
        took = duration(((end or now) - start).total_seconds())
        lines.append(
            f"Started:    {local_time(start)}"
            + (f", ended {local_time(end)} ({took})" if end else f" ({took} so far)")
        )
    if execution.get("ExecutedBy"):
        lines.append(f"By:         {execution['ExecutedBy']}")
    parameters: Mapping[str, Sequence[str]] = execution.get("Parameters") or {}
    if parameters:
        text = " ".join(f"{k}={','.join(str(v) for v in vs)}" for k, vs in parameters.items())
        lines.append(f"Parameters: {text}")
    if execution.get("FailureMessage"):
        lines.append(f"Failure:    {_one_line(str(execution['FailureMessage']))}")
    return lines


def step_widths(steps: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """The widths of the step name and action columns."""
    names = [len(str(s.get("StepName") or "")) for s in steps] or [0]
    actions = [len(str(s.get("Action") or "")) for s in steps] or [0]
    return max(4, *names), max(6, *actions)


def step_line(step: Mapping[str, Any], widths: tuple[int, int], now: dt.datetime) -> str:
    """``STARTED  DURATION  STEP  ACTION  STATUS`` for one step."""
    start, end = _time(step.get("ExecutionStartTime")), _time(step.get("ExecutionEndTime"))
    took = "-"
    if start is not None:
        took = duration(((end or now) - start).total_seconds())
    name = str(step.get("StepName") or "?")
    action = str(step.get("Action") or "?")
    status = str(step.get("StepStatus") or "?")
    return _columns(local_time(start), took, name, action, status, widths)


def _columns(
    start: str, took: str, name: str, action: str, status: str, widths: tuple[int, int]
) -> str:
    name_width, action_width = widths
    return (
        f"{start:<19}  {took:>8}  {name:<{name_width}}  {action:<{action_width}}  {status}"
    ).rstrip()


def step_heading(widths: tuple[int, int]) -> str:
    return _columns("STARTED", "DURATION", "STEP", "ACTION", "STATUS", widths)


def step_detail(step: Mapping[str, Any], waiting: Waiting | None = None) -> list[str]:
    """The lines under a step: what it waits for, its decisions, failure and outputs."""
    lines: list[str] = []
    if waiting is not None and waiting.step == step.get("StepName"):
        if waiting.signal == "Approve":
            lines.append(f"Waiting for approval: {_one_line(waiting.message) or '-'}")
            lines.append(f"Approvers: {waiting.approvers_text()}")
        else:
            lines.append(f"Waiting for a {waiting.signal} signal")
    outputs: Mapping[str, Sequence[str]] = step.get("Outputs") or {}
    for decision in outputs.get("ApproverDecisions") or ():
        lines.append(_decision(decision))
    if step.get("FailureMessage"):
        lines.append(f"Failure: {_one_line(str(step['FailureMessage']))}")
    for name, values in outputs.items():
        if name in _APPROVAL_OUTPUTS:
            continue
        lines.append(f"{name}: {_value_text(values)}")
    return lines


def _decision(text: str) -> str:
    try:
        decision = json.loads(text)
    except ValueError:
        return f"Decision: {_one_line(text)}"
    if not isinstance(decision, dict):
        return f"Decision: {_one_line(text)}"
    who = short_owner(str(decision.get("Approver") or "?"))
    line = f"{decision.get('Decision') or '?'} by {who}"
    if decision.get("Comment"):
        line += f': "{_one_line(str(decision["Comment"]))}"'
    return line


def _value_text(values: Sequence[str]) -> str:
    text = ", ".join(str(v) for v in values)
    first, _, rest = text.strip().partition("\n")
    more = rest.count("\n") + 1 if rest.strip() else 0
    line = _one_line(first)
    if len(line) > OUTPUT_WIDTH:
        line = line[: OUTPUT_WIDTH - 1] + "…"
    return line + (f" (+{more} line{'s' if more != 1 else ''})" if more else "")


def _one_line(text: str) -> str:
    return " ".join(text.split())
