"""Run Command records in the shapes of botocore's model (Command, CommandInvocation,
CommandPlugin, GetCommandInvocation's answer), and the times and URLs they carry.

Kept apart from the operations (``api/commands.py``) so the shapes can be read in one
place. Output URLs, when SendCommand named an S3 bucket, follow the layout the agent
uploads to: ``<prefix>/<command id>/<instance id>/<plugin directory>/stdout``, where a
schemaVersion 1.2 plugin's directory is ``awsrunShellScript/0.awsrunShellScript`` and a
2.x step's is ``awsrunShellScript/<step name>`` (the action without its colon, then the
plugin id). No output is stored: the emulator has no S3.
"""

from __future__ import annotations

from typing import Any

from .model import (
    MAX_STDERR,
    MAX_STDOUT,
    CommandRecord,
    InvocationRecord,
    PluginRecord,
)
from .notifications import iso_time

__all__ = ["command_shape", "duration", "invocation_result", "invocation_shape"]

Body = dict[str, Any]


def _epoch(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def duration(seconds: float) -> str:
    """An ISO 8601 duration as AWS writes ExecutionElapsedTime (``PT1H0.271S``)."""
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, frac = divmod(rest, 1000)
    text = "PT"
    if hours:
        text += f"{hours}H"
    if minutes:
        text += f"{minutes}M"
    if rest or not (hours or minutes):
        text += f"{whole}.{frac:03d}".rstrip("0").rstrip(".") + "S"
    return text


def command_shape(command: CommandRecord) -> Body:
    result: Body = {
        "CommandId": command.command_id,
        "DocumentName": command.document_name,
        "DocumentVersion": command.document_version,
        "Comment": command.comment,
        "ExpiresAfter": _epoch(command.expires_after),
        "Parameters": command.parameters,
        "InstanceIds": list(command.instance_ids),
        "Targets": list(command.targets),
        "RequestedDateTime": _epoch(command.requested),
        "Status": command.status,
        "StatusDetails": str(command.detail),
        "OutputS3Region": command.output_s3_region,
        "OutputS3BucketName": command.output_s3_bucket,
        "OutputS3KeyPrefix": command.output_s3_prefix,
        "MaxConcurrency": command.max_concurrency,
        "MaxErrors": command.max_errors,
        "TargetCount": command.target_count if command.visible else 0,
        "CompletedCount": command.completed_count,
        "ErrorCount": command.error_count,
        "DeliveryTimedOutCount": command.delivery_timed_out_count,
        "ServiceRole": command.service_role,
        "NotificationConfig": _notification(command),
        "CloudWatchOutputConfig": _cloudwatch(command),
        "TimeoutSeconds": command.timeout_seconds,
    }
    if command.alarm_config is not None:
        result["AlarmConfiguration"] = command.alarm_config
    return result


def _notification(command: CommandRecord) -> Body:
    config = command.notification_config
    return {
        "NotificationArn": config.get("NotificationArn", ""),
        "NotificationEvents": list(config.get("NotificationEvents") or []),
        "NotificationType": config.get("NotificationType", ""),
    }


def _cloudwatch(command: CommandRecord) -> Body:
    config = command.cloudwatch_config
    return {
        "CloudWatchLogGroupName": config.get("CloudWatchLogGroupName", ""),
        "CloudWatchOutputEnabled": bool(config.get("CloudWatchOutputEnabled", False)),
    }


def _plugin_dir(plugin: PluginRecord, index: int) -> str:
    action = plugin.action.replace(":", "")
    step = f"{index}.{action}" if plugin.name == plugin.action else plugin.name
    return f"{action}/{step}"


def _key_prefix(command: CommandRecord, instance_id: str, plugin: PluginRecord, index: int) -> str:
    parts = [command.output_s3_prefix.strip("/"), command.command_id, instance_id]
    return "/".join(p for p in [*parts, _plugin_dir(plugin, index)] if p)


def _url(
    command: CommandRecord, instance_id: str, plugin: PluginRecord, index: int, name: str
) -> str:
    if not command.output_s3_bucket:
        return ""
    region = command.output_s3_region
    key = _key_prefix(command, instance_id, plugin, index)
    return f"https://s3.{region}.amazonaws.com/{command.output_s3_bucket}/{key}/{name}"


def _plugin_shape(
    command: CommandRecord, invocation: InvocationRecord, plugin: PluginRecord, index: int
) -> Body:
    result: Body = {
        "Name": plugin.name,
        "Status": plugin.status,
        "StatusDetails": str(plugin.detail),
        "ResponseCode": plugin.response_code,
        "Output": plugin.output if plugin.finished else "",
        "StandardOutputUrl": _url(command, invocation.instance_id, plugin, index, "stdout"),
        "StandardErrorUrl": _url(command, invocation.instance_id, plugin, index, "stderr"),
        "OutputS3Region": command.output_s3_region,
        "OutputS3BucketName": command.output_s3_bucket,
        "OutputS3KeyPrefix": (
            _key_prefix(command, invocation.instance_id, plugin, index)
            if command.output_s3_bucket
            else ""
        ),
    }
    if plugin.start is not None:
        result["ResponseStartDateTime"] = _epoch(plugin.start)
    if plugin.end is not None:
        result["ResponseFinishDateTime"] = _epoch(plugin.end)
    return result


def invocation_shape(command: CommandRecord, invocation: InvocationRecord, details: bool) -> Body:
    first = invocation.plugins[0]
    return {
        "CommandId": command.command_id,
        "InstanceId": invocation.instance_id,
        "InstanceName": invocation.instance_name,
        "Comment": command.comment,
        "DocumentName": command.document_name,
        "DocumentVersion": command.document_version,
        "RequestedDateTime": _epoch(invocation.requested),
        "Status": invocation.status,
        "StatusDetails": str(invocation.detail),
        "TraceOutput": "",
        "StandardOutputUrl": _url(command, invocation.instance_id, first, 0, "stdout"),
        "StandardErrorUrl": _url(command, invocation.instance_id, first, 0, "stderr"),
        "CommandPlugins": (
            [_plugin_shape(command, invocation, p, i) for i, p in enumerate(invocation.plugins)]
            if details
            else []
        ),
        "ServiceRole": command.service_role,
        "NotificationConfig": _notification(command),
        "CloudWatchOutputConfig": _cloudwatch(command),
    }


def invocation_result(
    command: CommandRecord, invocation: InvocationRecord, plugin: PluginRecord, index: int
) -> Body:
    """GetCommandInvocation's answer for one plugin of an invocation."""
    done = plugin.finished
    result: Body = {
        "CommandId": command.command_id,
        "InstanceId": invocation.instance_id,
        "Comment": command.comment,
        "DocumentName": command.document_name,
        "DocumentVersion": command.document_version,
        "PluginName": plugin.name,
        "ResponseCode": plugin.response_code,
        "ExecutionStartDateTime": iso_time(plugin.start) if plugin.start is not None else "",
        "ExecutionElapsedTime": "",
        "ExecutionEndDateTime": iso_time(plugin.end) if plugin.end is not None else "",
        "Status": invocation.status if len(invocation.plugins) == 1 else plugin.status,
        "StatusDetails": str(invocation.detail if len(invocation.plugins) == 1 else plugin.detail),
        "StandardOutputContent": plugin.stdout[:MAX_STDOUT] if done else "",
        "StandardOutputUrl": _url(command, invocation.instance_id, plugin, index, "stdout"),
        "StandardErrorContent": plugin.stderr[:MAX_STDERR] if done else "",
        "StandardErrorUrl": _url(command, invocation.instance_id, plugin, index, "stderr"),
        "CloudWatchOutputConfig": _cloudwatch(command),
    }
    if plugin.start is not None and plugin.end is not None:
        result["ExecutionElapsedTime"] = duration(plugin.end - plugin.start)
    return result
