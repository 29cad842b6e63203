"""One WebSocket link to the message gateway: open it, say hello, keep it honest.

A *link* is a single WebSocket connection. A session outlives many links when
the network is flaky; :class:`~ssmsh.channel.SessionConnection` replaces them.

* :func:`open_link` dials the StreamUrl (with SigV4 headers when given), then
  sends the OpenDataChannel text frame with a fresh RequestId.
* :class:`~ssmsh._private_api.FrameLink` is the connection it returns:
  websockets' client connection with data frames going to a callback, all those
  parsed from one read at once, instead of one by one through ``recv()`` (a
  small-message stream costs one call per batch, not a task wake-up per
  message). It lives in :mod:`ssmsh._private_api` with every other use of
  websockets' private API;
* :class:`Liveness` pings the gateway and aborts the link when pongs stop
  coming, so a silent network is noticed in seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
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

from .._private_api import FrameLink, close_cause, proxy_url
from ..protocol.payloads import OpenDataChannel
from .config import ConnectionConfig

__all__ = ["LinkError", "Liveness", "close_reason", "open_link", "proxy_for"]

logger = logging.getLogger(__name__)


class LinkError(Exception):
    """A link could not be opened. ``fatal`` when retrying cannot help."""

    def __init__(self, message: str, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


def _where(url: str) -> str:
    """host:port of a URL, for messages (never the query, which may hold credentials)."""
    parts = urlsplit(url)
    return parts.netloc or url.split("?", 1)[0]


def proxy_for(url: str) -> str | None:
    """The proxy websockets will use for ``url`` (HTTPS_PROXY, ALL_PROXY, NO_PROXY...),
    as ``scheme://host:port`` without any credentials; None when it connects directly."""
    try:
        proxy = proxy_url(url)
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
            max_size=config.max_message_size,
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
        frame, cause = close_cause(ws)
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
        ws: FrameLink,
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
                self.ws.abort()
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
