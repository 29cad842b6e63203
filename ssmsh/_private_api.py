"""Every use of websockets' and asyncio's private API in ssmsh, fenced in one module.

Why there is any: the data channel acknowledges every message it receives, and
an agent sends 1 KiB messages a millisecond apart. Through websockets' public
API each message costs a task wake-up on ``recv()`` and each ack a trip
through ``send()`` and its ``send_context``; the tunnel's throughput and CPU
per MB (``scripts/bench_tunnel.py``) come from skipping both. So the channel
driver reads frames as websockets parses them and writes its own frames to the
transport, which needs parts of websockets that its documentation does not
cover. The tunnels need two undocumented corners of asyncio as well.

Nothing else in ssmsh touches these; everything here is checked against the
installed versions by ``tests/test_private_api.py`` (the contract test), which
CI also runs with the newest websockets that ``pyproject.toml`` allows, so an
upgrade that breaks an assumption fails there first. Tested: websockets 15.0,
15.0.1, 16.0, 16.1.1 and 17.0 to 17.4 (``websockets>=15,<18`` in pyproject.toml);
CPython 3.11.

What we rely on, from websockets (``websockets.asyncio``):

* ``Connection.data_received(data)`` (the asyncio protocol callback) feeds the
  Sans-I/O protocol and calls ``process_event(event)`` once per event parsed
  from ``data``, synchronously, before it returns; after the handshake
  response every event is a :class:`~websockets.frames.Frame`;
* handling a data frame in an override of ``process_event`` instead of passing
  it to ``super()`` keeps it out of ``recv()``'s queue, and nothing else;
* ``Connection.transport`` is the asyncio transport and ``Connection.protocol``
  the Sans-I/O :class:`~websockets.protocol.Protocol` (``state``,
  ``data_to_send()``, ``close_rcvd``); ``Connection.connection_exc`` (named
  ``recv_exc`` up to 17.0) is the error that broke the connection, if any;
* writing complete frames to that transport ourselves is safe while the
  protocol is OPEN, provided websockets' own pending output goes first:
  websockets writes what it has when it has it (pongs, a close), and never
  holds a frame half-written between callbacks;
* ``websockets.speedups.apply_mask`` (the C extension; ``websockets.utils``
  otherwise) and ``websockets.proxy.get_proxy`` (``websockets.uri`` in 15.x).

Where websockets moved something between the versions we support, the
lookup here tries both places; nowhere else needs to know.

* ``ServerConnection.connection_made`` / ``connection_lost`` (the asyncio protocol
  callbacks) run once per TCP connection, before the opening handshake and after the
  socket is gone, whatever happens in between (:func:`counted_server_connection`:
  the emulator's gateway counts and caps connections with them).

From asyncio:

* the selector socket transport reads at most ``transport.max_size`` bytes per
  ``recv()`` (an instance may override the class attribute);
* ``asyncio.streams.FlowControlMixin`` gives a plain protocol what
  ``StreamWriter.drain()`` needs.
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import Callable, Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import ServerConnection
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import Event, State
from websockets.uri import parse_uri

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its C extension
    from websockets.utils import apply_mask

try:
    from websockets.proxy import get_proxy
except ImportError:  # websockets 15 has it in websockets.uri
    from websockets.uri import get_proxy  # type: ignore[attr-defined,no-redef]

__all__ = [
    "DrainableWriteProtocol",
    "FrameHandler",
    "FrameLink",
    "apply_mask",
    "binary_frames",
    "bound_reads",
    "close_cause",
    "connection_error",
    "counted_server_connection",
    "proxy_url",
    "transport_of",
]

#: Called with the payloads of the data frames parsed from one read, in order.
FrameHandler = Callable[[list[bytes]], None]

_DATA_OPCODES = (Opcode.BINARY, Opcode.TEXT, Opcode.CONT)


class FrameLink(ClientConnection):
    """A websockets client connection that hands data frames to :attr:`handler`.

    websockets parses frames as bytes arrive (``data_received``) and queues each
    message for ``recv()``; here, the messages parsed from one read are passed to
    the handler in one call, synchronously, so nothing is queued in between and
    :meth:`recv` is not used. Messages that arrive before a handler is set are
    kept and passed to the first one. Control frames (ping, pong, close) are
    websockets' business as usual. Text messages are passed as their UTF-8 bytes.

    The handler owns flow control: it pauses and resumes reading itself
    (:meth:`set_reading`). The other methods below give the channel driver the
    transport-level operations it needs, so that it never reaches into
    websockets itself.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handler: FrameHandler | None = None
        self._parsed: list[bytes] = []
        self._fragments: list[bytes] | None = None

    @property
    def handler(self) -> FrameHandler | None:
        return self._handler

    @handler.setter
    def handler(self, handler: FrameHandler | None) -> None:
        self._handler = handler
        if handler is not None and self._parsed:
            parsed, self._parsed = self._parsed, []
            handler(parsed)

    def process_event(self, event: Event) -> None:
        if (
            self.response is None
            or not isinstance(event, Frame)
            or event.opcode not in _DATA_OPCODES
        ):
            super().process_event(event)  # the handshake response, control frames
            return
        if event.opcode is Opcode.CONT:
            if self._fragments is None:
                return  # websockets rejects this before it gets here
            self._fragments.append(bytes(event.data))
            if not event.fin:
                return
            data, self._fragments = b"".join(self._fragments), None
        elif not event.fin:
            self._fragments = [bytes(event.data)]
            return
        else:
            data = event.data if type(event.data) is bytes else bytes(event.data)
        self._parsed.append(data)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        handler = self._handler
        if handler is not None and self._parsed:
            parsed, self._parsed = self._parsed, []
            handler(parsed)

    # ------------------------------------------------------------ the transport

    def set_reading(self, wanted: bool) -> None:
        """Read from the socket, or stop (backpressure, receive coalescing).

        Nothing happens once the transport is closing. A link that is not read
        does not see pongs either; :class:`~ssmsh.channel.link.Liveness` is told.
        """
        transport = self.transport
        if transport.is_closing():
            return
        if wanted != transport.is_reading():
            if wanted:
                transport.resume_reading()
            else:
                transport.pause_reading()

    def abort(self) -> None:
        """Drop the TCP connection at once (no closing handshake)."""
        self.transport.abort()

    def can_write_frames(self) -> bool:
        """Whether :meth:`write_frames` may write: the connection is open and staying so."""
        return self.protocol.state is State.OPEN and not self.transport.is_closing()

    def write_buffer_size(self) -> int:
        """Bytes written to the transport and not yet sent."""
        return self.transport.get_write_buffer_size()

    def write_frames(self, payloads: Sequence[bytes]) -> None:
        """Write ``payloads`` as binary messages in one transport write, without flow control.

        Equivalent to ``send(payload)`` for each, minus a coroutine and a
        ``send_context`` per message. Call only when :meth:`can_write_frames`;
        watch :meth:`write_buffer_size` and fall back to ``send()`` (which waits
        for room) when it is large.
        """
        transport = self.transport
        if pending := self.protocol.data_to_send():  # websockets' own frames go first (rare)
            transport.write(b"".join(pending))
        transport.write(binary_frames(payloads))


_HEAD16 = struct.Struct("!BBH")
_HEAD64 = struct.Struct("!BBQ")


def binary_frames(payloads: Sequence[bytes]) -> bytes:
    """The wire bytes of WebSocket binary messages as a client sends them (RFC 6455 5.2).

    One unfragmented, masked frame per payload, each with its own mask key from
    the OS's random source. Equivalent to websockets' ``send_binary`` for each
    payload on a connection without extensions, minus its per-frame overhead:
    the data channel sends an acknowledgement per message received.
    """
    masks = os.urandom(4 * len(payloads))
    parts: list[bytes] = []
    for index, payload in enumerate(payloads):
        mask = masks[4 * index : 4 * index + 4]
        size = len(payload)
        if size < 126:
            parts.append(bytes((0x82, 0x80 | size)))
        elif size < 65536:
            parts.append(_HEAD16.pack(0x82, 0x80 | 126, size))
        else:
            parts.append(_HEAD64.pack(0x82, 0x80 | 127, size))
        parts.append(mask)
        parts.append(apply_mask(payload, mask))
    return b"".join(parts)


def proxy_url(url: str) -> str | None:
    """The proxy websockets' ``connect`` will use for ``url`` (``HTTPS_PROXY``,
    ``NO_PROXY``...), as its full URL, or None. Raises what ``parse_uri`` raises."""
    return get_proxy(parse_uri(url))


def close_cause(ws: Connection) -> tuple[Close | None, BaseException | None]:
    """Why a connection ended: the close frame it received, the error that broke it."""
    return ws.protocol.close_rcvd, connection_error(ws)


def connection_error(ws: Connection) -> BaseException | None:
    """The error that broke ``ws``, if any: ``connection_exc`` since websockets 17.x
    (17.4 has it), ``recv_exc`` before (15.0 to 17.0 at least)."""
    if hasattr(ws, "connection_exc"):
        return ws.connection_exc
    error: BaseException | None = getattr(ws, "recv_exc", None)
    return error


def transport_of(ws: Connection) -> asyncio.Transport:
    """The asyncio transport under a websockets connection (the emulator's fault injection)."""
    return ws.transport


# ---------------------------------------------------------------------- asyncio


def bound_reads(transport: asyncio.BaseTransport, size: int) -> None:
    """Have a socket transport read at most ``size`` bytes per ``recv()``.

    asyncio's selector transports read up to 256 KiB at a time (the class
    attribute ``max_size``); a tunnel with many connections bounds its input
    buffering with a smaller read. Other transports are left alone.
    """
    if isinstance(getattr(transport, "max_size", None), int):
        transport.max_size = size  # type: ignore[attr-defined]


class DrainableWriteProtocol(asyncio.streams.FlowControlMixin, asyncio.Protocol):
    """Write-side protocol giving ``StreamWriter.drain()`` its backpressure
    (for ``loop.connect_write_pipe``)."""


def counted_server_connection(
    on_made: Callable[[ServerConnection], None], on_lost: Callable[[ServerConnection], None]
) -> type[ServerConnection]:
    """A ``ServerConnection`` class for ``serve(create_connection=...)`` that calls
    ``on_made(conn)`` as each TCP connection is accepted (before its opening handshake)
    and ``on_lost(conn)`` once its socket is gone, every connection, however it ends."""

    class CountedConnection(ServerConnection):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            on_made(self)

        def connection_lost(self, exc: Exception | None) -> None:
            on_lost(self)
            super().connection_lost(exc)

    return CountedConnection
