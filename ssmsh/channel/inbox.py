"""The events a session received and its consumer has not taken yet.

:class:`Inbox` plays the part of websockets' ``Assembler``: the driver puts
events as the protocol produces them, :meth:`SessionConnection.receive
<ssmsh.channel.SessionConnection.receive>` gets them in order. It counts the
payload bytes it holds (:attr:`Inbox.size`), which is what the driver's read
backpressure (:mod:`ssmsh.channel.reading`) is measured against. When the
session ends the inbox is closed with its failure, if any: the consumer still
gets every event put before that, then ``None`` or the failure.

:func:`merge_output` joins runs of output events, so a batch of small messages
is one event for the consumer.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from .events import OutputReceived, SessionEvent, StderrReceived

__all__ = ["Inbox", "merge_output"]


def merge_output(events: list[Any]) -> list[Any]:
    """Join runs of consecutive OutputReceived (or StderrReceived) into one event each.

    A batch of small messages is then one event for the consumer, not one per message.
    """
    merged: list[Any] = []
    run: list[bytes] = []
    kind: Any = None
    for event in events:
        if type(event) is kind:
            run.append(event.data)
            continue
        if len(run) > 1:
            merged[-1] = kind(b"".join(run))
        if type(event) is OutputReceived or type(event) is StderrReceived:
            kind, run = type(event), [event.data]
        else:
            kind, run = None, []
        merged.append(event)
    if len(run) > 1:
        merged[-1] = kind(b"".join(run))
    return merged


class Inbox:
    """A queue of :data:`~ssmsh.channel.events.SessionEvent` that counts its payload bytes."""

    def __init__(self) -> None:
        self._events: deque[SessionEvent] = deque()
        self._ready = asyncio.Event()
        self._closed = False
        self._error: BaseException | None = None
        #: Payload bytes of the events held.
        self.size = 0

    def put(self, event: SessionEvent) -> None:
        data = getattr(event, "data", None)
        if isinstance(data, bytes):
            self.size += len(data)
        self._events.append(event)
        self._ready.set()

    def close(self, error: BaseException | None = None) -> None:
        """No more events: :meth:`get` returns None (raises ``error``) once empty."""
        if not self._closed:
            self._closed = True
            self._error = error
        self._ready.set()

    async def get(self) -> SessionEvent | None:
        """The next event, or None after the last one; raises the session's failure."""
        while not self._events:
            if self._closed:
                if self._error is not None:
                    raise self._error
                return None
            self._ready.clear()
            await self._ready.wait()
        event = self._events.popleft()
        data = getattr(event, "data", None)
        if isinstance(data, bytes):
            self.size -= len(data)
        return event
