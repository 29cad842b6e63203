"""Multiplexed port forwarding: smux v1 streams over one data channel.

:class:`MuxTunnel` drives a Sans-I/O :class:`~ssmsh.protocol.smux.SmuxSession`
over a :class:`~ssmsh.tunnel.channel.PortChannel`; each local connection gets a
:class:`MuxStream`, an asyncio reader/writer pair.

Sending. ``MuxStream.write`` only queues; one pump task takes up to
``send_quantum`` bytes from each stream with data in turn (round robin, so a
fast stream cannot starve a slow one), frames them, and hands batches of up to
``send_batch`` bytes to the channel, whose ``send`` waits while too much is
unacknowledged. ``MuxStream.drain`` waits while the stream's queue is above
``stream_send_buffer``, which pauses that connection's local reader and no
other. All smux output (SYN, PSH, FIN, NOP) leaves through the pump, in order.

Receiving. One loop takes the agent's payloads, feeds the smux session, and
appends each stream's data to that stream's buffer. smux v1 has no per-stream
window, so the agent cannot be asked to slow one stream down: a slow local
reader is absorbed by its buffer, up to ``stream_receive_buffer``; beyond that
(or beyond ``session_receive_buffer`` for all streams) the loop stops taking
payloads until the reader catches up, which holds back every stream of the
session. Nothing is ever dropped.

Refusals. When the agent cannot connect to the destination it sends Flag
ConnectToPortError (which names no stream) and closes the stream with FIN. A
FIN on a stream that never received a byte is matched with a pending flag (in
whichever order they arrive) and that stream is marked refused.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from collections.abc import Callable

from ..exceptions import ChannelClosed, TunnelError
from ..protocol.constants import Flag, PayloadType
from ..protocol.smux import (
    MAX_FRAME_SIZE,
    SessionError,
    SmuxSession,
    StreamData,
    StreamFinished,
    StreamOpened,
)
from .channel import PortChannel, TunnelConfig

__all__ = ["MuxStream", "MuxTunnel"]

logger = logging.getLogger(__name__)

_CONNECT_TO_PORT_ERROR = int(Flag.CONNECT_TO_PORT_ERROR).to_bytes(4, "big")


class MuxStream:
    """One smux stream: ``read`` what the agent sent, ``write`` what to send to it.

    Half-close works both ways: :meth:`write_eof` sends FIN after everything
    queued; :meth:`read` returns ``b""`` once the agent's FIN has arrived.
    """

    def __init__(self, tunnel: MuxTunnel, stream_id: int) -> None:
        self.id = stream_id
        self._tunnel = tunnel
        self.opened_at = time.monotonic()
        #: Payload bytes received from / sent to the agent on this stream.
        self.bytes_received = 0
        self.bytes_sent = 0
        #: The agent could not connect to the destination (ConnectToPortError).
        self.refused = False
        # Receiving side.
        self._inbox: collections.deque[bytes] = collections.deque()
        self._inbox_size = 0
        self._eof_received = False
        self._discard = False
        self._read_waiter: asyncio.Future[None] | None = None
        self._sink: Callable[[bytes], bool] | None = None
        #: Called (once) if the agent refuses the stream; the forwarder aborts its connection.
        self.on_refused: Callable[[], None] | None = None
        # Sending side.
        self._outbox: collections.deque[bytes] = collections.deque()
        self._outbox_size = 0
        self._eof_requested = False
        self._fin_sent = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None

    # ----------------------------------------------------------- reading

    @property
    def at_eof(self) -> bool:
        """True once the agent's FIN arrived and everything before it was read."""
        return self._eof_received and not self._inbox

    @property
    def buffered(self) -> int:
        """Received bytes waiting to be read."""
        return self._inbox_size

    async def read(self, limit: int = 1 << 20) -> bytes:
        """Up to ``limit`` received bytes, waiting for some; ``b""`` at end of stream.

        Raises the tunnel's error if the session died before the stream ended.
        """
        while not self._inbox:
            if self._eof_received:
                self._tunnel._maybe_forget(self)
                return b""
            if self._error is not None:
                raise self._error
            self._read_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._read_waiter
            finally:
                self._read_waiter = None
        inbox = self._inbox
        if len(inbox) == 1 and len(inbox[0]) <= limit:
            data = inbox.popleft()
        else:
            data = _pop_bytes(inbox, limit)
        self._inbox_size -= len(data)
        self._tunnel._consumed(self, len(data))
        return data

    def set_sink(self, sink: Callable[[bytes], bool] | None) -> None:
        """Have received data passed to ``sink`` as it arrives, instead of queued for read.

        ``sink(data)`` returns False when it cannot take ``data`` now (its own
        buffer is full): the data is then queued, the sink dropped, and
        :meth:`read` returns it; backpressure works as without a sink. Data goes
        to the sink only while nothing is queued, so order is kept. End of
        stream and errors still come out of :meth:`read`.
        """
        self._sink = sink

    def _feed(self, data: bytes) -> bool:
        """Take received data; True if it was queued for :meth:`read`."""
        self.bytes_received += len(data)
        if self._discard:
            return False
        sink = self._sink
        if sink is not None and not self._inbox:
            if sink(data):
                return False
            self._sink = None
        self._inbox.append(data)
        self._inbox_size += len(data)
        _wake(self._read_waiter)
        return True

    def _feed_eof(self) -> None:
        self._eof_received = True
        _wake(self._read_waiter)

    def _mark_refused(self) -> None:
        self.refused = True
        if self.on_refused is not None:
            self.on_refused()

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        _wake(self._read_waiter, exc)
        _wake(self._drain_waiter, exc)

    # ----------------------------------------------------------- writing

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the agent. Call :meth:`drain` to respect backpressure."""
        if self._eof_requested:
            raise TunnelError(f"stream {self.id}: write after write_eof")
        if self._error is not None:
            raise self._error
        if not data:
            return
        self._outbox.append(data)
        self._outbox_size += len(data)
        self._tunnel._outbox_total += len(data)
        self._tunnel._schedule(self)

    async def drain(self) -> None:
        """Wait while this stream has too much queued.

        That is more than ``stream_send_buffer`` bytes, or any bytes at all while all
        streams together hold more than ``session_send_buffer``.
        """
        if self._error is not None:
            raise self._error
        tunnel = self._tunnel
        while not tunnel._may_queue(self):
            self._drain_waiter = asyncio.get_running_loop().create_future()
            tunnel._blocked.add(self)
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None
                tunnel._blocked.discard(self)

    def write_eof(self) -> None:
        """Send FIN once everything queued has been sent. Idempotent."""
        if not self._eof_requested:
            self._eof_requested = True
            self._tunnel._schedule(self)

    def close(self) -> None:
        """Done with the stream: send FIN (after queued data) and ignore further input."""
        self._discard = True
        self._inbox.clear()
        size, self._inbox_size = self._inbox_size, 0
        self._tunnel._consumed(self, size)
        self.write_eof()

    @property
    def closed(self) -> bool:
        """True once FIN was sent and the agent's FIN received."""
        return self._fin_sent and self._eof_received

    def _take(self, limit: int) -> bytes:
        """Up to ``limit`` queued bytes, for the pump."""
        outbox = self._outbox
        first = outbox[0]
        if len(first) <= limit and (len(outbox) == 1 or len(first) + len(outbox[1]) > limit):
            outbox.popleft()
            data = first
        else:
            data = _pop_bytes(outbox, limit)
        self._outbox_size -= len(data)
        self._tunnel._outbox_total -= len(data)
        self.bytes_sent += len(data)
        return data


def _pop_bytes(chunks: collections.deque[bytes], limit: int) -> bytes:
    """Up to ``limit`` bytes from the front of ``chunks``, splitting the last chunk taken."""
    parts = []
    size = 0
    while chunks and size < limit:
        chunk = chunks.popleft()
        if size + len(chunk) > limit:
            keep = limit - size
            chunks.appendleft(chunk[keep:])
            chunk = chunk[:keep]
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def _wake(waiter: asyncio.Future[None] | None, exc: BaseException | None = None) -> None:
    if waiter is not None and not waiter.done():
        if exc is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(exc)


class MuxTunnel:
    """An smux client session over a data channel; see the module docstring.

    Call :meth:`run` (it returns or raises when the session ends) and open
    streams with :meth:`open_stream` while it runs.
    """

    #: A FIN without data is matched with a ConnectToPortError flag arriving this much later.
    REFUSAL_MATCH_WINDOW = 2.0

    def __init__(
        self,
        channel: PortChannel,
        *,
        keepalive: bool,
        config: TunnelConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.channel = channel
        self.config = config or TunnelConfig()
        self.keepalive = keepalive
        self._clock = clock
        self.session = SmuxSession(
            client=True,
            keepalive=keepalive,
            keepalive_interval=self.config.keepalive_interval,
            keepalive_timeout=self.config.keepalive_timeout or math.inf,
            max_frame_size=MAX_FRAME_SIZE,
            now=clock(),
        )
        self.streams: dict[int, MuxStream] = {}
        self._ready: collections.deque[MuxStream] = collections.deque()
        self._queued: set[int] = set()
        self._pump_wakeup = asyncio.Event()
        self._received_total = 0
        self._outbox_total = 0
        self._blocked: set[MuxStream] = set()
        self._congested: set[int] = set()
        self._room: asyncio.Future[None] | None = None
        self._pending_refusals: collections.deque[float] = collections.deque()
        self._silent_fins: collections.deque[tuple[float, MuxStream]] = collections.deque()
        self._error: BaseException | None = None
        #: Counters for logs and tests.
        self.stats: collections.Counter[str] = collections.Counter()

    # --------------------------------------------------------------- public

    def open_stream(self) -> MuxStream:
        """Open a new stream (the SYN leaves with the next pump round)."""
        if self._error is not None:
            raise self._error
        stream_id = self.session.open_stream()
        stream = MuxStream(self, stream_id)
        self.streams[stream_id] = stream
        self.stats["opened"] += 1
        self._pump_wakeup.set()
        return stream

    async def run(self) -> None:
        """Move bytes until the channel ends; raises TunnelError/ChannelClosed on failure."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pump())
                group.create_task(self._receive_loop())
                if self.keepalive:
                    group.create_task(self._keepalive())
        except BaseExceptionGroup as group_error:
            error = group_error.exceptions[0]
            self._fail_all(error)
            raise error from None
        except asyncio.CancelledError:
            self._fail_all(TunnelError("the session was stopped"))
            raise
        except BaseException as exc:
            self._fail_all(exc)
            raise

    @property
    def buffered(self) -> int:
        """Received bytes held for all streams."""
        return self._received_total

    # -------------------------------------------------------- upstream pump

    def _schedule(self, stream: MuxStream) -> None:
        if stream.id not in self._queued:
            self._queued.add(stream.id)
            self._ready.append(stream)
        self._pump_wakeup.set()

    def _may_queue(self, stream: MuxStream) -> bool:
        size = stream._outbox_size
        if size > self.config.stream_send_buffer:
            return False
        return size == 0 or self._outbox_total <= self.config.session_send_buffer

    def _wake_writers(self) -> None:
        for stream in self._blocked:
            if self._may_queue(stream):
                _wake(stream._drain_waiter)

    async def _pump(self) -> None:
        session = self.session
        config = self.config
        ready = self._ready
        queued = self._queued
        wakeup = self._pump_wakeup
        while True:
            await wakeup.wait()
            wakeup.clear()
            while True:
                batch = 0
                while ready and batch < config.send_batch:
                    stream = ready.popleft()
                    if stream._outbox:
                        data = stream._take(config.send_quantum)
                        if not session.closed and stream.id in session.streams:
                            session.send(stream.id, data)
                        batch += len(data)
                        if self._blocked:
                            self._wake_writers()
                    if stream._outbox:
                        ready.append(stream)
                        continue
                    queued.discard(stream.id)
                    if stream._eof_requested and not stream._fin_sent:
                        stream._fin_sent = True
                        session.close_stream(stream.id)
                        self._maybe_forget(stream)
                out = session.data_to_send()
                if not out:
                    break
                self.stats["sent_bytes"] += len(out)
                await self.channel.send(out)

    # --------------------------------------------------------- receive loop

    async def _receive_loop(self) -> None:
        channel = self.channel
        session = self.session
        clock = self._clock
        config = self.config
        while True:
            try:
                payload_type, payload = await channel.receive()
            except ChannelClosed:
                self._finish_all()
                raise
            if payload_type == PayloadType.OUTPUT:
                self.stats["received_bytes"] += len(payload)
                session.receive_data(payload, clock())
                self._dispatch()
                if self._congested or self._received_total > config.session_receive_buffer:
                    await self._wait_for_room()
            elif payload_type == PayloadType.FLAG:
                if payload == _CONNECT_TO_PORT_ERROR:
                    self._refusal_flag()
                else:
                    logger.debug("ignoring flag %s", payload.hex())
            else:
                logger.debug("ignoring payload type %d (%d bytes)", payload_type, len(payload))

    def _dispatch(self) -> None:
        streams = self.streams
        limit = self.config.stream_receive_buffer
        for event in self.session.events_received():
            if type(event) is StreamData:
                stream = streams.get(event.stream_id)
                if stream is None:
                    continue
                if stream._feed(event.data):
                    self._received_total += len(event.data)
                    if stream._inbox_size > limit:
                        self._congested.add(stream.id)
            elif type(event) is StreamFinished:
                stream = streams.get(event.stream_id)
                if stream is None:
                    continue
                stream._feed_eof()
                if stream.bytes_received == 0:
                    self._silent_fin(stream)
                self._maybe_forget(stream)
            elif type(event) is StreamOpened:
                # The agent never opens streams; refuse politely.
                logger.debug("agent opened stream %d; closing it", event.stream_id)
                self.session.close_stream(event.stream_id)
                self._pump_wakeup.set()
            elif type(event) is SessionError:
                raise TunnelError(f"smux session failed: {event.reason}")

    def _silent_fin(self, stream: MuxStream) -> None:
        now = self._clock()
        pending = self._pending_refusals
        while pending and pending[0] < now - self.REFUSAL_MATCH_WINDOW:
            pending.popleft()
        if pending:
            pending.popleft()
            self._refuse(stream)
        else:
            self._silent_fins.append((now, stream))

    def _refusal_flag(self) -> None:
        self.stats["refusals"] += 1
        now = self._clock()
        fins = self._silent_fins
        while fins and fins[0][0] < now - self.REFUSAL_MATCH_WINDOW:
            fins.popleft()
        if fins:
            self._refuse(fins.popleft()[1])
        else:
            self._pending_refusals.append(now)

    def _refuse(self, stream: MuxStream) -> None:
        logger.debug("stream %d refused by the agent", stream.id)
        stream._mark_refused()

    async def _wait_for_room(self) -> None:
        self.stats["receive_pauses"] += 1
        while self._congested or self._received_total > self.config.session_receive_buffer:
            self._room = asyncio.get_running_loop().create_future()
            try:
                await self._room
            finally:
                self._room = None

    def _consumed(self, stream: MuxStream, size: int) -> None:
        self._received_total -= size
        congested = self._congested
        limit = self.config.stream_receive_buffer // 2
        if congested and stream.id in congested and stream._inbox_size <= limit:
            congested.discard(stream.id)
        if (
            self._room is not None
            and not congested
            and self._received_total <= self.config.session_receive_buffer // 2
        ):
            _wake(self._room)

    def _maybe_forget(self, stream: MuxStream) -> None:
        if stream._fin_sent and stream._eof_received:
            self.streams.pop(stream.id, None)

    # ------------------------------------------------------------- keepalive

    async def _keepalive(self) -> None:
        session = self.session
        while True:
            deadline = session.get_timer()
            if deadline is None:
                return
            delay = deadline - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            session.handle_timer(self._clock())
            for event in session.events_received():
                if isinstance(event, SessionError):
                    raise TunnelError(f"agent stopped responding ({event.reason})")
            self._pump_wakeup.set()

    # ---------------------------------------------------------------- ending

    def _finish_all(self) -> None:
        for stream in list(self.streams.values()):
            stream._feed_eof()

    def _fail_all(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        for stream in list(self.streams.values()):
            if not stream._eof_received:
                stream._fail(exc)
