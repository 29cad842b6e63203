"""The local terminal: raw mode, size, resize notifications, restoring it all.

Raw mode comes from prompt_toolkit's ``raw_mode`` (no echo, no line editing,
no ISIG, IXON or IEXTEN, so Ctrl-C/Z/\\/S/Q/O/Y/V all reach the remote as
bytes), with output post-processing turned off as well, as ssh does: the remote
pty already sends CR LF. :class:`Terminal` restores the saved attributes on
every exit path (its context managers, and :meth:`Terminal.restore`, which is
safe to call from a signal or ``atexit`` handler).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import termios
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Terminal"]

logger = logging.getLogger(__name__)

_SIGWINCH = getattr(signal, "SIGWINCH", None)


_raw_class: Any = None


def _raw_no_opost(fileno: int) -> Any:
    """prompt_toolkit's raw mode, plus ``-opost`` (output bytes pass unchanged).

    prompt_toolkit is imported on first use: commands that never put the terminal
    in raw mode (forward, proxy) do not load it.
    """
    global _raw_class
    if _raw_class is None:
        from prompt_toolkit.input.vt100 import raw_mode

        class RawNoOpost(raw_mode):
            def __enter__(self) -> None:
                super().__enter__()
                with contextlib.suppress(termios.error):
                    attrs = termios.tcgetattr(self.fileno)
                    attrs[1] &= ~termios.OPOST
                    attrs[6][termios.VTIME] = 0
                    termios.tcsetattr(self.fileno, termios.TCSANOW, attrs)

        _raw_class = RawNoOpost
    return _raw_class(fileno)


class Terminal:
    """stdin/stdout/stderr of the process, and what kind of terminal they are."""

    def __init__(self, stdin: int = 0, stdout: int = 1, stderr: int = 2) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.stdin_is_tty = os.isatty(stdin)
        self.stdout_is_tty = os.isatty(stdout)
        self._raw: Any = None  # the active raw mode (a context manager), if any
        self._line_start = True
        self.stderr_is_tty = os.isatty(stderr)
        #: A progress line is on the screen (see :meth:`progress`).
        self._progress_shown = False
        # Where status lines go; output elsewhere does not move the cursor seen there.
        self._status_file = _file_identity(stderr)
        self._shares_status = {stderr: True, stdout: _same_file(stdout, self._status_file)}

    @property
    def raw(self) -> bool:
        """True while in raw mode (status lines then need CR LF)."""
        return self._raw is not None

    # ------------------------------------------------------------ raw mode

    @contextlib.contextmanager
    def raw_mode(self, interruptible: bool = False) -> Iterator[None]:
        """Raw mode on stdin while inside (a no-op when stdin is not a terminal).

        ``interruptible``: Ctrl-C (VINTR) still sends SIGINT until
        :meth:`interruptible` turns it off; Ctrl-\\ and Ctrl-Z are plain keys.
        """
        if not self.stdin_is_tty or self._raw is not None:
            yield
            return
        mode = _raw_no_opost(self.stdin)
        mode.__enter__()
        self._raw = mode
        if interruptible:
            self.interruptible(True)
        try:
            yield
        finally:
            self.restore()

    def interruptible(self, on: bool) -> None:
        """In raw mode: whether Ctrl-C sends SIGINT (ISIG with VINTR only), or is a key."""
        if self._raw is None:
            return
        with contextlib.suppress(termios.error, OSError, ValueError):
            attrs = termios.tcgetattr(self.stdin)
            if on:
                disabled = os.fpathconf(self.stdin, "PC_VDISABLE")
                attrs[3] |= termios.ISIG
                for name in ("VQUIT", "VSUSP", "VDSUSP"):
                    index = getattr(termios, name, None)
                    if index is not None:
                        attrs[6][index] = bytes([disabled & 0xFF])
                if attrs[6][termios.VINTR] in (0, b"\0"):
                    attrs[6][termios.VINTR] = b"\x03"
            elif not attrs[3] & termios.ISIG:
                return
            else:
                attrs[3] &= ~termios.ISIG
            termios.tcsetattr(self.stdin, termios.TCSANOW, attrs)

    def restore(self) -> None:
        """Put the terminal back as it was. Idempotent; never raises."""
        mode, self._raw = self._raw, None
        if mode is not None:
            mode.__exit__(None, None, None)

    @contextlib.contextmanager
    def cooked(self) -> Iterator[None]:
        """Leave raw mode for a while (e.g. to suspend), then enter it again."""
        was_raw = self._raw is not None
        self.restore()
        try:
            yield
        finally:
            if was_raw:
                mode = _raw_no_opost(self.stdin)
                mode.__enter__()
                self._raw = mode

    # ------------------------------------------------------------ size

    def size(self) -> tuple[int, int] | None:
        """(cols, rows) of the terminal: stdout's, else stdin's; None if neither is one."""
        for fd in (self.stdout, self.stdin, self.stderr):
            try:
                size = os.get_terminal_size(fd)
            except OSError:
                continue
            if size.columns > 0 and size.lines > 0:
                return size.columns, size.lines
        return None

    @contextlib.contextmanager
    def watch_size(
        self, callback: Callable[[tuple[int, int]], None], poll_interval: float = 2.0
    ) -> Iterator[None]:
        """Call ``callback(size)`` whenever the size changes, until the block ends.

        SIGWINCH triggers a check at once (the previous handler is restored on
        exit); a cheap poll every ``poll_interval`` seconds covers platforms and
        threads where the signal cannot be caught.
        """
        loop = asyncio.get_running_loop()
        last = [self.size()]

        def check() -> None:
            size = self.size()
            if size is not None and size != last[0]:
                last[0] = size
                callback(size)

        previous: Any = None
        installed = False
        if _SIGWINCH is not None:
            try:
                previous = signal.getsignal(_SIGWINCH)
                loop.add_signal_handler(_SIGWINCH, check)
                installed = True
            except (ValueError, RuntimeError, NotImplementedError):  # not the main thread
                logger.debug("cannot watch SIGWINCH here; polling only")

        async def poll() -> None:
            while True:
                await asyncio.sleep(poll_interval)
                check()

        poller = loop.create_task(poll())
        try:
            yield
        finally:
            poller.cancel()
            if installed and _SIGWINCH is not None:
                loop.remove_signal_handler(_SIGWINCH)
                if previous is not None:
                    with contextlib.suppress(ValueError, TypeError):
                        signal.signal(_SIGWINCH, previous)

    # ------------------------------------------------------------ output

    def wrote(self, data: bytes, fd: int | None = None) -> None:
        """Note output written to ``fd`` (default: where status lines go).

        Only output that lands where status lines go counts (a redirected stdout
        does not); the line is over when its last byte is a newline (after a lone
        CR the cursor is at column 0, but on a line that still shows text).
        """
        if not data:
            return
        if fd is not None and fd not in self._shares_status:
            self._shares_status[fd] = _same_file(fd, self._status_file)
        if fd is None or self._shares_status[fd]:
            self.clear_progress()  # called before the write: the output takes the line
            self._line_start = data.endswith(b"\n")

    def progress(self, text: str) -> None:
        """Show ``text`` as the progress line on stderr, a terminal only: drawn over itself
        (CR, then the text, then erase to the end of the line), never wrapped, and
        cleared by the next status line or output (:meth:`clear_progress`)."""
        if not self.stderr_is_tty:
            return
        lead = ""
        if not self._line_start and not self._progress_shown:
            lead = "\r\n"  # the cursor is mid-line (a prompt): a line of its own
        width = self.width()
        if width and len(text) >= width:  # a wrapped line could not be drawn over
            text = text[: max(width - 2, 0)] + "…"
        self._line_start = True
        self._progress_shown = True
        with contextlib.suppress(OSError):
            write_all(self.stderr, f"{lead}\r{text}\x1b[K".encode(errors="replace"))

    def clear_progress(self) -> None:
        """Remove the progress line, if one is shown (the cursor stays on its empty line)."""
        if not self._progress_shown:
            return
        self._progress_shown = False
        with contextlib.suppress(OSError):
            write_all(self.stderr, b"\r\x1b[K")

    def width(self) -> int:
        """Columns of the terminal on stderr (0 when it is none)."""
        try:
            return os.get_terminal_size(self.stderr).columns
        except OSError:
            return 0

    def status(self, text: str) -> None:
        """Write one status line to stderr, always starting at column 0.

        A line break comes first when the last output left the cursor mid-line
        (CR LF on a terminal, raw or cooked: the final error line is written after
        the terminal is restored). While raw (no output post-processing) lines
        end with CR LF.
        """
        self.clear_progress()
        lead = "" if self._line_start else ("\r\n" if self.stderr_is_tty else "\n")
        body = text.replace("\n", "\r\n") + "\r\n" if self.raw else text + "\n"
        data = (lead + body).encode(errors="replace")
        self._line_start = True
        with contextlib.suppress(OSError):
            write_all(self.stderr, data)


def _file_identity(fd: int) -> tuple[int, int] | None:
    try:
        info = os.fstat(fd)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _same_file(fd: int, identity: tuple[int, int] | None) -> bool:
    """True when ``fd`` is the file (terminal, pipe) that ``identity`` names."""
    return identity is not None and _file_identity(fd) == identity


#: Writes up to this size are tried at once when the fd is ready (see :func:`write_now`).
SMALL_WRITE = 512


def write_now(fd: int, data: bytes) -> bool:
    """Write small ``data`` on the spot if ``fd`` takes it without blocking; else False.

    An echo or a prompt is a few bytes: handing it to a thread (as a large write must
    be, not to stall the loop on a slow terminal) costs more than the write. Ready for
    writing means a pipe has at least PIPE_BUF (4 KiB) free, so a write this small goes
    in whole at once; a terminal takes it into its buffer. Nothing is written when
    False is returned.
    """
    if len(data) > SMALL_WRITE:
        return False
    try:
        ready = select.select([], [fd], [], 0)[1]
    except (OSError, ValueError):
        return False
    if not ready:
        return False
    written = os.write(fd, data)
    if written < len(data):
        write_all(fd, data[written:])  # (a terminal that took part: the rest is small too)
    return True


def write_all(fd: int, data: bytes) -> None:
    """os.write until everything is written (blocking)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
