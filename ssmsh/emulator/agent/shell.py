"""Shell and InteractiveCommands sessions: a real pty running a real program.

Like the official agent, the program gets ``TERM=xterm-256color`` (and
``LANG=C.UTF-8`` when LANG is unset), its output is read in chunks of at most
1024 bytes that never split a UTF-8 character, ``Size`` payloads resize the pty
(TIOCSWINSZ; the pty has no size, 0x0, before the first one), and when the
program side of the pty closes the session ends normally (the gateway then sends
``channel_closed`` with an empty Output: the real agent reports no exit code for
shells; with ``report_exit_status``, a divergence, a non-zero status is sent as an
ExitCode payload first). As in the real agent, the program's output is first read
``start_delay`` (1 s) after it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import struct
import termios
from collections.abc import Callable, Mapping

from ...exceptions import RemoteProtocolError
from ...protocol.constants import PayloadType
from ...protocol.payloads import TerminalSize, encode_exit_code
from .plugin import Plugin, PluginHost, split_utf8_tail

__all__ = ["ShellPlugin", "default_signals", "kill_process_group", "program_env"]

logger = logging.getLogger(__name__)

#: Rows, cols until the client sends a Size: none. The official agent starts the pty
#: with creack/pty's ``pty.Start(cmd)``, which sets no size (shell_unix.go), so the
#: kernel's 0x0 stays until the client's first Size message.
_DEFAULT_SIZE = (0, 0)
_KILL_GRACE = 0.5


_PRIVATE_ENV = frozenset(
    {
        "PS1",
        "PS2",
        "PS4",
        "PROMPT_COMMAND",
        "VIRTUAL_ENV",
        "VIRTUAL_ENV_PROMPT",
        "TMUX",
        "TMUX_PANE",
    }
)


def program_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment the real agent gives session programs.

    The real agent starts a login shell with a fresh environment; we keep ours
    but drop what belongs to the emulator's own terminal or virtualenv (a
    ``PS1`` exported by ``venv/bin/activate`` would otherwise become the
    remote prompt).
    """
    env = {k: v for k, v in os.environ.items() if k not in _PRIVATE_ENV}
    env["TERM"] = "xterm-256color"
    if not env.get("LANG"):
        env["LANG"] = "C.UTF-8"
    env.update(extra or {})
    return env


def _start_dir() -> str | None:
    home = os.environ.get("HOME")
    return home if home and os.path.isdir(home) else None


def default_signals() -> Callable[[], None]:
    """A function for the child, between fork and exec: every signal that this
    process ignores goes back to its default action.

    Ignored signals are inherited across exec: an emulator started in the
    background of a script, or under nohup, ignores SIGINT, SIGQUIT or SIGHUP,
    and its session programs would too (Ctrl-C would not stop them). The real
    agent's programs start with default actions.
    """
    ignored = []
    for signum in signal.valid_signals():
        with contextlib.suppress(OSError, ValueError):
            if signal.getsignal(signum) is signal.SIG_IGN:
                ignored.append(signum)

    def reset() -> None:
        for signum in ignored:
            signal.signal(signum, signal.SIG_DFL)

    return reset


def _child_setup(reset_signals: Callable[[], None]) -> Callable[[], None]:
    def setup() -> None:  # runs in the child between fork and exec
        reset_signals()
        with contextlib.suppress(OSError):
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    return setup


def _set_winsize(fd: int, rows: int, cols: int) -> None:
    rows, cols = min(max(rows, 0), 0xFFFF), min(max(cols, 0), 0xFFFF)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class ShellPlugin(Plugin):
    """A program in a pty (the user's shell, or ``sh -c <command>``)."""

    requires_handshake = False

    def __init__(
        self,
        host: PluginHost,
        argv: list[str],
        report_exit_status: bool = False,
        start_delay: float = 0.0,
    ) -> None:
        super().__init__(host)
        self.argv = argv
        self.report_exit_status = report_exit_status
        #: Seconds between starting the program and the first read of its output (the
        #: real agent's 1 s: input typed meanwhile reaches the program, output waits).
        self.start_delay = start_delay
        self._master: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._size = _DEFAULT_SIZE
        self._input = bytearray()
        self._writer_registered = False
        self._loop = asyncio.get_running_loop()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> None:
        master, slave = os.openpty()
        try:
            _set_winsize(master, *self._size)
            os.set_blocking(master, False)
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=program_env(self.host.environment),
                cwd=_start_dir(),
                start_new_session=True,
                preexec_fn=_child_setup(default_signals()),
            )
        except OSError as exc:
            os.close(master)
            self.host.finish(f"Failed to start pty: {exc}")
            return
        finally:
            os.close(slave)
        self._master = master
        self.spawn(self._pump_output(master), f"pty output {self.host.session.session_id}")
        self._drain_input()

    # ------------------------------------------------------------- client input

    def receive(self, payload_type: int, payload: bytes) -> None:
        if payload_type == PayloadType.OUTPUT:
            self._input += payload
            self._drain_input()
        elif payload_type == PayloadType.SIZE:
            try:
                size = TerminalSize.decode(payload)
            except RemoteProtocolError as exc:
                logger.debug("ignoring bad size message: %s", exc)
                return
            self._size = (size.rows, size.cols)
            if self._master is not None:
                try:
                    _set_winsize(self._master, size.rows, size.cols)
                except OSError as exc:
                    logger.debug("resizing the pty failed: %s", exc)
        else:
            logger.debug("shell ignores payload type %d", payload_type)

    def _drain_input(self) -> None:
        master = self._master
        if master is None:
            return
        while self._input:
            try:
                written = os.write(master, self._input)
            except BlockingIOError:
                break
            except OSError:  # the program side is gone; nobody will read this
                self._input.clear()
                break
            del self._input[:written]
        if self._input and not self._writer_registered:
            self._loop.add_writer(master, self._drain_input)
            self._writer_registered = True
        elif not self._input and self._writer_registered:
            self._loop.remove_writer(master)
            self._writer_registered = False

    # ------------------------------------------------------------ program output

    async def _readable(self, fd: int) -> None:
        waiter: asyncio.Future[None] = self._loop.create_future()

        def ready() -> None:
            if not waiter.done():
                waiter.set_result(None)

        self._loop.add_reader(fd, ready)
        try:
            await waiter
        finally:
            self._loop.remove_reader(fd)

    async def _pump_output(self, master: int) -> None:
        host = self.host
        chunk = host.pacing.stream_chunk
        tail = b""
        if self.start_delay > 0:
            await asyncio.sleep(self.start_delay)
        while True:
            await host.wait_writable()
            await self._readable(master)
            try:
                data = os.read(master, chunk - len(tail))
            except BlockingIOError:
                continue
            except OSError:  # EIO: every program-side descriptor is closed
                data = b""
            if not data:
                break
            out, tail = split_utf8_tail(tail + data)
            if out:
                host.send(PayloadType.OUTPUT, out)
                await host.pacing.pause()
        if tail:
            host.send(PayloadType.OUTPUT, tail)
        if self._proc is not None:
            code = await self._proc.wait()
            if code > 0 and self.report_exit_status:
                # Not what the real agent does (it reports no status for shells); opt-in
                # (EmulatorConfig.shell_exit_status) so that clients can exit like ssh.
                host.send(PayloadType.EXIT_CODE, encode_exit_code(code))
        host.finish("")

    # ------------------------------------------------------------------ cleanup

    async def stop(self) -> None:
        await super().stop()
        master, self._master = self._master, None
        if master is not None:
            if self._writer_registered:
                self._loop.remove_writer(master)
                self._writer_registered = False
            os.close(master)
        proc = self._proc
        if proc is not None and proc.returncode is None:
            await kill_process_group(proc)


async def kill_process_group(proc: asyncio.subprocess.Process) -> None:
    """SIGHUP the program's process group (a terminal hangup), SIGKILL if it lingers."""
    for sig in (signal.SIGHUP, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            async with asyncio.timeout(_KILL_GRACE):
                await proc.wait()
            return
        except TimeoutError:
            continue
