"""The asyncio driver of a Session Manager session: :class:`SessionConnection`.

It owns one Sans-I/O :class:`~ssmsh.protocol.session.ClientSession` and keeps
it connected to the message gateway over successive WebSocket links:

* one receive loop feeds frames to the protocol; what the protocol produces is
  written once per loop iteration, all frames in one transport write (a writer
  task takes over only while the transport's buffer is full); one timer
  (``loop.call_at``) is armed from ``get_timer()``;
* while frames stream in, reading pauses briefly after each batch
  (``ConnectionConfig.receive_coalesce``) so that a peer sending many small
  messages costs one wakeup and one ack write per batch, not per message;
* KMS data keys are fetched through the injected :class:`SessionService`;
* when a link is lost (close, reset, or silence noticed by pings), it calls
  ResumeSession, opens a new link with the new token (same ClientId, new
  RequestId) and carries all sequence state over, so unacknowledged messages
  are retransmitted and nothing is lost or duplicated;
* input is queued while disconnected; ``send_input`` waits when the queue is
  full (backpressure), never fails because of an outage.

Typical use::

    async with SessionConnection(info, service) as conn:
        await conn.wait_established()
        await conn.send_size(cols, rows)
        async for event in conn:            # OutputReceived, StderrReceived, ...
            ...

Leaving the ``async with`` block calls :meth:`SessionConnection.close`, which
attempts TerminateSession.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from types import TracebackType
from typing import Any

from websockets.exceptions import ConnectionClosed

from .._private_api import FrameLink
from ..exceptions import ChannelClosed, ReconnectFailed, SsmshError
from ..protocol.datachannel import ChannelConfig
from ..protocol.session import (
    ChannelClosedByRemote,
    ClientSession,
    KmsKeyRequested,
    OutputReceived,
    Paused,
    Resumed,
    SessionEstablished,
    SessionFailed,
    StderrReceived,
)
from .config import ConnectionConfig
from .events import SessionEvent, failure_exception
from .link import Liveness, close_reason
from .reconnect import Reconnector
from .types import ConnectionState, SessionInfo, SessionService, StateChange, StreamCredentials

__all__ = ["CLIENT_ID", "SessionConnection"]

logger = logging.getLogger(__name__)

#: One ClientId per process, reused by every session and every reconnect.
CLIENT_ID = str(uuid.uuid4())

StateListener = Callable[[StateChange], None]

#: Receive coalescing (see _end_batch): the first hold of a stream, in seconds...
HOLD_FIRST = 0.002
#: ... a stream is a batch coming less than this after the previous hold ended...
HOLD_GAP = 0.004
#: ... and a hold never lasts longer than it takes the stream to bring this many bytes.
HOLD_MAX_BATCH = 64 * 1024
#: Most bytes of frames joined into one transport write.
WRITE_BATCH = 64 * 1024
#: The data channel's counters, in the order the end-of-session debug line shows them.
STAT_NAMES = (
    "sent",
    "retransmitted",
    "acked",
    "stale_acks",
    "delivered",
    "duplicates",
    "reordered",
    "dropped",
    "ignored",
)


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


def _merge_output(events: list[Any]) -> list[Any]:
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


def _discard_frames(frames: list[bytes]) -> None:
    """The frame handler of a link that is being wound up."""


class SessionConnection:
    """A live data channel for one session, resilient to link loss.

    :param info: the session (id, target, first StreamUrl and token).
    :param service: AWS operations (ResumeSession, TerminateSession, KMS, signing).
    :param config: driver tunables; :class:`ConnectionConfig` defaults otherwise.
    :param protocol: the Sans-I/O session object; a new ``ClientSession`` by default.
        One given here is driven with ``loop.time()`` as ``now``, so its
        ``ChannelConfig.epoch_offset`` should be ``time.time() - loop.time()``.
    :param client_id: ClientId for OpenDataChannel; the process-wide :data:`CLIENT_ID`.
    :param on_state_change: called (synchronously) on every :class:`StateChange`.

    Public API, all coroutines unless noted:

    * :meth:`start` / ``async with`` — open the first link (returns once it is open);
    * :meth:`wait_established` — the handshake result (:class:`SessionEstablished`);
    * :meth:`send_input`, :meth:`send_size`, :meth:`send_flag` — wait for the
      handshake and for room in the send window, then queue the data;
    * :meth:`receive` / ``async for`` — OutputReceived, StderrReceived,
      ExitCodeReceived, FlagReceived and finally ChannelClosedByRemote; also a
      second SessionEstablished if a handshake comes after :meth:`skip_handshake`;
    * :attr:`state`, :meth:`add_state_listener`, :meth:`state_changes` — connection state;
    * :meth:`drain`, :attr:`unacked` — wait until the agent acknowledged everything;
    * :meth:`close` — terminate (TerminateSession API) and release everything;
    * :meth:`wait_closed` — wait for the end; raises the failure if there was one;
      :attr:`closed`, :attr:`error` tell how it ended.

    Received data is acknowledged promptly (small messages streaming in are
    acknowledged per batch, see ``ConnectionConfig.receive_coalesce``) and
    buffered for :meth:`receive` up to ``config.max_receive_buffer`` bytes; beyond
    that the driver stops reading the WebSocket (backpressure) without mistaking
    the pause for a dead link.

    Failures (:class:`ReconnectFailed`, :class:`HandshakeError`,
    :class:`EncryptionError`, :class:`RemoteProtocolError`, :class:`AwsError`...)
    are raised from :meth:`receive`, :meth:`wait_established`, the send methods
    and :meth:`wait_closed`.
    """

    def __init__(
        self,
        info: SessionInfo,
        service: SessionService,
        *,
        config: ConnectionConfig | None = None,
        protocol: ClientSession | None = None,
        client_id: str | None = None,
        on_state_change: StateListener | None = None,
    ) -> None:
        self.info = info
        self.service = service
        self.config = config or ConnectionConfig()
        self.client_id = client_id or CLIENT_ID
        self._loop = asyncio.get_running_loop()
        if protocol is None:
            epoch = time.time() - self._loop.time()
            protocol = ClientSession(ChannelConfig(epoch_offset=epoch))
        self.protocol = protocol
        self._state = ConnectionState.CONNECTING
        self._listeners: list[StateListener] = [on_state_change] if on_state_change else []
        self._stream: StreamCredentials = info.stream

        self._ws: FrameLink | None = None
        self._frames: deque[bytes] = deque()
        self._frames_ready = asyncio.Event()
        self._flush_scheduled = False
        self._writer_active = False  # the writer task owns self._frames (transport full)
        self._rx_hold: asyncio.TimerHandle | None = None
        self._read_over: asyncio.Future[None] | None = None  # the current link's reader
        self._batch_ended = -math.inf
        self._hold_delay = 0.0  # the hold after the previous batch (0: none)
        #: Times reading was held back to coalesce received frames (for tests and benchmarks).
        self.receive_holds = 0
        #: WebSocket message bytes received and sent (frame headers not counted).
        self.bytes_received = 0
        self.bytes_sent = 0
        #: WebSocket links the session was served over (the first, then one per reconnect).
        self.links = 0
        self._started_at = self._loop.time()
        self._linked_at: float | None = None  # when the first link was up
        self._skipping = False  # skip_handshake() is establishing the session
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

        self._events: deque[SessionEvent] = deque()
        self._event_bytes = 0
        self._event_ready = asyncio.Event()
        self._rx_paused = False
        self._last_received = 0.0
        self._ever_received = False

        self._writable = asyncio.Event()
        self._established: asyncio.Future[SessionEstablished] = self._loop.create_future()
        self._done: asyncio.Future[None] = self._loop.create_future()
        self._finished = False  # the session is over (remote close, failure or close())
        self._closing = False
        self._error: BaseException | None = None
        self._runner: asyncio.Task[None] | None = None
        self._helpers: set[asyncio.Task[None]] = set()
        self._reconnector = Reconnector(self)

    # ------------------------------------------------------------------ life cycle

    async def __aenter__(self) -> SessionConnection:
        if self._runner is None:
            try:
                await self.start()
            except BaseException:
                await self.close()
                raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the first link and start the driver. Raises if it cannot be opened."""
        if self._runner is not None:
            raise RuntimeError("start() was already called")
        self._started_at = self._loop.time()
        ws = await self._reconnector.first_link()
        self._runner = asyncio.create_task(self._run(ws), name=f"ssmsh-{self.info.session_id}")
        self._reconnector.link_up()  # CONNECTED as soon as start() returns

    async def close(self, terminate: bool = True) -> None:
        """End the session and release everything. Idempotent; never raises.

        With ``terminate`` (the default) the TerminateSession API is attempted
        first, whatever state the connection is in, so nothing is left orphaned.
        """
        first = not self._closing
        self._closing = True
        if first and terminate:
            try:
                async with asyncio.timeout(self.config.terminate_timeout):
                    await self.service.terminate_session(self.info.session_id)
                logger.debug("TerminateSession %s done", self.info.session_id)
            except Exception as exc:  # best effort, on every exit path
                logger.debug("TerminateSession %s failed: %s", self.info.session_id, exc)
        self._finish(None)
        if self._runner is not None and not self._runner.done():
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        for task in list(self._helpers):
            task.cancel()
        if self._helpers:
            await asyncio.gather(*self._helpers, return_exceptions=True)
        self._cancel_timer()

    async def wait_closed(self) -> None:
        """Wait until the session is over; raise its failure if it failed."""
        await asyncio.shield(self._done)

    @property
    def closed(self) -> bool:
        """True once the session is over, for whatever reason."""
        return self._finished

    @property
    def error(self) -> BaseException | None:
        """The failure that ended the session, if any."""
        return self._error

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> ConnectionState:
        return self._state

    def add_state_listener(self, listener: StateListener) -> Callable[[], None]:
        """Call ``listener`` on every state change; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def state_changes(self) -> AsyncIterator[StateChange]:
        """Every state change from now on, until CLOSED (included)."""
        queue: asyncio.Queue[StateChange] = asyncio.Queue()
        remove = self.add_state_listener(queue.put_nowait)
        try:
            if self._state is ConnectionState.CLOSED:
                return
            while True:
                change = await queue.get()
                yield change
                if change.new is ConnectionState.CLOSED:
                    return
        finally:
            remove()

    def _set_state(
        self, new: ConnectionState, reason: str = "", outage: float | None = None, attempt: int = 0
    ) -> None:
        old = self._state
        if old is ConnectionState.CLOSED or (old is new and not attempt):
            return
        self._state = new
        change = StateChange(old, new, reason, outage, attempt)
        logger.debug("state %s -> %s %s", old.value, new.value, reason)
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                logger.exception("state listener failed")

    # ------------------------------------------------------------------ sending

    async def wait_established(self) -> SessionEstablished:
        """Wait for the handshake (or the first output of an agent that does not
        handshake). Raises the failure if the session ended first."""
        return await asyncio.shield(self._established)

    def skip_handshake(self) -> bool:
        """Stop waiting for a handshake the agent may never start; True if that
        established the session (see :meth:`ClientSession.skip_handshake`)."""
        if self._finished:
            return False
        self._skipping = True  # for the debug line of SessionEstablished
        try:
            skipped = self.protocol.skip_handshake(self._loop.time())
            self._after_protocol()
        finally:
            self._skipping = False
        return skipped

    async def send_input(self, data: bytes) -> None:
        """Send stdin / stream bytes (split into messages of ``max_payload_size``).

        Waits for the handshake, and while the send window is full (for example
        during an outage). Raises the session's failure, or :class:`ChannelClosed`
        if it ended normally.
        """
        if not data:
            return
        await self._ready()
        size = self.config.max_payload_size
        if len(data) <= size:
            await self._wait_writable()
            self.protocol.send_input(bytes(data), self._loop.time())
            self._after_protocol()
            return
        view = memoryview(data)
        for start in range(0, len(view), size):
            await self._wait_writable()
            self.protocol.send_input(bytes(view[start : start + size]), self._loop.time())
            self._after_protocol()

    async def send_size(self, cols: int, rows: int) -> None:
        """Send the terminal size."""
        await self._ready()
        await self._wait_writable()
        self.protocol.send_size(cols, rows, self._loop.time())
        self._after_protocol()

    async def send_flag(self, flag: int) -> None:
        """Send a Flag payload (e.g. ``Flag.TERMINATE_SESSION``)."""
        await self._ready()
        await self._wait_writable()
        self.protocol.send_flag(flag, self._loop.time())
        self._after_protocol()

    @property
    def unacked(self) -> int:
        """Messages sent or queued and not yet acknowledged by the agent."""
        return int(self.protocol.channel.unacked)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything sent so far was acknowledged; False on timeout/end."""
        try:
            async with asyncio.timeout(timeout):
                while self.protocol.channel.unacked and not self._finished:
                    self._writable.clear()
                    await self._writable.wait()
        except TimeoutError:
            return False
        return not self.protocol.channel.unacked

    async def _ready(self) -> None:
        if self._finished:
            self._raise_end()
        await self.wait_established()

    async def _wait_writable(self) -> None:
        while True:
            if self._finished:
                self._raise_end()
            if self.protocol.writable:
                return
            self._writable.clear()
            await self._writable.wait()

    def _raise_end(self) -> None:
        if self._error is not None:
            raise self._error
        raise ChannelClosed("the session is closed")

    # ------------------------------------------------------------------ receiving

    async def receive(self) -> SessionEvent | None:
        """The next event, or None after the last one. Raises the session's failure."""
        while not self._events:
            if self._finished:
                if self._error is not None:
                    raise self._error
                return None
            self._event_ready.clear()
            await self._event_ready.wait()
        event = self._events.popleft()
        data = getattr(event, "data", None)
        if isinstance(data, bytes):
            self._event_bytes -= len(data)
            if self._rx_paused and self._event_bytes <= self.config.max_receive_buffer // 2:
                self._rx_paused = False
                self._update_reading(self._ws)
        return event

    def __aiter__(self) -> AsyncIterator[SessionEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[SessionEvent]:
        while (event := await self.receive()) is not None:
            yield event

    # ------------------------------------------------------------------ the driver

    async def _run(self, ws: FrameLink) -> None:
        """Serve links until the session is over."""
        try:
            while True:
                reason = await self._serve(ws)
                if self._finished or self._closing:
                    return
                ws = await self._reconnector.relink(reason)
        except asyncio.CancelledError:
            raise
        except SsmshError as exc:
            self._finish(exc)
        except Exception as exc:  # a bug: still end cleanly, with the cause logged
            logger.exception("channel driver failed")
            self._finish(ReconnectFailed(f"internal error: {exc!r}"))

    async def _serve(self, ws: FrameLink) -> str:
        """Drive one link until it is lost; returns why."""
        self._ws = ws
        self.links += 1
        if self._linked_at is None:
            self._linked_at = self._loop.time()
        self.protocol.connection_made(self._loop.time())
        self._after_protocol()
        self._reconnector.link_up()
        liveness = Liveness(
            ws,
            self.config,
            last_received=lambda: self._last_received,
            is_paused=lambda: self._rx_paused,
            on_alive=self._reconnector.link_healthy,
        )
        reader = asyncio.create_task(self._read(ws))
        tasks = [reader, asyncio.create_task(self._write(ws)), asyncio.create_task(liveness.run())]
        try:
            # The reader decides when the link is over: it still delivers what arrived
            # before a close (a final channel_closed) after the writer or the pinger
            # has seen the connection end.
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            failed = any(t.exception() for t in done if not t.cancelled())
            if reader not in done and not failed:
                done, _ = await asyncio.wait({reader}, timeout=self.config.close_timeout)
                if not done:
                    ws.abort()
                    await asyncio.wait({reader})
        finally:
            # A closing handshake must be able to read the reply, whatever the consumer does.
            ws.handler = _discard_frames
            if self._rx_hold is not None:
                self._rx_hold.cancel()
                self._rx_hold = None
            ws.set_reading(True)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            if not task.cancelled() and (exc := task.exception()) is not None:
                raise exc
        self._ws = None
        if self._finished:
            with contextlib.suppress(Exception):
                await ws.close()
            return "finished"
        self.protocol.connection_lost()
        self._frames.clear()
        self._writer_active = False
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
            ws.handler = functools.partial(self._on_frames, ws)  # frames queued since connect
            self._update_reading(ws)  # still paused for a slow consumer?
            await over
        finally:
            ws.handler = _discard_frames
            closed.cancel()

    def _on_frames(self, ws: FrameLink, frames: list[bytes]) -> None:
        """All the frames parsed from one read of the link, in order."""
        over = self._read_over
        if over is None or over.done():
            return
        if self._finished:
            over.set_result(None)
            return
        try:
            now = self._loop.time()
            self._last_received = now
            self._ever_received = True
            self._reconnector.link_healthy(data=True)
            receive = self.protocol.receive_data
            size = 0
            for data in frames:
                size += len(data)
                receive(data, now)
            self.bytes_received += size
            self._after_protocol()
            if self.closed:
                over.set_result(None)
                return
            if self._event_bytes > self.config.max_receive_buffer and not self._rx_paused:
                self._rx_paused = True  # backpressure: receive() resumes reading
                self._update_reading(ws)
            delay = self.config.receive_coalesce
            if delay:
                self._end_batch(ws, size, now, delay)
        except Exception as exc:  # a bug: the driver ends the session with the cause logged
            over.set_exception(exc)

    def _end_batch(self, ws: FrameLink, size: int, now: float, limit: float) -> None:
        """After the frames of one read: maybe stop reading for a while (see :func:`next_hold`)."""
        hold = next_hold(self._hold_delay, now - self._batch_ended, size, limit)
        self._batch_ended = now
        self._hold_delay = hold
        if hold and self._rx_hold is None and ws is self._ws:
            self._rx_hold = self._loop.call_later(hold, self._release_rx, ws)
            self.receive_holds += 1
            self._update_reading(ws)

    def _release_rx(self, ws: FrameLink) -> None:
        """End a hold: read the link again unless the consumer is behind."""
        if self._rx_hold is not None:
            self._rx_hold.cancel()
            self._rx_hold = None
        self._update_reading(ws)

    def _update_reading(self, ws: FrameLink | None) -> None:
        """Read the link unless a hold or backpressure says not to."""
        if ws is None or ws is not self._ws:
            return
        ws.set_reading(self._rx_hold is None and not self._rx_paused)

    async def _write(self, ws: FrameLink) -> None:
        """Send queued frames with flow control while the transport's buffer is full."""
        try:
            while True:
                while self._frames:
                    frame = self._frames.popleft()
                    self.bytes_sent += len(frame)
                    await ws.send(frame)
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
        ws = self._ws
        frames = self._frames
        if ws is None or not frames or self._writer_active:
            return
        if not ws.can_write_frames():
            frames.clear()  # the link is ending; the protocol retransmits on the next one
            return
        limit = self.config.write_limit
        while frames:
            if ws.write_buffer_size() >= limit:
                self._writer_active = True  # waits for room, in order, through ws.send
                self._frames_ready.set()
                return
            batch: list[bytes] = []
            size = 0
            while frames and size < WRITE_BATCH:
                frame = frames.popleft()
                size += len(frame)
                batch.append(frame)
            ws.write_frames(batch)
            self.bytes_sent += size

    def _after_protocol(self) -> None:
        """Collect frames, events and the timer after any call into the protocol."""
        frames = self.protocol.data_to_send()
        if frames and self._ws is not None:
            self._frames.extend(frames)
            if self._writer_active:
                self._frames_ready.set()
            elif not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._flush)
        events = self.protocol.events_received()
        if len(events) > 1:
            events = _merge_output(events)
        for event in events:
            self._dispatch(event)
        if self.protocol.writable or self._finished:
            self._writable.set()
        self._arm_timer()

    def _dispatch(self, event: object) -> None:
        if isinstance(event, KmsKeyRequested):
            self._spawn(self._provide_data_key(event.key_id))
        elif isinstance(event, SessionEstablished):
            if not self._established.done():
                self._established.set_result(event)
                if logger.isEnabledFor(logging.DEBUG):
                    self._log_established(event)
            else:  # a handshake after skip_handshake(): the reader may show its message
                if logger.isEnabledFor(logging.DEBUG):
                    self._log_established(event)
                self._push(event)
        elif isinstance(event, SessionFailed):
            self._finish(failure_exception(event))
        elif isinstance(event, Paused):
            logger.info("the gateway paused publication; holding sends")
        elif isinstance(event, Resumed):
            logger.info("the gateway resumed publication")
        elif isinstance(event, ChannelClosedByRemote):
            self._push(event)
            self._finish(None)
        else:
            self._push(event)  # type: ignore[arg-type]

    def _log_established(self, event: SessionEstablished) -> None:
        """One debug line on how the session started (never a token or a key)."""
        now = self._loop.time()
        linked = self._linked_at if self._linked_at is not None else now
        if event.agent_version:
            handshake = "full"
        elif self._skipping:
            handshake = "skipped"  # the client stopped waiting (see skip_handshake)
        else:
            handshake = "none"  # an agent without handshake: its first output started it
        logger.debug(
            "session %s established: type=%s agent=%s client=%s kms=%s handshake=%s "
            "handshake_time=%.1fms connect_time=%.1fms",
            self.info.session_id,
            event.session_type,
            event.agent_version or "-",
            self.protocol.client_version,
            "on" if event.encrypted else "off",
            handshake,
            (now - linked) * 1000,
            (linked - self._started_at) * 1000,
        )

    def _log_stats(self) -> None:
        """One debug line with the data channel's counters at the end of the session."""
        channel = self.protocol.channel
        stats = channel.stats
        names = [*STAT_NAMES, *sorted(set(stats) - set(STAT_NAMES))]
        counters = " ".join(f"{name}={stats[name]}" for name in names)
        rtt = channel.rtt
        srtt = f"{rtt.srtt * 1000:.1f}ms" if rtt.samples else "-"
        reconnector = self._reconnector
        logger.debug(
            "session %s ended: duration=%.2fs links=%d reconnects=%d outages=%.2fs %s "
            "unacked=%d receive_holds=%d bytes_in=%d bytes_out=%d srtt=%s rto=%.1fms "
            "rtt_samples=%d",
            self.info.session_id,
            self._loop.time() - self._started_at,
            self.links,
            reconnector.reconnects,
            sum(reconnector.outages),
            counters,
            channel.unacked,
            self.receive_holds,
            self.bytes_received,
            self.bytes_sent,
            srtt,
            rtt.rto * 1000,
            rtt.samples,
        )

    def _push(self, event: SessionEvent) -> None:
        data = getattr(event, "data", None)
        if isinstance(data, bytes):
            self._event_bytes += len(data)
        self._events.append(event)
        self._event_ready.set()

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
        self._after_protocol()

    # ------------------------------------------------------------------ timer

    def _arm_timer(self) -> None:
        when = None if self._finished else self.protocol.get_timer()
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
        if self._finished:
            return
        self.protocol.handle_timer(self._loop.time())
        self._after_protocol()

    # ------------------------------------------------------------------ ending

    def _finish(self, error: BaseException | None) -> None:
        """The session is over: wake everyone up. The first cause wins."""
        if self._finished:
            return
        self._finished = True
        self._error = error
        if error is not None:
            logger.debug("session %s failed: %s", self.info.session_id, error)
        if logger.isEnabledFor(logging.DEBUG):
            self._log_stats()
        if not self._established.done():
            self._established.set_exception(
                error or ChannelClosed("the session closed before it was established")
            )
            self._established.exception()  # mark retrieved: nobody may be waiting
        if not self._done.done():
            if error is None:
                self._done.set_result(None)
            else:
                self._done.set_exception(error)
                self._done.exception()
        self._event_ready.set()
        self._writable.set()
        self._frames_ready.set()
        self._cancel_timer()
        self._set_state(ConnectionState.CLOSED, str(error) if error else "session ended")
