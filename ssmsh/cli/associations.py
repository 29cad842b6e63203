"""``ssmsh association``: State Manager associations from the command line.

* ``association ls`` is ListAssociations;
* ``association run ID...`` is StartAssociationsOnce; with ``--wait`` it finds each
  association's new execution (DescribeAssociationExecutions, newest first: the first
  execution that was not there before), polls it to its end with a progress line, and
  prints each target's result (DescribeAssociationExecutionTargets, with the instances'
  Name tags);
* ``association history ID`` is DescribeAssociationExecutions with its filters: ``--status``
  (Status EQUAL), ``--since`` / ``--until`` (CreatedTime GREATER_THAN / LESS_THAN);
* ``association targets ID EXECUTION`` is DescribeAssociationExecutionTargets, ``--status``
  as a filter.

An association is named by its id or by its AssociationName (ListAssociations finds it).
Exit status: ``run --wait`` 0 only when every execution and every target succeeded, else 1;
130 after Ctrl-C (the executions go on); 255 for ssmsh's own failures and AWS's refusals
(an unknown id), each one line (docs/associations.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from ..aws.associations import SsmAssociations
from ..aws.commands import polling_settings
from ..exceptions import AwsError, UsageError
from ..terminal.tty import Terminal
from .common import add_common_options, aws_settings, local_endpoint
from .errors import EXIT_INTERRUPTED, EXIT_OK
from .follow import Interrupted, Interrupts
from .inventory import name_tags
from .listing import (
    add_output_options,
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
from .runoutput import natural_key
from .runtime import Reporter
from .shell import EXIT_BROKEN_PIPE

__all__ = [
    "ASSOCIATION_DESCRIPTION",
    "EXIT_SOME_FAILED",
    "RUNNING",
    "configure_association",
    "created_time",
    "run_association",
]

#: ``run --wait``: an execution or a target did not succeed.
EXIT_SOME_FAILED = 1
#: Execution and target statuses that have not ended (the model leaves them free text;
#: these are the ones AWS documents for a run under way).
RUNNING = frozenset({"Pending", "InProgress"})
#: Statuses ``--status`` knows how to spell (others are passed on as given).
KNOWN_STATUSES = ("Pending", "InProgress", "Success", "Failed", "TimedOut", "Skipped")
#: The model's MaxResults range for these listings.
MAX_PAGE_SIZE = 50
#: How many of the newest executions ``run --wait`` remembers before starting, to tell
#: the new one from them.
LOOKBACK = 10
#: How long ``run --wait`` waits for StartAssociationsOnce's execution to be listed.
NEW_EXECUTION_TIMEOUT = 120.0

_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")

ASSOCIATION_DESCRIPTION = """\
State Manager associations (an association is named by its id or its AssociationName):
  ssmsh association ls [--document NAME] [--status S]
  ssmsh association run ASSOCIATION... [--wait]   apply now (StartAssociationsOnce);
                                                  --wait: follow, per-target results
  ssmsh association history ASSOCIATION [--status S] [--since WHEN] [--until WHEN]
  ssmsh association targets ASSOCIATION EXECUTION_ID [--status S]
Listings: a table on a terminal, JSON in a pipe or with --json. WHEN: 2d, 3h, 30m, or a
date or time (2024-08-29, 2024-08-29T10:00Z). Exit status: run --wait 0 only when every
target succeeded, 1 otherwise; 130 after Ctrl-C (the run goes on); 255 when ssmsh or
AWS refused. See: ssmsh help associations."""

LIST_HEADERS = ("ASSOCIATION ID", "NAME", "DOCUMENT", "SCHEDULE", "STATUS", "LAST RUN")
HISTORY_HEADERS = ("EXECUTION ID", "CREATED", "STATUS", "DETAIL", "RESOURCES", "VERSION")
TARGET_HEADERS = ("INSTANCE", "NAME", "STATUS", "DETAIL", "LAST RUN")


# -- arguments --------------------------------------------------------------------------


def configure_association(parser: argparse.ArgumentParser) -> None:
    """``ssmsh association``'s actions and their arguments."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    ls = actions.add_parser("ls", help="list associations (ListAssociations)")
    ls.add_argument("--document", metavar="NAME", help="associations of this document")
    ls.add_argument("--status", metavar="STATUS", help="latest run's status: Success, Failed...")

    run = actions.add_parser("run", help="apply associations now (StartAssociationsOnce)")
    run.add_argument("associations", nargs="+", metavar="ASSOCIATION", help="id or name")
    run.add_argument(
        "--wait", action="store_true", help="follow the runs to their end; per-target results"
    )

    history = actions.add_parser("history", help="an association's executions, newest first")
    history.add_argument("association", metavar="ASSOCIATION", help="id or name")
    history.add_argument("--status", metavar="STATUS", help="Success, Failed, InProgress...")
    history.add_argument("--since", metavar="WHEN", help="created after WHEN (2d, 2024-08-29)")
    history.add_argument("--until", metavar="WHEN", help="created before WHEN")
    history.add_argument("--limit", type=int, metavar="N", help="at most N executions")

    targets = actions.add_parser("targets", help="an execution's per-instance results")
    targets.add_argument("association", metavar="ASSOCIATION", help="id or name")
    targets.add_argument("execution_id", metavar="EXECUTION_ID")
    targets.add_argument("--status", metavar="STATUS", help="Success, Failed...")

    for action in (ls, run, history, targets):
        add_output_options(action)
        if action is not run:
            action.add_argument(
                "--page-size",
                type=int,
                metavar="N",
                help=f"items per API call (1-{MAX_PAGE_SIZE}, default {MAX_PAGE_SIZE})",
            )
        add_common_options(action, suppress=True)


@contextlib.asynccontextmanager
async def association_service(args: argparse.Namespace) -> AsyncIterator[SsmAssociations]:
    """The AWS side (or ``--local``'s in-process emulator), with polling's retry mode."""
    async with local_endpoint(args) as endpoint:
        yield SsmAssociations(polling_settings(aws_settings(args, endpoint)))


def _status(value: str | None) -> str | None:
    if value is None:
        return None
    word = value.strip()
    if not word:
        raise UsageError("--status is empty")
    for known in KNOWN_STATUSES:
        if known.lower() == word.lower():
            return known
    return word


def _check_counts(args: argparse.Namespace) -> None:
    limit = getattr(args, "limit", None)
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be 1 or more, not {limit}")
    size = getattr(args, "page_size", None)
    if size is not None and not 1 <= size <= MAX_PAGE_SIZE:
        raise UsageError(f"--page-size must be 1 to {MAX_PAGE_SIZE}, not {size}")


def created_time(when: dt.datetime) -> str:
    """The form CreatedTime filters take: ``2024-08-29T10:00:00.000Z``."""
    return when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def resolve(aws: SsmAssociations, word: str) -> str:
    """An association id for ``word``: an id as is, else the one with that AssociationName."""
    text = word.strip()
    if not text:
        raise UsageError("an ASSOCIATION is empty")
    if _UUID_RE.match(text):
        return text
    found = await aws.list_associations([{"key": "AssociationName", "value": text}])
    if not found:
        raise UsageError(f"no association named {text!r} (ssmsh association ls lists them)")
    if len(found) > 1:
        ids = ", ".join(str(a.get("AssociationId")) for a in found[:5])
        raise UsageError(f"several associations are named {text!r}: {ids}")
    return str(found[0].get("AssociationId"))


def _label(association: Mapping[str, Any]) -> str:
    name = association.get("AssociationName")
    association_id = association.get("AssociationId", "?")
    return f"{name} ({association_id})" if name else str(association_id)


# -- ssmsh association ------------------------------------------------------------------


async def run_association(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    """``ssmsh association ACTION``."""
    _check_counts(args)
    if args.action == "ls":
        return await list_associations(args, terminal, reporter)
    if args.action == "run":
        return await run_once(args, terminal, reporter)
    if args.action == "history":
        return await history(args, terminal, reporter)
    if args.action == "targets":
        return await targets(args, terminal, reporter)
    raise UsageError(f"unknown action {args.action!r}")


async def list_associations(
    args: argparse.Namespace, terminal: Terminal, reporter: Reporter
) -> int:
    filters: list[dict[str, str]] = []
    if args.document is not None:
        filters.append({"key": "Name", "value": args.document.strip()})
    status = _status(args.status)
    if status is not None:
        filters.append({"key": "AssociationStatusName", "value": status})
    async with association_service(args) as aws:
        found = await aws.list_associations(filters, page_size=args.page_size)
    if wants_json(args, terminal):
        return emit(terminal, to_json(found))
    if not found:
        reporter.status("No associations" + (" match." if filters else "."))
        return EXIT_OK
    return emit(terminal, fit(table(LIST_HEADERS, (_association_row(a) for a in found)), terminal))


def _association_row(association: Mapping[str, Any]) -> list[str]:
    overview: Mapping[str, Any] = association.get("Overview") or {}
    last = association.get("LastExecutionDate")
    return [
        str(association.get("AssociationId") or "-"),
        str(association.get("AssociationName") or "-"),
        str(association.get("Name") or "-"),
        str(association.get("ScheduleExpression") or "-"),
        str(overview.get("Status") or "-"),
        local_time(last if isinstance(last, dt.datetime) else None),
    ]


async def history(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    """``association history ID``: DescribeAssociationExecutions with the options' filters."""
    filters: list[dict[str, str]] = []
    status = _status(args.status)
    if status is not None:
        filters.append({"Key": "Status", "Value": status, "Type": "EQUAL"})
    since = parse_when(args.since, "--since") if args.since is not None else None
    until = parse_when(args.until, "--until") if args.until is not None else None
    if since is not None and until is not None and since > until:
        raise UsageError("--since is later than --until")
    if since is not None:
        filters.append({"Key": "CreatedTime", "Value": created_time(since), "Type": "GREATER_THAN"})
    if until is not None:
        filters.append({"Key": "CreatedTime", "Value": created_time(until), "Type": "LESS_THAN"})
    async with association_service(args) as aws:
        association_id = await resolve(aws, args.association)
        found = await aws.executions(association_id, filters, args.limit, args.page_size)
    found.sort(key=lambda e: _when(e.get("CreatedTime")), reverse=True)
    if wants_json(args, terminal):
        return emit(terminal, to_json(found))
    if not found:
        reporter.status("No executions" + (" match." if filters else "."))
        return EXIT_OK
    return emit(terminal, fit(table(HISTORY_HEADERS, (_history_row(e) for e in found)), terminal))


def _when(value: Any) -> dt.datetime:
    return value if isinstance(value, dt.datetime) else dt.datetime.min.replace(tzinfo=dt.UTC)


def _history_row(execution: Mapping[str, Any]) -> list[str]:
    created = execution.get("CreatedTime")
    return [
        str(execution.get("ExecutionId") or "-"),
        local_time(created if isinstance(created, dt.datetime) else None),
        str(execution.get("Status") or "-"),
        str(execution.get("DetailedStatus") or "-"),
        str(execution.get("ResourceCountByStatus") or "-"),
        str(execution.get("AssociationVersion") or "-"),
    ]


async def targets(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    """``association targets ID EXECUTION``: DescribeAssociationExecutionTargets."""
    execution_id = args.execution_id.strip()
    if not execution_id:
        raise UsageError("the EXECUTION_ID is empty")
    filters: list[dict[str, str]] = []
    status = _status(args.status)
    if status is not None:
        filters.append({"Key": "Status", "Value": status})
    async with association_service(args) as aws:
        association_id = await resolve(aws, args.association)
        names = asyncio.ensure_future(aws.instance_names())
        try:
            found = await aws.execution_targets(
                association_id, execution_id, filters, args.page_size
            )
        except BaseException:
            names.cancel()
            with contextlib.suppress(BaseException):
                await names
            raise
        tags = await name_tags(names, reporter)
    _name(found, tags)
    if wants_json(args, terminal):
        return emit(terminal, to_json(found))
    if not found:
        reporter.status("No targets" + (" match." if filters else "."))
        return EXIT_OK
    written = emit(terminal, fit(target_table(found), terminal))
    _output_hint(found, reporter)
    return written


def _name(found: list[dict[str, Any]], tags: Mapping[str, str]) -> None:
    """Each target's Name tag as ``NameTag`` (None when unknown), as ``ssmsh ls`` adds it."""
    for item in found:
        item["NameTag"] = tags.get(str(item.get("ResourceId"))) or None
    found.sort(key=lambda t: natural_key(str(t.get("NameTag") or t.get("ResourceId") or "")))


def target_table(found: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for item in found:
        last = item.get("LastExecutionDate")
        rows.append(
            [
                str(item.get("ResourceId") or "-"),
                str(item.get("NameTag") or "-"),
                str(item.get("Status") or "-"),
                str(item.get("DetailedStatus") or "-"),
                local_time(last if isinstance(last, dt.datetime) else None),
            ]
        )
    return table(TARGET_HEADERS, rows)


def _output_hint(found: Sequence[Mapping[str, Any]], reporter: Reporter) -> None:
    """Where the outputs are: the Run Command commands the targets name."""
    commands = {
        str((t.get("OutputSource") or {}).get("OutputSourceId"))
        for t in found
        if (t.get("OutputSource") or {}).get("OutputSourceType") == "RunCommand"
        and (t.get("OutputSource") or {}).get("OutputSourceId")
    }
    for command_id in sorted(commands):
        reporter.status(f"Output: ssmsh commands show {command_id}")


# -- association run ----------------------------------------------------------------------


@dataclasses.dataclass
class _Run:
    """One association run once, and what became of it."""

    association: dict[str, Any]
    before: set[str]
    execution: dict[str, Any] | None = None
    targets: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def association_id(self) -> str:
        return str(self.association.get("AssociationId"))

    @property
    def done(self) -> bool:
        return self.execution is not None and str(self.execution.get("Status")) not in RUNNING

    def to_json(self) -> dict[str, Any]:
        return {
            "AssociationId": self.association_id,
            "AssociationName": self.association.get("AssociationName"),
            "Name": self.association.get("Name"),
            "Execution": self.execution,
            "Targets": self.targets,
        }


async def run_once(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    """``association run ID... [--wait]``."""
    async with association_service(args) as aws:
        ids: list[str] = []
        for word in args.associations:
            association_id = await resolve(aws, word)
            if association_id not in ids:
                ids.append(association_id)
        described = [await aws.describe_association(i) for i in ids]  # unknown ids fail here
        runs: list[_Run] = []
        for association in described:
            before: set[str] = set()
            if args.wait:
                seen = await aws.executions(str(association.get("AssociationId")), limit=LOOKBACK)
                before = {str(e.get("ExecutionId")) for e in seen}
            runs.append(_Run(association, before))
        await aws.start_once(ids)
        if not args.wait:
            for run in runs:
                reporter.status(f"Started association {_label(run.association)}.")
            return EXIT_OK
        with Interrupts(cancels=False) as interrupts:
            progress = ProgressLine(terminal, reporter)
            try:
                await _follow_runs(aws, runs, Poll(interrupts), progress)
            except Interrupted:
                progress.clear()
                reporter.error("interrupted; the association runs go on")
                return EXIT_INTERRUPTED
            progress.clear()
        for run in runs:
            assert run.execution is not None
            run.targets = await aws.execution_targets(
                run.association_id, str(run.execution.get("ExecutionId"))
            )
        tags = await name_tags(aws.instance_names(), reporter)
    for run in runs:
        _name(run.targets, tags)
    try:
        if args.json:
            written = emit(terminal, json_document([r.to_json() for r in runs]))
        else:
            written = _report(runs, terminal, reporter)
    except BrokenPipeError:
        return EXIT_BROKEN_PIPE
    if written != EXIT_OK:
        return written
    succeeded = all(
        str((r.execution or {}).get("Status")) == "Success"
        and all(t.get("Status") == "Success" for t in r.targets)
        for r in runs
    )
    return EXIT_OK if succeeded else EXIT_SOME_FAILED


async def _follow_runs(
    aws: SsmAssociations, runs: list[_Run], poll: Poll, progress: ProgressLine
) -> None:
    """Find each run's new execution, then poll it until it has ended."""
    deadline = time.monotonic() + NEW_EXECUTION_TIMEOUT
    while True:
        changed = False
        for run in runs:
            if run.done:
                continue
            if run.execution is None:
                found = await poll.call(aws.executions(run.association_id, limit=LOOKBACK))
                new = [e for e in found if str(e.get("ExecutionId")) not in run.before]
                if not new:
                    if time.monotonic() > deadline:
                        raise AwsError(
                            f"association {_label(run.association)}: StartAssociationsOnce "
                            f"made no execution that could be seen within "
                            f"{NEW_EXECUTION_TIMEOUT:.0f} s",
                            "Timeout",
                        )
                    continue
                new.sort(key=lambda e: _when(e.get("CreatedTime")))
                run.execution = new[0]  # the first one after the snapshot
                progress.note(
                    f"Association {_label(run.association)}: execution "
                    f"{run.execution.get('ExecutionId')}"
                )
                changed = True
            else:
                only = [
                    {
                        "Key": "ExecutionId",
                        "Value": str(run.execution["ExecutionId"]),
                        "Type": "EQUAL",
                    }
                ]
                found = await poll.call(aws.executions(run.association_id, only, limit=1))
                if found:
                    changed = changed or found[0] != run.execution
                    run.execution = found[0]
        if all(run.done for run in runs):
            return
        progress.draw("; ".join(_progress(run) for run in runs))
        await poll.wait(changed)


def _progress(run: _Run) -> str:
    name = run.association.get("AssociationName") or run.association_id[:8]
    if run.execution is None:
        return f"{name}: starting"
    counts = run.execution.get("ResourceCountByStatus") or ""
    return f"{name}: {run.execution.get('Status')} {counts}".rstrip()


def _report(runs: Sequence[_Run], terminal: Terminal, reporter: Reporter) -> int:
    """Per association: a heading and the targets' table on stdout, a summary line."""
    for index, run in enumerate(runs):
        execution = run.execution or {}
        heading = (
            f"Association {_label(run.association)}, execution {execution.get('ExecutionId')}: "
            f"{execution.get('Status')}"
        )
        detail = execution.get("DetailedStatus")
        if detail and detail != execution.get("Status"):
            heading += f" ({detail})"
        text = ("\n" if index else "") + heading + "\n"
        if run.targets:
            text += fit(target_table(run.targets), terminal)
        written = emit(terminal, text)
        if written != EXIT_OK:
            return written
        reporter.status(_summary(run))
        _output_hint(run.targets, reporter)
    return EXIT_OK


def _summary(run: _Run) -> str:
    counts: dict[str, int] = {}
    for target in run.targets:
        status = str(target.get("Status") or "?")
        counts[status] = counts.get(status, 0) + 1
    total = len(run.targets)
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"
    text = f"{total} target{'s' if total != 1 else ''}: {parts}"
    failed = [str(t.get("NameTag") or t.get("ResourceId")) for t in run.targets]
    failed = [
        label for label, t in zip(failed, run.targets, strict=True) if t.get("Status") != "Success"
    ]
    if failed:
        shown = ", ".join(failed[:10]) + (", ..." if len(failed) > 10 else "")
        text += f" (not successful: {shown})"
    return text
