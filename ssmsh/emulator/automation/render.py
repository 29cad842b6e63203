"""Automation records in botocore's shapes: AutomationExecution (GetAutomationExecution),
AutomationExecutionMetadata (DescribeAutomationExecutions) and StepExecution.

What AWS shows, and how we know: a step's ``Inputs`` are its filled-in inputs, each
value written as JSON (``"DesiredState": "\\"stopped\\""`` in the user guide's
describe-automation-step-executions sample); ``Parameters`` are every parameter of the
runbook with its value, defaults included; the execution's ``Outputs`` list every
output the runbook declares, with a placeholder text while its step has not given it
(our wording); ``ExecutedBy`` is the caller's ARN.
"""

from __future__ import annotations

import json
from typing import Any

from .model import ExecutionRecord, Status, StepRecord
from .values import api_values

__all__ = ["execution_shape", "metadata_shape", "step_shape"]

Body = dict[str, Any]

#: An execution output whose step has not (successfully) given it.
NO_OUTPUT = "No output available yet: its step has not completed successfully."


def _epoch(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _put(result: Body, key: str, value: Any) -> None:
    if value not in (None, "", [], {}):
        result[key] = value


def step_shape(record: StepRecord) -> Body:
    step = record.step
    result: Body = {
        "StepName": step.name,
        "Action": step.action,
        "OnFailure": step.on_failure,
        "MaxAttempts": step.max_attempts,
        "StepStatus": str(record.status),
        "StepExecutionId": record.step_execution_id,
        "IsEnd": step.is_end,
        "IsCritical": step.critical,
        "OverriddenParameters": {},
    }
    _put(result, "TimeoutSeconds", step.timeout_seconds)
    _put(result, "ExecutionStartTime", _epoch(record.start))
    _put(result, "ExecutionEndTime", _epoch(record.end))
    if record.inputs is not None:
        result["Inputs"] = {k: json.dumps(v) for k, v in record.inputs.items()}
    _put(result, "Outputs", record.outputs)
    _put(result, "ResponseCode", record.response_code)
    _put(result, "Response", record.response)
    _put(result, "NextStep", step.next_step)
    _put(result, "ValidNextSteps", step.valid_next_steps)
    if record.failure_message:
        result["FailureMessage"] = record.failure_message
        result["FailureDetails"] = {
            "FailureStage": "InputValidation" if record.failure_type == "Input" else "Invocation",
            "FailureType": record.failure_type or "Action",
            "Details": {"Message": [record.failure_message]},
        }
    return result


def _outputs(execution: ExecutionRecord) -> dict[str, list[str]]:
    outputs: dict[str, list[str]] = {}
    for name in execution.runbook.outputs:
        value = execution.step_values.get(name)
        outputs[name] = [NO_OUTPUT] if value is None else api_values(value)
    return outputs


def _common(execution: ExecutionRecord) -> Body:
    result: Body = {
        "AutomationExecutionId": execution.execution_id,
        "DocumentName": execution.document_name,
        "DocumentVersion": execution.document_version,
        "AutomationExecutionStatus": str(execution.status),
        "ExecutedBy": execution.executed_by,
        "Mode": execution.mode,
        "Targets": [],
        "ResolvedTargets": {"ParameterValues": [], "Truncated": False},
    }
    _put(result, "ExecutionStartTime", _epoch(execution.start or execution.created))
    _put(result, "ExecutionEndTime", _epoch(execution.end))
    _put(result, "Outputs", _outputs(execution))
    _put(result, "FailureMessage", execution.failure_message)
    current = execution.current
    if current is not None and not execution.finished:
        result["CurrentStepName"] = current.step.name
        result["CurrentAction"] = current.step.action
    return result


def execution_shape(execution: ExecutionRecord) -> Body:
    """GetAutomationExecution's AutomationExecution."""
    result = _common(execution)
    result["StepExecutions"] = [step_shape(record) for record in execution.steps]
    result["StepExecutionsTruncated"] = False
    _put(result, "Parameters", execution.parameters)
    statuses = [record.status for record in execution.steps]
    result["ProgressCounters"] = {
        "TotalSteps": len(statuses),
        "SuccessSteps": statuses.count(Status.SUCCESS),
        "FailedSteps": statuses.count(Status.FAILED),
        "CancelledSteps": statuses.count(Status.CANCELLED),
        "TimedOutSteps": statuses.count(Status.TIMED_OUT),
    }
    return result


def metadata_shape(execution: ExecutionRecord) -> Body:
    """DescribeAutomationExecutions' AutomationExecutionMetadata."""
    result = _common(execution)
    result["AutomationType"] = "Local"
    return result
