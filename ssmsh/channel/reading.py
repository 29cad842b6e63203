"""Whether the current link is read: receive coalescing and the consumer's backpressure.

Two things stop a :class:`~ssmsh.channel.SessionConnection` from reading its
WebSocket, and :class:`ReadGate` keeps both in one place so that they never
undo each other:

* *holds* (receive coalescing): while a peer streams small messages, reading
  pauses for a few milliseconds after each batch, so that the next batch comes
  in one wakeup, is acknowledged in one write and delivered as one event
  (:func:`next_hold` says how long; ``ConnectionConfig.receive_coalesce`` caps it).
  Sending a little input ends a hold and the stream (:meth:`ReadGate.input_sent`):
  its echo or answer is read at once;
* *backpressure*: the consumer left more than ``max_receive_buffer`` bytes
  unread; reading stops until it has taken half of them.

The link is read only when neither applies. The gate outlives links: a pause
for a slow consumer still holds on the next link.
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol

__all__ = ["HOLD_FIRST", "HOLD_GAP", "HOLD_MAX_BATCH", "ReadGate", "next_hold"]

#: Receive coalescing (see next_hold): the first hold of a stream, in seconds...
HOLD_FIRST = 0.002
#: ... a stream is a batch coming less than this after the previous hold ended...
HOLD_GAP = 0.004
#: ... and a hold never lasts longer than it takes the stream to bring this many bytes.
HOLD_MAX_BATCH = 64 * 1024


def next_hold(previous: float, interval: float, size: int, limit: float) -> float:
    """How long to stop reading after a batch of ``size`` bytes (receive coalescing).

    ``previous`` is the hold after the previous batch (0: none), ``interval`` the
    time since that batch, ``limit`` the longest hold (``receive_coalesce``).

    A batch that follows the previous one closely (within :data:`HOLD_GAP` of the
    end of the hold after it) is part of a stream of small messages, such as the
    agent's 1 KiB per millisecond. Reading is then held back, so that the next
    batch comes in one wakeup, is acknowledged in one write and delivered as one
    event. The hold starts at :data:`HOLD_FIRST` and grows by as much with each
    batch of the stream, up to ``limit``: a short burst (a screen redraw) is
    delayed by a few milliseconds at most, a long transfer settles on the limit.
    The slow ramp lets the agent's RTO, which grows with the delay of the acks
    (SRTT + 4 RTTVAR, at least 10 ms), stay ahead of the hold: no retransmissions. A hold never
    spans more than :data:`HOLD_MAX_BATCH` bytes at the stream's rate, so a fast
    link is not held at all (its reads are big batches already) and nothing
    waits long in the socket buffer. The first batch after a quiet spell is
    never held.
    """
    if interval >= previous + HOLD_GAP or limit <= 0:
        return 0.0
    hold = min(limit, previous + HOLD_FIRST)
    if size:
        hold = min(hold, HOLD_MAX_BATCH * interval / size)
    return hold if hold >= HOLD_FIRST / 2 else 0.0


class Readable(Protocol):
    """What the gate needs of a link (:class:`~ssmsh._private_api.FrameLink`)."""

    def set_reading(self, wanted: bool) -> None: ...


class ReadGate:
    """Reads the attached link unless a hold or backpressure says not to.

    :param limit: the longest hold, in seconds (``receive_coalesce``; 0: no holds).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: float) -> None:
        self._loop = loop
        self._limit = limit
        self._link: Readable | None = None
        self._hold: asyncio.TimerHandle | None = None
        self._batch_ended = -math.inf
        self._hold_delay = 0.0  # the hold after the previous batch (0: none)
        #: Times reading was held back to coalesce received frames (for tests and benchmarks).
        self.holds = 0
        #: Reading is stopped because the consumer is behind.
        self.paused = False

    def attach(self, link: Readable) -> None:
        """Control ``link`` from now on (a new link: still paused for a slow consumer?)."""
        self._link = link
        self._update()

    def detach(self) -> None:
        """The link is over: end any hold and let it read, so a closing handshake completes."""
        link, self._link = self._link, None
        if self._hold is not None:
            self._hold.cancel()
            self._hold = None
        if link is not None:
            link.set_reading(True)

    def end_batch(self, size: int, now: float) -> None:
        """After the frames of one read (``size`` bytes): maybe hold reading for a while."""
        if not self._limit:
            return
        hold = next_hold(self._hold_delay, now - self._batch_ended, size, self._limit)
        self._batch_ended = now
        self._hold_delay = hold
        if hold and self._hold is None and self._link is not None:
            self._hold = self._loop.call_later(hold, self._release)
            self.holds += 1
            self._update()

    def input_sent(self) -> None:
        """A little input went out (a keystroke, a short command): its answer is awaited.

        What comes back is a reply, not part of a stream: any hold ends now, and the
        next batch counts as the first after a quiet spell (never held). Without this,
        fast typing looks like a stream of small batches and every echo waits for the
        hold (up to ``receive_coalesce``: 30 ms instead of 2).
        """
        self._hold_delay = 0.0
        self._batch_ended = -math.inf
        if self._hold is not None:
            self._hold.cancel()
            self._hold = None
            self._update()

    def pause(self) -> None:
        """The consumer is behind: stop reading until :meth:`resume`."""
        if not self.paused:
            self.paused = True
            self._update()

    def resume(self) -> None:
        """The consumer caught up: read again unless a hold is on."""
        if self.paused:
            self.paused = False
            self._update()

    def _release(self) -> None:
        """End a hold: read the link again unless the consumer is behind."""
        self._hold = None
        self._update()

    def _update(self) -> None:
        if self._link is not None:
            self._link.set_reading(self._hold is None and not self.paused)
