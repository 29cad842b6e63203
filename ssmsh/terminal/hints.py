"""Hints while something takes long: one line on the terminal, redrawn, then gone.

A wait that lasts longer than a moment (:data:`HINT_DELAY`) shows what it waits for, the
time so far or left, and how to give up: ``ssmsh: waiting for the SSM endpoint at
https://ssm.eu-west-1.amazonaws.com (StartSession, 5 s); Ctrl-C to give up``. The line is
redrawn every second over itself (:meth:`.tty.Terminal.progress`) and
cleared when the wait ends, so it leaves nothing behind; output and status lines clear it
first. Only on a terminal, never with ``--quiet``: scripts get no such lines.

Several waits may overlap (an API call during a reconnect): the line shows the one with
the highest priority, the latest of those.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
from collections.abc import Callable, Iterator

from .tty import Terminal

__all__ = ["HINT_DELAY", "Hint", "Hints", "clock", "fit"]

logger = logging.getLogger(__name__)

#: Seconds a wait lasts before its hint shows.
HINT_DELAY = 2.0
#: Seconds between redraws.
REDRAW_INTERVAL = 1.0

#: What a hint says after this many seconds of waiting (None: nothing now).
Describe = Callable[[float], str | None]


def fit(text: str, width: int) -> str:
    """``text`` in ``width`` columns (0: any), cut short in its middle: what comes after
    its last ``; `` (the way out, such as ``Ctrl-C to give up``) is kept."""
    if width <= 0 or len(text) <= width:
        return text
    head, sep, tail = text.rpartition("; ")
    if not sep or len(tail) + len(sep) + 2 > width:
        return text[: max(width - 1, 0)] + "…"
    room = width - len(sep) - len(tail) - 1
    return head[:room] + "…" + sep + tail


def clock(seconds: float) -> str:
    """``4:12`` for 252 seconds (never negative)."""
    whole = max(0, int(seconds + 0.5))
    return f"{whole // 60}:{whole % 60:02d}"


@dataclasses.dataclass(eq=False)
class Hint:
    """One wait's hint; :meth:`close` when the wait is over (idempotent)."""

    owner: Hints
    describe: Describe
    started: float
    delay: float
    priority: int
    order: int

    def close(self) -> None:
        self.owner._remove(self)


class Hints:
    """The hints of one command, drawn on its terminal's stderr when it is a terminal.

    ``enabled`` is asked each time (``--quiet`` may be set after this is made).
    """

    def __init__(self, terminal: Terminal, enabled: Callable[[], bool] = lambda: True) -> None:
        self.terminal = terminal
        self._enabled = enabled
        #: How the user gives up a wait, for the hints to say: Ctrl-C, unless a session
        #: holds the terminal in raw mode (then its escape, ``~.``).
        self.give_up = "Ctrl-C to give up"
        self._active: list[Hint] = []
        self._orders = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._shown = False

    @property
    def enabled(self) -> bool:
        return self.terminal.stderr_is_tty and self._enabled()

    def with_way_out(self, text: str, way_out: str | None = None) -> str:
        """``text; Ctrl-C to give up`` (``way_out``, default :attr:`give_up`; none if empty)."""
        way_out = self.give_up if way_out is None else way_out
        return f"{text}; {way_out}" if way_out else text

    def start(self, describe: Describe, *, delay: float = HINT_DELAY, priority: int = 0) -> Hint:
        """A hint for a wait that starts now; shown once it has lasted ``delay`` seconds."""
        loop = asyncio.get_running_loop()
        hint = Hint(self, describe, loop.time(), delay, priority, next(self._orders))
        if self.enabled:
            self._active.append(hint)
            self._schedule(loop, hint.started + delay)
        return hint

    @contextlib.contextmanager
    def waiting(
        self, describe: Describe, *, delay: float = HINT_DELAY, priority: int = 0
    ) -> Iterator[Hint]:
        """:meth:`start` for the duration of the block."""
        hint = self.start(describe, delay=delay, priority=priority)
        try:
            yield hint
        finally:
            hint.close()

    def _remove(self, hint: Hint) -> None:
        if hint in self._active:
            self._active.remove(hint)
            self._draw()
            if not self._active and self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _schedule(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        """A redraw at loop time ``when``, unless one comes sooner anyway."""
        if self._timer is not None:
            if self._timer.when() <= when:
                return
            self._timer.cancel()
        self._timer = loop.call_at(when, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._draw()
        if self._active:
            loop = asyncio.get_running_loop()
            now = loop.time()
            nxt = min(
                h.started + h.delay if now < h.started + h.delay else now + REDRAW_INTERVAL
                for h in self._active
            )
            self._schedule(loop, nxt)

    def _draw(self) -> None:
        """Show the most important hint that is due, or clear the line."""
        text = None
        try:
            now = asyncio.get_running_loop().time()
        except RuntimeError:  # no loop any more: just clear
            now = None
        if now is not None and self.enabled:
            due = [h for h in self._active if now - h.started >= h.delay]
            for hint in sorted(due, key=lambda h: (h.priority, h.order), reverse=True):
                try:
                    text = hint.describe(now - hint.started)
                except Exception:  # a hint must never break what it describes
                    logger.debug("hint failed", exc_info=True)
                    text = None
                if text:
                    break
        if text:
            self.terminal.progress(fit(f"ssmsh: {text}", self.terminal.width() - 1))
            self._shown = True
        elif self._shown:
            self.terminal.clear_progress()
            self._shown = False
