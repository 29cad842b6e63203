"""Automation through botocore: :class:`SsmAutomation`.

StartAutomationExecution, GetAutomationExecution, DescribeAutomationExecutions (botocore's
paginator), StopAutomationExecution and SendAutomationSignal, on
:class:`~ssmsh.aws.sessions.SsmSessions`' plumbing: a worker thread per call and every
failure mapped once to a one-line :class:`~ssmsh.exceptions.AwsError` whose ``code`` keeps
AWS's (``AutomationExecutionNotFoundException``, ``InvalidAutomationSignalException``...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .sessions import SsmSessions, page_config

__all__ = ["SsmAutomation"]


class SsmAutomation(SsmSessions):
    """Automation operations (and, inherited, the session and instance ones)."""

    async def start_execution(
        self,
        document: str,
        parameters: Mapping[str, Sequence[str]],
        version: str | None = None,
    ) -> str:
        """StartAutomationExecution: the new execution's id."""
        kwargs: dict[str, Any] = {"DocumentName": document}
        if parameters:
            kwargs["Parameters"] = {k: list(v) for k, v in parameters.items()}
        if version:
            kwargs["DocumentVersion"] = version
        response = await self._request(
            "StartAutomationExecution", "start_automation_execution", **kwargs
        )
        return str(response.get("AutomationExecutionId") or "")

    async def get_execution(self, execution_id: str) -> dict[str, Any]:
        """GetAutomationExecution: the AutomationExecution, with its step executions."""
        response = await self._request(
            "GetAutomationExecution",
            "get_automation_execution",
            AutomationExecutionId=execution_id,
        )
        found: dict[str, Any] = response.get("AutomationExecution") or {}
        return found

    async def list_executions(
        self,
        filters: Sequence[Mapping[str, Any]] = (),
        limit: int | None = None,
        page_size: int | None = None,
    ) -> list[dict[str, Any]]:
        """DescribeAutomationExecutions (``{"Key": ..., "Values": [...]}`` filters), every
        page or the first ``limit`` executions, in the API's order (newest first)."""
        kwargs: dict[str, Any] = {"PaginationConfig": page_config(limit, page_size)}
        if filters:
            kwargs["Filters"] = [dict(f) for f in filters]
        return await self._paginate(
            "DescribeAutomationExecutions", "AutomationExecutionMetadataList", kwargs
        )

    async def stop_execution(self, execution_id: str) -> None:
        """StopAutomationExecution (Type Cancel)."""
        await self._request(
            "StopAutomationExecution",
            "stop_automation_execution",
            AutomationExecutionId=execution_id,
            Type="Cancel",
        )

    async def send_signal(
        self, execution_id: str, signal_type: str, payload: Mapping[str, Sequence[str]]
    ) -> None:
        """SendAutomationSignal (``Approve``, ``Reject``, ``Resume``...)."""
        kwargs: dict[str, Any] = {"AutomationExecutionId": execution_id, "SignalType": signal_type}
        if payload:
            kwargs["Payload"] = {k: list(v) for k, v in payload.items()}
        await self._request("SendAutomationSignal", "send_automation_signal", **kwargs)
