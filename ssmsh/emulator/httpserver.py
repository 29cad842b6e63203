"""A minimal asyncio HTTP/1.1 server for the emulator's JSON API.

Enough of HTTP/1.1 for AWS SDKs and curl: Content-Length and chunked request bodies,
``Expect: 100-continue``, keep-alive, and limits on the request line, headers and
body. Malformed requests get a clear 4xx with a JSON body and the connection is
closed; a handler that raises gets a 500 and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import http
import json
import logging
import re
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

__all__ = ["HttpError", "HttpLimits", "HttpRequest", "HttpResponse", "HttpServer"]

logger = logging.getLogger(__name__)

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VERSION = re.compile(r"^HTTP/1\.[01]$")


@dataclasses.dataclass(frozen=True, slots=True)
class HttpLimits:
    """Size and time limits; the defaults are generous for API calls."""

    max_request_line: int = 8 * 1024
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    max_body: int = 1024 * 1024
    #: Seconds to receive a whole request once its first byte arrived.
    request_timeout: float = 30.0
    #: Seconds an idle keep-alive connection stays open.
    keepalive_timeout: float = 60.0


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


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _error_response(error: HttpError) -> HttpResponse:
    code = _reason(error.status).replace(" ", "").replace("-", "")
    return HttpResponse.json(error.status, {"__type": code, "message": error.message})


class HttpServer:
    """Serves ``handler`` on one TCP port. Use :meth:`start` then :meth:`close`."""

    def __init__(self, handler: Handler, limits: HttpLimits | None = None) -> None:
        self._handler = handler
        self.limits = limits or HttpLimits()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.host = ""
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = await asyncio.start_server(
            self._accept,
            host,
            port,
            limit=self.limits.max_header_bytes,
        )
        sockname = self._server.sockets[0].getsockname()
        self.host, self.port = sockname[0], sockname[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._connections):
            writer.close()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    # -- connection loop ------------------------------------------------------------

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Our own task (not asyncio's callback wrapper), so close() may cancel it quietly.
        task = asyncio.get_running_loop().create_task(self._serve_connection(reader, writer))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._connections.add(writer)
        peername = writer.get_extra_info("peername")
        peer = (str(peername[0]), int(peername[1])) if isinstance(peername, tuple) else None
        try:
            while True:
                try:
                    async with asyncio.timeout(self.limits.keepalive_timeout):
                        first = await reader.read(1)
                except TimeoutError:
                    break
                if not first:
                    break
                try:
                    async with asyncio.timeout(self.limits.request_timeout):
                        request = await self._read_request(first, reader, writer, peer)
                except HttpError as exc:
                    await self._write(writer, _error_response(exc), keep_alive=False, head=False)
                    break
                except TimeoutError:
                    error = HttpError(408, "Timed out reading the request.")
                    await self._write(writer, _error_response(error), keep_alive=False, head=False)
                    break
                response = await self._call_handler(request)
                keep_alive = self._keep_alive(request)
                await self._write(writer, response, keep_alive, head=request.method == "HEAD")
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _call_handler(self, request: HttpRequest) -> HttpResponse:
        try:
            return await self._handler(request)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("internal error handling %s %s", request.method, request.path)
            return HttpResponse.json(
                500, {"__type": "InternalServerError", "message": "Internal server error."}
            )

    @staticmethod
    def _keep_alive(request: HttpRequest) -> bool:
        connection = (request.header("connection") or "").lower()
        tokens = {t.strip() for t in connection.split(",")}
        if request.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens

    async def _write(
        self, writer: asyncio.StreamWriter, response: HttpResponse, keep_alive: bool, head: bool
    ) -> None:
        lines = [f"HTTP/1.1 {response.status} {_reason(response.status)}"]
        lines.append(f"Date: {email.utils.formatdate(usegmt=True)}")
        if response.body or response.content_type:
            lines.append(f"Content-Type: {response.content_type}")
        lines.append(f"Content-Length: {len(response.body)}")
        lines.extend(f"{name}: {value}" for name, value in response.headers)
        lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        writer.write(data if head else data + response.body)
        await writer.drain()

    # -- parsing --------------------------------------------------------------------

    async def _read_request(
        self,
        first: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: tuple[str, int] | None,
    ) -> HttpRequest:
        limits = self.limits
        try:
            head = first + await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise HttpError(431, "Request header section too large.") from None
        except asyncio.IncompleteReadError:
            raise HttpError(400, "Incomplete request: connection closed in the header.") from None
        if len(head) > limits.max_header_bytes:
            raise HttpError(431, "Request header section too large.")
        try:
            text = head[:-4].decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes everything
            raise HttpError(400, "Undecodable request header.") from None
        request_line, *header_lines = text.split("\r\n")
        if len(request_line) > limits.max_request_line:
            raise HttpError(414, "Request line too long.")
        parts = request_line.split(" ")
        if len(parts) != 3:
            raise HttpError(400, "Malformed request line.")
        method, target, version = parts
        if not _TOKEN.match(method):
            raise HttpError(400, "Malformed request method.")
        if not _VERSION.match(version):
            if version.startswith("HTTP/"):
                raise HttpError(505, f"HTTP version {version[5:]} is not supported.")
            raise HttpError(400, "Malformed request line.")
        if not target.startswith("/") or any(ord(c) <= 32 or ord(c) == 127 for c in target):
            raise HttpError(400, "Malformed request target.")
        if len(header_lines) > limits.max_headers:
            raise HttpError(431, "Too many request headers.")
        headers: list[tuple[str, str]] = []
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep or not _TOKEN.match(name):
                raise HttpError(400, "Malformed header line.")
            if any(ord(c) < 32 and c != "\t" for c in value):
                raise HttpError(400, f"Invalid characters in header {name}.")
            headers.append((name, value.strip(" \t")))
        lowered: dict[str, list[str]] = {}
        for name, value in headers:
            lowered.setdefault(name.lower(), []).append(value)
        if version == "HTTP/1.1" and "host" not in lowered:
            raise HttpError(400, "Missing Host header.")
        body = await self._read_body(lowered, reader, writer, version)
        return HttpRequest(method, target, version, tuple(headers), body, peer)

    async def _read_body(
        self,
        headers: dict[str, list[str]],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        version: str,
    ) -> bytes:
        limits = self.limits
        transfer = headers.get("transfer-encoding")
        lengths = headers.get("content-length")
        if transfer is not None and lengths is not None:
            raise HttpError(400, "Both Transfer-Encoding and Content-Length are present.")
        length = 0
        if lengths is not None:
            values = {v.strip() for value in lengths for v in value.split(",")}
            if len(values) != 1 or not next(iter(values)).isdigit():
                raise HttpError(400, "Invalid Content-Length.")
            length = int(next(iter(values)))
            if length > limits.max_body:
                raise HttpError(413, f"Request body larger than {limits.max_body} bytes.")
        elif transfer is not None:
            codings = [c.strip().lower() for value in transfer for c in value.split(",")]
            if codings != ["chunked"]:
                raise HttpError(501, f"Unsupported Transfer-Encoding {', '.join(codings)}.")
        expect = headers.get("expect")
        if expect is not None:
            if [e.lower() for e in expect] != ["100-continue"]:
                raise HttpError(417, "Unsupported Expect header.")
            if version == "HTTP/1.1":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                await writer.drain()
        if transfer is not None:
            return await self._read_chunked(reader)
        if length == 0:
            return b""
        try:
            return await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            raise HttpError(400, "Incomplete request body.") from None

    async def _read_chunked(self, reader: asyncio.StreamReader) -> bytes:
        body = bytearray()
        while True:
            try:
                size_line = await reader.readuntil(b"\r\n")
            except (asyncio.LimitOverrunError, asyncio.IncompleteReadError):
                raise HttpError(400, "Malformed chunked body.") from None
            size_text = size_line[:-2].split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise HttpError(400, "Malformed chunk size.") from None
            if size < 0 or len(body) + size > self.limits.max_body:
                raise HttpError(413, f"Request body larger than {self.limits.max_body} bytes.")
            try:
                if size == 0:
                    # Trailer section: lines until an empty one.
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":
                        pass
                    return bytes(body)
                body += await reader.readexactly(size)
                if await reader.readexactly(2) != b"\r\n":
                    raise HttpError(400, "Malformed chunked body.")
            except (asyncio.LimitOverrunError, asyncio.IncompleteReadError):
                raise HttpError(400, "Malformed chunked body.") from None
