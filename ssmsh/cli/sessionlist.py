"""``ssmsh sessions`` and ``ssmsh terminate``: the account's sessions, and ending them.

``sessions`` is DescribeSessions (State ``Active``, or ``History`` with
``--history``) with its filters, following NextToken to the end (or
``--limit``), newest first: a table on a terminal, JSON otherwise (see
:mod:`.listing`). ``terminate`` is TerminateSession for each id given.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from ..aws import SsmSessions
from ..exceptions import SsmshError, UsageError
from ..terminal.tty import Terminal
from .common import add_common_options, use_alias
from .config import load_config
from .errors import EXIT_FAILURE, EXIT_OK
from .listing import (
    add_output_options,
    api_time,
    duration,
    emit,
    local_time,
    parse_when,
    report_or_raise,
    table,
    to_json,
    wants_json,
)
from .portsession import session_service
from .runtime import Reporter

__all__ = [
    "SESSIONS_DESCRIPTION",
    "TERMINATE_DESCRIPTION",
    "configure_sessions",
    "configure_terminate",
    "run_sessions",
    "run_terminate",
    "session_filters",
    "short_owner",
]

#: DescribeSessions' filter values, as botocore's SSM model spells them.
SESSION_STATUSES = (
    "Connected",
    "Connecting",
    "Disconnected",
    "Terminated",
    "Terminating",
    "Failed",
)
ACCESS_TYPES = ("Standard", "JustInTime")
#: Statuses only ended sessions have: asking for them implies --history.
HISTORY_STATUSES = frozenset({"Terminated", "Failed"})

HEADERS = ("SESSION ID", "TARGET", "STATUS", "STARTED", "DURATION", "OWNER", "DOCUMENT", "REASON")

SESSIONS_DESCRIPTION = """\
List Session Manager sessions of the account (DescribeSessions): the active ones,
or with --history those that have ended. Newest first. On a terminal: a table
(times in local time; DURATION is so far for active sessions); otherwise, or with
--json: a JSON list of the API's Session objects (times in ISO 8601, UTC).
WHEN is an ISO date or time (2024-08-29, 2024-08-29T10:00, local unless it ends
in Z or an offset) or a time ago: 30m, 2h, 3d, 1w, 1h30m."""


TERMINATE_DESCRIPTION = (
    "End each session (TerminateSession) and print its id. An id that "
    "names no session is reported and the others are still ended; the exit status "
    "is 0 only if every one was."
)


def configure_sessions(parser: argparse.ArgumentParser) -> None:
    """``ssmsh sessions``' arguments."""
    parser.add_argument(
        "--history", action="store_true", help="sessions that have ended (State History)"
    )
    parser.add_argument(
        "--target", metavar="TARGET", help="to this instance (id, Name tag or alias)"
    )
    parser.add_argument(
        "--owner", metavar="OWNER", help="started by this user (ARN, or the user's name)"
    )
    parser.add_argument(
        "--status",
        metavar="STATUS",
        help=f"with this status: {', '.join(SESSION_STATUSES)} "
        "(Terminated and Failed imply --history)",
    )
    parser.add_argument("--since", metavar="WHEN", help="started at WHEN or later")
    parser.add_argument("--until", metavar="WHEN", help="started at WHEN or earlier")
    parser.add_argument("--session-id", metavar="ID", help="only the session with this id")
    parser.add_argument("--access-type", metavar="TYPE", help=f"{' or '.join(ACCESS_TYPES)} access")
    parser.add_argument("--limit", type=int, metavar="N", help="at most N sessions (the newest)")
    add_output_options(parser)
    add_common_options(parser, suppress=True)


def configure_terminate(parser: argparse.ArgumentParser) -> None:
    """``ssmsh terminate``'s arguments."""
    parser.add_argument("session_ids", metavar="SESSION_ID", nargs="+")
    add_common_options(parser, suppress=True)


def _choice(value: str, choices: tuple[str, ...], option: str) -> str:
    for choice in choices:
        if choice.lower() == value.strip().lower():
            return choice
    raise UsageError(f"{option} must be one of {', '.join(choices)}, not {value!r}")


def session_filters(
    args: argparse.Namespace, now: dt.datetime | None = None
) -> tuple[str, list[dict[str, str]]]:
    """The State and the filters (but Target, which needs resolving) from the options."""
    filters: list[dict[str, str]] = []
    history = bool(args.history)
    since = until = None
    if args.since is not None:
        since = parse_when(args.since, "--since", now)
        filters.append({"key": "InvokedAfter", "value": api_time(since)})
    if args.until is not None:
        until = parse_when(args.until, "--until", now)
        filters.append({"key": "InvokedBefore", "value": api_time(until)})
    if since is not None and until is not None and since > until:
        raise UsageError("--since is later than --until")
    if args.owner is not None:
        filters.append({"key": "Owner", "value": _nonempty(args.owner, "--owner")})
    if args.status is not None:
        status = _choice(args.status, SESSION_STATUSES, "--status")
        history = history or status in HISTORY_STATUSES
        filters.append({"key": "Status", "value": status})
    if args.session_id is not None:
        filters.append({"key": "SessionId", "value": _nonempty(args.session_id, "--session-id")})
    if args.access_type is not None:
        access = _choice(args.access_type, ACCESS_TYPES, "--access-type")
        filters.append({"key": "AccessType", "value": access})
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be 1 or more, not {args.limit}")
    return ("History" if history else "Active"), filters


def _nonempty(value: str, option: str) -> str:
    if not value.strip():
        raise UsageError(f"{option} is empty")
    return value.strip()


async def run_sessions(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    """``ssmsh sessions``."""
    state, filters = session_filters(args)
    target = None if args.target is None else use_alias(args, args.target, load_config())
    async with session_service(args, reporter) as aws:
        if target is not None:
            target_id = await aws.resolve_target(target)
            filters.append({"key": "Target", "value": target_id})
        found = await aws.describe_sessions(state, filters, args.limit)
    found.sort(key=_started, reverse=True)
    if wants_json(args, terminal):
        return emit(terminal, to_json(found))
    if not found:
        reporter.status(f"No {'ended' if state == 'History' else 'active'} sessions.")
        return EXIT_OK
    now = dt.datetime.now(dt.UTC)
    return emit(terminal, table(HEADERS, (_row(s, now) for s in found)))


def _started(session: dict[str, Any]) -> dt.datetime:
    start = session.get("StartDate")
    return start if isinstance(start, dt.datetime) else dt.datetime.min.replace(tzinfo=dt.UTC)


def _row(session: dict[str, Any], now: dt.datetime) -> list[str]:
    start, end = session.get("StartDate"), session.get("EndDate")
    took = "-"
    if isinstance(start, dt.datetime):
        took = duration(((end if isinstance(end, dt.datetime) else now) - start).total_seconds())
    return [
        str(session.get("SessionId") or "-"),
        str(session.get("Target") or "-"),
        str(session.get("Status") or "-"),
        local_time(start if isinstance(start, dt.datetime) else None),
        took,
        short_owner(str(session.get("Owner") or "-")),
        str(session.get("DocumentName") or "-"),
        str(session.get("Reason") or "-"),
    ]


def short_owner(owner: str) -> str:
    """``arn:aws:iam::1:user/alice`` -> ``alice``; ``...:assumed-role/Admin/alice`` ->
    ``Admin/alice``; ``...:root`` -> ``root``."""
    parts = owner.split(":", 5)
    resource = parts[5] if parts[0] == "arn" and len(parts) == 6 else owner
    _, sep, name = resource.partition("/")
    return name if sep and name else resource


async def run_terminate(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    """``ssmsh terminate SESSION_ID...``: each id that was ended is printed."""
    failed = False
    printed = EXIT_OK  # 141 once stdout's reader has gone: the rest are ended all the same
    async with session_service(args, reporter) as aws:
        for session_id in args.session_ids:
            try:
                await _terminate(aws, session_id)
            except SsmshError as exc:
                report_or_raise(exc, reporter)
                failed = True
                continue
            if printed == EXIT_OK:
                printed = emit(terminal, f"{session_id}\n")
    return EXIT_FAILURE if failed else printed


async def _terminate(aws: SsmSessions, session_id: str) -> None:
    """TerminateSession, then make sure the id named a session: the API accepts any id
    (a session that never existed, or has long ended, "terminates" fine)."""
    if not session_id.strip():
        raise UsageError("a SESSION_ID is empty")
    await aws.terminate_session(session_id)
    only_this = [{"key": "SessionId", "value": session_id}]
    for state in ("History", "Active"):  # Active while it is still Terminating
        if await aws.describe_sessions(state, only_this, limit=1):
            return
    raise UsageError(f"no session {session_id!r} (neither active nor in the history)")
