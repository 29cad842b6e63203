"""Following something to its end: a progress line, polling with backoff, Ctrl-C.

What ``automation follow`` and ``association run --wait`` share. The progress line is drawn
over itself on stderr, only on a terminal and not with ``--quiet``; notes for people are
status lines, written once the progress line is cleared. :class:`Poll` paces the polls
(:data:`FIRST_POLL` seconds at first and after a change, backing off to :data:`MAX_POLL`
while nothing changes) and turns a Ctrl-C (:class:`~.follow.Interrupts`) into
:class:`~.follow.Interrupted` at once, even in the middle of an AWS call.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import TypeVar, cast

from ..terminal.tty import Terminal, write_all
from .follow import Interrupted, Interrupts
from .listing import duration
from .runtime import Reporter, unless_set

__all__ = ["BACKOFF", "FIRST_POLL", "MAX_POLL", "Poll", "ProgressLine"]

_T = TypeVar("_T")

#: Seconds between polls: at first and after a change; at most, while nothing changes.
FIRST_POLL = 0.5
MAX_POLL = 5.0
BACKOFF = 1.5

_CLEAR_LINE = "\r\x1b[K"


class ProgressLine:
    """One line on stderr that is redrawn in place (a terminal only, not with ``-q``)."""

    def __init__(self, terminal: Terminal, reporter: Reporter) -> None:
        self.terminal = terminal
        self.reporter = reporter
        self.live = terminal.stderr_is_tty and not reporter.quiet
        self.started = time.monotonic()
        self._drawn = False

    def draw(self, text: str) -> None:
        """Show ``text`` and the time since the start (``... - 1m05s``)."""
        if not self.live:
            return
        self._write(f"{_CLEAR_LINE}{text} - {duration(time.monotonic() - self.started)}")
        self._drawn = True

    def clear(self) -> None:
        if self._drawn:
            self._write(_CLEAR_LINE)
            self._drawn = False

    def note(self, text: str) -> None:
        """A status line (``--quiet`` silences it), below no progress line."""
        self.clear()
        self.reporter.status(text)

    def say(self, text: str) -> None:
        """An ``ssmsh:`` line (never silenced), below no progress line."""
        self.clear()
        self.reporter.say(text)

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError):
            write_all(self.terminal.stderr, text.encode(errors="replace"))


class Poll:
    """The pace of a follow loop, and a way out of it with Ctrl-C."""

    def __init__(self, interrupts: Interrupts) -> None:
        self.interrupts = interrupts
        self.interval = FIRST_POLL

    async def call(self, step: Awaitable[_T]) -> _T:
        """``step``'s result, unless the user leaves first (:class:`Interrupted`)."""
        result = await unless_set(step, self.interrupts.leave)
        if self.interrupts.leave.is_set():
            raise Interrupted
        return cast(_T, result)

    async def wait(self, changed: bool) -> None:
        """Sleep until the next poll: soon after a change, longer and longer without."""
        self.interval = FIRST_POLL if changed else min(self.interval * BACKOFF, MAX_POLL)
        wake = self.interrupts.wake
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.interval):
                await wake.wait()
        wake.clear()
        if self.interrupts.leave.is_set():
            raise Interrupted
