"""Run Command: SendCommand, ListCommands, ListCommandInvocations, GetCommandInvocation
and CancelCommand.

Requests arrive validated against botocore's model; SendCommand goes to the
:class:`~ssmsh.emulator.commands.send.CommandSender` (shared with Automation and State
Manager), which resolves targets and the document and hands the command to the
:class:`~ssmsh.emulator.commands.CommandEngine`, which runs it. Refusals use the codes the
model lists for each operation (InvalidInstanceId, DuplicateInstanceId, InvalidDocument,
InvalidDocumentVersion, InvalidParameters, UnsupportedPlatformType, InvalidRole,
InvalidNotificationConfig, InvalidCommandId, InvocationDoesNotExist, InvalidPluginName,
InvalidFilterKey), or ValidationException.
"""

from __future__ import annotations

import datetime as dt

from ..commands import CommandRecord, InvocationRecord
from ..commands.render import command_shape, invocation_result, invocation_shape
from ..commands.send import CommandSender
from ..errors import ServiceError
from ..httpserver import HttpRequest
from ..state import EmulatorState
from .awsjson import Body, member_list, page_result, string
from .registry import ApiContext, Registry

__all__ = ["CommandsApi"]

_FILTER_KEYS = ("InvokedAfter", "InvokedBefore", "Status", "ExecutionStage", "DocumentName")
_COMMAND_STATUSES = ("Pending", "InProgress", "Success", "Cancelled", "Failed", "TimedOut")


class CommandsApi:
    """Run Command over the emulated fleet."""

    def __init__(self, context: ApiContext, sender: CommandSender) -> None:
        self.state: EmulatorState = context.state
        self.sender = sender
        self.engine = sender.engine

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
        # The dispatcher validated the body already.
        command = self.sender.send(body, check=False)
        return {"Command": command_shape(command)}

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
