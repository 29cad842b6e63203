"""NonInteractiveCommands sessions (AWS-StartNonInteractiveCommand).

As in the official agent the command line is split like a shell would
(``shlex``) and executed directly, without a shell and without a pty; stdin is
empty. Client input is only scanned for Ctrl-C (0x03, SIGINT) and Ctrl-\\ (0x1C,
SIGQUIT), which are delivered to the command; Size messages are ignored.

Merged (the default), the output is sent once the command has ended, as the official
agent does (it writes both streams to a file and sends it after the process exits):
``ssmsh exec`` shows nothing of a long command until it is over.

Stopping (TerminateSession, timeouts) SIGKILLs the process the agent started, not its
children, as the official agent does.

Output separation: only when the document asks for it (``separateOutputStream``;
AWS-StartNonInteractiveCommand does not), stdout goes out as Output (1), stderr as
StdErr (11), and the exit status last as ExitCode (12), ``EXIT_CODE: n``
(``protocol/traces/noninteractive-separate-exit-5``). Otherwise both streams go out
merged as Output, with no exit code (``noninteractive-default-exit-5``).

The output pipes are our own (not asyncio's ``PIPE``), so that stopping can
close them even when the command's output is backed up and they will never
reach end of file by themselves.
As in the official agent the client's version does not change this: an old client
(ClientVersion <= 1.2.295) only gets an upgrade notice in HandshakeComplete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
from collections.abc import Mapping
from typing import Any

from ...protocol.constants import PayloadType
from ...protocol.payloads import encode_exit_code
from .plugin import Plugin, PluginHost, split_utf8_tail
from .shell import default_signals, program_env

__all__ = ["CommandPlugin", "document_properties", "separate_output_requested"]

logger = logging.getLogger(__name__)

_SIGNAL_BYTES = {0x03: signal.SIGINT, 0x1C: signal.SIGQUIT}
#: Merged output: how long the pipe may stay quiet, once the process ended, before the
#: output counts as complete (a background job may hold the pipe open for ever).
_SETTLE = 0.05
_KILL_WAIT = 1.0
_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0", ""}


def separate_output_requested(properties: Mapping[str, Any] | None) -> bool:
    """The document's ``separateOutputStream``, under ``linux`` (or at the top level).

    Off when absent, as in the official agent: the AWS-owned
    AWS-StartNonInteractiveCommand does not set it, and then stdout and stderr go out
    merged as Output with no ExitCode (``protocol/traces/noninteractive-default-exit-5``).
    The agent reads it as a boolean string ("true", "false"); anything else fails the
    session there, and is taken as off here, with a warning.
    """
    if not properties:
        return False
    value: Any = None
    for platform in ("linux", "macos"):
        section = properties.get(platform)
        if isinstance(section, Mapping) and section.get("separateOutputStream") is not None:
            value = section.get("separateOutputStream")
            break
    if value is None:
        value = properties.get("separateOutputStream")
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text not in _FALSE:
        logger.warning("unrecognised separateOutputStream value %r; not separating", value)
    return False


def document_properties(session: Any) -> Mapping[str, Any] | None:
    """The session document's ``properties`` (what the agent reads its settings from)."""
    props: Mapping[str, Any] | None = getattr(session, "document_properties", None)
    return props if props else session.properties


class CommandPlugin(Plugin):
    """Run one command; stream its output; report its exit status."""

    requires_handshake = True

    def __init__(self, host: PluginHost, command: str) -> None:
        super().__init__(host)
        self.command = command
        self._proc: asyncio.subprocess.Process | None = None
        self._pipes: list[_OutputPipe] = []

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def separate(self) -> bool:
        return separate_output_requested(document_properties(self.host.session))

    async def start(self) -> None:
        host = self.host
        try:
            argv = shlex.split(self.command)
        except ValueError as exc:
            self._fail_start(f"Failed to parse commands input: {exc}\n")
            return
        if not argv:
            host.finish("Commands cannot be empty for session type NonInteractiveCommands")
            return
        separate = self.separate
        stdout = await _OutputPipe.open()
        self._pipes.append(stdout)
        stderr: _OutputPipe | None = None
        if separate:
            stderr = await _OutputPipe.open()
            self._pipes.append(stderr)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stdout.child_fd,
                stderr=stderr.child_fd if stderr else asyncio.subprocess.STDOUT,
                env=program_env(self.host.environment),
                start_new_session=True,
                preexec_fn=default_signals(),
            )
        except OSError as exc:
            await self._close_pipes()
            if separate:
                host.send(PayloadType.EXIT_CODE, encode_exit_code(1))
            self._fail_start(f"Error occurred starting the command: {exc}\n")
            return
        finally:
            for pipe in self._pipes:
                pipe.close_child_end()  # the command has its copies
        self.spawn(self._run(self._proc, stdout, stderr), f"command {host.session.session_id}")

    def _fail_start(self, message: str) -> None:
        self.host.send(PayloadType.STDERR, message.encode())
        self.host.finish("")

    async def _run(
        self, proc: asyncio.subprocess.Process, stdout: _OutputPipe, stderr: _OutputPipe | None
    ) -> None:
        if stderr is None:
            # Merged: the official agent writes both streams to a file, waits for the
            # process to end, then sends the file (processCommandsWithExec): nothing
            # streams, and a background job's later output is not waited for. The pipe
            # is drained as the command writes, as into that file: a pipe left unread
            # fills up (64 KiB) and blocks the command for ever.
            kept = bytearray()
            collecting = asyncio.ensure_future(_collect(stdout.reader, kept))
            await proc.wait()
            # What is there once the process ended, not what a background job writes later.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_SETTLE):
                    await asyncio.shield(collecting)
            collecting.cancel()
            await self._send_all(bytes(kept), PayloadType.OUTPUT)
            self.host.finish("")
            return
        pumps = [self._pump(stdout.reader, PayloadType.OUTPUT)]
        pumps.append(self._pump(stderr.reader, PayloadType.STDERR))
        await asyncio.gather(*pumps)
        code = await proc.wait()
        # Go's ExitCode() is -1 for a process killed by a signal.
        self.host.send(PayloadType.EXIT_CODE, encode_exit_code(code if code >= 0 else -1))
        self.host.finish("")

    async def _pump(self, stream: asyncio.StreamReader, payload_type: int) -> None:
        """Send ``stream`` as it comes, to its end."""
        host = self.host
        chunk = host.pacing.stream_chunk
        tail = b""
        while True:
            await host.wait_writable()
            data = await stream.read(chunk - len(tail))
            if not data:
                break
            out, tail = split_utf8_tail(tail + data)
            if out:
                host.send(payload_type, out)
                await host.pacing.pause()
        if tail:
            host.send(payload_type, tail)

    async def _send_all(self, data: bytes, payload_type: int) -> None:
        """Send ``data`` as :meth:`_pump` sends a stream (a file read after the fact)."""
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        await self._pump(reader, payload_type)

    def receive(self, payload_type: int, payload: bytes) -> None:
        if payload_type != PayloadType.OUTPUT or self._proc is None:
            return
        for byte in payload:
            sig = _SIGNAL_BYTES.get(byte)
            if sig is not None:
                with contextlib.suppress(ProcessLookupError):
                    self._proc.send_signal(sig)
                return

    async def stop(self) -> None:
        await super().stop()
        proc = self._proc
        if proc is not None and proc.returncode is None:
            # As the official agent's execCmd.Kill(): SIGKILL to the process it started,
            # not to its children (a shell's foreground command outlives it there too).
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_KILL_WAIT):
                    await proc.wait()
        await self._close_pipes()

    async def _close_pipes(self) -> None:
        pipes, self._pipes = self._pipes, []
        for pipe in pipes:
            await pipe.close()


async def _collect(stream: asyncio.StreamReader, into: bytearray) -> None:
    while data := await stream.read(64 * 1024):
        into += data


class _OutputPipe:
    """A pipe for one output stream of the command: it writes, we read.

    Unlike asyncio's ``PIPE`` its reading end is ours to close: output the
    session will never send (the command was stopped while its output was backed
    up) must not keep the pipe, and a transport, open until garbage collection.
    """

    def __init__(self, child_fd: int, reader: asyncio.StreamReader) -> None:
        self.child_fd = child_fd
        self.reader = reader
        self._transport: asyncio.ReadTransport | None = None
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(cls) -> _OutputPipe:
        read_fd, write_fd = os.pipe()
        pipe = cls(write_fd, asyncio.StreamReader())
        # The transport owns the file from here on and closes it.
        read_end = open(read_fd, "rb", buffering=0)  # noqa: SIM115
        try:
            pipe._transport, _ = await asyncio.get_running_loop().connect_read_pipe(
                lambda: _ClosingProtocol(pipe.reader, pipe._closed), read_end
            )
        except BaseException:
            read_end.close()
            os.close(write_fd)
            raise
        return pipe

    def close_child_end(self) -> None:
        if self.child_fd >= 0:
            os.close(self.child_fd)
            self.child_fd = -1

    async def close(self) -> None:
        """Close our end (unread output is dropped); returns once it is closed."""
        self.close_child_end()
        if self._transport is not None:
            self._transport.close()
            await self._closed


class _ClosingProtocol(asyncio.StreamReaderProtocol):
    """A StreamReaderProtocol that says when its pipe is closed (at EOF or close())."""

    def __init__(self, reader: asyncio.StreamReader, closed: asyncio.Future[None]) -> None:
        super().__init__(reader)
        self._pipe_closed = closed

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self._pipe_closed.done():
            self._pipe_closed.set_result(None)
