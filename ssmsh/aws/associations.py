"""State Manager through botocore: :class:`SsmAssociations`.

ListAssociations, DescribeAssociation, StartAssociationsOnce, DescribeAssociationExecutions
and DescribeAssociationExecutionTargets (botocore's paginators), on
:class:`~ssmsh.aws.sessions.SsmSessions`' plumbing: a worker thread per call and every
failure mapped once to a one-line :class:`~ssmsh.exceptions.AwsError` whose ``code`` keeps
AWS's (``AssociationDoesNotExist``, ``AssociationExecutionDoesNotExist``...).

Listings take a ``page_size`` (MaxResults, at most 50) and a ``limit`` (MaxItems); they
follow NextToken to the end otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .sessions import SsmSessions, page_config

__all__ = ["MAX_START_ONCE", "SsmAssociations"]

#: StartAssociationsOnce takes at most this many ids a call (botocore's SSM model).
MAX_START_ONCE = 10


class SsmAssociations(SsmSessions):
    """State Manager operations (and, inherited, the session and instance ones)."""

    async def list_associations(
        self,
        filters: Sequence[Mapping[str, str]] = (),
        limit: int | None = None,
        page_size: int | None = None,
    ) -> list[dict[str, Any]]:
        """ListAssociations (``{"key": ..., "value": ...}`` filters), every page."""
        kwargs: dict[str, Any] = {"PaginationConfig": page_config(limit, page_size)}
        if filters:
            kwargs["AssociationFilterList"] = [dict(f) for f in filters]
        return await self._paginate("ListAssociations", "Associations", kwargs)

    async def describe_association(self, association_id: str) -> dict[str, Any]:
        """DescribeAssociation: the AssociationDescription of the latest version."""
        response = await self._request(
            "DescribeAssociation", "describe_association", AssociationId=association_id
        )
        found: dict[str, Any] = response.get("AssociationDescription") or {}
        return found

    async def start_once(self, association_ids: Sequence[str]) -> None:
        """StartAssociationsOnce, :data:`MAX_START_ONCE` ids a call."""
        ids = list(association_ids)
        for start in range(0, len(ids), MAX_START_ONCE):
            await self._request(
                "StartAssociationsOnce",
                "start_associations_once",
                AssociationIds=ids[start : start + MAX_START_ONCE],
            )

    async def executions(
        self,
        association_id: str,
        filters: Sequence[Mapping[str, str]] = (),
        limit: int | None = None,
        page_size: int | None = None,
    ) -> list[dict[str, Any]]:
        """DescribeAssociationExecutions (``{"Key", "Value", "Type"}`` filters), newest
        first, every page or the first ``limit``."""
        kwargs: dict[str, Any] = {
            "AssociationId": association_id,
            "PaginationConfig": page_config(limit, page_size),
        }
        if filters:
            kwargs["Filters"] = [dict(f) for f in filters]
        return await self._paginate(
            "DescribeAssociationExecutions", "AssociationExecutions", kwargs
        )

    async def execution_targets(
        self,
        association_id: str,
        execution_id: str,
        filters: Sequence[Mapping[str, str]] = (),
        page_size: int | None = None,
    ) -> list[dict[str, Any]]:
        """DescribeAssociationExecutionTargets (``{"Key", "Value"}`` filters), every page."""
        kwargs: dict[str, Any] = {
            "AssociationId": association_id,
            "ExecutionId": execution_id,
            "PaginationConfig": page_config(None, page_size),
        }
        if filters:
            kwargs["Filters"] = [dict(f) for f in filters]
        return await self._paginate(
            "DescribeAssociationExecutionTargets", "AssociationExecutionTargets", kwargs
        )
