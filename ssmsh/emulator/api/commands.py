"""Run Command: SendCommand, ListCommands, ListCommandInvocations, GetCommandInvocation
and CancelCommand.

Requests arrive validated against botocore's model; this module resolves targets and the
document, builds the :class:`~ssmsh.emulator.commands.CommandRecord` and hands it to the
:class:`~ssmsh.emulator.commands.CommandEngine`, which runs it. Refusals use the codes the
model lists for each operation (InvalidInstanceId, DuplicateInstanceId, InvalidDocument,
InvalidDocumentVersion, InvalidParameters, UnsupportedPlatformType, InvalidRole,
InvalidNotificationConfig, InvalidCommandId, InvocationDoesNotExist, InvalidPluginName,
InvalidFilterKey), or ValidationException.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import time
import uuid
from typing import Any

from ..commands import CommandEngine, CommandRecord, InvocationRecord, PluginRecord, plan_plugins
from ..commands.render import command_shape, invocation_result, invocation_shape
from ..documents import DocumentVersion
from ..documents.content import platform_types
from ..errors import ServiceError
from ..httpserver import HttpRequest
from ..state import EmulatorState, TargetRecord
from .awsjson import Body, integer, member_list, page_result, string
from .registry import ApiContext, Registry

__all__ = ["CommandsApi"]

_FILTER_KEYS = ("InvokedAfter", "InvokedBefore", "Status", "ExecutionStage", "DocumentName")
_COMMAND_STATUSES = ("Pending", "InProgress", "Success", "Cancelled", "Failed", "TimedOut")
_SNS_ARN = re.compile(r"^arn:aws[\w-]*:sns:[a-z0-9-]+:\d{12}:[\w-]{1,256}$")
_ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
#: Delivery timeout when SendCommand gives none.
DEFAULT_TIMEOUT_SECONDS = 3600


class CommandsApi:
    """Run Command over the emulated fleet."""

    def __init__(self, context: ApiContext, engine: CommandEngine) -> None:
        self.state: EmulatorState = context.state
        self.region = context.config.region
        self.engine = engine

    def register(self, registry: Registry) -> None:
        registry.add("ssm", "SendCommand", self.send_command)
        # Filter keys have their own code (InvalidFilterKey), checked below.
        for name, handler in (
            ("ListCommands", self.list_commands),
            ("ListCommandInvocations", self.list_command_invocations),
        ):
            registry.add("ssm", name, handler, unchecked=("Filters.*.key",))
        registry.add("ssm", "GetCommandInvocation", self.get_command_invocation)
        registry.add("ssm", "CancelCommand", self.cancel_command)

    # -- SendCommand ----------------------------------------------------------------

    async def send_command(self, body: Body, request: HttpRequest) -> Body:
        document, version = self._document(body)
        parameters = {k: list(v) for k, v in (body.get("Parameters") or {}).items()}
        template = plan_plugins(document, version.data, parameters)
        instance_ids = [str(i) for i in member_list(body, "InstanceIds")]
        targets = member_list(body, "Targets")
        chosen = self._resolve(instance_ids, targets)
        platforms = platform_types(version.data, "Command")
        wrong = [t.instance_id for t in chosen if t.platform_type not in platforms]
        if wrong:
            raise ServiceError(
                "UnsupportedPlatformType",
                f"Document {document} does not support the platform of {', '.join(wrong)}.",
            )
        notification = self._notification(body)
        now = time.time()
        execution = sum(p.timeout for p in template)
        timeout = integer(body, "TimeoutSeconds") or DEFAULT_TIMEOUT_SECONDS
        bucket = string(body, "OutputS3BucketName") or ""
        command = CommandRecord(
            command_id=str(uuid.uuid4()),
            document_name=document,
            document_version=string(body, "DocumentVersion") or "$DEFAULT",
            requested=now,
            expires_after=now + timeout + execution,
            timeout_seconds=timeout,
            parameters=parameters,
            instance_ids=instance_ids,
            targets=[{"Key": t["Key"], "Values": list(t.get("Values") or [])} for t in targets],
            max_concurrency=string(body, "MaxConcurrency") or "50",
            max_errors=string(body, "MaxErrors") or "0",
            comment=string(body, "Comment") or "",
            output_s3_region=(string(body, "OutputS3Region") or self.region) if bucket else "",
            output_s3_bucket=bucket,
            output_s3_prefix=string(body, "OutputS3KeyPrefix") or "",
            service_role=string(body, "ServiceRoleArn") or "",
            notification_config=notification,
            cloudwatch_config=dict(body.get("CloudWatchOutputConfig") or {}),
            alarm_config=body.get("AlarmConfiguration"),
        )
        for target in chosen:
            command.invocations[target.instance_id] = InvocationRecord(
                command_id=command.command_id,
                instance_id=target.instance_id,
                instance_name=target.name,
                requested=now,
                plugins=[_copy(p) for p in template],
            )
        self.engine.submit(command)
        return {"Command": command_shape(command)}

    def _document(self, body: Body) -> tuple[str, DocumentVersion]:
        name = string(body, "DocumentName", required=True) or ""
        document = self.state.documents.get(name)
        if document.document_type != "Command":
            raise ServiceError(
                "InvalidDocument",
                f"Document {document.name} is a {document.document_type} document; "
                "SendCommand needs a Command document.",
            )
        version = document.version(string(body, "DocumentVersion") or "$DEFAULT")
        wanted = string(body, "DocumentHash")
        if wanted is not None:
            kind = string(body, "DocumentHashType") or "Sha256"
            digest = hashlib.sha1 if kind == "Sha1" else hashlib.sha256
            if digest(version.content.encode()).hexdigest() != wanted:
                raise ServiceError(
                    "InvalidDocument",
                    f"The {kind} hash does not match version {version.version} of "
                    f"document {document.name}.",
                )
        return document.name, version

    def _resolve(self, instance_ids: list[str], targets: list[Any]) -> list[TargetRecord]:
        if bool(instance_ids) == bool(targets):
            raise ServiceError(
                "ValidationException",
                "Specify either InstanceIds or Targets (one of them, not both).",
            )
        if instance_ids:
            return self._instances(instance_ids)
        chosen = sorted(self.state.targets.values(), key=lambda t: t.instance_id)
        for target in targets:
            key, values = str(target["Key"]), [str(v) for v in target.get("Values") or []]
            if key == "InstanceIds":
                wanted = {t.instance_id for t in self._instances(values)}
                chosen = [t for t in chosen if t.instance_id in wanted]
            elif key.startswith("tag:"):
                chosen = [t for t in chosen if t.all_tags.get(key[4:]) in values]
            elif key == "tag-key":
                chosen = [t for t in chosen if any(v in t.all_tags for v in values)]
            else:
                raise ServiceError(
                    "ValidationException",
                    f"Target key {key} is not supported here; use InstanceIds, tag:NAME or "
                    "tag-key.",
                )
        return chosen

    def _instances(self, instance_ids: list[str]) -> list[TargetRecord]:
        seen: set[str] = set()
        for instance_id in instance_ids:
            if instance_id in seen:
                raise ServiceError(
                    "DuplicateInstanceId", f"Instance {instance_id} is given more than once."
                )
            seen.add(instance_id)
        unknown = [i for i in instance_ids if i not in self.state.targets]
        if unknown:
            raise ServiceError(
                "InvalidInstanceId",
                f"Instances [{', '.join(unknown)}] not in a valid state for account.",
            )
        return [self.state.targets[i] for i in instance_ids]

    @staticmethod
    def _notification(body: Body) -> dict[str, Any]:
        config = dict(body.get("NotificationConfig") or {})
        arn = config.get("NotificationArn")
        role = string(body, "ServiceRoleArn")
        if role is not None and not _ROLE_ARN.match(role):
            raise ServiceError("InvalidRole", f"{role} is not an IAM role ARN.")
        if arn:
            if not _SNS_ARN.match(str(arn)):
                raise ServiceError(
                    "InvalidNotificationConfig", f"{arn} is not an Amazon SNS topic ARN."
                )
            if role is None:
                raise ServiceError(
                    "InvalidRole",
                    "Notifications need ServiceRoleArn: the role Run Command publishes with.",
                )
        return config

    # -- listing --------------------------------------------------------------------

    async def list_commands(self, body: Body, request: HttpRequest) -> Body:
        commands = self._commands(body)
        instance_id = string(body, "InstanceId")
        if instance_id is not None:
            commands = [c for c in commands if instance_id in c.invocations]
        return page_result(commands, "ListCommands", body, 50, "Commands", command_shape)

    async def list_command_invocations(self, body: Body, request: HttpRequest) -> Body:
        details = bool(body.get("Details"))
        instance_id = string(body, "InstanceId")
        filters = _filters(body)
        pairs: list[tuple[CommandRecord, InvocationRecord]] = []
        for command in self._commands(body, filters=()):
            if not command.visible:
                continue
            for invocation in command.invocations.values():
                if instance_id is not None and invocation.instance_id != instance_id:
                    continue
                if all(_matches(command, invocation.status, f) for f in filters):
                    pairs.append((command, invocation))
        return page_result(
            pairs,
            "ListCommandInvocations",
            body,
            50,
            "CommandInvocations",
            lambda pair: invocation_shape(pair[0], pair[1], details),
        )

    def _commands(
        self, body: Body, filters: tuple[tuple[str, str], ...] | None = None
    ) -> list[CommandRecord]:
        command_id = string(body, "CommandId")
        if command_id is not None:
            found = self.engine.commands.get(command_id)
            if found is None:
                raise ServiceError("InvalidCommandId", f"Command {command_id} does not exist.")
            commands = [found]
        else:
            commands = sorted(self.engine.commands.values(), key=lambda c: -c.requested)
        for item in _filters(body) if filters is None else filters:
            commands = [c for c in commands if _matches(c, c.status, item)]
        return commands

    # -- one invocation, cancelling ---------------------------------------------------

    async def get_command_invocation(self, body: Body, request: HttpRequest) -> Body:
        command_id = string(body, "CommandId", required=True) or ""
        instance_id = string(body, "InstanceId", required=True) or ""
        command = self.engine.commands.get(command_id)
        if command is None:
            raise ServiceError("InvalidCommandId", f"Command {command_id} does not exist.")
        invocation = command.invocations.get(instance_id) if command.visible else None
        if invocation is None:
            raise ServiceError(
                "InvocationDoesNotExist",
                f"No invocation of command {command_id} on instance {instance_id}.",
            )
        plugin_name = string(body, "PluginName")
        plugins = invocation.plugins
        if plugin_name is None:
            if len(plugins) > 1:
                raise ServiceError(
                    "InvalidPluginName",
                    f"The document has {len(plugins)} steps; name one in PluginName.",
                )
            index = 0
        else:
            names = [p.name for p in plugins]
            if plugin_name not in names:
                raise ServiceError(
                    "InvalidPluginName", f"The document has no step named {plugin_name}."
                )
            index = names.index(plugin_name)
        return invocation_result(command, invocation, plugins[index], index)

    async def cancel_command(self, body: Body, request: HttpRequest) -> Body:
        command_id = string(body, "CommandId", required=True) or ""
        command = self.engine.commands.get(command_id)
        if command is None:
            raise ServiceError("InvalidCommandId", f"Command {command_id} does not exist.")
        instance_ids = [str(i) for i in member_list(body, "InstanceIds")]
        if len(set(instance_ids)) != len(instance_ids):
            raise ServiceError("DuplicateInstanceId", "An instance is given more than once.")
        unknown = [i for i in instance_ids if i not in command.invocations]
        if unknown:
            raise ServiceError(
                "InvalidInstanceId",
                f"Command {command_id} was not sent to {', '.join(unknown)}.",
            )
        self.engine.cancel(command, instance_ids or None)
        return {}


def _copy(plugin: PluginRecord) -> PluginRecord:
    return dataclasses.replace(plugin)


def _filters(body: Body) -> tuple[tuple[str, str], ...]:
    result: list[tuple[str, str]] = []
    for index, item in enumerate(member_list(body, "Filters"), start=1):
        key, value = string(item, "key", True) or "", string(item, "value", True) or ""
        if key not in _FILTER_KEYS:
            raise ServiceError(
                "InvalidFilterKey",
                f"Value '{key}' at 'filters.{index}.member.key' failed to satisfy constraint: "
                f"Member must satisfy enum value set: [{', '.join(_FILTER_KEYS)}]",
            )
        if key in ("InvokedAfter", "InvokedBefore"):
            _timestamp(value)
        elif key == "Status" and value not in (*_COMMAND_STATUSES, "Cancelling", "Delayed"):
            raise ServiceError("ValidationException", f"{value} is not a command status.")
        elif key == "ExecutionStage" and value not in ("Executing", "Complete"):
            raise ServiceError("ValidationException", "ExecutionStage is Executing or Complete.")
        result.append((key, value))
    return tuple(result)


def _timestamp(value: str) -> float:
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ServiceError(
            "ValidationException", f"{value} is not a date and time such as 2024-06-30T12:00:00Z."
        ) from None


def _matches(command: CommandRecord, status: str, item: tuple[str, str]) -> bool:
    key, value = item
    if key == "InvokedAfter":
        return command.requested >= _timestamp(value)
    if key == "InvokedBefore":
        return command.requested <= _timestamp(value)
    if key == "Status":
        return status == value
    if key == "ExecutionStage":
        return command.finished == (value == "Complete")
    return command.document_name == value  # DocumentName
