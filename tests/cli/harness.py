"""Run the real ``ssmsh`` CLI as a subprocess under a pseudo-terminal.

:class:`PtyProcess` gives the child a pty as its controlling terminal (so
resizing it sends SIGWINCH, as a terminal emulator would), feeds everything it
prints into a pyte screen, and lets a test type, resize and wait.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import functools
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
from collections.abc import Callable, Mapping, Sequence

import pyte

from tests.conftest import scaled

PROMPT = "ssmsh-test$ "
PROMPT_RE = re.escape(PROMPT)


@functools.cache
def state_home() -> str:
    """An XDG_STATE_HOME of the test run's own: ``ssmsh shell`` keeps its session records
    there (for ``ssmsh attach``), never in the user's home; removed at exit."""
    path = tempfile.mkdtemp(prefix="ssmsh-test-state-")
    atexit.register(shutil.rmtree, path, True)
    return path


def cli_env(extra: Mapping[str, str] | None = None, unset: Sequence[str] = ()) -> dict[str, str]:
    """An environment with throwaway credentials and no way to reach real AWS.

    ``unset`` names variables to leave out (e.g. the throwaway credentials)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_") and k not in ("SSMSH_TARGET",)
    }
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "AKIDTESTTESTTESTTEST",
            "AWS_SECRET_ACCESS_KEY": "test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": "/nonexistent/ssmsh-test-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/ssmsh-test-credentials",
            "AWS_EC2_METADATA_DISABLED": "true",
            # Anything that forgets --endpoint-url must still stay on loopback.
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            "PYTHONUNBUFFERED": "1",
            "XDG_STATE_HOME": state_home(),
        }
    )
    env.update(extra or {})
    for name in unset:
        env.pop(name, None)
    return env


def _child_setup() -> None:  # in the child, after fork: take the pty as controlling tty
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    # A program started from a terminal has default signal actions, whatever the
    # test runner ignores (a background job or nohup ignores SIGINT and SIGQUIT).
    for signum in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTSTP):
        signal.signal(signum, signal.SIG_DFL)


def set_winsize(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class PtyProcess:
    """``python -m ssmsh ARGS`` with a pty for stdin, stdout and stderr."""

    def __init__(
        self,
        args: Sequence[str],
        cols: int = 100,
        rows: int = 30,
        env: Mapping[str, str] | None = None,
        command: Sequence[str] = (),
    ) -> None:
        """``command`` replaces ``python -m ssmsh`` (e.g. another program name)."""
        self.master, self.slave = os.openpty()
        set_winsize(self.master, cols, rows)
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.output = bytearray()
        self._changed = asyncio.Event()
        self.proc = subprocess.Popen(
            [*(command or (sys.executable, "-m", "ssmsh")), *args],
            stdin=self.slave,
            stdout=self.slave,
            stderr=self.slave,
            env=cli_env(env),
            preexec_fn=_child_setup,
            close_fds=True,
        )
        self.initial_attrs = termios.tcgetattr(self.slave)
        os.set_blocking(self.master, False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.master, self._on_output)
        self._eof = False

    def _on_output(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._eof = True
            self._loop.remove_reader(self.master)
        else:
            self.output += data
            self.stream.feed(data)
        self._changed.set()

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    def screen_text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    async def expect(self, pattern: str, timeout: float = 10, start: int = 0) -> re.Match[str]:
        """Wait until the raw output (from ``start``) matches the regex ``pattern``."""
        regex = re.compile(pattern)
        try:
            async with asyncio.timeout(scaled(timeout)):
                while True:
                    match = regex.search(self.text, start)
                    if match:
                        return match
                    if self._eof and self.proc.poll() is not None:
                        raise AssertionError(f"process ended without {pattern!r}:\n{self.text}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"no {pattern!r} within {timeout} s in:\n{self.text}") from None

    async def expect_screen(self, pattern: str, timeout: float = 10) -> None:
        regex = re.compile(pattern)
        async with asyncio.timeout(scaled(timeout)):
            while not regex.search(self.screen_text()):
                self._changed.clear()
                await self._changed.wait()

    def send(self, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        view = memoryview(raw)
        while view:
            try:
                written = os.write(self.master, view)
            except BlockingIOError:
                # the child is not reading fast enough; let it
                import time

                time.sleep(0.001)
                continue
            view = view[written:]

    async def send_async(self, data: bytes, chunk: int = 4096) -> None:
        """Write a lot (a paste) without blocking the event loop."""
        for start in range(0, len(data), chunk):
            piece = memoryview(data)[start : start + chunk]
            while piece:
                try:
                    written = os.write(self.master, piece)
                except BlockingIOError:
                    await asyncio.sleep(0.001)
                    continue
                piece = piece[written:]

    def resize(self, cols: int, rows: int) -> None:
        """Resize like a terminal emulator: the kernel sends SIGWINCH to the child."""
        set_winsize(self.master, cols, rows)
        self.screen.resize(rows, cols)

    async def wait(self, timeout: float = 15) -> int:
        async with asyncio.timeout(scaled(timeout)):
            while self.proc.poll() is None:
                await asyncio.sleep(0.02)
        # collect what is still buffered
        await asyncio.sleep(0.05)
        self._on_output() if not self._eof else None
        return int(self.proc.returncode)

    def slave_attrs(self) -> list[object]:
        return termios.tcgetattr(self.slave)

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if not self._eof:
            self._loop.remove_reader(self.master)
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


async def run_cli(
    args: Sequence[str],
    stdin: bytes | None = b"",
    env: Mapping[str, str] | None = None,
    timeout: float = 20,
    unset: Sequence[str] = (),
) -> tuple[int, bytes, bytes]:
    """``python -m ssmsh ARGS`` with pipes; returns (status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ssmsh",
        *args,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(env, unset),
    )
    try:
        async with asyncio.timeout(scaled(timeout)):
            out, err = await proc.communicate(stdin)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        raise AssertionError(f"ssmsh {args} timed out:\n{out!r}\n{err!r}") from None
    await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out, err


def default_signals() -> None:  # as started from a terminal, whatever the test runner ignores
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


async def start_cli(
    args: list[str], preexec: Callable[[], None] = default_signals
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ssmsh",
        *args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
        preexec_fn=preexec,
    )
