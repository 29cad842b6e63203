"""``ssmsh automation`` and ``ssmsh approve`` / ``ssmsh reject``: Automation executions.

* ``automation ls`` is DescribeAutomationExecutions with its filters, newest first;
  ``--waiting`` keeps the executions that wait for a signal and adds, from
  GetAutomationExecution, the waiting step's message and approvers;
* ``automation show ID`` is GetAutomationExecution as a timeline of its steps;
  ``automation follow ID`` (or ``show --follow``) polls it to its end, printing each step
  as it ends, with a progress line on a terminal;
* ``automation start DOCUMENT`` and ``automation stop ID``: StartAutomationExecution and
  StopAutomationExecution; ``automation resume ID``: the Resume signal to an
  ``aws:pause`` step;
* ``approve ID`` / ``reject ID``: SendAutomationSignal to an execution waiting in an
  ``aws:approve`` step, after GetAutomationExecution said it waits for one.

Exit status: ``follow`` 0 when the execution ends ``Success``, 1 when it ends otherwise;
``approve`` / ``reject`` / ``resume`` 1 when the execution does not wait for that signal;
130 after Ctrl-C (the execution goes on); 255 for ssmsh's own failures and AWS's refusals
(an unknown id, not an approver), each one line (docs/automation.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ..aws.automation import SsmAutomation
from ..aws.commands import polling_settings, ssm_enum
from ..exceptions import AwsError, UsageError
from ..terminal.tty import Terminal
from .common import add_common_options, aws_settings, local_endpoint, parse_parameters
from .errors import EXIT_INTERRUPTED, EXIT_OK
from .follow import Interrupted, Interrupts
from .listing import (
    add_output_options,
    api_time,
    duration,
    emit,
    fit,
    json_document,
    local_time,
    parse_when,
    table,
    to_json,
    wants_json,
)
from .progress import Poll, ProgressLine
from .runtime import Reporter
from .shell import EXIT_BROKEN_PIPE
from .timeline import (
    SUCCEEDED,
    Waiting,
    execution_header,
    finished,
    step_detail,
    step_heading,
    step_line,
    step_widths,
    waiting_for,
)

__all__ = [
    "APPROVE_DESCRIPTION",
    "AUTOMATION_DESCRIPTION",
    "EXIT_NOT_SUCCESSFUL",
    "EXIT_NOT_WAITING",
    "REJECT_DESCRIPTION",
    "configure_automation",
    "configure_signal",
    "run_approve",
    "run_automation",
    "run_reject",
]

#: ``follow``: the execution ended, but not in Success.
EXIT_NOT_SUCCESSFUL = 1
#: ``approve``, ``reject``, ``resume``: the execution does not wait for that signal.
EXIT_NOT_WAITING = 1
#: GetAutomationExecution calls under way at once for ``ls --waiting``.
DETAIL_CONCURRENCY = 8
#: An AutomationExecutionId's length (botocore's SSM model: 36 to 36).
EXECUTION_ID_LENGTH = 36
#: The model's MaxResults range for DescribeAutomationExecutions.
MAX_PAGE_SIZE = 50

AUTOMATION_DESCRIPTION = """\
Automation executions (runbooks):
  ssmsh automation ls [--waiting] [--status S] [--document PREFIX] [--since WHEN]
  ssmsh automation show ID [--follow]     the steps as a timeline
  ssmsh automation follow ID              poll to the end; exit 0 only on Success
  ssmsh automation start DOCUMENT [-p KEY=VALUE]... [--follow]
  ssmsh automation stop ID                cancel it
  ssmsh automation resume ID              send Resume to its aws:pause step
Approvals: ssmsh approve ID [--comment TEXT], ssmsh reject ID [--comment TEXT].
Listings and show: a table on a terminal, JSON in a pipe or with --json. Exit status:
follow 0 on Success, 1 when the execution ended otherwise; resume 1 when it does not
wait for it; 130 after Ctrl-C (the execution goes on); 255 when ssmsh or AWS refused.
See: ssmsh help automation."""

APPROVE_DESCRIPTION = (
    "Approve an Automation execution that waits in an aws:approve step "
    "(SendAutomationSignal Approve), as the caller of the AWS credentials. Exit status: "
    "0 when sent; 1 when the execution is not waiting for an approval; 255 when AWS "
    "refused (unknown id, not an approver)."
)
REJECT_DESCRIPTION = (
    "Reject an Automation execution that waits in an aws:approve step "
    "(SendAutomationSignal Reject): the step and the execution fail. Exit status: 0 "
    "when sent; 1 when the execution is not waiting for an approval; 255 when AWS "
    "refused (unknown id, not an approver)."
)

LIST_HEADERS = ("EXECUTION ID", "DOCUMENT", "STATUS", "STARTED", "DURATION", "STEP")
WAITING_HEADERS = ("EXECUTION ID", "DOCUMENT", "STEP", "WAITING", "APPROVERS", "MESSAGE")


# -- arguments --------------------------------------------------------------------------


def _page_size(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--page-size",
        type=int,
        metavar="N",
        help=f"items per API call (1-{MAX_PAGE_SIZE}, default {MAX_PAGE_SIZE})",
    )


def configure_automation(parser: argparse.ArgumentParser) -> None:
    """``ssmsh automation``'s actions and their arguments."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    ls = actions.add_parser(
        "ls", help="list executions, newest first", description="DescribeAutomationExecutions."
    )
    ls.add_argument(
        "--waiting",
        action="store_true",
        help="only executions that wait for a signal, with the step's message and approvers",
    )
    ls.add_argument("--status", metavar="STATUS", help="InProgress, Waiting, Success, Failed...")
    ls.add_argument("--document", metavar="PREFIX", help="runbooks whose name starts so")
    ls.add_argument("--since", metavar="WHEN", help="started at WHEN or later (2h, 2024-08-29)")
    ls.add_argument("--until", metavar="WHEN", help="started at WHEN or earlier")
    ls.add_argument("--limit", type=int, metavar="N", help="at most N executions")
    _page_size(ls)

    show = actions.add_parser("show", help="an execution's steps as a timeline")
    show.add_argument("execution_id", metavar="ID")
    show.add_argument("--follow", action="store_true", help="poll it to its end (as follow)")

    follow = actions.add_parser("follow", help="follow an execution to its end")
    follow.add_argument("execution_id", metavar="ID")

    start = actions.add_parser("start", help="start a runbook (StartAutomationExecution)")
    start.add_argument("document", metavar="DOCUMENT")
    start.add_argument(
        "-p",
        "--parameter",
        action="append",
        metavar="KEY=VALUE",
        help="runbook parameter (repeatable; repeat a key for a list)",
    )
    start.add_argument("--parameters", metavar="JSON", help='\'{"approvers":["alice"]}\'')
    start.add_argument("--document-version", metavar="VERSION")
    start.add_argument("--follow", action="store_true", help="then follow it to its end")

    stop = actions.add_parser("stop", help="cancel an execution (StopAutomationExecution)")
    stop.add_argument("execution_id", metavar="ID")

    resume = actions.add_parser("resume", help="send Resume to the aws:pause step it waits at")
    resume.add_argument("execution_id", metavar="ID")

    for action in (ls, show, follow, start, stop, resume):
        if action in (ls, show, follow, start):
            add_output_options(action)
        add_common_options(action, suppress=True)


def configure_signal(parser: argparse.ArgumentParser) -> None:
    """``ssmsh approve`` / ``ssmsh reject``: ID and ``--comment``."""
    parser.add_argument("execution_id", metavar="ID", help="the Automation execution id")
    parser.add_argument("--comment", metavar="TEXT", help="recorded with the decision")
    add_common_options(parser, suppress=True)


@contextlib.asynccontextmanager
async def automation_service(args: argparse.Namespace) -> AsyncIterator[SsmAutomation]:
    """The AWS side (or ``--local``'s in-process emulator), with polling's retry mode."""
    async with local_endpoint(args) as endpoint:
        yield SsmAutomation(polling_settings(aws_settings(args, endpoint)))


def _execution_id(text: str) -> str:
    value = text.strip()
    if not value:
        raise UsageError("the execution ID is empty")
    if len(value) != EXECUTION_ID_LENGTH:
        raise UsageError(
            f"{value!r} is not an Automation execution id "
            f"({EXECUTION_ID_LENGTH} characters, as ssmsh automation ls shows them)"
        )
    return value


def _status_choice(value: str) -> str:
    choices = ssm_enum("AutomationExecutionStatus")
    for choice in choices:
        if choice.lower() == value.strip().lower():
            return choice
    raise UsageError(f"--status must be one of {', '.join(choices)}, not {value!r}")


def _check_counts(args: argparse.Namespace) -> None:
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be 1 or more, not {args.limit}")
    if args.page_size is not None and not 1 <= args.page_size <= MAX_PAGE_SIZE:
        raise UsageError(f"--page-size must be 1 to {MAX_PAGE_SIZE}, not {args.page_size}")


# -- ssmsh automation -------------------------------------------------------------------


async def run_automation(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    """``ssmsh automation ACTION``."""
    action = args.action
    if action == "ls":
        return await list_executions(args, terminal, reporter)
    if action == "start":
        return await start_execution(args, terminal, reporter)
    execution_id = _execution_id(args.execution_id)
    if action == "follow" or (action == "show" and args.follow):
        async with automation_service(args) as aws:
            return await follow_execution(aws, execution_id, args, terminal, reporter)
    if action == "show":
        async with automation_service(args) as aws:
            execution = await aws.get_execution(execution_id)
        if wants_json(args, terminal):
            return emit(terminal, json_document(execution))
        return emit(terminal, fit(timeline(execution, dt.datetime.now(dt.UTC)), terminal))
    if action == "stop":
        async with automation_service(args) as aws:
            await aws.stop_execution(execution_id)
        reporter.status(f"Stopping automation execution {execution_id}.")
        return EXIT_OK
    if action == "resume":
        return await send_signal(args, reporter, "Resume")
    raise UsageError(f"unknown action {action!r}")


async def list_executions(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    """``automation ls``: DescribeAutomationExecutions; ``--waiting`` adds what each awaits."""
    _check_counts(args)
    filters: list[dict[str, Any]] = []
    status = _status_choice(args.status) if args.status is not None else None
    if args.waiting:
        if status not in (None, "Waiting"):
            raise UsageError(f"--waiting lists Waiting executions, not {status}")
        status = "Waiting"
    if status is not None:
        filters.append({"Key": "ExecutionStatus", "Values": [status]})
    if args.document is not None:
        if not args.document.strip():
            raise UsageError("--document is empty")
        filters.append({"Key": "DocumentNamePrefix", "Values": [args.document.strip()]})
    since = parse_when(args.since, "--since") if args.since is not None else None
    until = parse_when(args.until, "--until") if args.until is not None else None
    if since is not None and until is not None and since > until:
        raise UsageError("--since is later than --until")
    if since is not None:
        filters.append({"Key": "StartTimeAfter", "Values": [api_time(since)]})
    if until is not None:
        filters.append({"Key": "StartTimeBefore", "Values": [api_time(until)]})
    async with automation_service(args) as aws:
        found = await aws.list_executions(filters, args.limit, args.page_size)
        found.sort(key=_started, reverse=True)
        waits: dict[str, Waiting] = {}
        if args.waiting:
            waits = await _waits(aws, found)
            found = [e for e in found if str(e.get("AutomationExecutionId")) in waits]
    now = dt.datetime.now(dt.UTC)
    if args.waiting:
        for item in found:
            item["Waiting"] = waits[str(item.get("AutomationExecutionId"))].to_json()
    if wants_json(args, terminal):
        return emit(terminal, to_json(found))
    if not found:
        reporter.status("No executions wait for a signal." if args.waiting else "No executions.")
        return EXIT_OK
    if args.waiting:
        rows = (_waiting_row(e, waits[str(e.get("AutomationExecutionId"))], now) for e in found)
        return emit(terminal, fit(table(WAITING_HEADERS, rows), terminal))
    return emit(terminal, fit(table(LIST_HEADERS, (_row(e, now) for e in found)), terminal))


def _started(item: Mapping[str, Any]) -> dt.datetime:
    start = item.get("ExecutionStartTime")
    return start if isinstance(start, dt.datetime) else dt.datetime.min.replace(tzinfo=dt.UTC)


async def _waits(aws: SsmAutomation, found: list[dict[str, Any]]) -> dict[str, Waiting]:
    """Execution id -> what it waits for (GetAutomationExecution for each)."""
    limit = asyncio.Semaphore(DETAIL_CONCURRENCY)
    waits: dict[str, Waiting] = {}

    async def one(execution_id: str) -> None:
        async with limit:
            try:
                execution = await aws.get_execution(execution_id)
            except AwsError as exc:
                if exc.code == "AutomationExecutionNotFoundException":
                    return  # gone since it was listed
                raise
        waiting = waiting_for(execution)
        if waiting is not None:
            waits[execution_id] = waiting

    await asyncio.gather(*(one(str(e.get("AutomationExecutionId"))) for e in found))
    return waits


def _row(item: Mapping[str, Any], now: dt.datetime) -> list[str]:
    start, end = item.get("ExecutionStartTime"), item.get("ExecutionEndTime")
    took = "-"
    if isinstance(start, dt.datetime):
        took = duration(((end if isinstance(end, dt.datetime) else now) - start).total_seconds())
    status = str(item.get("AutomationExecutionStatus") or "-")
    return [
        str(item.get("AutomationExecutionId") or "-"),
        str(item.get("DocumentName") or "-"),
        status,
        local_time(start if isinstance(start, dt.datetime) else None),
        took,
        "-" if finished(status) else str(item.get("CurrentStepName") or "-"),
    ]


def _waiting_row(item: Mapping[str, Any], waiting: Waiting, now: dt.datetime) -> list[str]:
    since = "-" if waiting.since is None else duration((now - waiting.since).total_seconds())
    approval = waiting.signal == "Approve"
    return [
        str(item.get("AutomationExecutionId") or "-"),
        str(item.get("DocumentName") or "-"),
        f"{waiting.step} ({waiting.action})",
        since,
        waiting.approvers_text() if approval else f"({waiting.signal} signal)",
        waiting.message if approval else "-",
    ]


def timeline(execution: Mapping[str, Any], now: dt.datetime) -> str:
    """``automation show``: the header, then each step with its details under it."""
    lines = execution_header(execution, now)
    steps = list(execution.get("StepExecutions") or [])
    waiting = waiting_for(execution)
    if steps:
        widths = step_widths(steps)
        lines += ["", step_heading(widths)]
        for step in steps:
            lines.append(step_line(step, widths, now))
            lines += [f"    {detail}" for detail in step_detail(step, waiting)]
    execution_id = execution.get("AutomationExecutionId", "ID")
    if waiting is not None:
        lines.append("")
        if waiting.signal == "Approve":
            lines.append(f"Approve: ssmsh approve {execution_id} [--comment TEXT]")
            lines.append(f"Reject:  ssmsh reject {execution_id} [--comment TEXT]")
        elif waiting.signal == "Resume":
            lines.append(f"Resume:  ssmsh automation resume {execution_id}")
    return "\n".join(lines) + "\n"


async def start_execution(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    """``automation start DOCUMENT``: the new id on stdout (or followed, with --follow)."""
    document = args.document.strip()
    if not document:
        raise UsageError("the DOCUMENT is empty")
    parameters = parse_parameters(args.parameter, args.parameters)
    async with automation_service(args) as aws:
        execution_id = await aws.start_execution(document, parameters, args.document_version)
        if not execution_id:
            raise AwsError("StartAutomationExecution returned no id", "InvalidResponse")
        if not args.follow:
            reporter.status(f"Started automation execution {execution_id} of {document}.")
            return emit(terminal, f"{execution_id}\n")
        reporter.status(f"Automation execution {execution_id} of {document}")
        return await follow_execution(aws, execution_id, args, terminal, reporter)


# -- following --------------------------------------------------------------------------


async def follow_execution(
    aws: SsmAutomation,
    execution_id: str,
    args: argparse.Namespace,
    terminal: Terminal,
    reporter: Reporter,
) -> int:
    """Poll GetAutomationExecution until the execution ends: each step on stdout as it
    ends (or one JSON document at the end, ``--json``), what a waiting step waits for as
    a status line, the progress line on a terminal. 0 on Success, else 1."""
    as_json = bool(getattr(args, "json", False))
    progress = ProgressLine(terminal, reporter)
    reported: set[str] = set()
    announced: set[str] = set()
    widths: tuple[int, int] | None = None
    with Interrupts(cancels=False) as interrupts:
        poll = Poll(interrupts)
        try:
            while True:
                execution = await poll.call(aws.get_execution(execution_id))
                now = dt.datetime.now(dt.UTC)
                steps = list(execution.get("StepExecutions") or [])
                widths = widths or step_widths(steps)
                changed = False
                for step in steps:
                    key = str(step.get("StepExecutionId") or step.get("StepName"))
                    if key in reported or not finished(str(step.get("StepStatus") or "")):
                        continue
                    reported.add(key)
                    changed = True
                    if not as_json:
                        progress.clear()
                        _write_step(terminal, step, widths, now)
                waiting = waiting_for(execution)
                if waiting is not None and waiting.step not in announced:
                    announced.add(waiting.step)
                    changed = True
                    progress.note(_waiting_note(execution_id, waiting))
                status = str(execution.get("AutomationExecutionStatus") or "")
                if finished(status):
                    break
                progress.draw(_progress_text(execution, len(reported), len(steps)))
                await poll.wait(changed)
        except BrokenPipeError:
            progress.clear()
            return EXIT_BROKEN_PIPE
        except Interrupted:
            progress.clear()
            reporter.error(
                f"interrupted; automation execution {execution_id} goes on "
                f"(ssmsh automation stop {execution_id} cancels it)"
            )
            return EXIT_INTERRUPTED
    progress.clear()
    if as_json:
        written = emit(terminal, json_document(execution))
        if written != EXIT_OK:
            return written
    return _ending(execution, reporter)


def _write_step(
    terminal: Terminal, step: Mapping[str, Any], widths: tuple[int, int], now: dt.datetime
) -> None:
    lines = [step_line(step, widths, now), *(f"    {d}" for d in step_detail(step))]
    code = emit(terminal, "\n".join(lines) + "\n")
    if code != EXIT_OK:
        raise BrokenPipeError  # stdout's reader has gone: stop following


def _waiting_note(execution_id: str, waiting: Waiting) -> str:
    if waiting.signal == "Approve":
        return (
            f"Waiting for approval at step {waiting.step}: {' '.join(waiting.message.split())} "
            f"(approvers: {waiting.approvers_text()}); "
            f"ssmsh approve {execution_id} or ssmsh reject {execution_id}"
        )
    if waiting.signal == "Resume":
        return f"Paused at step {waiting.step}; ssmsh automation resume {execution_id}"
    return f"Waiting at step {waiting.step} ({waiting.action})"


def _progress_text(execution: Mapping[str, Any], done: int, total: int) -> str:
    status = execution.get("AutomationExecutionStatus") or "?"
    step = execution.get("CurrentStepName")
    where = f" at {step}" if step else ""
    return f"{status}{where}: {done}/{total or '?'} steps done"


def _ending(execution: Mapping[str, Any], reporter: Reporter) -> int:
    """The last line, and the exit status: 0 on Success, else 1."""
    execution_id = execution.get("AutomationExecutionId", "?")
    status = str(execution.get("AutomationExecutionStatus") or "?")
    start, end = execution.get("ExecutionStartTime"), execution.get("ExecutionEndTime")
    took = ""
    if isinstance(start, dt.datetime) and isinstance(end, dt.datetime):
        took = f" in {duration((end - start).total_seconds())}"
    if status in SUCCEEDED:
        reporter.status(f"Automation execution {execution_id}: {status}{took}.")
        return EXIT_OK
    reason = " ".join(str(execution.get("FailureMessage") or "").split())
    reporter.say(
        f"automation execution {execution_id} {status}{took}" + (f": {reason}" if reason else "")
    )
    return EXIT_NOT_SUCCESSFUL


# -- signals ----------------------------------------------------------------------------


async def run_approve(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    """``ssmsh approve ID [--comment TEXT]``."""
    return await send_signal(args, reporter, "Approve")


async def run_reject(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    """``ssmsh reject ID [--comment TEXT]``."""
    return await send_signal(args, reporter, "Reject")


def _refusal(execution: Mapping[str, Any], signal_type: str) -> str | None:
    """Why ``execution`` takes no ``signal_type`` now (None: it waits for one)."""
    execution_id = execution.get("AutomationExecutionId", "?")
    status = execution.get("AutomationExecutionStatus") or "?"
    waiting = waiting_for(execution)
    wanted = "an approval" if signal_type in ("Approve", "Reject") else "a Resume signal"
    if waiting is None:
        return f"automation execution {execution_id} is {status}: it is not waiting for {wanted}"
    expected = "Approve" if signal_type in ("Approve", "Reject") else signal_type
    if waiting.signal != expected:
        what = "an approval" if waiting.signal == "Approve" else f"a {waiting.signal} signal"
        return (
            f"automation execution {execution_id} waits at step {waiting.step} "
            f"({waiting.action}) for {what}, not for {wanted}"
        )
    return None


async def send_signal(args: argparse.Namespace, reporter: Reporter, signal_type: str) -> int:
    """Approve, Reject or Resume, to an execution that waits for it; else one line and 1."""
    execution_id = _execution_id(args.execution_id)
    comment = getattr(args, "comment", None)
    async with automation_service(args) as aws:
        execution = await aws.get_execution(execution_id)
        refusal = _refusal(execution, signal_type)
        if refusal is not None:
            reporter.error(refusal)
            return EXIT_NOT_WAITING
        waiting = waiting_for(execution)
        assert waiting is not None
        payload: dict[str, list[str]] = {}
        if signal_type == "Resume":
            payload["StepName"] = [waiting.step]
        elif comment:
            payload["Comment"] = [comment]
        try:
            await aws.send_signal(execution_id, signal_type, payload)
        except AwsError as exc:
            if exc.code != "InvalidAutomationSignalException":
                raise
            # It may have stopped waiting meanwhile (decided, timed out, cancelled).
            refusal = _refusal(await aws.get_execution(execution_id), signal_type)
            if refusal is None:
                raise
            reporter.error(refusal)
            return EXIT_NOT_WAITING
    done = {"Approve": "Approved", "Reject": "Rejected", "Resume": "Resumed"}[signal_type]
    note = f' with comment "{comment}"' if comment and signal_type != "Resume" else ""
    reporter.status(f"{done} automation execution {execution_id} at step {waiting.step}{note}.")
    return EXIT_OK
