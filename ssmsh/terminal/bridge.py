"""The terminal bridge: local stdin/stdout/stderr <-> a :class:`SessionConnection`.

* stdin is read as raw bytes and sent at once (large pastes become many
  messages without any pause); reading stops while the send window is full;
* output goes to stdout, StdErr payloads to stderr, written by a worker thread
  so a slow reader (``| less``) never blocks the event loop;
* the real size is sent right after the handshake and on every change; keys
  typed before that wait for it;
* ssh-style escapes (``~.``, ``~?``, ``~~``, ``~^Z``) right after Enter;
* stdin at EOF (a pipe or a file) does not end the session: a pty session
  (``exec -tt``, a shell with a document of the user's) is sent the terminal's
  end of input, as if typed (Ctrl-D; twice when the last line had no newline:
  the first one hands over that partial line), and the bridge waits until the
  remote is done. A terminal stdin is sent nothing: there, EOF means the
  terminal itself went away;
* with ``framed_stdin`` (piped stdin for ``exec`` and ``shell``), stdin goes in
  the frames of :mod:`ssmsh.protocol.piped_stdin` once the wrapper says it is
  ready, its end as the end frame, which also goes as soon as the command's
  trailer came (the command is over: the rest of stdin is not wanted);
* with ``waits_for_size`` (``exec -t``), the wrapper's ``ssmsh-go;…;tty`` is
  answered with the terminal size and a line, and typed keys wait for its ``run``;
* a pty session that the remote closes before its first word (a program that
  printed nothing) ends normally, not as a failure to establish it;
* an agent that skips the handshake is recognised by its first output. A pty
  program that prints nothing before it reads (``cat``) gives none, so input
  waits at most ``handshake_grace`` seconds for it, then goes out anyway.

The bridge does not close the connection; the caller does (TerminateSession).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
from collections.abc import Callable
from typing import Any

from ..channel import (
    ChannelClosedByRemote,
    ConnectionState,
    ExitCodeReceived,
    FlagReceived,
    OutputReceived,
    SessionConnection,
    StateChange,
    StderrReceived,
)
from ..exceptions import ChannelClosed, HandshakeError
from ..protocol.constants import SessionType
from ..protocol.piped_stdin import END_FRAME, MAX_FRAME, frame
from ..protocol.session import SessionEstablished
from ..protocol.status_trailer import ReadyFilter, TrailerFilter
from .escape import EscapeAction, EscapeFilter, escape_help, show_char
from .hints import Hint, Hints, clock
from .tty import Terminal, write_all, write_now

__all__ = ["BridgeResult", "TerminalBridge"]

logger = logging.getLogger(__name__)

#: Bytes read from stdin at a time.
READ_SIZE = 64 * 1024
#: What a pty session gets when stdin ends: Ctrl-D, end of input at the start of a line.
EOF_BYTES = b"\x04"
#: How long input waits for an agent that may skip the handshake to say something.
HANDSHAKE_GRACE = 2.0
#: The terminal size sent to a waiting ``exec -t`` wrapper when there is no terminal.
DEFAULT_SIZE = (80, 24)


@dataclasses.dataclass(frozen=True, slots=True)
class BridgeResult:
    """How the session ended, as far as the bridge saw it.

    ``exit_code`` is the remote status when the agent reported one.
    ``closed_output`` is the text of the remote's channel_closed (may be empty).
    ``disconnected`` is true when the user left with the escape sequence.
    """

    exit_code: int | None
    closed_by_remote: bool
    closed_output: str = ""
    disconnected: bool = False
    #: stdout was closed by its reader (``| head``): the session was abandoned.
    broken_pipe: bool = False
    #: The status the command's own trailer carried (see :mod:`ssmsh.protocol.status_trailer`);
    #: None when no trailer was expected or none came.
    trailer_status: int | None = None
    #: Whether the output was to carry such a trailer.
    trailer_expected: bool = False


class TerminalBridge:
    """Connects a :class:`Terminal` to a session until the session ends.

    :param interactive: a shell or ``exec -t``: raw mode, escapes, size updates,
        and Ctrl-D at the end of piped input.
    :param escape_char: byte value of the escape character, or None for none.
    :param status: prints one status line (the CLI's reporter); None: silent.
    :param handshake_grace: in a pty session, how long input waits for the agent's
        first word (a HandshakeRequest or output) before it is sent without a
        handshake (see :meth:`SessionConnection.skip_handshake`); None: forever.
    :param status_marker: the output carries the exit-status trailer (and the
        ``ssmsh-go`` sequences) of :mod:`ssmsh.protocol.status_trailer` with this marker.
    :param waits_for_size: (with ``status_marker``) the ``exec -t`` wrapper waits for
        the terminal size and one line before it starts the command; typed keys go
        once it says ``run``.
    :param announce: show the agent's customer message (``exec`` is quiet, as ssh).
    :param framed_stdin: (with ``status_marker``) stdin goes to the wrapper of
        :mod:`ssmsh.protocol.piped_stdin` in frames, once it is ready, and its end as
        the end frame; the trailer ends it early.
    :param hints: on a terminal, a line while the agent is slow to answer and a
        countdown while reconnecting (in place of the reminders every
        ``repeat_interval``); None: none.
    """

    def __init__(
        self,
        conn: SessionConnection,
        terminal: Terminal,
        *,
        interactive: bool = True,
        escape_char: int | None = ord("~"),
        status: Callable[[str], None] | None = None,
        send_stdin: bool = True,
        status_marker: str | None = None,
        waits_for_size: bool = False,
        framed_stdin: bool = False,
        announce: bool = True,
        notice_delay: float = 1.0,
        repeat_interval: float = 30.0,
        handshake_grace: float | None = HANDSHAKE_GRACE,
        hints: Hints | None = None,
    ) -> None:
        self.conn = conn
        self.terminal = terminal
        self.interactive = interactive
        self.escape = EscapeFilter(escape_char if interactive and terminal.stdin_is_tty else None)
        self.escape_char = escape_char
        self._status = status
        self.send_stdin = send_stdin
        #: Output carries an exit-status trailer with this marker (``ssmsh exec``).
        self._trailer = TrailerFilter(status_marker) if status_marker else None
        self.waits_for_size = waits_for_size and status_marker is not None
        self.framed_stdin = framed_stdin and status_marker is not None
        #: Show the agent's customer message (KMS: "This session is encrypted ...").
        self.announce = announce
        #: The wrapper's ``ssmsh-go`` sequences, while more are expected.
        self._ready: ReadyFilter | None = None
        if status_marker and (self.waits_for_size or self.framed_stdin):
            self._ready = ReadyFilter(status_marker)
        #: Set when the framed stdin may go (the wrapper is ready) ...
        self._stdin_go = asyncio.Event()
        #: ... and when it should stop (the command is over: the trailer came).
        self._stdin_stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._disconnect = asyncio.Event()
        self._exit_code: int | None = None
        self._outage_reported = False
        self._broken_pipe = False
        self._outage_notice: asyncio.TimerHandle | None = None
        #: Outages shorter than this (seconds) go unmentioned.
        self.notice_delay = notice_delay
        #: During a long outage, a short reminder this often (seconds).
        self.repeat_interval = repeat_interval
        self._outage_started = 0.0
        self._last_error = ""
        self.handshake_grace = handshake_grace
        self._started = self._loop.time()
        self._may_send = False
        #: Set once the terminal size went out (or none will): typed-ahead keys wait
        #: for it, so that the remote program never sees them at the default 80x24.
        self._size_sent = asyncio.Event()
        self._sent_line_end = True  # the last input byte sent ended a line (or none was sent)
        self.hints = hints if hints is not None and hints.enabled else None
        self._countdown: Hint | None = None

    def status(self, text: str) -> None:
        if self._status is not None:
            self._status(text)

    async def run(self) -> BridgeResult:
        """Run until the remote closes the session or the user disconnects.

        Raises the connection's failure (ReconnectFailed, HandshakeError, ...).
        """
        remove = self.conn.add_state_listener(self._on_state)
        give_up = self.hints.give_up if self.hints is not None else ""
        try:
            # Until the session is established, Ctrl-C stays a signal (ssmsh is
            # interrupted, 130); then it is a key like any other.
            raw = self.terminal.raw_mode(interruptible=True)
            with raw if self.interactive else contextlib.nullcontext():
                if self.hints is not None and self.terminal.raw:
                    # Ctrl-C is a key for the remote once established; the escape is
                    # the way out.
                    self.hints.give_up = self._escape_way_out()
                return await self._run()
        finally:
            remove()
            if self.hints is not None:
                self.hints.give_up = give_up
            self._end_countdown()
            if self._outage_notice is not None:
                self._outage_notice.cancel()
                self._outage_notice = None

    async def _run(self) -> BridgeResult:
        self._started = self._loop.time()
        tasks: list[asyncio.Task[None]] = []
        if self.framed_stdin:
            tasks.append(asyncio.create_task(self._pump_framed()))
        elif self.send_stdin:
            # Before the handshake: input may be what lets a silent session go ahead.
            tasks.append(asyncio.create_task(self._pump_input()))
        disconnect = asyncio.create_task(self._disconnect.wait())
        output: asyncio.Task[BridgeResult] | None = None
        try:
            try:
                established = await self._established(disconnect)
            except ChannelClosed:
                if self.conn.error is not None:
                    raise
                # The remote closed the session before its first word: a pty program
                # that printed nothing and ended (the agent skips the handshake and
                # sends no output for it). Over normally, with what closed it.
                output = asyncio.create_task(self._pump_output())
                await output
                established = None
            self.terminal.interruptible(False)
            if established is not None and established.session_type == SessionType.PORT.value:
                raise HandshakeError(
                    "the agent started a port session, not a shell "
                    "(use ssmsh forward or ssmsh proxy for port documents)"
                )
            if established is not None:
                if established.customer_message and self.announce:
                    self.status(established.customer_message)
                output = asyncio.create_task(self._pump_output())
                size = self.terminal.size()
                if self.interactive and size is not None:
                    # A quick command (exec -t -- true) may be over already: then the
                    # output side has the verdict, this is no failure.
                    with contextlib.suppress(ChannelClosed):
                        await self.conn.send_size(*size)
                if not self.waits_for_size:
                    self._size_sent.set()
                watch = (
                    self.terminal.watch_size(self._on_resize)
                    if self.interactive
                    else contextlib.nullcontext()
                )
                with watch:
                    await asyncio.wait([output, disconnect], return_when=asyncio.FIRST_COMPLETED)
            disconnected = output is None or not output.done()
        finally:
            for task in (*tasks, disconnect):
                task.cancel()
            if output is not None and not output.done():
                output.cancel()
            await asyncio.gather(*tasks, disconnect, return_exceptions=True)
            if output is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await output
        for task in tasks:
            if not task.cancelled() and (exc := task.exception()) is not None:
                # e.g. typing while the session ended; the output side has the verdict
                logger.debug("input stopped: %r", exc)
        if disconnected or output is None:
            return BridgeResult(
                self._exit_code,
                False,
                disconnected=True,
                broken_pipe=self._broken_pipe,
                trailer_status=self._trailer_status,
                trailer_expected=self._trailer is not None,
            )
        return output.result()

    async def _established(self, disconnect: asyncio.Task[Any]) -> SessionEstablished | None:
        """The session's start, or None if the user left (``~.``) before it came."""
        waiting = asyncio.ensure_future(self.conn.wait_established())
        hint = self.hints.start(self._handshake_hint) if self.hints is not None else None
        try:
            await asyncio.wait([waiting, disconnect], return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            waiting.cancel()
            raise
        finally:
            if hint is not None:
                hint.close()
        if not waiting.done():
            waiting.cancel()
            return None
        return waiting.result()

    # ------------------------------------------------------------ output

    async def _pump_output(self) -> BridgeResult:
        stdout, stderr = self.terminal.stdout, self.terminal.stderr
        while True:
            event = await self.conn.receive()
            if event is None:
                await self._end_of_output(stdout)
                return BridgeResult(
                    self._exit_code,
                    False,
                    trailer_status=self._trailer_status,
                    trailer_expected=self._trailer is not None,
                )
            if isinstance(event, OutputReceived):
                data = event.data
                if self._ready is not None:
                    data = await self._take_ready(data)
                if self._trailer is not None:
                    data = self._trailer.feed(data)
                    if self._trailer.done:
                        self._stdin_stop.set()
                if data:
                    await self._write(stdout, data)
            elif isinstance(event, StderrReceived):
                await self._write(stderr, event.data)
            elif isinstance(event, ExitCodeReceived):
                self._exit_code = event.code
            elif isinstance(event, FlagReceived):
                logger.debug("flag %d from the agent", event.flag)
            elif isinstance(event, SessionEstablished):
                # The agent's handshake came after input had gone ahead without it.
                if event.customer_message and self.announce:
                    self.status(event.customer_message)
            elif isinstance(event, ChannelClosedByRemote):
                await self._end_of_output(stdout)
                return BridgeResult(
                    self._exit_code,
                    True,
                    event.output,
                    trailer_status=self._trailer_status,
                    trailer_expected=self._trailer is not None,
                )

    async def _end_of_output(self, stdout: int) -> None:
        """Output is over: what the filters held back goes out."""
        rest = b""
        if self._ready is not None:
            rest = self._ready.finish()
            self._ready = None
        if self._trailer is not None:
            rest = self._trailer.feed(rest) + self._trailer.finish()
        if rest:
            await self._write(stdout, rest)

    async def _take_ready(self, data: bytes) -> bytes:
        """Take the wrapper's ``ssmsh-go`` sequences out of ``data`` and answer them."""
        ready = self._ready
        assert ready is not None
        out = ready.feed(data)
        while ready.done:
            word, rest = ready.word, ready.take_rest()
            logger.debug("the wrapper says %s", word)
            more = await self._on_ready(word or "")
            if not more:
                self._ready = None
                return out + rest
            ready.rearm()
            out += ready.feed(rest)
        return out

    async def _on_ready(self, word: str) -> bool:
        """The wrapper is ready for what comes next; True if more sequences will come."""
        if word == "tty" and self.waits_for_size:
            # The size, then the line the wrapper waits for: the agent applies them in
            # order, so the command starts at the right size.
            with contextlib.suppress(ChannelClosed):
                await self.conn.send_size(*(self.terminal.size() or DEFAULT_SIZE))
                await self.conn.send_input(b"\n")
            return True
        if word == "run" and self.waits_for_size:
            self._size_sent.set()  # typed keys may go: echo is back on
            return False
        if self.framed_stdin:
            self._stdin_go.set()  # "head" or "dd": how the wrapper reads
            return False
        logger.debug("unexpected word from the wrapper: %r", word)
        return False

    @property
    def _trailer_status(self) -> int | None:
        return self._trailer.status if self._trailer is not None else None

    async def _write(self, fd: int, data: bytes) -> None:
        self.terminal.wrote(data, fd)
        try:
            if not write_now(fd, data):
                await self._loop.run_in_executor(None, write_all, fd, data)
        except BrokenPipeError:
            if fd == self.terminal.stdout:
                # Nobody reads our output any more (``| head``): stop, as ssh would.
                logger.debug("stdout is closed; ending the session")
                self._broken_pipe = True
                self._disconnect.set()
            else:
                logger.debug("output fd %d is closed; discarding output", fd)
        except OSError as exc:
            logger.debug("cannot write output: %s", exc)

    # ------------------------------------------------------------ input

    async def _pump_input(self) -> None:
        fd = self.terminal.stdin
        while True:
            data = await self._read(fd)
            if not data:
                await self._input_ended()
                return
            for item in self.escape.feed(data):
                if isinstance(item, bytes):
                    await self._send(item)
                else:
                    await self._escape_action(item)

    async def _pump_framed(self) -> None:
        """stdin in frames for the piped-stdin wrapper, once it is ready; the end frame
        at the end of stdin, or as soon as the command is over (its trailer came)."""
        await self._stdin_go.wait()
        fd = self.terminal.stdin
        stop = asyncio.ensure_future(self._stdin_stop.wait())
        try:
            while not stop.done():
                reading = asyncio.ensure_future(self._read(fd))
                await asyncio.wait([reading, stop], return_when=asyncio.FIRST_COMPLETED)
                if not reading.done():
                    reading.cancel()
                    break
                data = reading.result()
                if not data:
                    break
                for start in range(0, len(data), MAX_FRAME):
                    await self.conn.send_input(frame(data[start : start + MAX_FRAME]))
        finally:
            stop.cancel()
        await self.conn.send_input(END_FRAME)
        logger.debug("stdin sent; waiting for the remote to finish")

    async def _send(self, data: bytes) -> None:
        if not data:
            return
        if not self._may_send:
            await self._wait_to_send()
        await self.conn.send_input(data)
        self._sent_line_end = data.endswith((b"\n", b"\r"))

    async def _wait_to_send(self) -> None:
        """Wait until the session is established, or make it so after the grace period.

        An agent that skips the handshake only shows itself with its first output.
        A pty program that reads before it prints (``cat``, ``wc``) never gives
        any, so after ``handshake_grace`` seconds without a word the session goes
        ahead as such an agent's would.
        """
        grace = self.handshake_grace
        if self.interactive and grace is not None:
            remaining = self._started + grace - self._loop.time()
            try:
                async with asyncio.timeout(max(remaining, 0.0)):
                    await self.conn.wait_established()
            except TimeoutError:
                if self.conn.skip_handshake():
                    logger.debug("nothing from the agent after %g s: no handshake, it seems", grace)
        await self.conn.wait_established()
        if self.interactive:
            await self._size_sent.wait()
        self._may_send = True

    async def _read(self, fd: int) -> bytes:
        """One read of stdin, without blocking the loop."""
        future: asyncio.Future[bytes] = self._loop.create_future()

        def ready() -> None:
            if future.done():
                return
            try:
                future.set_result(os.read(fd, READ_SIZE))
            except BlockingIOError:
                return
            except OSError as exc:
                logger.debug("stdin read failed: %s", exc)
                future.set_result(b"")

        try:
            self._loop.add_reader(fd, ready)
        except (PermissionError, OSError, ValueError):
            # A regular file (or something epoll refuses): reads never block for long.
            try:
                return await asyncio.to_thread(os.read, fd, READ_SIZE)
            except OSError:
                return b""
        try:
            return await future
        finally:
            self._loop.remove_reader(fd)

    async def _input_ended(self) -> None:
        """stdin reached EOF: tell a pty session, as ``ssh -t host < file`` would,
        then keep receiving until the remote is done."""
        if self.escape.pending and self.escape.char is not None:
            await self._send(bytes([self.escape.char]))
        if self.terminal.stdin_is_tty:
            # A terminal gives no EOF of its own (Ctrl-D is a byte sent like any
            # other): it went away. Sending an end of input would be making one up.
            logger.debug("the terminal closed; no more input")
            return
        if self.interactive:
            # The remote pty's line discipline: Ctrl-D hands over a pending partial
            # line; at the start of a line it is the end of input.
            await self._send(EOF_BYTES if self._sent_line_end else EOF_BYTES * 2)
        logger.debug("stdin closed; waiting for the remote to finish")

    async def _escape_action(self, action: EscapeAction) -> None:
        if action is EscapeAction.DISCONNECT:
            self._disconnect.set()
        elif action is EscapeAction.HELP:
            assert self.escape.char is not None
            await self._write(self.terminal.stderr, escape_help(self.escape.char).encode())
        elif action is EscapeAction.SUSPEND:
            await self._suspend()

    async def _suspend(self) -> None:
        """Give the terminal back and stop ourselves (SIGTSTP), like ssh's ``~^Z``."""
        if not hasattr(signal, "SIGTSTP"):
            return
        with self.terminal.cooked():
            os.kill(os.getpid(), signal.SIGTSTP)
        size = self.terminal.size()
        if size is not None:
            await self.conn.send_size(*size)

    # ------------------------------------------------------------ events

    def _on_resize(self, size: tuple[int, int]) -> None:
        if self.conn.closed:
            return
        task = asyncio.ensure_future(self.conn.send_size(*size))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def _on_state(self, change: StateChange) -> None:
        """A status line for an outage that lasts long enough to be noticed, a reminder
        every ``repeat_interval`` while it lasts, and one when it is over."""
        if change.new is ConnectionState.RECONNECTING:
            if change.reason:
                self._last_error = change.reason
            if self._outage_notice is None and not self._outage_reported:
                self._outage_started = self._loop.time()
                self._outage_notice = self._loop.call_later(
                    self.notice_delay, self._report_outage, change.reason or "connection lost"
                )
        elif change.new is ConnectionState.CONNECTED and change.outage is not None:
            self._cancel_notice()
            self._end_countdown()
            if self._outage_reported:
                self.status(f"ssmsh: reconnected after {change.outage:.1f} s")
            self._outage_reported = False
        elif change.new is ConnectionState.CLOSED:
            self._cancel_notice()
            self._end_countdown()

    def _cancel_notice(self) -> None:
        if self._outage_notice is not None:
            self._outage_notice.cancel()
            self._outage_notice = None

    def _report_outage(self, reason: str) -> None:
        self._outage_reported = True
        self.status(f"ssmsh: {reason}; reconnecting...")
        if self.hints is not None and self._status is not None:
            # On a terminal: the time left, redrawn each second, instead of reminders.
            self._countdown = self.hints.start(self._countdown_hint, delay=0, priority=1)
            self._outage_notice = None
            return
        self._outage_notice = self._loop.call_later(self.repeat_interval, self._remind_outage)

    def _remind_outage(self) -> None:
        lasted = self._loop.time() - self._outage_started
        text = f"ssmsh: still reconnecting ({lasted:.0f} s, last error: {self._last_error})"
        if self.escape.char is not None:
            text += f"; {show_char(self.escape.char)}. to give up"
        self.status(text)
        self._outage_notice = self._loop.call_later(self.repeat_interval, self._remind_outage)

    def _end_countdown(self) -> None:
        if self._countdown is not None:
            self._countdown.close()
            self._countdown = None

    def _escape_way_out(self) -> str:
        """``~. to disconnect`` while escapes work, else ""."""
        if self.escape.char is None:
            return ""
        return f"{show_char(self.escape.char)}. to disconnect"

    def _countdown_hint(self, elapsed: float) -> str | None:
        if self.hints is None:
            return None
        deadline = self.conn.reconnect_deadline
        if deadline is None:
            return self.hints.with_way_out(f"reconnecting ({elapsed:.0f} s)")
        left = clock(deadline - self._loop.time())
        return self.hints.with_way_out(
            f"reconnecting: {left} left (last error: {self._last_error})"
        )

    def _handshake_hint(self, elapsed: float) -> str | None:
        if self.hints is None:
            return None
        target = self.conn.info.target_id or "the target"
        timeout = self.conn.config.handshake_timeout
        text = f"waiting for the agent on {target} to answer ({elapsed:.0f} s"
        if timeout is not None:
            text += f", gives up in {max(0.0, timeout - elapsed):.0f} s"
        return self.hints.with_way_out(text + ")")
