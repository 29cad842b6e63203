"""One smux stream as an asyncio reader/writer pair: :class:`MuxStream`.

A local connection's side: :meth:`MuxStream.read` what the agent sent,
:meth:`MuxStream.write` and :meth:`MuxStream.drain` what to send to it,
:meth:`MuxStream.write_eof` to half-close.

The tunnel's side (:class:`~ssmsh.tunnel.mux.MuxTunnel`), in the manner of
``asyncio.StreamReader.feed_data``: :meth:`~MuxStream.feed_data`,
:meth:`~MuxStream.feed_eof`, :meth:`~MuxStream.refuse` and
:meth:`~MuxStream.set_exception` on the receiving side; :attr:`~MuxStream.unsent`,
:meth:`~MuxStream.take`, :meth:`~MuxStream.take_fin` and
:meth:`~MuxStream.wake_writer` on the sending side. A stream tells its tunnel
what happened through the :class:`StreamOwner` methods; neither touches the
other's attributes.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import Protocol

from ..exceptions import TunnelError

__all__ = ["MuxStream", "StreamOwner"]


class StreamOwner(Protocol):
    """What a :class:`MuxStream` tells the tunnel that carries it."""

    def stream_queued(self, stream: MuxStream, size: int) -> None:
        """``size`` more bytes to send (0: a FIN was asked for): schedule the stream."""
        ...

    def stream_may_queue(self, stream: MuxStream) -> bool:
        """Whether the stream's writer may go on (send buffers not full)."""
        ...

    def stream_blocked(self, stream: MuxStream, blocked: bool) -> None:
        """The stream's writer waits in :meth:`MuxStream.drain` (or stopped waiting)."""
        ...

    def stream_consumed(self, stream: MuxStream, size: int) -> None:
        """``size`` received bytes were read (or dropped): room in the receive buffers."""
        ...

    def stream_ended(self, stream: MuxStream) -> None:
        """The stream may be over (FIN both ways): forget it then."""
        ...


class MuxStream:
    """One smux stream: ``read`` what the agent sent, ``write`` what to send to it.

    Half-close works both ways: :meth:`write_eof` sends FIN after everything
    queued; :meth:`read` returns ``b""`` once the agent's FIN has arrived.
    """

    def __init__(self, owner: StreamOwner, stream_id: int) -> None:
        self.id = stream_id
        self._owner = owner
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

    @property
    def eof_received(self) -> bool:
        """The agent's FIN arrived (data before it may still be unread)."""
        return self._eof_received

    async def read(self, limit: int = 1 << 20) -> bytes:
        """Up to ``limit`` received bytes, waiting for some; ``b""`` at end of stream.

        Raises the tunnel's error if the session died before the stream ended.
        """
        while not self._inbox:
            if self._eof_received:
                self._owner.stream_ended(self)
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
        self._owner.stream_consumed(self, len(data))
        return data

    async def wait_readable(self) -> None:
        """Wait until :meth:`read` would not wait: data, the agent's FIN, or a failure
        (raised here, as :meth:`read` would). Nothing is consumed."""
        while not self._inbox and not self._eof_received:
            if self._error is not None:
                raise self._error
            self._read_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._read_waiter
            finally:
                self._read_waiter = None

    def set_sink(self, sink: Callable[[bytes], bool] | None) -> None:
        """Have received data passed to ``sink`` as it arrives, instead of queued for read.

        ``sink(data)`` returns False when it cannot take ``data`` now (its own
        buffer is full): the data is then queued, the sink dropped, and
        :meth:`read` returns it; backpressure works as without a sink. Data goes
        to the sink only while nothing is queued, so order is kept. End of
        stream and errors still come out of :meth:`read`.
        """
        self._sink = sink

    def feed_data(self, data: bytes) -> bool:
        """The tunnel received ``data`` for this stream; True if it was queued for
        :meth:`read` (and so counts in :attr:`buffered`)."""
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

    def feed_eof(self) -> None:
        """The agent's FIN (or the end of the session): :meth:`read` returns ``b""`` once empty."""
        self._eof_received = True
        _wake(self._read_waiter)

    def refuse(self) -> None:
        """The agent could not connect to the destination."""
        self.refused = True
        if self.on_refused is not None:
            self.on_refused()

    def set_exception(self, exc: BaseException) -> None:
        """The tunnel failed: :meth:`read`, :meth:`write` and :meth:`drain` raise ``exc``."""
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
        self._owner.stream_queued(self, len(data))

    async def drain(self) -> None:
        """Wait while this stream has too much queued.

        That is more than ``stream_send_buffer`` bytes, or any bytes at all while all
        streams together hold more than ``session_send_buffer``.
        """
        if self._error is not None:
            raise self._error
        owner = self._owner
        while not owner.stream_may_queue(self):
            self._drain_waiter = asyncio.get_running_loop().create_future()
            owner.stream_blocked(self, True)
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None
                owner.stream_blocked(self, False)

    def write_eof(self) -> None:
        """Send FIN once everything queued has been sent. Idempotent."""
        if not self._eof_requested:
            self._eof_requested = True
            self._owner.stream_queued(self, 0)

    def close(self) -> None:
        """Done with the stream: send FIN (after queued data) and ignore further input."""
        self._discard = True
        self._inbox.clear()
        size, self._inbox_size = self._inbox_size, 0
        self._owner.stream_consumed(self, size)
        self.write_eof()

    @property
    def closed(self) -> bool:
        """True once FIN was sent and the agent's FIN received."""
        return self._fin_sent and self._eof_received

    @property
    def unsent(self) -> int:
        """Bytes written and not yet taken by the tunnel."""
        return self._outbox_size

    def take(self, limit: int) -> bytes:
        """Up to ``limit`` unsent bytes, for the tunnel to send (some must be unsent)."""
        outbox = self._outbox
        first = outbox[0]
        if len(first) <= limit and (len(outbox) == 1 or len(first) + len(outbox[1]) > limit):
            outbox.popleft()
            data = first
        else:
            data = _pop_bytes(outbox, limit)
        self._outbox_size -= len(data)
        self.bytes_sent += len(data)
        return data

    def take_fin(self) -> bool:
        """True, once, when the FIN asked for by :meth:`write_eof` is due (call it when
        nothing is unsent); the tunnel then sends it."""
        if self._eof_requested and not self._fin_sent:
            self._fin_sent = True
            return True
        return False

    def wake_writer(self) -> None:
        """Let a writer waiting in :meth:`drain` check again."""
        _wake(self._drain_waiter)


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
