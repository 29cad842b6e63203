"""Driving the Sans-I/O session: what goes in, what comes out, its timer and its end.

:class:`ProtocolDriver` is the glue between one
:class:`~ssmsh.protocol.session.ClientSession` and asyncio, in the manner of
aioquic's ``QuicConnectionProtocol``. Whoever calls into the protocol (the link
server with received frames, the connection with input, the timer) then calls
:meth:`ProtocolDriver.after_protocol`, which collects what the protocol
produced:

* frames to send (acks, input, retransmissions) go to the
  :class:`~ssmsh.channel.writing.FrameWriter`;
* events are dispatched: output and the like to the
  :class:`~ssmsh.channel.inbox.Inbox`, a KMS key request to a helper task that
  asks the :class:`~ssmsh.channel.types.SessionService`, establishment and
  failures to the futures and flags below;
* the one timer (``loop.call_at``) is re-armed from ``get_timer()``;
* first of all, the :attr:`ProtocolDriver.recorder` (if any) sees the protocol, before
  the frames it made are queued: ``ssmsh attach`` keeps the sequence state on disk,
  never behind what went on the wire.

It also records how the session ends (:meth:`ProtocolDriver.finish`: the
first cause wins) and wakes everyone who waits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from ..exceptions import ChannelClosed, SsmshError
from ..protocol.session import (
    ChannelClosedByRemote,
    ClientSession,
    KmsKeyRequested,
    Paused,
    Resumed,
    SessionEstablished,
    SessionFailed,
)
from .diagnostics import handshake_kind, log_established, session_logger
from .events import failure_exception
from .inbox import Inbox, merge_output
from .types import SessionInfo, SessionService
from .writing import FrameWriter

__all__ = ["ProtocolDriver"]

logger = session_logger


class ProtocolDriver:
    """Feeds one :class:`ClientSession` and collects what it produces (module docstring).

    :param on_finished: called once, synchronously, at the end of :meth:`finish`.
    """

    def __init__(
        self,
        protocol: ClientSession,
        info: SessionInfo,
        service: SessionService,
        writer: FrameWriter,
        inbox: Inbox,
        *,
        on_finished: Callable[[BaseException | None], None],
    ) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self.protocol = protocol
        self.info = info
        self.service = service
        self._writer = writer
        self._inbox = inbox
        self._on_finished = on_finished
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._helpers: set[asyncio.Task[None]] = set()
        #: Set whenever the protocol may accept more input, and at the end.
        self.writable = asyncio.Event()
        #: The handshake's result (or the failure that came first).
        self.established: asyncio.Future[SessionEstablished] = loop.create_future()
        #: Resolved at the end, with the failure if there was one.
        self.done: asyncio.Future[None] = loop.create_future()
        self._finished = False
        #: Why the session ended, if it failed.
        self.error: BaseException | None = None
        #: When the session started and its first link was up (loop time), for the debug line.
        self.started_at = loop.time()
        self.linked_at: float | None = None
        #: skip_handshake() is establishing the session (for the debug line).
        self.skipping = False
        #: Called with the protocol after every call into it, before its frames go.
        self.recorder: Callable[[ClientSession], None] | None = None

    @property
    def finished(self) -> bool:
        """The session is over (remote close, failure or close()); :attr:`error` says why."""
        return self._finished

    # ------------------------------------------------------------------ input

    def link_made(self) -> None:
        """A new link is up: the protocol (re)starts sending on it."""
        now = self._loop.time()
        if self.linked_at is None:
            self.linked_at = now
        self.protocol.connection_made(now)
        self.after_protocol()

    def link_lost(self) -> None:
        self.protocol.connection_lost()

    def feed(self, frames: list[bytes], now: float) -> int:
        """Feed the frames of one read to the protocol; returns their size in bytes.

        Call :meth:`after_protocol` next.
        """
        receive = self.protocol.receive_data
        size = 0
        for data in frames:
            size += len(data)
            receive(data, now)
        return size

    # ------------------------------------------------------------------ output

    def after_protocol(self) -> None:
        """Collect frames, events and the timer after any call into the protocol."""
        if self.recorder is not None:
            self.recorder(self.protocol)
        self._writer.queue(self.protocol.data_to_send())
        events = self.protocol.events_received()
        if len(events) > 1:
            events = merge_output(events)
        for event in events:
            self._dispatch(event)
        if self.protocol.writable or self.finished:
            self.writable.set()
        self._arm_timer()

    def _dispatch(self, event: object) -> None:
        if isinstance(event, KmsKeyRequested):
            self._spawn(self._provide_data_key(event.key_id))
        elif isinstance(event, SessionEstablished):
            if not self.established.done():
                self.established.set_result(event)
                if session_logger.isEnabledFor(logging.INFO):
                    self._log_established(event)
            else:  # a handshake after skip_handshake(): the reader may show its message
                if session_logger.isEnabledFor(logging.INFO):
                    self._log_established(event)
                self._inbox.put(event)
        elif isinstance(event, SessionFailed):
            self.finish(failure_exception(event))
        elif isinstance(event, Paused):
            logger.info("the gateway paused publication; holding sends")
        elif isinstance(event, Resumed):
            logger.info("the gateway resumed publication")
        elif isinstance(event, ChannelClosedByRemote):
            self._inbox.put(event)
            self.finish(None)
        else:
            self._inbox.put(event)  # type: ignore[arg-type]

    def _log_established(self, event: SessionEstablished) -> None:
        now = self._loop.time()
        linked = self.linked_at if self.linked_at is not None else now
        log_established(
            self.info.session_id,
            event,
            client_version=self.protocol.client_version,
            handshake=handshake_kind(event, self.skipping),
            handshake_time=now - linked,
            connect_time=linked - self.started_at,
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)

    async def _provide_data_key(self, key_id: str) -> None:
        try:
            key = await self.service.generate_data_key(
                key_id, self.info.session_id, self.info.target_id
            )
        except SsmshError as exc:
            logger.debug("GenerateDataKey failed: %s", exc)
            self.protocol.fail_data_key(str(exc), self._loop.time())
        else:
            self.protocol.provide_data_key(key.plaintext, key.ciphertext_blob, self._loop.time())
        self.after_protocol()

    # ------------------------------------------------------------------ waiting

    async def wait_writable(self) -> None:
        """Until the protocol accepts input; raises once the session is over."""
        while True:
            if self.finished:
                self.raise_end()
            if self.protocol.writable:
                return
            self.writable.clear()
            await self.writable.wait()

    def raise_end(self) -> None:
        """Raise why the session ended: its failure, else :class:`ChannelClosed`."""
        if self.error is not None:
            raise self.error
        raise ChannelClosed("the session is closed")

    # ------------------------------------------------------------------ timer

    def _arm_timer(self) -> None:
        when = None if self.finished else self.protocol.get_timer()
        if when == self._timer_at:
            return
        self._cancel_timer()
        if when is not None:
            self._timer_at = when
            self._timer = self._loop.call_at(when, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self.finished:
            return
        self.protocol.handle_timer(self._loop.time())
        self.after_protocol()

    # ------------------------------------------------------------------ ending

    def finish(self, error: BaseException | None) -> None:
        """The session is over: wake everyone up. The first cause wins."""
        if self._finished:
            return
        self._finished = True
        self.error = error
        if error is not None:
            logger.debug("session %s failed: %s", self.info.session_id, error)
        if not self.established.done():
            self.established.set_exception(
                error or ChannelClosed("the session closed before it was established")
            )
            self.established.exception()  # mark retrieved: nobody may be waiting
        if not self.done.done():
            if error is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(error)
                self.done.exception()
        self._inbox.close(error)
        self.writable.set()
        self._writer.wake()
        self._cancel_timer()
        self._on_finished(error)

    async def aclose(self) -> None:
        """After :meth:`finish`: stop the helper tasks and the timer."""
        for task in list(self._helpers):
            task.cancel()
        if self._helpers:
            await asyncio.gather(*self._helpers, return_exceptions=True)
        self._cancel_timer()
