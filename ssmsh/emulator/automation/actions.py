"""The Automation actions the emulator runs: ``aws:approve``, ``aws:pause``, ``aws:sleep``,
``aws:runCommand`` and ``aws:executeScript``. Any other action fails its step, saying
the emulator does not run it (the runbook itself is accepted: see
``documents/automation.py``).

Each action is a coroutine taking the step's filled-in inputs; it returns the step's
outputs (typed values by name) and the document its declared ``outputs`` select from,
or raises :class:`StepFailed`. Timeouts and cancels come from the engine (the task is
cancelled). What AWS does, and how we know (user guide, one page per action):

- ``aws:approve``: the step and the execution are Waiting until ``MinRequiredApprovals``
  (default 1, at most the number of ``Approvers``, at most 10 approvers) of the
  ``Approvers`` send Approve, or one sends Reject. Approvers are IAM user names, user
  ARNs, role ARNs or assumed-role ARNs; a caller matches a role ARN through an
  ``assumed-role/NAME/...`` session of it. Outputs ``ApprovalStatus`` (Approved /
  Rejected) and ``ApproverDecisions``. A rejection fails the step (the status table has
  no other terminal state for "did not complete successfully"), so ``onFailure``
  applies. With ``NotificationArn`` (a topic whose name starts with ``Automation``) the
  request is published (recorded in the emulator's notifications, never sent).
  Guessed: the keys of each ApproverDecisions entry (Approver, Decision, Comment,
  DecisionTime).
- ``aws:pause``: Waiting until a Resume signal names the step.
- ``aws:sleep``: ``Duration`` (ISO 8601) or until ``Timestamp``; at most 604799 s; on the
  emulator's clock, so a test advances it instead of waiting.
- ``aws:runCommand``: the inputs are a SendCommand request, run by Run Command on the
  emulated instances; outputs ``CommandId``, ``Status``, ``ResponseCode`` and
  ``Output`` (the first instance's, as the agent shows a plugin's output). The step
  fails unless the command ends Success; cancelling the step cancels the command.
- ``aws:executeScript``: Python runtimes only (``script.py``); outputs ``OutputPayload``
  (``{"Payload": <returned value>}``), and the declared outputs select from it
  (``$.Payload.name``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..clock import EmulatorClock
from ..commands import CommandSender
from ..commands.notifications import iso_time
from ..errors import ServiceError
from .model import Approval, ExecutionRecord, Status, StepRecord
from .script import ScriptError, run_python
from .values import iso_duration
from .values import iso_time as parse_time

__all__ = [
    "ACTIONS",
    "DEFAULT_TIMEOUTS",
    "ActionContext",
    "ActionResult",
    "StepFailed",
    "is_approver",
]

#: timeoutSeconds of an action when the step sets none (None: no limit).
DEFAULT_TIMEOUTS: dict[str, float | None] = {
    "aws:approve": 604800.0,
    "aws:pause": 604800.0,
    "aws:executeScript": 600.0,
}
MAX_SLEEP = 604799.0
MAX_APPROVERS = 10
_TOPIC = re.compile(r"^arn:aws[\w-]*:sns:[a-z0-9-]+:\d{12}:(?P<name>[\w-]{1,256})$")


class StepFailed(Exception):
    """The step did not succeed; ``outputs`` are what it produced anyway."""

    def __init__(
        self,
        message: str,
        *,
        outputs: Mapping[str, Any] | None = None,
        failure_type: str = "Action",
        status: Status = Status.FAILED,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.outputs = dict(outputs or {})
        self.failure_type = failure_type
        self.status = status


@dataclasses.dataclass(slots=True)
class ActionResult:
    outputs: dict[str, Any]
    #: What the step's declared ``outputs`` select from.
    document: Any


@dataclasses.dataclass(slots=True)
class ActionContext:
    """What actions need from the engine."""

    execution: ExecutionRecord
    clock: EmulatorClock
    sender: CommandSender
    environment: Mapping[str, str]
    #: The context dict an executeScript handler gets.
    variables: Mapping[str, str]
    #: Record an SNS message: (topic ARN, event, message).
    publish: Callable[[str, str, dict[str, Any]], None]
    #: The step starts / stops waiting for a signal.
    wait: Callable[[StepRecord, str], None]
    resume: Callable[[StepRecord], None]


Action = Callable[[ActionContext, StepRecord, dict[str, Any]], Awaitable[ActionResult]]


def is_approver(caller: str, approvers: list[str]) -> bool:
    """Whether the principal ``caller`` (an ARN) is one of ``approvers``."""
    account, _, resource = caller.partition("::")[2].partition(":")
    for approver in approvers:
        if approver == caller:
            return True
        if not approver.startswith("arn:"):  # an IAM user name
            if resource.startswith("user/") and resource.rsplit("/", 1)[-1] == approver:
                return True
            continue
        kind, _, path = approver.partition("::")[2].partition(":")[2].partition("/")
        same_account = approver.partition("::")[2].startswith(account + ":")
        if (
            kind == "role"
            and same_account
            and resource.startswith("assumed-role/")
            and resource.split("/")[1] == path.rsplit("/", 1)[-1]
        ):
            return True
    return False


async def approve(ctx: ActionContext, record: StepRecord, inputs: dict[str, Any]) -> ActionResult:
    approvers = inputs.get("Approvers")
    if isinstance(approvers, str):
        approvers = [approvers]
    if (
        not isinstance(approvers, list)
        or not approvers
        or not all(isinstance(a, str) and a for a in approvers)
    ):
        raise StepFailed("Approvers must be a list of one or more IAM principals.")
    if len(approvers) > MAX_APPROVERS:
        raise StepFailed(f"A step may name at most {MAX_APPROVERS} approvers.")
    minimum = inputs.get("MinRequiredApprovals", 1)
    if isinstance(minimum, str) and minimum.isdigit():
        minimum = int(minimum)
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
        raise StepFailed("MinRequiredApprovals must be a positive number.")
    if minimum > len(approvers):
        raise StepFailed(
            f"MinRequiredApprovals ({minimum}) is more than the {len(approvers)} approver(s)."
        )
    message = str(inputs.get("Message", ""))
    if len(message) > 4096:
        raise StepFailed("Message is longer than 4096 characters.")
    approval = Approval(list(approvers), minimum, message)
    record.approval = approval
    topic = inputs.get("NotificationArn")
    if topic:
        match = _TOPIC.match(str(topic))
        if match is None or not match.group("name").startswith("Automation"):
            raise StepFailed(f"{topic} is not an SNS topic whose name starts with Automation.")
        ctx.publish(
            str(topic),
            "Waiting",
            {
                "AutomationExecutionId": ctx.execution.execution_id,
                "DocumentName": ctx.execution.document_name,
                "StepName": record.step.name,
                "Message": message,
                "Approvers": list(approvers),
                "MinRequiredApprovals": minimum,
            },
        )
    ctx.wait(record, "approve")
    try:
        while approval.outcome is None:
            await approval.changed.wait()
            approval.changed.clear()
    finally:
        ctx.resume(record)
    decisions = [
        {
            "Approver": who,
            "Decision": decision,
            "Comment": comment,
            "DecisionTime": iso_time(when),
        }
        for who, decision, comment, when in approval.decisions
    ]
    outputs: dict[str, Any] = {"ApprovalStatus": approval.outcome, "ApproverDecisions": decisions}
    if approval.outcome == "Rejected":
        who, _, comment, _ = next(d for d in approval.decisions if d[1] == "Rejected")
        detail = f": {comment}" if comment else ""
        raise StepFailed(f"Step {record.step.name} was rejected by {who}{detail}", outputs=outputs)
    return ActionResult(outputs, outputs)


async def pause(ctx: ActionContext, record: StepRecord, inputs: dict[str, Any]) -> ActionResult:
    record.resumed = asyncio.Event()
    ctx.wait(record, "resume")
    try:
        await record.resumed.wait()
    finally:
        ctx.resume(record)
    return ActionResult({}, {})


async def sleep(ctx: ActionContext, record: StepRecord, inputs: dict[str, Any]) -> ActionResult:
    try:
        if inputs.get("Duration") is not None:
            seconds = iso_duration(str(inputs["Duration"]))
        else:
            seconds = parse_time(str(inputs.get("Timestamp"))) - ctx.clock.now()
    except ValueError as exc:
        raise StepFailed(str(exc)) from None
    if seconds > MAX_SLEEP:
        raise StepFailed(f"aws:sleep waits at most {MAX_SLEEP:.0f} seconds, not {seconds:.0f}.")
    await ctx.clock.sleep(seconds)
    return ActionResult({}, {})


async def run_command(
    ctx: ActionContext, record: StepRecord, inputs: dict[str, Any]
) -> ActionResult:
    try:
        command = ctx.sender.send(inputs)
    except ServiceError as exc:
        raise StepFailed(f"{exc.code}: {exc.message}", failure_type="Verification") from None
    try:
        await ctx.sender.engine.wait(command)
    except asyncio.CancelledError:
        ctx.sender.engine.cancel(command)
        raise
    invocation = next(iter(command.invocations.values()), None)
    code = invocation.response_code if invocation is not None else -1
    output = "\n".join(p.output for p in invocation.plugins) if invocation is not None else ""
    record.response_code = str(code)
    outputs: dict[str, Any] = {
        "CommandId": command.command_id,
        "Status": command.status,
        "ResponseCode": code,
        "Output": output,
    }
    if command.status != "Success":
        raise StepFailed(
            f"Command {command.command_id} ended {command.status} "
            f"({command.detail}) on {command.error_count} of {command.target_count} "
            "instance(s).",
            outputs=outputs,
        )
    return ActionResult(outputs, outputs)


async def execute_script(
    ctx: ActionContext, record: StepRecord, inputs: dict[str, Any]
) -> ActionResult:
    runtime = str(inputs.get("Runtime", ""))
    if not runtime.startswith("python3"):
        raise StepFailed(f"The emulator runs Python scripts only, not the {runtime} runtime.")
    if inputs.get("Script") is None:
        raise StepFailed("The emulator runs scripts given in Script, not attachments.")
    handler = inputs.get("Handler")
    if not isinstance(handler, str) or not handler:
        raise StepFailed("A Python script needs a Handler: the name of its function.")
    try:
        payload = await run_python(
            str(inputs["Script"]),
            handler,
            inputs.get("InputPayload", {}),
            ctx.variables,
            ctx.environment,
        )
    except ScriptError as exc:
        raise StepFailed(str(exc)) from None
    document = {"Payload": payload}
    return ActionResult({"OutputPayload": document}, document)


async def unsupported(
    ctx: ActionContext, record: StepRecord, inputs: dict[str, Any]
) -> ActionResult:
    raise StepFailed(f"The emulator does not run {record.step.action} steps.")


ACTIONS: dict[str, Action] = {
    "aws:approve": approve,
    "aws:pause": pause,
    "aws:sleep": sleep,
    "aws:runCommand": run_command,
    "aws:executeScript": execute_script,
}
