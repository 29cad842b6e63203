"""Serving a session's links, one after the other, until the session is over.

:class:`LinkServer` is the part of :class:`~ssmsh.channel.SessionConnection`
that deals with links. For each link it tells the protocol the link is up,
then runs three tasks until the link is lost:

* the reader: frames reach :meth:`LinkServer._on_frames` (all those parsed
  from one read, in one call, from :class:`~ssmsh._private_api.FrameLink`),
  which hands them to the :class:`~ssmsh.channel.driver.ProtocolDriver` (it
  feeds the protocol and collects the acks to send and the events for the
  consumer) and asks the :class:`~ssmsh.channel.reading.ReadGate` to hold or
  pause reading;
* the writer (:meth:`FrameWriter.run <ssmsh.channel.writing.FrameWriter.run>`),
  which only works while the transport's buffer is full;
* :class:`~ssmsh.channel.link.Liveness`, which pings and aborts a silent link.

Then it asks the :class:`~ssmsh.channel.reconnect.Reconnector` for the next
link, unless the session is over or closing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from .._private_api import FrameLink
from .config import ConnectionConfig
from .driver import ProtocolDriver
from .inbox import Inbox
from .link import Liveness, close_reason
from .reading import ReadGate
from .reconnect import Reconnector
from .writing import FrameWriter

__all__ = ["LinkServer"]


def _discard_frames(frames: list[bytes]) -> None:
    """The frame handler of a link that is being wound up."""


class LinkServer:
    """Serves the links of one session (see the module docstring).

    :param closing: whether the connection is being closed (no new link then).
    """

    def __init__(
        self,
        driver: ProtocolDriver,
        config: ConnectionConfig,
        reconnector: Reconnector,
        gate: ReadGate,
        writer: FrameWriter,
        inbox: Inbox,
        *,
        closing: Callable[[], bool],
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._driver = driver
        self._config = config
        self._reconnector = reconnector
        self._gate = gate
        self._writer = writer
        self._inbox = inbox
        self._closing = closing
        self._read_over: asyncio.Future[None] | None = None  # the current link's reader
        #: The link being served, if any.
        self.link: FrameLink | None = None
        #: WebSocket links served (the first, then one per reconnect).
        self.links = 0
        #: When frames last arrived (loop time).
        self.last_received = 0.0
        #: WebSocket message bytes received (frame headers not counted).
        self.bytes_received = 0

    async def run(self, ws: FrameLink) -> None:
        """Serve ``ws``, then each new link, until the session is over.

        Raises what ends the session otherwise: :class:`ReconnectFailed` when
        no link can be had, or a failure of the frame handler.
        """
        while True:
            reason = await self._serve(ws)
            if self._driver.finished or self._closing():
                return
            ws = await self._reconnector.relink(reason)

    async def _serve(self, ws: FrameLink) -> str:
        """Drive one link until it is lost; returns why."""
        self.link = ws
        self._writer.attach(ws)
        self._gate.attach(ws)  # still paused for a slow consumer?
        self.links += 1
        self._driver.link_made()
        self._reconnector.link_up()
        liveness = Liveness(
            ws,
            self._config,
            last_received=lambda: self.last_received,
            is_paused=lambda: self._gate.paused,
            on_alive=self._reconnector.link_healthy,
        )
        reader = asyncio.create_task(self._read(ws))
        tasks = [
            reader,
            asyncio.create_task(self._writer.run(ws)),
            asyncio.create_task(liveness.run()),
        ]
        try:
            # The reader decides when the link is over: it still delivers what arrived
            # before a close (a final channel_closed) after the writer or the pinger
            # has seen the connection end.
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            failed = any(t.exception() for t in done if not t.cancelled())
            if reader not in done and not failed:
                done, _ = await asyncio.wait({reader}, timeout=self._config.close_timeout)
                if not done:
                    ws.abort()
                    await asyncio.wait({reader})
        finally:
            # A closing handshake must be able to read the reply, whatever the consumer does.
            ws.handler = _discard_frames
            self._gate.detach()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            if not task.cancelled() and (exc := task.exception()) is not None:
                raise exc
        self.link = None
        self._writer.detach()
        if self._driver.finished:
            with contextlib.suppress(Exception):
                await ws.close()
            return "finished"
        self._driver.link_lost()
        self._writer.abandon()
        ws.abort()
        return liveness.verdict or close_reason(None, ws)

    async def _read(self, ws: FrameLink) -> None:
        """Feed the link's frames to the protocol until the link or the session ends.

        Frames arrive through :meth:`_on_frames`, called by the link for all the
        frames of one read; this task only waits for the end. A failure of the
        handler is raised here, so the driver treats it as its own.
        """
        over: asyncio.Future[None] = self._loop.create_future()
        self._read_over = over
        closed = asyncio.ensure_future(ws.wait_closed())
        closed.add_done_callback(lambda _: None if over.done() else over.set_result(None))
        try:
            ws.handler = self._on_frames  # frames queued since connect
            await over
        finally:
            ws.handler = _discard_frames
            closed.cancel()

    def _on_frames(self, frames: list[bytes]) -> None:
        """All the frames parsed from one read of the current link, in order."""
        over = self._read_over
        if over is None or over.done():
            return
        if self._driver.finished:
            over.set_result(None)
            return
        driver = self._driver
        try:
            now = self._loop.time()
            self.last_received = now
            self._reconnector.link_healthy(data=True)
            size = driver.feed(frames, now)
            self.bytes_received += size
            driver.after_protocol()
            if driver.finished:
                over.set_result(None)
                return
            if self._inbox.size > self._config.max_receive_buffer:
                self._gate.pause()  # backpressure: receive() resumes reading
            self._gate.end_batch(size, now)
        except Exception as exc:  # a bug: the driver ends the session with the cause logged
            over.set_exception(exc)
