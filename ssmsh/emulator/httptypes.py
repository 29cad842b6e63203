"""The values the emulator's HTTP server deals in: its limits, a request, a response,
an HTTP error, and a rate limit for its log lines (:mod:`.httpserver` serves them)."""

from __future__ import annotations

import dataclasses
import http
import json
import logging
import resource
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

__all__ = [
    "Handler",
    "HttpError",
    "HttpLimits",
    "HttpRequest",
    "HttpResponse",
    "LogThrottle",
    "error_response",
    "reason_phrase",
    "render_raw",
]


@dataclasses.dataclass(frozen=True, slots=True)
class HttpLimits:
    """Size, count and time limits. The defaults suit SDK clients on a shared machine.

    The largest SSM request is a CreateDocument / UpdateDocument with 64 KB of content
    (escaped in JSON); AWS's own request limits are well under ``max_body``.
    """

    #: Request line and headers together (h11's ``max_incomplete_event_size`` too); 431.
    max_header_bytes: int = 64 * 1024
    #: Header fields in one request; 431.
    max_headers: int = 100
    #: Length of the request target (path and query); 414.
    max_request_line: int = 8 * 1024
    #: One request's body; 413.
    max_body: int = 1024 * 1024
    #: Request body bytes held across all connections at once; over it, the connection
    #: that has been sending its request longest is closed with a 503.
    max_buffered: int = 32 * 1024 * 1024
    #: Concurrent connections; also at most a quarter of the open-file limit.
    max_connections: int = 256
    #: Seconds a connection may wait for the first byte of a request (new or keep-alive).
    idle_timeout: float = 20.0
    #: Seconds from a request's first byte to the end of its header section; 408.
    header_timeout: float = 10.0
    #: Seconds from a request's first byte to the end of its body; 408.
    request_timeout: float = 30.0
    #: Seconds to hand a response to a peer that does not read; then the connection is cut.
    write_timeout: float = 10.0
    #: Pending connections the kernel queues before accept.
    backlog: int = 1024

    def connection_cap(self) -> int:
        """``max_connections``, lowered to a quarter of the soft RLIMIT_NOFILE."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY or soft <= 0:
            return self.max_connections
        return min(self.max_connections, max(8, soft // 4))


@dataclasses.dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    #: The request target as sent: path and query.
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    #: (host, port) of the client.
    peer: tuple[str, int] | None = None

    def header(self, name: str) -> str | None:
        """The first value of a header (case-insensitive), or None."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> str:
        return urlsplit(self.target).query


@dataclasses.dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json"

    @classmethod
    def json(
        cls,
        status: int,
        payload: object,
        content_type: str = "application/json",
        headers: tuple[tuple[str, str], ...] = (),
    ) -> HttpResponse:
        body = json.dumps(payload, separators=(",", ":")).encode()
        return cls(status, body, headers, content_type)


class HttpError(Exception):
    """A request the server cannot accept at the HTTP level."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class LogThrottle:
    """At most one record per key and ``interval``; the rest are counted, then reported."""

    def __init__(self, log: logging.Logger, interval: float = 10.0) -> None:
        self._log = log
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(
        self, level: int, key: str, message: str, *args: object, exc_info: bool = False
    ) -> bool:
        """Log unless ``key`` was logged less than ``interval`` ago; True if logged."""
        if not self._log.isEnabledFor(level):
            return False
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        if len(self._last) > 1000:  # keys are ours, but stay bounded whatever they are
            self._last.clear()
            self._suppressed.clear()
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message += f" (and {suppressed} more like it in the last {self.interval:.0f} s)"
        self._log.log(level, message, *args, exc_info=exc_info)
        return True


def reason_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def error_response(error: HttpError) -> HttpResponse:
    code = reason_phrase(error.status).replace(" ", "").replace("-", "")
    return HttpResponse.json(error.status, {"__type": code, "message": error.message})


def render_raw(response: HttpResponse) -> bytes:
    """A closing response without h11, for a socket h11 never saw."""
    head = (
        f"HTTP/1.1 {response.status} {reason_phrase(response.status)}\r\n"
        f"Content-Type: {response.content_type}\r\n"
        f"Content-Length: {len(response.body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + response.body
