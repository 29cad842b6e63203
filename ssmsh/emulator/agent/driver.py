"""Runs the agent's Sans-I/O data channel on the event loop.

:class:`ChannelDriver` owns the :class:`~ssmsh.protocol.datachannel.DataChannel`
of one agent: it hands outgoing frames to the gateway's sink (when a client is
attached), arms the one retransmission timer the channel asks for, passes the
channel's events to the agent, and tells producers when the channel can take more
output. Like the real gateway does to an agent, it pauses the channel
(``pause_publication``) while no client is attached or the gateway pauses the
session, and restarts it (``start_publication``: everything unacknowledged is sent
again) when both are over.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable

from ...protocol.constants import MessageType
from ...protocol.datachannel import DataChannel
from ...protocol.events import Event
from ...protocol.message import ClientMessage

__all__ = ["ChannelDriver", "gateway_control"]


def gateway_control(message_type: MessageType, payload: bytes = b"") -> ClientMessage:
    """A message the gateway makes itself: sequence 0, flags 3, no payload type."""
    return ClientMessage(
        message_type=message_type,
        schema_version=1,
        created_date=int(time.time() * 1000),
        sequence_number=0,
        flags=3,
        message_id=uuid.uuid4(),
        payload_type=0,
        payload=payload,
    )


class ChannelDriver:
    """One DataChannel, one timer, one sink."""

    def __init__(self, channel: DataChannel, on_event: Callable[[Event], None]) -> None:
        self.channel = channel
        self._on_event = on_event
        self._loop = asyncio.get_running_loop()
        self._sink: Callable[[bytes], None] | None = None
        self._paused = False
        self._publishing = True
        self._set_publishing(False)  # nobody is listening until a client attaches
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when: float | None = None
        self._flushing = False
        self._writable = asyncio.Event()
        self._writable.set()
        self._all_acked = asyncio.Event()
        self._all_acked.set()
        self._woken = False

    def now(self) -> float:
        return self._loop.time()

    # ------------------------------------------------------------ publication

    @property
    def attached(self) -> bool:
        return self._sink is not None

    def attach(self, sink: Callable[[bytes], None]) -> None:
        """Frames go to ``sink`` from now on; unacknowledged output is sent again."""
        self._sink = sink
        self._update()

    def detach(self) -> None:
        """Nobody listens: hold output until the next :meth:`attach`."""
        self._sink = None
        self._update()

    def set_paused(self, paused: bool) -> None:
        """The gateway pauses (or resumes) publication to this agent."""
        self._paused = paused
        self._update()

    def _update(self) -> None:
        self._set_publishing(self._sink is not None and not self._paused)
        self.flush()

    def _set_publishing(self, publishing: bool) -> None:
        if publishing == self._publishing:
            return
        self._publishing = publishing
        mtype = MessageType.START_PUBLICATION if publishing else MessageType.PAUSE_PUBLICATION
        self.channel.receive_message(gateway_control(mtype), self.now())
        if publishing:
            self._writable.set()

    # ------------------------------------------------------------------- data

    def receive_frame(self, data: bytes) -> None:
        """One frame from the client. Never raises on bad input."""
        self.channel.receive_data(data, self.now())
        self.flush()

    def send(self, payload_type: int, payload: bytes) -> None:
        """Queue one sequenced payload (ignored once the channel is closed)."""
        if not payload or self.channel.closed:
            return
        self.channel.send_data(payload_type, payload, self.now())
        self.flush()

    def flush(self) -> None:
        """Pass frames to the sink and events to the agent until there are none left."""
        if self._flushing:  # an event handler sent something: the loop below picks it up
            return
        self._flushing = True
        try:
            while True:
                frames = self.channel.data_to_send()
                events = self.channel.events_received()
                if not frames and not events:
                    break
                sink = self._sink
                if sink is not None:
                    for frame in frames:
                        sink(frame)
                for event in events:
                    self._on_event(event)
        finally:
            self._flushing = False
        self._arm_timer()
        if self.channel.writable:
            self._writable.set()
        if self.channel.unacked == 0:
            self._all_acked.set()
        else:
            self._all_acked.clear()

    def _arm_timer(self) -> None:
        when = None if self.channel.closed else self.channel.get_timer()
        if when == self._timer_when:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_when = when
        if when is not None:
            self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_when = None
        self.channel.handle_timer(self.now())
        self.flush()

    # ------------------------------------------------------------ flow control

    async def wait_writable(self) -> None:
        """Return once the channel can take more output, or :meth:`wake` was called.

        While publication is paused (no client, or the gateway paused it) nothing may be
        read either: the official agent's readers check ``IsActive()`` (not paused)
        before each read, so output made meanwhile waits where it was made.
        """
        while (not self.channel.writable or not self._publishing) and not self._woken:
            self._writable.clear()
            await self._writable.wait()

    def wake(self) -> None:
        """Release every producer waiting in :meth:`wait_writable`, now and later."""
        self._woken = True
        self._writable.set()

    async def wait_acked(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) until the client acknowledged everything."""
        if self.channel.unacked:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._all_acked.wait()

    def close(self) -> None:
        """No more sending or retransmission."""
        self.channel.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_when = None
        self.wake()
