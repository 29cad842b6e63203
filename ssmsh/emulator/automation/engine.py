"""The Automation engine: runs executions step by step, takes signals and stop requests.

One asyncio task per execution, cancelled by :meth:`AutomationEngine.close` at shutdown.
What AWS does, and how we know (user guide: "Properties shared by all actions",
"Understanding automation statuses"; API reference):

- steps run in order; after a successful step ``isEnd`` ends the execution, ``nextStep``
  names the next one; a step that fails or times out is tried again up to
  ``maxAttempts`` times, then its ``onFailure`` applies: ``Abort`` (the default) ends the
  execution with the step's status (Failed or TimedOut), ``Continue`` goes on as after a
  success, ``step:NAME`` goes to that step. A failed ``isCritical`` step (by default
  every step whose onFailure is not Continue) makes the execution end Failed even when
  the execution went on.
- ``timeoutSeconds`` limits one attempt, on the emulator's clock (the approval and pause
  steps default to 7 days, executeScript to 600 s); a step past it is TimedOut.
- StopAutomationExecution (Type Cancel) makes the execution Cancelling, then Cancelled:
  the running step ends Cancelled (a command it sent is cancelled), the steps not reached
  stay Pending. ``onCancel`` is recorded, not run.
- SendAutomationSignal (``signals.py``): Approve / Reject to an execution waiting in an
  ``aws:approve`` step, from one of its Approvers, once each; Resume with ``StepName`` to
  one waiting in that ``aws:pause`` step. Anything else is
  InvalidAutomationSignalException (a step name the runbook does not have:
  AutomationStepNotFoundException).
- Guessed, for want of a source: a signal from a principal who is not an approver, or a
  second decision from the same one, is InvalidAutomationSignalException (the model's
  code for "not valid for the current execution"); StartStep, StopStep and Revoke (for
  Interactive mode and change requests, which the emulator does not run) are refused the
  same way, and StopAutomationExecution Type Complete (Interactive mode's) is
  InvalidAutomationStatusUpdateException. An execution stops after 1000 step runs (a
  ``nextStep`` loop), Failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from ..commands import CommandSender
from ..documents.automation import Runbook, parse_runbook, plain_types
from ..documents.session import parameter_values
from ..errors import ServiceError
from ..kms import ACCOUNT_ID
from ..state import EmulatorState
from .actions import (
    ACTIONS,
    DEFAULT_TIMEOUTS,
    ActionContext,
    StepFailed,
    unsupported,
)
from .model import ExecutionRecord, Status, StepRecord
from .signals import apply_signal
from .values import (
    MissingReference,
    api_values,
    fill,
    invalid_parameters,
    select,
    system_variables,
    typed_parameters,
)

__all__ = ["MAX_STEP_RUNS", "AutomationEngine"]

logger = logging.getLogger(__name__)

MAX_STEP_RUNS = 1000


class _StepTimedOut(Exception):
    pass


class AutomationEngine:
    """Executions by id and the tasks that run them."""

    def __init__(
        self,
        state: EmulatorState,
        sender: CommandSender,
        *,
        region: str = "us-east-1",
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.state = state
        self.clock = state.clock
        self.sender = sender
        self.region = region
        self.environment = dict(environment or {})
        self.executions: dict[str, ExecutionRecord] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping: set[str] = set()

    # -- requests ---------------------------------------------------------------------

    def start(
        self,
        document_name: str,
        document_version: str | None,
        parameters: Mapping[str, list[str]],
        *,
        caller: str,
        client_token: str | None = None,
        tags: list[dict[str, str]] | None = None,
    ) -> ExecutionRecord:
        """StartAutomationExecution in Auto mode; the new (or, for a repeated
        ClientToken, the earlier) execution."""
        if client_token is not None:
            for earlier in self.executions.values():
                if earlier.client_token == client_token:
                    if (earlier.document_name, dict(parameters)) != (
                        document_name,
                        {k: v for k, v in earlier.parameters.items() if k in parameters},
                    ):
                        raise ServiceError(
                            "IdempotentParameterMismatch",
                            "This ClientToken was used with other parameters.",
                        )
                    return earlier
        name, version, runbook = self._runbook(document_name, document_version)
        definitions = plain_types(runbook.parameters)
        try:
            given = parameter_values(name, definitions, dict(parameters))
        except ServiceError as exc:
            raise invalid_parameters(exc.message) from None
        now = self.clock.now()
        execution = ExecutionRecord(
            execution_id=str(uuid.uuid4()),
            document_name=name,
            document_version=version,
            runbook=runbook,
            parameters={k: api_values(v) for k, v in given.items()},
            values=typed_parameters(definitions, given),
            executed_by=caller,
            created=now,
            client_token=client_token,
            tags=list(tags or []),
        )
        execution.steps = [StepRecord(step, str(uuid.uuid4())) for step in runbook.steps]
        self.executions[execution.execution_id] = execution
        task = asyncio.get_running_loop().create_task(self._run(execution))
        self._tasks[execution.execution_id] = task
        task.add_done_callback(lambda _: self._done(execution))
        logger.info("automation %s of %s started", execution.execution_id, name)
        return execution

    def _done(self, execution: ExecutionRecord) -> None:
        self._tasks.pop(execution.execution_id, None)
        if not execution.finished:  # cancelled before it started
            self._end(execution, Status.CANCELLED, "")

    def get(self, execution_id: str) -> ExecutionRecord:
        execution = self.executions.get(execution_id)
        if execution is None:
            raise ServiceError(
                "AutomationExecutionNotFoundException",
                f"Automation execution {execution_id} does not exist.",
            )
        return execution

    def signal(
        self, execution_id: str, signal_type: str, payload: Mapping[str, list[str]], caller: str
    ) -> None:
        """SendAutomationSignal."""
        execution = self.get(execution_id)
        apply_signal(execution, signal_type, payload, caller, self.clock.now())

    def stop(self, execution_id: str, stop_type: str = "Cancel") -> None:
        """StopAutomationExecution."""
        execution = self.get(execution_id)
        if stop_type == "Complete":
            raise ServiceError(
                "InvalidAutomationStatusUpdateException",
                "Type Complete ends Interactive executions; this one runs in Auto mode.",
            )
        if execution.finished:
            raise ServiceError(
                "InvalidAutomationStatusUpdateException",
                f"Automation execution {execution_id} is {execution.status} already.",
            )
        if execution.status == Status.CANCELLING:
            return
        execution.status = Status.CANCELLING
        self._stopping.add(execution_id)
        task = self._tasks.get(execution_id)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _runbook(self, name: str, version: str | None) -> tuple[str, str, Runbook]:
        document = self.state.documents.find(name)
        if document is None or document.document_type != "Automation":
            raise ServiceError(
                "AutomationDefinitionNotFoundException",
                f"There is no Automation runbook named {name}.",
            )
        try:
            found = document.version(version or "$DEFAULT")
        except ServiceError:
            raise ServiceError(
                "AutomationDefinitionVersionNotFoundException",
                f"Runbook {document.name} has no version {version}.",
            ) from None
        return document.name, str(found.version), parse_runbook(found.data)

    # -- running ----------------------------------------------------------------------

    async def _run(self, execution: ExecutionRecord) -> None:
        execution.status = Status.IN_PROGRESS
        execution.start = self.clock.now()
        steps = execution.runbook.steps
        index: int | None = 0
        runs = 0
        try:
            while index is not None:
                runs += 1
                if runs > MAX_STEP_RUNS:
                    self._end(execution, Status.FAILED, f"More than {MAX_STEP_RUNS} step runs.")
                    return
                step = steps[index]
                record = execution.record_for(step)
                if record is None:
                    record = StepRecord(step, str(uuid.uuid4()))
                    execution.steps.append(record)
                await self._run_step(execution, record)
                index = self._next(execution, record, index)
            if not execution.finished:
                if execution.critical_failure:
                    self._end(execution, Status.FAILED, execution.failure_message)
                else:
                    self._end(execution, Status.SUCCESS, "")
        except asyncio.CancelledError:
            current = execution.current
            if current is not None and not current.finished:
                current.status = Status.CANCELLED
                current.end = self.clock.now()
            self._end(execution, Status.CANCELLED, "")
            if execution.execution_id not in self._stopping:
                raise  # shutdown, not StopAutomationExecution
        finally:
            execution.current = None if execution.finished else execution.current

    def _end(self, execution: ExecutionRecord, status: Status, message: str) -> None:
        execution.status = status
        execution.failure_message = message
        execution.end = self.clock.now()
        logger.info("automation %s ended %s", execution.execution_id, status)

    def _next(self, execution: ExecutionRecord, record: StepRecord, index: int) -> int | None:
        """The index of the step to run after ``record`` (None: the execution is over)."""
        step = record.step
        runbook = execution.runbook
        if record.status != Status.SUCCESS:
            message = f"Step {step.name} ended {record.status}: {record.failure_message}"
            if step.on_failure == "Abort":
                self._end(execution, record.status, message)
                return None
            if step.critical:
                execution.critical_failure = True
                execution.failure_message = message
            if step.on_failure.startswith("step:"):
                return runbook.index(step.on_failure[5:])
        if step.is_end:
            return None
        if step.next_step:
            return runbook.index(step.next_step)
        return index + 1 if index + 1 < len(runbook.steps) else None

    async def _run_step(self, execution: ExecutionRecord, record: StepRecord) -> None:
        step = record.step
        execution.current = record
        record.status = Status.IN_PROGRESS
        record.start = self.clock.now()
        try:
            record.inputs = fill(step.inputs, lambda name: self._lookup(execution, name))
        except MissingReference as exc:
            record.inputs = dict(step.inputs)
            self._failed(record, StepFailed(f"{{{{ {exc} }}}} has no value.", failure_type="Input"))
            return
        timeout = step.timeout_seconds or DEFAULT_TIMEOUTS.get(step.action)
        action = ACTIONS.get(step.action, unsupported)
        for attempt in range(1, step.max_attempts + 1):
            record.status = Status.IN_PROGRESS
            context = self._context(execution)
            try:
                result = await self._timed(action(context, record, dict(record.inputs)), timeout)
            except StepFailed as failure:
                self._failed(record, failure)
            except _StepTimedOut:
                self._failed(
                    record,
                    StepFailed(
                        f"Step timed out after {timeout:.0f} seconds.",
                        failure_type="Timeout",
                        status=Status.TIMED_OUT,
                    ),
                )
            else:
                outputs = dict(result.outputs)
                for declared in step.outputs:
                    with contextlib.suppress(MissingReference):
                        outputs[declared["Name"]] = select(result.document, declared["Selector"])
                self._outputs(execution, record, outputs)
                record.status = Status.SUCCESS
                record.end = self.clock.now()
                return
            if attempt < step.max_attempts:
                logger.info("step %s: attempt %d failed, trying again", step.name, attempt)

    def _failed(self, record: StepRecord, failure: StepFailed) -> None:
        record.status = failure.status
        record.failure_message = failure.message
        record.failure_type = failure.failure_type
        record.end = self.clock.now()
        if failure.outputs:
            record.outputs = {k: api_values(v) for k, v in failure.outputs.items()}

    def _outputs(
        self, execution: ExecutionRecord, record: StepRecord, outputs: Mapping[str, Any]
    ) -> None:
        record.outputs = {name: api_values(value) for name, value in outputs.items()}
        for name, value in outputs.items():
            execution.step_values[f"{record.step.name}.{name}"] = value

    async def _timed(self, coroutine: Any, timeout: float | None) -> Any:
        task: asyncio.Task[Any] = asyncio.ensure_future(coroutine)
        if timeout is None:
            return await task
        timer = asyncio.ensure_future(self.clock.sleep(timeout))
        try:
            await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if task.cancelled():
            raise _StepTimedOut
        return task.result()

    def _lookup(self, execution: ExecutionRecord, name: str) -> Any:
        if name in execution.values:
            return execution.values[name]
        if name in execution.step_values:
            return execution.step_values[name]
        variables = self._variables(execution)
        if name in variables:
            return variables[name]
        raise MissingReference(name)

    def _variables(self, execution: ExecutionRecord) -> dict[str, str]:
        return system_variables(
            execution.execution_id,
            execution.document_name,
            self.region,
            ACCOUNT_ID,
            self.clock.now(),
        )

    def _context(self, execution: ExecutionRecord) -> ActionContext:
        def publish(topic: str, event: str, message: dict[str, Any]) -> None:
            self.sender.engine.notifications.publish(topic, "Approval", event, message)

        return ActionContext(
            execution=execution,
            clock=self.clock,
            sender=self.sender,
            environment=self.environment,
            variables=self._variables(execution),
            publish=publish,
            wait=lambda record, kind: self._waiting(execution, record, kind),
            resume=lambda record: self._resumed(execution, record),
        )

    @staticmethod
    def _waiting(execution: ExecutionRecord, record: StepRecord, kind: str) -> None:
        record.status = Status.WAITING
        record.waiting_for = kind
        if execution.status == Status.IN_PROGRESS:
            execution.status = Status.WAITING

    @staticmethod
    def _resumed(execution: ExecutionRecord, record: StepRecord) -> None:
        record.waiting_for = None
        if record.status == Status.WAITING:
            record.status = Status.IN_PROGRESS
        if execution.status == Status.WAITING:
            execution.status = Status.IN_PROGRESS

    def describe(self) -> list[ExecutionRecord]:
        """Every execution, newest first."""
        return sorted(self.executions.values(), key=lambda e: -e.created)
