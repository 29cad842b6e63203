"""The emulator's HTTP/1.1 server: h11 speaks the protocol, this module keeps the peace.

`h11 <https://h11.readthedocs.io>`_ (a maintained, Sans-I/O HTTP/1.1 implementation)
parses every request and frames every response: request line and headers,
Content-Length and chunked bodies, ``Expect: 100-continue``, keep-alive and
pipelining. What is left here is the glue a server on a shared machine needs:

* sockets: our own accept loop, so running out of file descriptors is handled (the
  connection idle longest is closed) instead of logged once per attempt;
* limits (:class:`HttpLimits`): header section, header count, request target, body
  size, request bytes buffered across all connections, concurrent connections;
* timeouts: idle (keep-alive or before the first byte), header section, whole request,
  writing the response;
* AWS-shaped JSON errors (``{"__type": ..., "message": ...}``): malformed HTTP gets
  its 4xx/5xx and the connection is closed; a handler that raises gets a 500 and the
  server keeps serving.

Pressure never refuses a newcomer while someone is merely waiting: at the connection
cap (or out of file descriptors, or over the buffered-bytes budget) the connection
that has waited longest for request bytes is closed (idle: quietly; in the middle of
a request: with a 503). A connection whose request is being handled is never chosen.
A well-behaved client sends its request as soon as it connects and retries on a
closed idle connection, so it keeps being answered while idle or slow peers churn.

Logging: one DEBUG line per refused or dropped connection; WARNINGs about pressure
and tracebacks of handler failures are rate-limited (:class:`LogThrottle`).

The values it deals in (limits, requests, responses, errors) are in :mod:`.httptypes`;
what is left is :class:`HttpServer`, one accept loop and one per-connection state
machine sharing the limits and the eviction policy, which is why it runs past the
house's ~450 lines: cut in two, each half would need the other's internals.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import enum
import errno
import logging
import socket
import time
from typing import Any

import h11

from .httptypes import (
    Handler,
    HttpError,
    HttpLimits,
    HttpRequest,
    HttpResponse,
    LogThrottle,
    error_response,
    reason_phrase,
    render_raw,
)

__all__ = [
    "HttpError",
    "HttpLimits",
    "HttpRequest",
    "HttpResponse",
    "HttpServer",
    "LogThrottle",
]

logger = logging.getLogger(__name__)

#: accept() errors that mean "out of resources": free some and retry.
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: How many bytes one read takes from a socket.
_READ_SIZE = 64 * 1024
#: After an error response, how long (and how much of) the rest of the request is read
#: and dropped, so that the peer reads the response instead of a reset.
_LINGER = 2.0
_LINGER_BYTES = 64 * 1024 * 1024
#: Refused connections answered politely at once (the rest get a bare 503 and a close).
_MAX_REFUSING = 32


class _Phase(enum.Enum):
    #: Waiting for the first byte of a request.
    IDLE = "idle"
    #: Part of a request has arrived.
    READING = "reading"
    #: The handler has the request: never evicted.
    HANDLING = "handling"
    #: Handing the response to the peer.
    WRITING = "writing"


_TOO_BUSY = HttpError(503, "The server is too busy: too many connections or pending requests.")


class _Evicted(Exception):
    """The connection being served was itself chosen to make room."""


class _Connection:
    """One client connection: its h11 state, phase, and the task serving it."""

    __slots__ = ("buffered", "evicted", "h11", "peer", "phase", "since", "sock", "task", "writer")

    def __init__(self, sock: socket.socket, peer: tuple[str, int] | None, limits: HttpLimits):
        self.sock = sock
        self.peer = peer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
        self.writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None
        self.phase = _Phase.IDLE
        self.since = time.monotonic()
        self.buffered = 0
        #: Why the server closed it (eviction), or None.
        self.evicted: str | None = None

    def enter(self, phase: _Phase) -> None:
        self.phase = phase
        self.since = time.monotonic()


class HttpServer:
    """Serves ``handler`` on one TCP port. Use :meth:`start` then :meth:`close`."""

    def __init__(self, handler: Handler, limits: HttpLimits | None = None) -> None:
        self._handler = handler
        self.limits = limits or HttpLimits()
        self._sockets: list[socket.socket] = []
        self._acceptors: list[asyncio.Task[None]] = []
        self._connections: dict[_Connection, None] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._refusing: set[asyncio.Task[None]] = set()
        self._buffered = 0
        self._cap = self.limits.max_connections
        self._throttle = LogThrottle(logger)
        #: Connections closed to make room (cap, descriptors, buffered bytes).
        self.evictions = 0
        self.host = ""
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        self._cap = self.limits.connection_cap()
        try:
            for family, kind, proto, _, address in dict.fromkeys(infos):
                if self._sockets and port == 0:  # the other families on the same port
                    address = (address[0], self.port, *address[2:])
                sock = socket.socket(family, kind, proto)
                self._sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    sock.bind(address)
                except OSError:
                    if len(self._sockets) == 1 or port != 0:
                        raise
                    self._sockets.pop().close()  # that port is taken there: serve the others
                    continue
                sock.listen(self.limits.backlog)
                sock.setblocking(False)
                if len(self._sockets) == 1:
                    sockname = sock.getsockname()
                    self.host, self.port = str(sockname[0]), int(sockname[1])
        except BaseException:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()
            raise
        self._acceptors = [
            loop.create_task(self._accept_loop(sock), name=f"http accept {self.port}")
            for sock in self._sockets
        ]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def connections(self) -> int:
        """Connections open now."""
        return len(self._connections)

    async def close(self) -> None:
        """Stop listening and close every connection."""
        for task in self._acceptors:
            task.cancel()
        await asyncio.gather(*self._acceptors, return_exceptions=True)
        self._acceptors.clear()
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
        tasks = [*self._tasks, *self._refusing]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- accepting --------------------------------------------------------------------

    async def _accept_loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        accepted = 0
        while True:
            try:
                sock, address = await loop.sock_accept(listener)
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRNOS:
                    self._warn_pressure(f"accept failed ({exc.strerror})")
                    if not self._evict_one("out of file descriptors"):
                        await asyncio.sleep(0.1)
                    await asyncio.sleep(0)  # let the evicted connection close its socket
                elif exc.errno not in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR):
                    self._throttle.log(logging.WARNING, "accept", "accept failed: %s", exc)
                    await asyncio.sleep(0.1)
                continue
            accepted += 1
            if accepted % 16 == 0:
                await asyncio.sleep(0)  # a flood of connections must not starve the rest
            self._admit(sock, address)

    def _admit(self, sock: socket.socket, address: Any) -> None:
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if len(self._connections) >= self._cap and not self._evict_one("connection cap"):
            self._warn_pressure(f"{len(self._connections)} requests in progress")
            self._refuse(sock)
            return
        peer = (str(address[0]), int(address[1])) if isinstance(address, tuple) else None
        conn = _Connection(sock, peer, self.limits)
        self._connections[conn] = None
        task = asyncio.get_running_loop().create_task(self._serve(conn))
        conn.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _refuse(self, sock: socket.socket) -> None:
        """503 to a connection there is no room for; its request is read first (briefly),
        so that the peer gets the answer instead of a reset."""
        if len(self._refusing) >= _MAX_REFUSING:
            with contextlib.suppress(OSError):
                sock.send(render_raw(error_response(_TOO_BUSY)))
            sock.close()
            return
        task = asyncio.get_running_loop().create_task(self._refuse_politely(sock))
        self._refusing.add(task)
        task.add_done_callback(self._refusing.discard)

    async def _refuse_politely(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_LINGER / 4):
                    await loop.sock_recv(sock, _READ_SIZE)
            await loop.sock_sendall(sock, render_raw(error_response(_TOO_BUSY)))
            sock.shutdown(socket.SHUT_WR)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_LINGER / 4):
                    while await loop.sock_recv(sock, _READ_SIZE):
                        pass
        except OSError:
            pass
        finally:
            sock.close()

    # -- pressure ---------------------------------------------------------------------

    def _warn_pressure(self, what: str) -> None:
        self._throttle.log(
            logging.WARNING,
            "pressure",
            "HTTP server under pressure (%s; cap %d connections, %d open): closing the "
            "connections that wait longest for request bytes",
            what,
            self._cap,
            len(self._connections),
        )

    def _evict_one(self, reason: str, reading_only: bool = False) -> bool:
        """Close the connection that has waited longest for request bytes; False if none."""
        oldest: _Connection | None = None
        for conn in self._connections:
            if conn.phase is _Phase.HANDLING or conn.evicted is not None:
                continue
            if reading_only and conn.phase is not _Phase.READING:
                continue
            if oldest is None or conn.since < oldest.since:
                oldest = conn
        if oldest is None:
            return False
        self._warn_pressure(reason)
        self._evict(oldest, reason)
        return True

    def _evict(self, conn: _Connection, reason: str) -> None:
        conn.evicted = reason
        self.evictions += 1
        self._forget(conn)
        logger.debug("closing %s connection from %s: %s", conn.phase.value, conn.peer, reason)
        if conn.task is not None and conn.task is not asyncio.current_task():
            conn.task.cancel()  # else the caller raises _Evicted

    def _forget(self, conn: _Connection) -> None:
        self._connections.pop(conn, None)
        self._buffered -= conn.buffered
        conn.buffered = 0

    # -- serving a connection -----------------------------------------------------------

    async def _serve(self, conn: _Connection) -> None:
        task = asyncio.current_task()
        try:
            reader, writer = await asyncio.open_connection(sock=conn.sock, limit=_READ_SIZE)
            conn.writer = writer
            await self._serve_requests(conn, reader, writer)
        except asyncio.CancelledError:
            if conn.evicted is None or task is None:
                raise
            task.uncancel()  # our own eviction: close below, quietly
        except _Evicted:
            pass
        except (ConnectionError, TimeoutError, OSError) as exc:
            logger.debug("connection from %s ended: %r", conn.peer, exc)
        except Exception:
            self._throttle.log(
                logging.ERROR,
                "connection",
                "HTTP connection from %s failed",
                conn.peer,
                exc_info=True,
            )
        finally:
            self._forget(conn)
            self._finish(conn)

    def _finish(self, conn: _Connection) -> None:
        """Close the connection's socket; a 503 first if it was evicted mid-request."""
        writer = conn.writer
        if writer is None:
            conn.sock.close()
            return
        transport = writer.transport
        if conn.evicted is not None and conn.phase is _Phase.WRITING:
            transport.abort()
            return
        if conn.evicted is not None and conn.phase is _Phase.READING:
            self._send_error(conn, _TOO_BUSY)
        transport.close()
        if transport.get_write_buffer_size():
            # A peer that does not read must not keep the socket open for ever.
            asyncio.get_running_loop().call_later(self.limits.write_timeout, transport.abort)

    async def _serve_requests(
        self, conn: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            try:
                request = await self._receive(conn, reader, writer)
            except HttpError as exc:
                logger.debug("refused a request from %s: %d %s", conn.peer, exc.status, exc)
                self._send_error(conn, exc)
                await self._linger(conn, reader, writer)
                return
            if request is None:
                return
            conn.enter(_Phase.HANDLING)
            response = await self._call_handler(request)
            self._forget_body(conn)
            conn.enter(_Phase.WRITING)
            data = self._render(conn, request, response)
            writer.write(data)
            try:
                async with asyncio.timeout(self.limits.write_timeout):
                    await writer.drain()
            except TimeoutError:
                logger.debug("%s does not read its response: connection cut", conn.peer)
                writer.transport.abort()
                return
            if conn.h11.our_state is h11.MUST_CLOSE or conn.h11.their_state is h11.MUST_CLOSE:
                return
            conn.h11.start_next_cycle()

    async def _linger(
        self, conn: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Stop sending; read and drop what the peer still sends, briefly."""
        self._forget_body(conn)
        conn.enter(_Phase.WRITING)
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            if writer.can_write_eof():
                writer.write_eof()
            async with asyncio.timeout(_LINGER):
                dropped = 0
                while dropped <= _LINGER_BYTES:
                    chunk = await reader.read(_READ_SIZE)
                    if not chunk:
                        break
                    dropped += len(chunk)

    def _forget_body(self, conn: _Connection) -> None:
        self._buffered -= conn.buffered
        conn.buffered = 0

    async def _read(self, reader: asyncio.StreamReader, deadline: float, what: str) -> bytes:
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                return await reader.read(_READ_SIZE)
        except TimeoutError:
            raise HttpError(408, f"Timed out reading the {what}.") from None

    async def _receive(
        self, conn: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> HttpRequest | None:
        """The next whole request, or None when the peer is done (or idle too long)."""
        limits = self.limits
        machine = conn.h11
        started: float | None = None
        if machine.trailing_data[0]:  # pipelined: its first bytes are here already
            conn.enter(_Phase.READING)
            started = conn.since
        else:
            conn.enter(_Phase.IDLE)
        request: h11.Request | None = None
        body: list[bytes] = []
        size = 0
        while True:
            try:
                event = machine.next_event()
            except h11.RemoteProtocolError as exc:
                raise HttpError(exc.error_status_hint, f"Malformed request: {exc}.") from None
            if event is h11.NEED_DATA:
                if started is None:
                    try:
                        data = await self._read(reader, conn.since + limits.idle_timeout, "")
                    except HttpError:
                        logger.debug("closing idle connection from %s", conn.peer)
                        return None
                    if data:
                        conn.enter(_Phase.READING)
                        started = conn.since
                elif request is None:
                    data = await self._read(
                        reader, started + limits.header_timeout, "request headers"
                    )
                else:
                    data = await self._read(reader, started + limits.request_timeout, "request")
                if not data and request is not None:
                    raise HttpError(400, "Incomplete request: the connection closed in the body.")
                if not data and started is not None:
                    raise HttpError(400, "Incomplete request: the connection closed in the header.")
                machine.receive_data(data)
            elif isinstance(event, h11.Request):
                request = event
                self._check_head(event)
                if machine.client_is_waiting_for_100_continue:
                    writer.write(
                        machine.send(
                            h11.InformationalResponse(
                                status_code=100, headers=[], reason=b"Continue"
                            )
                        )
                    )
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > limits.max_body:
                    raise HttpError(413, f"Request body larger than {limits.max_body} bytes.")
                body.append(event.data)
                conn.buffered += len(event.data)
                self._buffered += len(event.data)
                while self._buffered > limits.max_buffered:
                    if not self._evict_one("request bytes buffered", reading_only=True):
                        break
                    if conn.evicted is not None:  # this one waited longest
                        raise _Evicted
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                return HttpRequest(
                    request.method.decode("ascii"),
                    request.target.decode("ascii"),
                    "HTTP/" + request.http_version.decode("ascii"),
                    tuple(
                        (name.decode("latin-1"), value.decode("latin-1"))
                        for name, value in request.headers.raw_items()
                    ),
                    b"".join(body),
                    conn.peer,
                )
            else:  # ConnectionClosed (or PAUSED, which start_next_cycle prevents)
                return None

    def _check_head(self, request: h11.Request) -> None:
        """Our limits and rules on what h11 accepted."""
        limits = self.limits
        if request.http_version not in (b"1.0", b"1.1"):
            version = request.http_version.decode("ascii", "replace")
            raise HttpError(505, f"HTTP version {version} is not supported.")
        raw = request.headers.raw_items()
        if len(raw) > limits.max_headers:
            raise HttpError(431, "Too many request headers.")
        size = len(request.method) + len(request.target) + 12
        size += sum(len(name) + len(value) + 4 for name, value in raw)
        if size > limits.max_header_bytes:
            raise HttpError(431, "Request header section too large.")
        if len(request.target) > limits.max_request_line:
            raise HttpError(414, "Request target too long.")
        if not request.target.startswith(b"/"):
            raise HttpError(400, "Malformed request target.")
        names = {name for name, _ in request.headers}
        if b"transfer-encoding" in names and b"content-length" in names:
            raise HttpError(400, "Both Transfer-Encoding and Content-Length are present.")
        for name, value in request.headers:
            if name == b"content-length" and int(value) > limits.max_body:
                raise HttpError(413, f"Request body larger than {limits.max_body} bytes.")
            if name == b"expect" and value.lower() != b"100-continue":
                raise HttpError(417, "Unsupported Expect header.")

    async def _call_handler(self, request: HttpRequest) -> HttpResponse:
        try:
            return await self._handler(request)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._throttle.log(
                logging.ERROR,
                f"handler {request.method} {request.path[:100]}",
                "internal error handling %s %s",
                request.method,
                request.path[:100],
                exc_info=True,
            )
            return HttpResponse.json(
                500, {"__type": "InternalServerError", "message": "Internal server error."}
            )

    def _render(self, conn: _Connection, request: HttpRequest, response: HttpResponse) -> bytes:
        headers = [("Date", email.utils.formatdate(usegmt=True))]
        if response.body or response.content_type:
            headers.append(("Content-Type", response.content_type))
        headers.append(("Content-Length", str(len(response.body))))
        headers.extend(response.headers)
        machine = conn.h11
        data = machine.send(
            h11.Response(
                status_code=response.status,
                headers=headers,
                reason=reason_phrase(response.status).encode("latin-1"),
            )
        )
        if request.method != "HEAD" and response.body:
            data += machine.send(h11.Data(data=response.body))
        return data + machine.send(h11.EndOfMessage())

    def _send_error(self, conn: _Connection, error: HttpError) -> None:
        """An error response that closes the connection (h11 frames it when it can)."""
        writer = conn.writer
        if writer is None or writer.transport.is_closing():
            return
        response = error_response(error)
        machine = conn.h11
        if machine.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return  # a response is already under way: just close
        try:
            data = machine.send(
                h11.Response(
                    status_code=response.status,
                    headers=[
                        ("Date", email.utils.formatdate(usegmt=True)),
                        ("Content-Type", response.content_type),
                        ("Content-Length", str(len(response.body))),
                        ("Connection", "close"),
                    ],
                    reason=reason_phrase(response.status).encode("latin-1"),
                )
            )
            data += machine.send(h11.Data(data=response.body)) + machine.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            data = render_raw(response)
        writer.write(data)
