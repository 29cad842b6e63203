"""Linking local connections to the tunnel, with per-connection reports.

:class:`MuxForwarder` gives each accepted connection its own smux stream and
copies both ways, keeping each direction's end separate (half-close): the local
client's EOF becomes a FIN, the agent's FIN becomes ``write_eof`` on the local
socket, and the connection is closed once both directions are done or either
side fails. Backpressure is natural: the upstream copy awaits
``MuxStream.drain`` (pausing this socket's reads only) and the downstream copy
awaits the local ``StreamWriter.drain``.

:class:`ConnectionLog` numbers the connections of one forward and writes the
``-v`` lines: open (peer, stream) and close (bytes each way, duration).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
from collections.abc import Awaitable, Callable

from .._private_api import bound_reads
from ..exceptions import SsmshError, TunnelError
from .config import TunnelConfig
from .mux import MuxTunnel
from .stream import MuxStream

__all__ = ["ConnectionLog", "MuxForwarder", "StreamConfirm", "format_bytes", "peer_label"]

logger = logging.getLogger(__name__)

Report = Callable[[str], None]

#: Called once a connection's stream is open and before anything is copied (a SOCKS
#: server answers its client there): True to go on, False to end the connection
#: quietly (whatever the hook wrote to it is still delivered).
StreamConfirm = Callable[[MuxStream, asyncio.StreamWriter], Awaitable[bool]]

#: Write-buffer high-water mark of local sockets (asyncio's default is 64 KiB).
WRITE_HIGH_WATER = 256 * 1024


def format_bytes(count: int) -> str:
    """``1234567`` -> ``1.2 MB`` (decimal units, as transfer tools print)."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover - loop always returns


def peer_label(writer: asyncio.StreamWriter) -> str:
    """The client address of an accepted connection, for messages."""
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = str(peer[0])
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return "local client"


class ConnectionLog:
    """Numbering and ``-v`` lines for the connections of one forward."""

    def __init__(self, label: str, report: Report, verbose: bool) -> None:
        self.label = label
        self.report = report
        self.verbose = verbose
        self._numbers = itertools.count(1)
        self.active = 0
        self.total = 0

    def opened(self, peer: str, detail: str = "") -> tuple[int, float]:
        number = next(self._numbers)
        self.active += 1
        self.total += 1
        if self.verbose:
            extra = f" ({detail})" if detail else ""
            self.report(f"{self.label} #{number}: open from {peer}{extra}")
        return number, time.monotonic()

    def closed(self, number: int, started: float, sent: int, received: int, note: str = "") -> None:
        self.active -= 1
        if self.verbose:
            took = time.monotonic() - started
            extra = f" ({note})" if note else ""
            self.report(
                f"{self.label} #{number}: closed after {took:.2f} s, "
                f"sent {format_bytes(sent)}, received {format_bytes(received)}{extra}"
            )

    def problem(self, number: int, message: str) -> None:
        """A connection-level failure: always reported."""
        self.report(f"{self.label} #{number}: {message}")


def tune_socket(writer: asyncio.StreamWriter, read_size: int = 64 * 1024) -> None:
    """Larger write buffer; bounded reads; no Nagle delay for interactive protocols.

    asyncio's socket transports read up to 256 KiB per ``recv``; with the reader's
    own buffer that is ~400 KiB per connection. Reading ``read_size`` at a time
    keeps a busy connection's input buffering near 3 x ``read_size``.
    """
    transport = writer.transport
    with contextlib.suppress(Exception):
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
    bound_reads(transport, read_size)
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class MuxForwarder:
    """Connection handler of a multiplexed forward: one smux stream per connection."""

    def __init__(
        self,
        tunnel: MuxTunnel,
        log: ConnectionLog,
        *,
        remote_label: str,
        config: TunnelConfig | None = None,
        confirm: StreamConfirm | None = None,
    ) -> None:
        self.tunnel = tunnel
        self.log = log
        self.remote_label = remote_label
        self.config = config or tunnel.config
        self.confirm = confirm
        self._writers: set[asyncio.StreamWriter] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one accepted connection until both directions are done."""
        tune_socket(writer, self.config.read_size)
        try:
            stream = self.tunnel.open_stream()
        except Exception as exc:
            self.log.report(f"{self.log.label}: cannot open a stream: {exc}")
            writer.transport.abort()
            return
        number, started = self.log.opened(peer_label(writer), f"stream {stream.id}")
        self._writers.add(writer)
        note = ""
        graceful = False  # close (delivering what was written) even though there is a note

        def refused() -> None:
            self.log.problem(
                number, f"the agent could not connect to {self.remote_label} (connection refused)"
            )
            writer.transport.abort()

        try:
            if self.confirm is not None and not await self._confirmed(stream, writer):
                graceful = True
                note = "refused" if stream.refused else "not confirmed"
                if stream.refused:
                    self.log.problem(
                        number,
                        f"the agent could not connect to {self.remote_label} (connection refused)",
                    )
            else:
                stream.on_refused = refused
                note = await self._pipe(reader, writer, stream)
        finally:
            self._writers.discard(writer)
            stream.close()
            if note and not graceful:
                writer.transport.abort()
            else:
                writer.close()
            self.log.closed(number, started, stream.bytes_sent, stream.bytes_received, note)

    async def _confirmed(self, stream: MuxStream, writer: asyncio.StreamWriter) -> bool:
        assert self.confirm is not None
        try:
            return await self.confirm(stream, writer)
        except (OSError, SsmshError) as exc:
            logger.debug("stream %d not confirmed: %s", stream.id, exc)
            return False

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream: MuxStream
    ) -> str:
        """Copy both ways; returns "" on a clean end, else a note on what went wrong."""
        read_size = self.config.read_size

        async def upstream() -> None:
            while True:
                data = await reader.read(read_size)
                if not data:
                    break
                stream.write(data)
                await stream.drain()
            stream.write_eof()

        transport = writer.transport
        high_water = transport.get_write_buffer_limits()[1]

        def sink(data: bytes) -> bool:
            """Write what arrives at once while the local socket keeps up."""
            if transport.is_closing() or transport.get_write_buffer_size() > high_water:
                return False
            transport.write(data)
            return True

        async def downstream() -> None:
            try:
                while True:
                    stream.set_sink(sink)
                    data = await stream.read()  # the sink is full, or the stream ended
                    if not data:
                        break
                    writer.write(data)
                    await writer.drain()
            finally:
                stream.set_sink(None)
            if stream.refused:
                return
            if writer.can_write_eof() and not writer.transport.is_closing():
                with contextlib.suppress(OSError):
                    writer.write_eof()

        up = asyncio.create_task(upstream())
        down = asyncio.create_task(downstream())
        try:
            pending: set[asyncio.Task[None]] = {up, down}
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    exc = TunnelError("stopped") if task.cancelled() else task.exception()
                    if exc is not None:
                        for other in pending:
                            other.cancel()
                        await asyncio.gather(*pending, return_exceptions=True)
                        if stream.refused:
                            return "refused"
                        return _describe(exc)
            return "refused" if stream.refused else ""
        except asyncio.CancelledError:
            up.cancel()
            down.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
            raise

    def abort_all(self) -> None:
        """Drop every local connection (the session is over)."""
        for writer in list(self._writers):
            writer.transport.abort()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionResetError):
        return "reset by the local client"
    if isinstance(exc, (BrokenPipeError, ConnectionAbortedError)):
        return "local client went away"
    text = str(exc) or type(exc).__name__
    return text
