"""Run Command through botocore: :class:`SsmCommands`.

SendCommand, ListCommands, ListCommandInvocations (every page, with ``Details``),
GetCommandInvocation and CancelCommand, on :class:`~ssmsh.aws.sessions.SsmSessions`'
plumbing: the same clients, a worker thread per call, and every failure mapped once to a
one-line :class:`~ssmsh.exceptions.AwsError` (``error.code`` keeps AWS's code, so a caller
can tell ``InvocationDoesNotExist`` or ``ThrottlingException`` apart). Throttling is left
to botocore's retry modes (:data:`POLLING_RETRIES`); nothing here retries on its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import map_aws_errors
from .sessions import SsmSessions
from .settings import AwsSettings

__all__ = ["INVOCATION_PAGE_SIZE", "SsmCommands", "polling_settings", "ssm_enum"]

#: ListCommandInvocations' largest page (botocore's SSM model: MaxResults 1-50).
INVOCATION_PAGE_SIZE = 50
#: ListCommands' largest page.
COMMAND_PAGE_SIZE = 50
#: Attempts per call for a command that polls: throttling is expected under load, and
#: botocore's adaptive mode then slows the client down instead of failing the call.
POLLING_ATTEMPTS = 6


def polling_settings(settings: AwsSettings) -> AwsSettings:
    """``settings`` for a client that polls: the adaptive retry mode, more attempts."""
    return dataclasses.replace(
        settings,
        retry_mode="adaptive",
        max_attempts=max(settings.max_attempts, POLLING_ATTEMPTS),
    )


class SsmCommands(SsmSessions):
    """Run Command operations (and, inherited, the session and instance ones)."""

    async def send_command(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """SendCommand with ``request`` (the API's members); the Command it returns."""
        kwargs = dict(request)

        def send() -> dict[str, Any]:
            result: dict[str, Any] = self._client("ssm").send_command(**kwargs)
            return result

        response = await self._call("SendCommand", send)
        command: dict[str, Any] = response.get("Command") or {}
        return command

    async def get_command(self, command_id: str) -> dict[str, Any] | None:
        """ListCommands for one command id: its Command, or None when not listed (yet)."""

        def get() -> dict[str, Any]:
            result: dict[str, Any] = self._client("ssm").list_commands(CommandId=command_id)
            return result

        found = (await self._call("ListCommands", get)).get("Commands") or []
        return dict(found[0]) if found else None

    async def list_commands(
        self, filters: Sequence[Mapping[str, str]] = (), limit: int | None = None
    ) -> list[dict[str, Any]]:
        """ListCommands, newest first, following NextToken until done or ``limit``."""
        config: dict[str, int] = {"PageSize": min(limit or COMMAND_PAGE_SIZE, COMMAND_PAGE_SIZE)}
        if limit:
            config["MaxItems"] = limit
        kwargs: dict[str, Any] = {"PaginationConfig": config}
        if filters:
            kwargs["Filters"] = [dict(f) for f in filters]
        return await self._paginate("ListCommands", "Commands", kwargs)

    async def list_invocations(self, command_id: str, details: bool = True) -> list[dict[str, Any]]:
        """ListCommandInvocations of a command, every page (50 invocations a call).

        Empty right after SendCommand: AWS (and the emulator) lists a command's
        invocations a moment after it accepted the command.
        """
        kwargs: dict[str, Any] = {
            "CommandId": command_id,
            "Details": details,
            "PaginationConfig": {"PageSize": INVOCATION_PAGE_SIZE},
        }
        return await self._paginate("ListCommandInvocations", "CommandInvocations", kwargs)

    async def get_invocation(
        self, command_id: str, instance_id: str, plugin_name: str | None = None
    ) -> dict[str, Any]:
        """GetCommandInvocation: one instance's (one step's) outputs, up to 24,000 / 8,000
        characters. ``InvocationDoesNotExist`` right after SendCommand is to be expected."""
        kwargs: dict[str, Any] = {"CommandId": command_id, "InstanceId": instance_id}
        if plugin_name:
            kwargs["PluginName"] = plugin_name

        def get() -> dict[str, Any]:
            result: dict[str, Any] = self._client("ssm").get_command_invocation(**kwargs)
            return result

        return await self._call("GetCommandInvocation", get)

    async def cancel_command(self, command_id: str) -> None:
        """CancelCommand for every invocation of the command."""

        def cancel() -> None:
            self._client("ssm").cancel_command(CommandId=command_id)

        await self._call("CancelCommand", cancel)


def ssm_enum(shape: str) -> tuple[str, ...]:
    """The values of an enum of botocore's SSM model (``NotificationEvent``, ``CommandStatus``)."""
    from .settings import _botocore_session

    with map_aws_errors("loading the SSM model"):
        model = _botocore_session(isolated=True).get_service_model("ssm")
        values: list[str] = getattr(model.shape_for(shape), "enum", [])
        return tuple(values)
