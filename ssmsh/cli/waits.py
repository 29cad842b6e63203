"""Hints for the waits of a command: its AWS calls, the WebSocket, a port session's agent and
reconnects (drawn by :mod:`ssmsh.terminal.hints`)."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..aws import SsmSessions
from ..channel import ConnectionState, SessionConnection, StateChange
from ..terminal.hints import Hint, Hints, clock

if TYPE_CHECKING:  # ssmsh.protocol.session loads cryptography: not for forward or proxy
    from ..protocol.session import SessionEstablished

__all__ = ["PortSessionNotices", "gateway_hint", "watch_calls"]

#: Outages shorter than this (seconds) go unmentioned, as in a shell.
NOTICE_DELAY = 1.0


def watch_calls(sessions: SsmSessions, hints: Hints) -> SsmSessions:
    """Give ``sessions`` a hint for every AWS call that takes long; returns it."""

    def watch(operation: str, service: str) -> contextlib.AbstractContextManager[object]:
        if not hints.enabled:
            return contextlib.nullcontext()

        def describe(elapsed: float) -> str:
            url = sessions.endpoint_url(service)
            where = f"the {service.upper()} endpoint" + (f" at {url}" if url else "")
            return hints.with_way_out(f"waiting for {where} ({operation}, {elapsed:.0f} s)")

        return hints.waiting(describe)

    sessions.watch = watch
    return sessions


def gateway_hint(hints: Hints, stream_url: str) -> contextlib.AbstractContextManager[object]:
    """A hint while the data channel's WebSocket opens (retried for up to half a minute)."""
    host = urllib.parse.urlsplit(stream_url).hostname or "the message gateway"

    def describe(elapsed: float) -> str:
        return hints.with_way_out(f"connecting to {host} ({elapsed:.0f} s)")

    return hints.waiting(describe)


class PortSessionNotices:
    """What a port session (``ssmsh forward``) says while it waits, as a shell does.

    On a terminal, a hint while its agent has not answered yet; for an outage longer than
    :data:`NOTICE_DELAY`, a status line (``ssmsh: 127.0.0.1:8080: connection lost (…);
    reconnecting...``), a countdown of the time left on a terminal, and a line when it is
    over. Attach it to a started connection with :meth:`attach`.
    """

    def __init__(
        self,
        connection: SessionConnection,
        label: str,
        status: Callable[[str], None],
        hints: Hints,
    ) -> None:
        self.connection = connection
        self.label = label
        self.status = status
        self.hints = hints
        self._loop = asyncio.get_running_loop()
        self._notice: asyncio.TimerHandle | None = None
        self._countdown: Hint | None = None
        self._reported = False
        self._last_error = ""
        self._waiting: Hint | None = None

    def attach(self) -> None:
        self.connection.add_state_listener(self._on_state)
        if self.hints.enabled and not self.connection.protocol.established:
            self._waiting = self.hints.start(self._handshake_hint)
            task = asyncio.ensure_future(self.connection.wait_established())
            task.add_done_callback(self._established)

    def _established(self, task: asyncio.Future[SessionEstablished]) -> None:
        if not task.cancelled():
            task.exception()  # the session's own runner reports its failure
        self._close_waiting()

    def _close_waiting(self) -> None:
        if self._waiting is not None:
            self._waiting.close()
            self._waiting = None

    def _handshake_hint(self, elapsed: float) -> str:
        target = self.connection.info.target_id or "the target"
        text = f"{self.label}: waiting for the agent on {target} ({elapsed:.0f} s"
        timeout = self.connection.config.handshake_timeout
        if timeout is not None:
            text += f", gives up in {max(0.0, timeout - elapsed):.0f} s"
        return self.hints.with_way_out(text + ")")

    def _on_state(self, change: StateChange) -> None:
        if change.new is ConnectionState.RECONNECTING:
            self._last_error = change.reason or self._last_error
            if self._notice is None and not self._reported:
                reason = change.reason or "connection lost"
                self._notice = self._loop.call_later(NOTICE_DELAY, self._report, reason)
        elif change.new is ConnectionState.CONNECTED and change.outage is not None:
            self._end_outage()
            if self._reported:
                self.status(f"ssmsh: {self.label}: reconnected after {change.outage:.1f} s")
            self._reported = False
        elif change.new is ConnectionState.CLOSED:
            self._end_outage()
            self._close_waiting()

    def _report(self, reason: str) -> None:
        self._notice = None
        self._reported = True
        self.status(f"ssmsh: {self.label}: {reason}; reconnecting...")
        self._countdown = self.hints.start(self._countdown_hint, delay=0, priority=1)

    def _countdown_hint(self, elapsed: float) -> str:
        deadline = self.connection.reconnect_deadline
        if deadline is None:
            return self.hints.with_way_out(f"{self.label}: reconnecting ({elapsed:.0f} s)")
        left = clock(deadline - self._loop.time())
        return self.hints.with_way_out(
            f"{self.label}: reconnecting: {left} left (last error: {self._last_error})"
        )

    def _end_outage(self) -> None:
        if self._notice is not None:
            self._notice.cancel()
            self._notice = None
        if self._countdown is not None:
            self._countdown.close()
            self._countdown = None
