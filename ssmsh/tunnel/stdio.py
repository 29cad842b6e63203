"""Standard-stream forwarding (``ssmsh proxy``): stdin -> agent -> stdout.

This is the ``AWS-StartSSHSession`` variant, meant for
``ssh -o ProxyCommand='ssmsh proxy %h %p'``: stdout carries the tunnel's bytes
and nothing else. stdin is read in large chunks with no pauses; agent output is
written to stdout as it arrives, with backpressure (a full stdout stops the
reading of the data channel, not the process).

End of input on stdin is not the end of the tunnel: the other direction stays
open until the agent closes the session (the destination closed its side), so
``printf 'GET / HTTP/1.0\\r\\n\\r\\n' | ssmsh proxy host 80`` prints the reply.
The command line ends the session on SIGINT, SIGTERM and SIGHUP (ssh sends SIGHUP
to its ProxyCommand when it exits).

:func:`open_stdio` attaches asyncio streams to file descriptors 0 and 1: pipes,
sockets and terminals through the event loop, regular files through a worker
thread. The descriptors' blocking flags are restored afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from collections.abc import Callable

from .._private_api import DrainableWriteProtocol
from ..exceptions import ChannelClosed, TunnelError
from ..protocol.session import OutputReceived
from .channel import PortChannel
from .config import TunnelConfig

__all__ = ["StdioStats", "open_stdio", "run_stdio"]

logger = logging.getLogger(__name__)


class StdioStats:
    """Bytes moved each way."""

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0
        self.stdin_eof = False


class _Input:
    """Reads from a file descriptor: through the loop, or a thread for regular files."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self.reader: asyncio.StreamReader | None = None
        self.transport: asyncio.BaseTransport | None = None

    async def open(self) -> None:
        if not _pollable(self.fd):
            return  # the loop cannot poll these; read them in a thread
        loop = asyncio.get_running_loop()
        self.reader = asyncio.StreamReader(limit=self.size * 2)
        protocol = asyncio.StreamReaderProtocol(self.reader)
        pipe = os.fdopen(self.fd, "rb", buffering=0, closefd=False)
        self.transport, _ = await loop.connect_read_pipe(lambda: protocol, pipe)

    async def read(self) -> bytes:
        if self.reader is not None:
            return await self.reader.read(self.size)
        return await asyncio.to_thread(os.read, self.fd, self.size)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _Output:
    """Writes to a file descriptor: through the loop, or a thread for regular files."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        if not _pollable(self.fd):
            return
        loop = asyncio.get_running_loop()
        pipe = os.fdopen(self.fd, "wb", buffering=0, closefd=False)
        transport, protocol = await loop.connect_write_pipe(DrainableWriteProtocol, pipe)
        self.writer = asyncio.StreamWriter(transport, protocol, None, loop)

    async def write(self, data: bytes) -> None:
        if self.writer is not None:
            self.writer.write(data)
            await self.writer.drain()
            return
        view = memoryview(data)
        while view:
            written = await asyncio.to_thread(os.write, self.fd, view)
            view = view[written:]

    async def flush(self) -> None:
        if self.writer is not None:
            await self.writer.drain()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.transport.close()


class Stdio:
    """fd 0 and fd 1 as async byte streams; restores their blocking flags on close."""

    def __init__(self, stdin_fd: int = 0, stdout_fd: int = 1, read_size: int = 64 * 1024) -> None:
        self.input = _Input(stdin_fd, read_size)
        self.output = _Output(stdout_fd)
        self._flags = {fd: _get_blocking(fd) for fd in (stdin_fd, stdout_fd)}

    async def open(self) -> None:
        await self.input.open()
        await self.output.open()

    def close(self) -> None:
        self.input.close()
        self.output.close()
        for fd, blocking in self._flags.items():
            if blocking is not None:
                with contextlib.suppress(OSError):
                    os.set_blocking(fd, blocking)


def _pollable(fd: int) -> bool:
    """Whether the event loop can wait on ``fd``: pipes, sockets and terminals.

    Regular files, block devices, directories and character devices other than
    terminals (``/dev/null``: epoll refuses it) are served by a worker thread.
    """
    mode = os.fstat(fd).st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return True
    return stat.S_ISCHR(mode) and os.isatty(fd)


def _get_blocking(fd: int) -> bool | None:
    try:
        return os.get_blocking(fd)
    except OSError:
        return None


async def open_stdio(read_size: int = 64 * 1024) -> Stdio:
    """Attach to the process's stdin and stdout."""
    stdio = Stdio(read_size=read_size)
    await stdio.open()
    return stdio


async def run_stdio(
    channel: PortChannel,
    stdio: Stdio,
    *,
    config: TunnelConfig | None = None,
    stats: StdioStats | None = None,
    on_stdin_eof: Callable[[], None] | None = None,
) -> None:
    """Forward until the agent ends the session (returns) or stdout is gone (returns).

    Raises the channel's failure (other than a normal close), and TunnelError when
    the agent ended the session with a reason (e.g. it could not connect to the port).
    """
    stats = stats or StdioStats()

    async def upstream() -> None:
        while True:
            data = await stdio.input.read()
            if not data:
                break
            stats.sent += len(data)
            await channel.send(data)
        stats.stdin_eof = True
        logger.debug("stdin closed after %d bytes", stats.sent)
        if on_stdin_eof is not None:
            on_stdin_eof()

    async def downstream() -> None:
        while True:
            try:
                event = await channel.receive()
            except ChannelClosed as exc:
                if exc.reason:
                    raise TunnelError(exc.reason) from None
                return
            if not isinstance(event, OutputReceived) or not event.data:
                continue
            payload = event.data
            stats.received += len(payload)
            try:
                await stdio.output.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                logger.debug("stdout closed")
                return

    up = asyncio.create_task(upstream())
    down = asyncio.create_task(downstream())
    try:
        await down  # the session is over when the agent is done or stdout is gone
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await stdio.output.flush()
    finally:
        up.cancel()
        await asyncio.gather(up, return_exceptions=True)
    exc = None if up.cancelled() else up.exception()
    if exc is not None and not isinstance(exc, ChannelClosed):
        raise exc
