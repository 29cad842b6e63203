"""Following a Run Command command until every invocation is final (``ssmsh run``).

The loop asks ListCommands for the one command (one call a poll: its counts say whether
anything finished) and only then ListCommandInvocations with ``Details`` (50 instances a
call), whose plugin ``Output`` carries stdout and stderr up to 2,500 characters. Only when
that was cut does it ask GetCommandInvocation, once per cut step, for the 24,000 / 8,000
characters AWS keeps. So an instance costs a small fraction of a call per poll instead of
the AWS CLI's one GetCommandInvocation per instance per poll.

Polls start every :data:`FIRST_POLL` seconds and back off to :data:`MAX_POLL` while
nothing changes. A command whose invocations are not listed yet (AWS lists them a moment
after SendCommand) is simply polled again. Each finished instance is handed to a
:class:`~ssmsh.cli.runoutput.Printer` at once; the progress line is redrawn each poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar, cast

from ..aws.commands import SsmCommands
from ..exceptions import AwsError
from .runoutput import (
    DETAILS_LIMIT,
    STDERR_LIMIT,
    STDOUT_LIMIT,
    InvocationResult,
    PluginResult,
    Printer,
    natural_key,
    split_details,
)
from .runtime import handle_signals, unless_set

__all__ = [
    "FINAL_COMMAND",
    "FINAL_INVOCATION",
    "FIRST_POLL",
    "MAX_POLL",
    "Follower",
    "Interrupted",
    "Interrupts",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Statuses after which nothing changes (botocore's CommandStatus /
#: CommandInvocationStatus enums, without the transient ones).
FINAL_COMMAND = frozenset({"Success", "Cancelled", "Failed", "TimedOut"})
FINAL_INVOCATION = FINAL_COMMAND
#: Seconds between polls: at first and after a change; at most, while nothing changes.
FIRST_POLL = 0.5
MAX_POLL = 3.0
BACKOFF = 1.5
#: After CancelCommand (Ctrl-C), how long to wait for the invocations to settle.
SETTLE_TIME = 10.0
#: GetCommandInvocation calls under way at once (for outputs the listing cut).
FETCH_CONCURRENCY = 8


class Interrupted(Exception):
    """The user asked to leave at once (a second Ctrl-C, or Ctrl-C while only watching)."""


class Interrupts:
    """SIGINT while following: the first asks to cancel (:attr:`cancel`), the next to
    leave at once (:attr:`leave`). With ``cancels=False`` (watching someone's command)
    the first already leaves."""

    def __init__(self, cancels: bool = True) -> None:
        self.cancels = cancels
        self.cancel = asyncio.Event()
        self.leave = asyncio.Event()
        self.wake = asyncio.Event()
        self._handlers = contextlib.ExitStack()

    def __enter__(self) -> Interrupts:
        self._handlers.enter_context(handle_signals(("SIGINT",), self._on_signal))
        return self

    def __exit__(self, *exc: object) -> None:
        self._handlers.close()

    def _on_signal(self, signum: int) -> None:
        if self.cancel.is_set() or not self.cancels:
            self.leave.set()
        self.cancel.set()
        self.wake.set()


class Follower:
    """Follows one command; :meth:`run` returns every final invocation, in the order
    they finished (those still unfinished when a cancelled follow gave up are left out)."""

    def __init__(
        self,
        aws: SsmCommands,
        command_id: str,
        printer: Printer,
        labels: Mapping[str, str] | None = None,
        interrupts: Interrupts | None = None,
    ) -> None:
        self.aws = aws
        self.command_id = command_id
        self.printer = printer
        self.labels = dict(labels or {})
        self.interrupts = interrupts or Interrupts(cancels=False)
        self.done: dict[str, InvocationResult] = {}
        #: The command as ListCommands last gave it.
        self.command: dict[str, Any] = {}
        self.cancelled = False
        self.started = time.monotonic()
        #: API calls made while following, by operation (logged with --debug).
        self.calls: dict[str, int] = {}

    # -- the loop ---------------------------------------------------------------

    async def run(self) -> list[InvocationResult]:
        interval = FIRST_POLL
        settle_by: float | None = None
        seen_completed = -1
        while True:
            await self._pause(interval)
            if self.interrupts.cancel.is_set() and not self.cancelled and self.interrupts.cancels:
                self.cancelled = True
                settle_by = time.monotonic() + SETTLE_TIME
                self.printer.note(
                    f"cancelling command {self.command_id} (Ctrl-C again to leave at once)"
                )
                await self._guard(
                    self._count("CancelCommand", self.aws.cancel_command(self.command_id))
                )
            try:
                found = await self._guard(
                    self._count("ListCommands", self.aws.get_command(self.command_id))
                )
            except AwsError as exc:
                if exc.code != "ThrottlingException":
                    raise
                interval = MAX_POLL  # botocore's retries ran out: slow down, go on
                continue
            changed = False
            if found is not None:
                self.command = found
                total = int(found.get("TargetCount") or 0)
                completed = int(found.get("CompletedCount") or 0)
                final = found.get("Status") in FINAL_COMMAND
                if total and (completed != seen_completed or final) and len(self.done) < total:
                    before = len(self.done)
                    await self._collect()
                    changed = len(self.done) > before
                    seen_completed = completed
                self.printer.progress(found, len(self.done), time.monotonic() - self.started)
                if final and len(self.done) >= total:
                    break
            if settle_by is not None and time.monotonic() >= settle_by:
                break
            interval = FIRST_POLL if changed else min(interval * BACKOFF, MAX_POLL)
        self.printer.progress_done()
        logger.debug("API calls while following %s: %s", self.command_id, self.calls)
        return list(self.done.values())

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``; a Ctrl-C ends the pause at once (or leaves)."""
        wake = self.interrupts.wake
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await wake.wait()
        wake.clear()
        if self.interrupts.leave.is_set():
            raise Interrupted

    async def _guard(self, step: Awaitable[_T]) -> _T:
        """``step``'s result, unless the user leaves first (then it is abandoned)."""
        result = await unless_set(step, self.interrupts.leave)
        if self.interrupts.leave.is_set():
            raise Interrupted  # the user's leaving decides
        return cast(_T, result)

    async def _count(self, operation: str, call: Awaitable[_T]) -> _T:
        self.calls[operation] = self.calls.get(operation, 0) + 1
        return await call

    # -- finished invocations ---------------------------------------------------------

    async def _collect(self) -> None:
        """List the invocations; report those that became final since the last listing."""
        listing = await self._guard(self._listing())
        new = [
            item
            for item in listing
            if item.get("Status") in FINAL_INVOCATION
            and str(item.get("InstanceId")) not in self.done
        ]
        if not new:
            return
        results = [self._result(item) for item in new]
        limit = asyncio.Semaphore(FETCH_CONCURRENCY)
        await self._guard(asyncio.gather(*(self._complete(r, limit) for r in results)))
        for result in sorted(results, key=lambda r: natural_key(r.label)):
            self.done[result.instance_id] = result
            self.printer.invocation(result)

    async def _listing(self) -> list[dict[str, Any]]:
        listing = await self.aws.list_invocations(self.command_id, details=True)
        pages = max(1, -(-len(listing) // 50))
        self.calls["ListCommandInvocations"] = self.calls.get("ListCommandInvocations", 0) + pages
        return listing

    def _result(self, item: Mapping[str, Any]) -> InvocationResult:
        instance_id = str(item.get("InstanceId") or "")
        label = self.labels.get(instance_id) or str(item.get("InstanceName") or "") or instance_id
        plugins = []
        for plugin in item.get("CommandPlugins") or []:
            stdout, stderr, out_cut, err_cut = split_details(str(plugin.get("Output") or ""))
            plugins.append(
                PluginResult(
                    name=str(plugin.get("Name") or ""),
                    status=str(plugin.get("Status") or ""),
                    details=str(plugin.get("StatusDetails") or ""),
                    response_code=int(plugin.get("ResponseCode", -1)),
                    stdout=stdout,
                    stderr=stderr,
                    stdout_truncated=out_cut,
                    stderr_truncated=err_cut,
                    stdout_limit=DETAILS_LIMIT if out_cut else 0,
                    stderr_limit=DETAILS_LIMIT if err_cut else 0,
                    stdout_url=str(plugin.get("StandardOutputUrl") or ""),
                    stderr_url=str(plugin.get("StandardErrorUrl") or ""),
                )
            )
        return InvocationResult(
            instance_id=instance_id,
            label=label,
            status=str(item.get("Status") or ""),
            details=str(item.get("StatusDetails") or ""),
            plugins=plugins,
        )

    async def _complete(self, result: InvocationResult, limit: asyncio.Semaphore) -> None:
        """GetCommandInvocation for each step whose output the listing cut."""
        several = len(result.plugins) > 1
        for plugin in result.plugins:
            if not (plugin.stdout_truncated or plugin.stderr_truncated):
                continue
            async with limit:
                try:
                    full = await self._count(
                        "GetCommandInvocation",
                        self.aws.get_invocation(
                            self.command_id, result.instance_id, plugin.name if several else None
                        ),
                    )
                except AwsError as exc:  # keep what the listing gave, marked as cut
                    logger.debug("GetCommandInvocation for %s: %s", result.instance_id, exc)
                    continue
            plugin.stdout = str(full.get("StandardOutputContent") or "")
            plugin.stderr = str(full.get("StandardErrorContent") or "")
            plugin.stdout_truncated = len(plugin.stdout) >= STDOUT_LIMIT
            plugin.stderr_truncated = len(plugin.stderr) >= STDERR_LIMIT
            plugin.stdout_limit = STDOUT_LIMIT if plugin.stdout_truncated else 0
            plugin.stderr_limit = STDERR_LIMIT if plugin.stderr_truncated else 0
            plugin.stdout_url = str(full.get("StandardOutputUrl") or plugin.stdout_url)
            plugin.stderr_url = str(full.get("StandardErrorUrl") or plugin.stderr_url)
