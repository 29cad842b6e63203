"""The Run Command scheduler: sends each command's invocations under its rate controls.

One asyncio task per command, one per invocation in flight, all tracked and cancelled by
:meth:`CommandEngine.close` (the emulator's shutdown), so no process outlives the
emulator. What it does, after AWS's Run Command guide ("Using concurrency controls",
"Using error controls", "Understanding command statuses"):

- after SendCommand the invocations stay invisible for ``visibility_delay`` seconds
  (GetCommandInvocation answers InvocationDoesNotExist meanwhile, as AWS may right after
  SendCommand), then they are sent in order, at most MaxConcurrency at a time;
- an invocation is Pending until the instance's agent picks it up: at once when the
  instance is Online (after its ``pickup_delay``), never while it is offline. One not
  picked up when the command expires (``ExpiresAfter`` = RequestedDateTime +
  TimeoutSeconds + the document's execution timeouts) ends Delivery Timed Out;
- once more than MaxErrors invocations ended Failed or Execution Timed Out, no further
  invocations are sent: those end Terminated; the ones already running finish;
- CancelCommand cancels the invocations not yet finished (a running script is killed).

``timeout_scale`` shrinks the delivery and execution waits (not the reported times), so
tests can see a 30-second delivery timeout in a fraction of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from .model import CommandRecord, Detail, InvocationRecord
from .notifications import NotificationLog
from .runner import run_plugin

__all__ = ["CommandEngine", "TargetView"]

logger = logging.getLogger(__name__)

#: How often a Pending invocation looks whether its instance came back online.
_POLL = 0.02


class TargetView(Protocol):
    """What the scheduler needs to know about a managed instance."""

    @property
    def ping_status(self) -> str: ...

    @property
    def pickup_delay(self) -> float: ...


class CommandEngine:
    """Commands by id and the tasks that run them."""

    def __init__(
        self,
        targets: Mapping[str, TargetView],
        *,
        region: str = "us-east-1",
        environment: Mapping[str, str] | None = None,
        visibility_delay: float = 0.5,
        timeout_scale: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.targets = targets
        #: The emulator's clock: the times commands report (``EmulatorClock.now``).
        self.clock = clock
        self.region = region
        self.environment = dict(environment or {})
        self.visibility_delay = visibility_delay
        self.timeout_scale = timeout_scale
        self.commands: dict[str, CommandRecord] = {}
        self.notifications = NotificationLog(clock)
        self._command_tasks: dict[str, asyncio.Task[None]] = {}
        self._invocation_tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._cancelled: set[str] = set()

    # -- requests -------------------------------------------------------------------

    def submit(self, command: CommandRecord) -> None:
        """Start running a command whose invocations are filled in."""
        self.commands[command.command_id] = command
        task = asyncio.get_running_loop().create_task(self._run(command))
        self._command_tasks[command.command_id] = task
        task.add_done_callback(lambda _: self._command_tasks.pop(command.command_id, None))

    def cancel(self, command: CommandRecord, instance_ids: Iterable[str] | None = None) -> None:
        """CancelCommand: every unfinished invocation (or those of ``instance_ids``)."""
        wanted = list(instance_ids) if instance_ids else list(command.invocations)
        if not instance_ids and not command.finished:
            command.detail = Detail.CANCELLING
        for instance_id in wanted:
            invocation = command.invocations[instance_id]
            if invocation.finished:
                continue
            self._cancelled.add(f"{command.command_id}/{instance_id}")
            task = self._invocation_tasks.get((command.command_id, instance_id))
            if task is not None:
                invocation.detail = Detail.CANCELLING
                task.cancel()
            else:  # not sent yet
                self._end(command, invocation, Detail.CANCELLED)

    async def wait(self, command: CommandRecord) -> None:
        """Return once ``command`` has ended (every invocation finished)."""
        task = self._command_tasks.get(command.command_id)
        if task is not None and not task.done():
            await asyncio.shield(task)

    async def close(self) -> None:
        """Cancel everything that runs (the emulator is shutting down)."""
        tasks = [*self._command_tasks.values(), *self._invocation_tasks.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- scheduling -----------------------------------------------------------------

    async def _run(self, command: CommandRecord) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (command.expires_after - command.requested) * self.timeout_scale
        running: set[asyncio.Task[None]] = set()
        try:
            await asyncio.sleep(self.visibility_delay)
            command.visible = True
            for invocation in list(command.invocations.values()):
                while len(running) >= command.concurrency:
                    _, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                if command.stopped or command.detail == Detail.CANCELLING:
                    break
                if invocation.finished:  # cancelled before it was sent
                    continue
                task = loop.create_task(self._invoke(command, invocation, deadline))
                self._invocation_tasks[(command.command_id, invocation.instance_id)] = task
                running.add(task)
                if command.detail == Detail.PENDING:
                    command.detail = Detail.IN_PROGRESS
                    self.notifications.command_changed(command)
            if running:
                await asyncio.wait(running)
        finally:
            for task in running:
                task.cancel()
            for invocation in command.invocations.values():
                if not invocation.finished:
                    cancelled = command.detail == Detail.CANCELLING or not command.stopped
                    self._end(
                        command, invocation, Detail.CANCELLED if cancelled else Detail.TERMINATED
                    )
            command.visible = True
            command.detail = command.final_detail()
            self.notifications.command_changed(command)
            logger.info(
                "command %s ended %s (%d targets, %d errors, %d delivery timeouts)",
                command.command_id,
                command.detail,
                command.target_count,
                command.error_count,
                command.delivery_timed_out_count,
            )

    async def _invoke(
        self, command: CommandRecord, invocation: InvocationRecord, deadline: float
    ) -> None:
        key = (command.command_id, invocation.instance_id)
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    await self._pick_up(invocation.instance_id)
            except TimeoutError:
                self._end(command, invocation, Detail.DELIVERY_TIMED_OUT)
                return
            invocation.detail = Detail.IN_PROGRESS
            self.notifications.invocation_changed(command, invocation)
            for plugin in invocation.plugins:
                await run_plugin(
                    plugin,
                    instance_id=invocation.instance_id,
                    region=self.region,
                    environment=self.environment,
                    timeout_scale=self.timeout_scale,
                    now=self.clock,
                )
            self._end(command, invocation, _merged(invocation))
        except asyncio.CancelledError:
            self._end(command, invocation, Detail.CANCELLED)
            if f"{command.command_id}/{invocation.instance_id}" not in self._cancelled:
                raise  # shutdown, not CancelCommand
        finally:
            self._invocation_tasks.pop(key, None)
            if command.error_count > command.allowed_errors and not command.stopped:
                command.stopped = True
                logger.info(
                    "command %s: MaxErrors %s passed", command.command_id, command.max_errors
                )

    async def _pick_up(self, instance_id: str) -> None:
        """Wait until the instance's agent takes the command (Online, then its delay)."""
        while True:
            target = self.targets.get(instance_id)
            if target is not None and target.ping_status == "Online":
                break
            await asyncio.sleep(_POLL)
        if target.pickup_delay > 0:
            await asyncio.sleep(target.pickup_delay)

    def _end(self, command: CommandRecord, invocation: InvocationRecord, detail: Detail) -> None:
        if invocation.finished:
            return
        for plugin in invocation.plugins:
            if not plugin.finished:
                plugin.detail = detail if detail != Detail.CANCELLING else Detail.CANCELLED
        invocation.detail = detail
        self.notifications.invocation_changed(command, invocation)


def _merged(invocation: InvocationRecord) -> Detail:
    """An invocation's status from its plugins' (the worst one wins)."""
    details = {p.detail for p in invocation.plugins}
    for worst in (Detail.CANCELLED, Detail.EXECUTION_TIMED_OUT, Detail.FAILED):
        if worst in details:
            return worst
    return Detail.SUCCESS
