"""One WebSocket link to the message gateway: open it, say hello, keep it honest.

A *link* is a single WebSocket connection. A session outlives many links when
the network is flaky; :class:`~ssmsh.channel.SessionConnection` replaces them.

* :func:`open_link` dials the StreamUrl (with SigV4 headers when given), then
  sends the OpenDataChannel text frame with a fresh RequestId.
* :class:`FrameLink` is websockets' client connection with one change: data
  frames go to a callback, all those parsed from one read at once, instead of
  one by one through ``recv()`` (a small-message stream costs one call per
  batch, not a task wake-up per message);
* :class:`Liveness` pings the gateway and aborts the link when pongs stop
  coming, so a silent network is noticed in seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidProxy,
    InvalidProxyStatus,
    InvalidStatus,
    InvalidURI,
    ProxyError,
)
from websockets.frames import Frame, Opcode
from websockets.protocol import Event
from websockets.proxy import get_proxy
from websockets.uri import parse_uri

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its C extension
    from websockets.utils import apply_mask

from ..protocol.payloads import OpenDataChannel
from .config import ConnectionConfig

__all__ = [
    "FrameHandler",
    "FrameLink",
    "LinkError",
    "Liveness",
    "binary_frames",
    "close_reason",
    "open_link",
]

logger = logging.getLogger(__name__)


class LinkError(Exception):
    """A link could not be opened. ``fatal`` when retrying cannot help."""

    def __init__(self, message: str, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


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

    The handler owns flow control: it pauses and resumes the transport itself.
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


def _where(url: str) -> str:
    """host:port of a URL, for messages (never the query, which may hold credentials)."""
    parts = urlsplit(url)
    return parts.netloc or url.split("?", 1)[0]


def proxy_for(url: str) -> str | None:
    """The proxy websockets will use for ``url`` (HTTPS_PROXY, ALL_PROXY, NO_PROXY...),
    as ``scheme://host:port`` without any credentials; None when it connects directly."""
    try:
        proxy = get_proxy(parse_uri(url))
    except (InvalidURI, ValueError):
        return None
    if proxy is None:
        return None
    parts = urlsplit(proxy)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


async def open_link(
    url: str,
    token: str,
    client_id: str,
    headers: Mapping[str, str],
    config: ConnectionConfig,
) -> FrameLink:
    """Open a WebSocket to ``url`` and send the OpenDataChannel frame.

    Raises :class:`LinkError` with a one-line, secret-free message on failure.
    """
    where = _where(url)
    proxy = proxy_for(url)
    if proxy is not None:
        logger.debug("connecting to %s through the proxy %s", where, proxy)
        where = f"{where} (through the proxy {proxy})"
    try:
        ws = await connect(
            url,
            additional_headers=dict(headers) or None,
            compression=None,
            max_size=None,
            open_timeout=config.open_timeout,
            ping_interval=None,  # Liveness does this, with a faster verdict
            close_timeout=config.close_timeout,
            write_limit=config.write_limit,
            max_queue=64,
            create_connection=FrameLink,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        fatal = 400 <= status < 500 and status not in (408, 429)
        raise LinkError(
            f"the message gateway at {where} refused the connection (HTTP {status})", fatal=fatal
        ) from None
    except InvalidURI:
        raise LinkError(f"invalid stream URL for host {where}", fatal=True) from None
    except InvalidProxy as exc:
        raise LinkError(f"invalid proxy setting: {exc}", fatal=True) from None
    except ProxyError as exc:
        # 403, 407: the proxy will say the same next time; 502, 503: it may not.
        status = exc.response.status_code if isinstance(exc, InvalidProxyStatus) else 0
        raise LinkError(
            f"the proxy refused the connection to {where}: {exc}", fatal=400 <= status < 500
        ) from None
    except ImportError:  # a SOCKS proxy without python-socks installed
        raise LinkError(
            f"connecting to {where} needs the python-socks package", fatal=True
        ) from None
    except InvalidHandshake as exc:
        raise LinkError(f"WebSocket handshake with {where} failed: {exc}") from None
    except TimeoutError:
        raise LinkError(f"timed out connecting to {where}") from None
    except OSError as exc:
        raise LinkError(f"cannot connect to {where}: {exc.strerror or exc}") from None
    assert isinstance(ws, FrameLink)
    hello = OpenDataChannel(request_id=str(uuid.uuid4()), token_value=token, client_id=client_id)
    try:
        await ws.send(hello.encode())
    except ConnectionClosed as exc:
        raise LinkError(
            f"the message gateway at {where} ended the link at once: {close_reason(exc)}"
        ) from None
    logger.debug("link open to %s (request %s)", where, hello.request_id)
    return ws


def close_reason(exc: ConnectionClosed | None, ws: ClientConnection | None = None) -> str:
    """A short description of why a WebSocket closed, for status lines:
    "gateway closed the connection (1000 Bye)", "connection reset"..."""
    frame = None
    cause: BaseException | None = None
    if exc is not None:
        frame = exc.rcvd
        cause = exc.__cause__
    elif ws is not None:
        frame = ws.protocol.close_rcvd
        cause = ws.connection_exc
    if frame is not None:
        detail = f"{frame.code} {frame.reason}" if frame.reason else str(frame.code)
        return f"gateway closed the connection ({detail})"
    if isinstance(cause, ConnectionResetError):
        return "connection reset"
    if isinstance(cause, OSError) and cause.strerror:
        return f"connection failed: {cause.strerror}"
    return "connection dropped (no close frame)"


class Liveness:
    """Pings the gateway every ``ping_interval`` and aborts the link on silence.

    The first ping goes out immediately so that a healthy new link is confirmed
    within one round trip (``on_alive`` is called on every pong). A pong that is
    late while frames are still arriving does not count as silence; neither
    does any delay while ``is_paused()`` is true (the driver has stopped reading
    on purpose, so pongs wait in the socket buffer).

    At debug level it logs pong round trips, but not all of them: the first of
    the link, one that differs notably from the last one logged (see
    :meth:`pong_received`) and every :attr:`PONG_LOG_EVERY`-th; and each late
    pong that was excused.
    """

    #: Log every this many pongs even if the round trip has not changed (5 min at 10 s).
    PONG_LOG_EVERY = 30
    #: A round trip is a notable change from the last one logged when it is this many
    #: times larger or smaller...
    PONG_LOG_RATIO = 2.0
    #: ... and differs from it by at least this much (seconds): loopback jitter is not news.
    PONG_LOG_MIN_CHANGE = 0.010

    def __init__(
        self,
        ws: ClientConnection,
        config: ConnectionConfig,
        last_received: Callable[[], float],
        is_paused: Callable[[], bool],
        on_alive: Callable[[], None],
    ) -> None:
        self.ws = ws
        self.config = config
        self._last_received = last_received
        self._is_paused = is_paused
        self._on_alive = on_alive
        #: Set when the link was aborted for silence.
        self.verdict: str | None = None
        #: Pongs received on this link, and the round trip of the last one (seconds).
        self.pongs = 0
        self.last_rtt: float | None = None
        self._logged_rtt: float | None = None
        self._logged_at = 0  # the pong count when a round trip was last logged

    async def run(self) -> None:
        """Run until the link dies (returns) or silence is detected (aborts it, returns)."""
        interval = self.config.ping_interval
        if interval is None:
            await self.ws.wait_closed()
            return
        loop = asyncio.get_running_loop()
        first = True
        while True:
            if not first:
                await asyncio.sleep(interval)
            first = False
            sent_at = loop.time()
            try:
                pong = await self.ws.ping()
            except ConnectionClosed:
                return
            try:
                async with asyncio.timeout(self.config.ping_timeout):
                    await pong
            except TimeoutError:
                if self._excused(loop.time(), sent_at):
                    continue
                self.verdict = f"no reply to keepalive for {self.config.ping_timeout:g} s"
                logger.info("link silent: %s; dropping it", self.verdict)
                self.ws.transport.abort()
                return
            except ConnectionClosed:
                return
            self.pong_received(loop.time() - sent_at)
            self._on_alive()

    def _excused(self, now: float, sent_at: float) -> bool:
        """A late pong that is no sign of a dead link (logged at debug level)."""
        if self._is_paused():
            why = "reading is paused (the consumer is behind)"
        elif (last := self._last_received()) > sent_at:
            why = f"frames still arriving (the last {now - last:.1f} s ago)"
        else:
            return False
        logger.debug(
            "pong late (none within %g s) but the link is excused: %s",
            self.config.ping_timeout,
            why,
        )
        return True

    def pong_received(self, rtt: float) -> bool:
        """Count a pong that came ``rtt`` seconds after its ping; True if it was logged.

        Logged (debug level): the first pong of the link; a round trip at least
        :attr:`PONG_LOG_RATIO` times larger or smaller than the last one logged
        and :attr:`PONG_LOG_MIN_CHANGE` away from it; every :attr:`PONG_LOG_EVERY`-th.
        """
        self.pongs += 1
        self.last_rtt = rtt
        logged = self._logged_rtt
        if logged is None:
            why = "first on this link"
        elif abs(rtt - logged) >= self.PONG_LOG_MIN_CHANGE and (
            rtt >= logged * self.PONG_LOG_RATIO or rtt * self.PONG_LOG_RATIO <= logged
        ):
            why = f"was {logged * 1000:.1f} ms"
        elif self.pongs - self._logged_at >= self.PONG_LOG_EVERY:
            why = f"{self.pongs} pongs on this link"
        else:
            return False
        self._logged_rtt = rtt
        self._logged_at = self.pongs
        logger.debug("pong in %.1f ms (%s)", rtt * 1000, why)
        return True
