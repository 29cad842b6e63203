"""Session Manager operations: StartSession, ResumeSession, TerminateSession,
DescribeSessions and GetConnectionStatus."""

from __future__ import annotations

import datetime as dt
import logging

from ..errors import ServiceError
from ..httpserver import HttpRequest
from ..state import ACTIVE_STATUSES, SessionRecord
from .awsjson import (
    Body,
    epoch,
    invalid_filter_key,
    member_list,
    page_result,
    string,
)
from .registry import ApiContext, Registry

__all__ = ["SessionsApi"]

logger = logging.getLogger(__name__)

_SESSION_FILTER_KEYS = (
    "InvokedAfter",
    "InvokedBefore",
    "Target",
    "Owner",
    "Status",
    "SessionId",
    "AccessType",
)


class SessionsApi:
    """Sessions: starting, resuming, ending and listing them."""

    def __init__(self, context: ApiContext) -> None:
        self.context = context
        self.state = context.state

    def register(self, registry: Registry) -> None:
        registry.add("ssm", "StartSession", self.start_session)
        registry.add("ssm", "ResumeSession", self.resume_session)
        registry.add("ssm", "TerminateSession", self.terminate_session)
        registry.add(
            "ssm", "DescribeSessions", self.describe_sessions, unchecked=("Filters.*.key",)
        )
        registry.add("ssm", "GetConnectionStatus", self.get_connection_status)

    async def start_session(self, body: Body, request: HttpRequest) -> Body:
        target = string(body, "Target", required=True) or ""
        parameters: dict[str, list[str]] | None = body.get("Parameters")
        session = self.state.start_session(
            target,
            string(body, "DocumentName"),
            parameters,
            string(body, "Reason") or "",
            base_url=self.context.base_url(request),
        )
        logger.info(
            "session %s started on %s (%s)", session.session_id, target, session.session_type
        )
        return {
            "SessionId": session.session_id,
            "TokenValue": session.token,
            "StreamUrl": session.stream_url,
        }

    async def resume_session(self, body: Body, request: HttpRequest) -> Body:
        session_id = string(body, "SessionId", required=True) or ""
        session = self.state.resume_session(session_id, base_url=self.context.base_url(request))
        result: Body = {"SessionId": session.session_id}
        if session.token is not None:
            result["TokenValue"] = session.token
            result["StreamUrl"] = session.stream_url
            logger.info("session %s resumed: new token issued", session_id)
        else:
            logger.info(
                "session %s is over (%s): resumed without a token", session_id, session.status.value
            )
        return result

    async def terminate_session(self, body: Body, request: HttpRequest) -> Body:
        session_id = string(body, "SessionId", required=True) or ""
        await self.state.terminate_session(session_id, "Session terminated by TerminateSession.")
        logger.info("session %s terminated by TerminateSession", session_id)
        return {"SessionId": session_id}

    async def describe_sessions(self, body: Body, request: HttpRequest) -> Body:
        active = string(body, "State", required=True) == "Active"
        sessions = [
            s for s in self.state.sessions.values() if (s.status in ACTIVE_STATUSES) == active
        ]
        for index, item in enumerate(member_list(body, "Filters"), start=1):
            sessions = _filter_sessions(sessions, item, index)
        sessions.sort(key=lambda s: (-s.start_date, s.session_id))
        return page_result(sessions, "DescribeSessions", body, 20, "Sessions", self._session_info)

    def _session_info(self, session: SessionRecord) -> Body:
        info: Body = {
            "SessionId": session.session_id,
            "Target": session.target_id,
            "Status": session.status.value,
            "StartDate": epoch(session.start_date),
            "DocumentName": session.document_name,
            "Owner": session.owner,
            "AccessType": "Standard",
        }
        if session.end_date is not None:
            info["EndDate"] = epoch(session.end_date)
        if session.reason:
            info["Reason"] = session.reason
        if session.end_reason and session.status not in ACTIVE_STATUSES:
            info["Details"] = session.end_reason
        # The session's own preference (minutes, from its document or the account's
        # SSM-SessionManagerRunShell) wins; else the emulator's --max-session-duration.
        minutes = str(session.inputs.get("maxSessionDuration") or "")
        if minutes:
            info["MaxSessionDuration"] = minutes
        elif self.state.max_session_duration is not None:
            info["MaxSessionDuration"] = str(max(1, round(self.state.max_session_duration / 60)))
        return info

    async def get_connection_status(self, body: Body, request: HttpRequest) -> Body:
        target = string(body, "Target", required=True) or ""
        return {"Target": target, "Status": self.state.connection_status(target)}


def _filter_sessions(sessions: list[SessionRecord], item: Body, index: int) -> list[SessionRecord]:
    key, value = string(item, "key", True) or "", string(item, "value", True) or ""
    if key not in _SESSION_FILTER_KEYS:
        raise invalid_filter_key(key, f"filters.{index}.member.key", _SESSION_FILTER_KEYS)
    if key in ("InvokedAfter", "InvokedBefore"):
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ServiceError(
                "ValidationException",
                f"Filter {key} needs a date like 2018-08-29T00:00:00Z, not {value!r}.",
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        stamp = when.timestamp()
        if key == "InvokedAfter":
            return [s for s in sessions if s.start_date >= stamp]
        return [s for s in sessions if s.start_date <= stamp]
    if key == "Target":
        return [s for s in sessions if s.target_id == value]
    if key == "Owner":
        return [s for s in sessions if value in (s.owner, s.owner.rsplit("/", 1)[-1])]
    if key == "Status":
        return [s for s in sessions if s.status.value == value]
    if key == "SessionId":
        return [s for s in sessions if s.session_id == value]
    return [s for s in sessions if value == "Standard"]  # AccessType
