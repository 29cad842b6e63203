"""Multiplexed port forwarding: smux v1 streams over one data channel.

:class:`MuxTunnel` drives a Sans-I/O :class:`~ssmsh.protocol.smux.SmuxSession`
over a :class:`~ssmsh.tunnel.channel.PortChannel`; each local connection gets a
:class:`~ssmsh.tunnel.stream.MuxStream`, an asyncio reader/writer pair
(``stream.py``), which the tunnel drives through its public methods and which
reports back through the ``stream_*`` methods here.

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
from ..protocol.constants import Flag
from ..protocol.session import OutputReceived
from ..protocol.smux import (
    MAX_FRAME_SIZE,
    SmuxFailed,
    SmuxSession,
    StreamData,
    StreamFinished,
)
from .channel import PortChannel
from .config import TunnelConfig
from .stream import MuxStream

__all__ = ["MuxTunnel"]

logger = logging.getLogger(__name__)


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
            accept_streams=False,  # the agent never opens streams: its SYNs cost nothing
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

    # ------------------------------------------------------ what streams say

    def stream_queued(self, stream: MuxStream, size: int) -> None:
        """``size`` more bytes to send on ``stream`` (0: FIN asked for): schedule it."""
        self._outbox_total += size
        if stream.id not in self._queued:
            self._queued.add(stream.id)
            self._ready.append(stream)
        self._pump_wakeup.set()

    def stream_may_queue(self, stream: MuxStream) -> bool:
        """Whether ``stream``'s writer may go on: its own and the session's send buffers."""
        size = stream.unsent
        if size > self.config.stream_send_buffer:
            return False
        return size == 0 or self._outbox_total <= self.config.session_send_buffer

    def stream_blocked(self, stream: MuxStream, blocked: bool) -> None:
        """``stream``'s writer waits in ``drain`` (woken when the pump makes room), or not."""
        if blocked:
            self._blocked.add(stream)
        else:
            self._blocked.discard(stream)

    def stream_consumed(self, stream: MuxStream, size: int) -> None:
        """``size`` received bytes of ``stream`` were read: maybe take payloads again."""
        self._received_total -= size
        congested = self._congested
        limit = self.config.stream_receive_buffer // 2
        if congested and stream.id in congested and stream.buffered <= limit:
            congested.discard(stream.id)
        room = self._room
        if (
            room is not None
            and not room.done()
            and not congested
            and self._received_total <= self.config.session_receive_buffer // 2
        ):
            room.set_result(None)

    def stream_ended(self, stream: MuxStream) -> None:
        """Forget ``stream`` once it is closed both ways."""
        if stream.closed:
            self.streams.pop(stream.id, None)

    # -------------------------------------------------------- upstream pump

    def _wake_writers(self) -> None:
        for stream in self._blocked:
            if self.stream_may_queue(stream):
                stream.wake_writer()

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
                    if stream.unsent:
                        data = stream.take(config.send_quantum)
                        self._outbox_total -= len(data)
                        if not session.closed and stream.id in session.streams:
                            session.send(stream.id, data)
                        batch += len(data)
                        if self._blocked:
                            self._wake_writers()
                    if stream.unsent:
                        ready.append(stream)
                        continue
                    queued.discard(stream.id)
                    if stream.take_fin():
                        session.close_stream(stream.id)
                        self.stream_ended(stream)
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
                event = await channel.receive()
            except ChannelClosed:
                self._finish_all()
                raise
            if isinstance(event, OutputReceived):
                payload = event.data
                self.stats["received_bytes"] += len(payload)
                session.receive_data(payload, clock())
                self._dispatch()
                if self._congested or self._received_total > config.session_receive_buffer:
                    await self._wait_for_room()
            elif event.flag == Flag.CONNECT_TO_PORT_ERROR:
                self._refusal_flag()
            else:
                logger.debug("ignoring flag %08x", event.flag)

    def _dispatch(self) -> None:
        streams = self.streams
        limit = self.config.stream_receive_buffer
        for event in self.session.events_received():
            if type(event) is StreamData:
                stream = streams.get(event.stream_id)
                if stream is None:
                    continue
                if stream.feed_data(event.data):
                    self._received_total += len(event.data)
                    if stream.buffered > limit:
                        self._congested.add(stream.id)
            elif type(event) is StreamFinished:
                stream = streams.get(event.stream_id)
                if stream is None:
                    continue
                stream.feed_eof()
                if stream.bytes_received == 0:
                    self._silent_fin(stream)
                self.stream_ended(stream)
            elif type(event) is SmuxFailed:
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
        stream.refuse()

    async def _wait_for_room(self) -> None:
        self.stats["receive_pauses"] += 1
        while self._congested or self._received_total > self.config.session_receive_buffer:
            self._room = asyncio.get_running_loop().create_future()
            try:
                await self._room
            finally:
                self._room = None

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
                if isinstance(event, SmuxFailed):
                    raise TunnelError(f"agent stopped responding ({event.reason})")
            self._pump_wakeup.set()

    # ---------------------------------------------------------------- ending

    def _finish_all(self) -> None:
        for stream in list(self.streams.values()):
            stream.feed_eof()

    def _fail_all(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        for stream in list(self.streams.values()):
            if not stream.eof_received:
                stream.set_exception(exc)
