"""Automation: StartAutomationExecution, GetAutomationExecution,
DescribeAutomationExecutions, DescribeAutomationStepExecutions, StopAutomationExecution
and SendAutomationSignal.

Requests arrive validated against botocore's model; the
:class:`~ssmsh.emulator.automation.AutomationEngine` runs the executions. The caller's
identity (ExecutedBy, the approver of a signal) is the principal configured for its
access key (``EmulatorConfig.identities``).

Filters, after the API reference: DescribeAutomationExecutions takes DocumentNamePrefix,
ExecutionStatus, ExecutionId, ParentExecutionId, CurrentAction, StartTimeBefore,
StartTimeAfter (ISO 8601 times), AutomationType, TagKey, TargetResourceGroup,
AutomationSubtype and OpsItemId, each matching any of its values, all of them together;
newest executions first. An unknown key is InvalidFilterKey, a value that is not a
status or a time InvalidFilterValue. DescribeAutomationStepExecutions takes
StartTimeBefore, StartTimeAfter, StepExecutionStatus, StepExecutionId, StepName and
Action (the Parent* keys match nothing: no step has a parent here), oldest first unless
ReverseOrder. Rate-controlled executions (Targets, TargetMaps, TargetLocations) and
Interactive mode are not run by the emulator: InvalidAutomationExecutionParametersException
says so.
"""

from __future__ import annotations

from typing import Any

from ..automation import AutomationEngine, ExecutionRecord, Status, StepRecord
from ..automation.render import execution_shape, metadata_shape, step_shape
from ..automation.values import iso_time
from ..documents import document_name
from ..errors import ServiceError
from ..httpserver import HttpRequest
from .awsjson import Body, key_values_filters, member_list, page_result, string
from .registry import ApiContext, Registry, service_model

__all__ = ["AutomationApi"]

_EXECUTION_FILTERS = (
    "DocumentNamePrefix",
    "ExecutionStatus",
    "ExecutionId",
    "ParentExecutionId",
    "CurrentAction",
    "StartTimeBefore",
    "StartTimeAfter",
    "AutomationType",
    "TagKey",
    "TargetResourceGroup",
    "AutomationSubtype",
    "OpsItemId",
)
_STEP_FILTERS = (
    "StartTimeBefore",
    "StartTimeAfter",
    "StepExecutionStatus",
    "StepExecutionId",
    "StepName",
    "Action",
    "ParentStepExecutionId",
    "ParentStepIteration",
    "ParentStepIteratorValue",
)
#: Every AutomationExecutionStatus of the model (the emulator's executions use eight).
_STATUSES = frozenset(service_model("ssm").shape_for("AutomationExecutionStatus").metadata["enum"])
_UNSUPPORTED = ("Targets", "TargetMaps", "TargetLocations", "TargetLocationsURL")


class AutomationApi:
    """Automation executions of the account's runbooks."""

    def __init__(self, context: ApiContext, engine: AutomationEngine) -> None:
        self.context = context
        self.engine = engine

    def register(self, registry: Registry) -> None:
        registry.add("ssm", "StartAutomationExecution", self.start_automation_execution)
        registry.add("ssm", "GetAutomationExecution", self.get_automation_execution)
        # Filter keys have their own code (InvalidFilterKey), checked below.
        registry.add(
            "ssm",
            "DescribeAutomationExecutions",
            self.describe_automation_executions,
            unchecked=("Filters.*.Key",),
        )
        registry.add(
            "ssm",
            "DescribeAutomationStepExecutions",
            self.describe_automation_step_executions,
            unchecked=("Filters.*.Key",),
        )
        registry.add("ssm", "StopAutomationExecution", self.stop_automation_execution)
        registry.add("ssm", "SendAutomationSignal", self.send_automation_signal)

    async def start_automation_execution(self, body: Body, request: HttpRequest) -> Body:
        if string(body, "Mode") == "Interactive":
            raise _unsupported("Interactive mode (StartStep signals) is not run by the emulator.")
        given = [key for key in (*_UNSUPPORTED, "TargetParameterName") if body.get(key)]
        if given:
            raise _unsupported(
                f"Rate-controlled executions ({', '.join(given)}) are not run by the emulator; "
                "start one execution per target instead."
            )
        execution = self.engine.start(
            document_name(string(body, "DocumentName", required=True) or ""),
            string(body, "DocumentVersion"),
            {k: [str(i) for i in v] for k, v in (body.get("Parameters") or {}).items()},
            caller=self.context.caller(request),
            client_token=string(body, "ClientToken"),
            tags=[{"Key": t["Key"], "Value": t["Value"]} for t in member_list(body, "Tags")],
        )
        return {"AutomationExecutionId": execution.execution_id}

    async def get_automation_execution(self, body: Body, request: HttpRequest) -> Body:
        execution = self.engine.get(string(body, "AutomationExecutionId", required=True) or "")
        return {"AutomationExecution": execution_shape(execution)}

    async def describe_automation_executions(self, body: Body, request: HttpRequest) -> Body:
        executions = self.engine.describe()
        for key, values in key_values_filters(body, "Filters"):
            if key not in _EXECUTION_FILTERS:
                raise ServiceError(
                    "InvalidFilterKey",
                    f"The filter key {key} is not valid; use {', '.join(_EXECUTION_FILTERS)}.",
                )
            executions = [e for e in executions if _execution_matches(e, key, values)]
        return page_result(
            executions,
            "DescribeAutomationExecutions",
            body,
            50,
            "AutomationExecutionMetadataList",
            metadata_shape,
        )

    async def describe_automation_step_executions(self, body: Body, request: HttpRequest) -> Body:
        execution = self.engine.get(string(body, "AutomationExecutionId", required=True) or "")
        records = [r for r in execution.steps if r.status != Status.PENDING]
        for key, values in key_values_filters(body, "Filters"):
            if key not in _STEP_FILTERS:
                raise ServiceError(
                    "InvalidFilterKey",
                    f"The filter key {key} is not valid; use {', '.join(_STEP_FILTERS)}.",
                )
            records = [r for r in records if _step_matches(r, key, values)]
        records.sort(key=lambda r: r.start or 0.0, reverse=bool(body.get("ReverseOrder")))
        return page_result(
            records, "DescribeAutomationStepExecutions", body, 50, "StepExecutions", step_shape
        )

    async def stop_automation_execution(self, body: Body, request: HttpRequest) -> Body:
        self.engine.stop(
            string(body, "AutomationExecutionId", required=True) or "",
            string(body, "Type") or "Cancel",
        )
        return {}

    async def send_automation_signal(self, body: Body, request: HttpRequest) -> Body:
        payload = {k: [str(i) for i in v] for k, v in (body.get("Payload") or {}).items()}
        self.engine.signal(
            string(body, "AutomationExecutionId", required=True) or "",
            string(body, "SignalType", required=True) or "",
            payload,
            self.context.caller(request),
        )
        return {}


def _unsupported(message: str) -> ServiceError:
    return ServiceError("InvalidAutomationExecutionParametersException", message)


def _time(key: str, value: str) -> float:
    try:
        return iso_time(value)
    except ValueError:
        raise ServiceError(
            "InvalidFilterValue",
            f"{key} takes a time such as 2024-06-30T12:00:00Z, not {value!r}.",
        ) from None


def _execution_matches(execution: ExecutionRecord, key: str, values: list[str]) -> bool:
    started = execution.start or execution.created
    if key == "DocumentNamePrefix":
        return any(execution.document_name.startswith(v) for v in values)
    if key == "ExecutionStatus":
        wrong = [v for v in values if v not in _STATUSES]
        if wrong:
            raise ServiceError(
                "InvalidFilterValue",
                f"{', '.join(wrong)} is not an AutomationExecutionStatus.",
            )
        return str(execution.status) in values
    if key == "ExecutionId":
        return execution.execution_id in values
    if key == "CurrentAction":
        current = execution.current
        return current is not None and current.step.action in values
    if key == "StartTimeBefore":
        return any(started <= _time(key, v) for v in values)
    if key == "StartTimeAfter":
        return any(started >= _time(key, v) for v in values)
    if key == "AutomationType":
        return "Local" in values
    if key == "TagKey":
        return any(t["Key"] in values for t in execution.tags)
    # ParentExecutionId, TargetResourceGroup, AutomationSubtype, OpsItemId: none here.
    return False


def _step_matches(record: StepRecord, key: str, values: list[str]) -> bool:
    started = record.start or 0.0
    lookup: dict[str, Any] = {
        "StepExecutionStatus": str(record.status),
        "StepExecutionId": record.step_execution_id,
        "StepName": record.step.name,
        "Action": record.step.action,
    }
    if key in lookup:
        return lookup[key] in values
    if key == "StartTimeBefore":
        return any(started <= _time(key, v) for v in values)
    if key == "StartTimeAfter":
        return any(started >= _time(key, v) for v in values)
    return False  # the Parent* keys
