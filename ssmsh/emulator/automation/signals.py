"""SendAutomationSignal applied to an execution: who may send what, and when.

``Approve`` / ``Reject`` go to an execution waiting in an ``aws:approve`` step, from one of
its approvers (``actions.is_approver``), one decision each and only until the step is
decided; ``Resume`` goes to one waiting in an ``aws:pause`` step and names it
(``Payload StepName=NAME``, as the API reference asks). Everything else is
InvalidAutomationSignalException: the model's code for a signal "not valid for the
current Automation execution"; a Resume naming a step the runbook does not have is
AutomationStepNotFoundException. Which code AWS gives a principal who is not an approver
is a guess (see ``engine.py``). ``StartStep``, ``StopStep`` and ``Revoke`` are for
Interactive executions and change requests, which the emulator does not run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from ..errors import ServiceError
from .actions import is_approver
from .model import ExecutionRecord, Status, StepRecord

__all__ = ["apply_signal"]

logger = logging.getLogger(__name__)


def _signal_error(message: str) -> ServiceError:
    return ServiceError("InvalidAutomationSignalException", message)


def apply_signal(
    execution: ExecutionRecord,
    signal_type: str,
    payload: Mapping[str, list[str]],
    caller: str,
    now: float,
) -> None:
    """Record the signal and wake the step waiting for it, or refuse it."""
    if signal_type not in ("Approve", "Reject", "Resume"):
        raise _signal_error(
            f"{signal_type} signals are for Interactive executions and change requests; "
            f"execution {execution.execution_id} runs in {execution.mode} mode."
        )
    record = execution.current
    if execution.finished or record is None or record.status != Status.WAITING:
        raise _signal_error(
            f"Automation execution {execution.execution_id} is {execution.status}: it is "
            "not waiting for a signal."
        )
    if signal_type == "Resume":
        _resume(execution, record, payload)
        return
    approval = record.approval
    if record.waiting_for != "approve" or approval is None:
        raise _signal_error(
            f"Step {record.step.name} waits for a Resume signal, not for {signal_type}."
        )
    if not is_approver(caller, approval.approvers):
        raise _signal_error(f"{caller} is not an approver of step {record.step.name}.")
    if any(decision[0] == caller for decision in approval.decisions):
        raise _signal_error(f"{caller} already sent a decision for step {record.step.name}.")
    if approval.outcome is not None:
        raise _signal_error(f"Step {record.step.name} is {approval.outcome} already.")
    comment = " ".join(payload.get("Comment") or [])
    decision = "Approved" if signal_type == "Approve" else "Rejected"
    approval.decisions.append((caller, decision, comment, now))
    approval.changed.set()
    logger.info("automation %s: %s by %s", execution.execution_id, decision.lower(), caller)


def _resume(
    execution: ExecutionRecord, record: StepRecord, payload: Mapping[str, list[str]]
) -> None:
    names = payload.get("StepName") or []
    if not names:
        raise _signal_error("A Resume signal names its step: Payload StepName=NAME.")
    if not any(step.name == names[0] for step in execution.runbook.steps):
        raise ServiceError(
            "AutomationStepNotFoundException",
            f"The runbook of execution {execution.execution_id} has no step {names[0]}.",
        )
    if record.waiting_for != "resume" or names[0] != record.step.name or record.resumed is None:
        raise _signal_error(f"Step {names[0]} is not paused waiting for Resume.")
    record.resumed.set()
