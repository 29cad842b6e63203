"""The frames the protocol produced, on their way to the current link: write batching.

The data channel acknowledges every message it receives, so a batch of 50
received messages makes 50 small frames to send. :class:`FrameWriter` queues
them and writes them once per event-loop iteration, many frames per transport
write (:data:`WRITE_BATCH` bytes at most), through
:meth:`~ssmsh._private_api.FrameLink.write_frames`. Once the transport's buffer
holds ``write_limit`` bytes, a writer task takes over and sends the rest one by
one through websockets' ``send()``, which waits for room: flow control without
a coroutine per frame in the common case.

Frames queued while no link is attached are dropped, as are those queued when
a link is lost: the protocol retransmits what was not acknowledged on the next
link.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

from websockets.exceptions import ConnectionClosed

from .._private_api import FrameLink

__all__ = ["WRITE_BATCH", "FrameWriter"]

#: Most bytes of frames joined into one transport write.
WRITE_BATCH = 64 * 1024


class FrameWriter:
    """Queues frames for the attached link and writes them in batches.

    :param write_limit: transport buffer size above which the writer task
        (:meth:`run`) sends with flow control.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, write_limit: int) -> None:
        self._loop = loop
        self._write_limit = write_limit
        self._link: FrameLink | None = None
        self._frames: deque[bytes] = deque()
        self._frames_ready = asyncio.Event()
        self._flush_scheduled = False
        self._writer_active = False  # the writer task owns the queue (transport full)
        #: WebSocket message bytes sent (frame headers not counted).
        self.bytes_sent = 0

    def attach(self, link: FrameLink) -> None:
        """Write to ``link`` from now on."""
        self._link = link

    def detach(self) -> None:
        """No link: frames queued from now on are dropped."""
        self._link = None

    def queue(self, frames: Sequence[bytes]) -> None:
        """Send ``frames`` (in order, after those already queued) once the loop is idle."""
        if not frames or self._link is None:
            return
        self._frames.extend(frames)
        if self._writer_active:
            self._frames_ready.set()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def abandon(self) -> None:
        """The link is lost: forget what is queued (the protocol will retransmit it)."""
        self._frames.clear()
        self._writer_active = False

    def wake(self) -> None:
        """The session is over: let the writer task see it."""
        self._frames_ready.set()

    async def run(self, link: FrameLink) -> None:
        """The writer task of ``link``: sends queued frames with flow control while the
        transport's buffer is full; returns when the link closes."""
        try:
            while True:
                while self._frames:
                    frame = self._frames.popleft()
                    self.bytes_sent += len(frame)
                    await link.send(frame)
                self._writer_active = False
                self._frames_ready.clear()
                await self._frames_ready.wait()
        except ConnectionClosed:
            return

    def _flush(self) -> None:
        """Write the queued frames, many per transport write, while the transport has room.

        Runs once per event-loop iteration in which the protocol produced frames,
        so all the acks of a received batch leave in one system call. Writes are
        at most :data:`WRITE_BATCH` bytes; once the transport holds ``write_limit``
        bytes, the writer task sends the rest with flow control.
        """
        self._flush_scheduled = False
        link = self._link
        frames = self._frames
        if link is None or not frames or self._writer_active:
            return
        if not link.can_write_frames():
            frames.clear()  # the link is ending; the protocol retransmits on the next one
            return
        limit = self._write_limit
        while frames:
            if link.write_buffer_size() >= limit:
                self._writer_active = True  # waits for room, in order, through link.send
                self._frames_ready.set()
                return
            batch: list[bytes] = []
            size = 0
            while frames and size < WRITE_BATCH:
                frame = frames.popleft()
                size += len(frame)
                batch.append(frame)
            link.write_frames(batch)
            self.bytes_sent += size
