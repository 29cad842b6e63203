"""Terminal: raw mode and its restoration, size, resize notifications (on a real pty)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import struct
import termios
from collections.abc import Iterator

import pytest

from ssmsh.terminal.tty import Terminal
from tests.conftest import scaled


@pytest.fixture
def pty() -> Iterator[tuple[int, int]]:
    master, slave = os.openpty()
    try:
        yield master, slave
    finally:
        os.close(master)
        os.close(slave)


def set_size(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def is_raw(term: Terminal) -> bool:
    """``term.raw`` read anew: mypy keeps the attribute narrowed by an earlier assert
    across the mode changes that flip it."""
    return term.raw


def test_raw_mode_passes_control_keys_and_restores(pty: tuple[int, int]) -> None:
    master, slave = pty
    before = termios.tcgetattr(slave)
    term = Terminal(slave, slave, slave)
    assert term.stdin_is_tty
    with term.raw_mode():
        assert term.raw
        attrs = termios.tcgetattr(slave)
        lflag, iflag, oflag = attrs[3], attrs[0], attrs[1]
        for flag in (termios.ECHO, termios.ICANON, termios.ISIG, termios.IEXTEN):
            assert not lflag & flag
        assert not iflag & (termios.IXON | termios.ICRNL)
        assert not oflag & termios.OPOST
        # Ctrl-C, Ctrl-Z, Ctrl-\, Ctrl-S, Ctrl-Q, Ctrl-O, Ctrl-Y, Ctrl-V arrive as bytes
        keys = b"\x03\x1a\x1c\x13\x11\x0f\x19\x16\r"
        os.write(master, keys)
        assert os.read(slave, 100) == keys
    assert not is_raw(term)
    assert termios.tcgetattr(slave) == before


def test_restore_is_idempotent_and_works_on_errors(pty: tuple[int, int]) -> None:
    _, slave = pty
    before = termios.tcgetattr(slave)
    term = Terminal(slave, slave, slave)
    with pytest.raises(RuntimeError), term.raw_mode():
        raise RuntimeError("boom")
    assert termios.tcgetattr(slave) == before
    term.restore()
    term.restore()
    assert termios.tcgetattr(slave) == before


def test_raw_mode_is_a_no_op_without_a_tty() -> None:
    read, write = os.pipe()
    try:
        term = Terminal(read, write, write)
        assert not term.stdin_is_tty
        with term.raw_mode():
            assert not term.raw
        assert term.size() is None or isinstance(term.size(), tuple)
    finally:
        os.close(read)
        os.close(write)


def test_size_and_cooked(pty: tuple[int, int]) -> None:
    _, slave = pty
    set_size(slave, 132, 43)
    term = Terminal(slave, slave, slave)
    assert term.size() == (132, 43)
    with term.raw_mode():
        with term.cooked():
            assert not term.raw
            assert termios.tcgetattr(slave)[3] & termios.ICANON
        assert is_raw(term)
        assert not termios.tcgetattr(slave)[3] & termios.ICANON


async def test_watch_size_on_sigwinch_restores_the_previous_handler(pty: tuple[int, int]) -> None:
    _, slave = pty
    set_size(slave, 80, 24)
    term = Terminal(slave, slave, slave)
    seen: list[tuple[int, int]] = []
    calls: list[int] = []

    def previous(signum: int, frame: object) -> None:
        calls.append(signum)

    old = signal.signal(signal.SIGWINCH, previous)
    try:
        with term.watch_size(seen.append, poll_interval=3600):
            set_size(slave, 100, 30)
            os.kill(os.getpid(), signal.SIGWINCH)
            async with asyncio.timeout(scaled(2)):
                while not seen:
                    await asyncio.sleep(0.01)
            assert seen == [(100, 30)]
            os.kill(os.getpid(), signal.SIGWINCH)  # same size: no callback
            await asyncio.sleep(0.05)
            assert seen == [(100, 30)]
        assert signal.getsignal(signal.SIGWINCH) is previous
        os.kill(os.getpid(), signal.SIGWINCH)
        await asyncio.sleep(0.01)
        assert calls == [signal.SIGWINCH]
    finally:
        signal.signal(signal.SIGWINCH, old)


async def test_watch_size_polls_without_a_signal(pty: tuple[int, int]) -> None:
    _, slave = pty
    set_size(slave, 80, 24)
    term = Terminal(slave, slave, slave)
    seen: list[tuple[int, int]] = []
    with term.watch_size(seen.append, poll_interval=0.05):
        set_size(slave, 90, 33)
        async with asyncio.timeout(scaled(2)):
            while not seen:
                await asyncio.sleep(0.01)
    assert seen == [(90, 33)]


def test_status_lines_use_crlf_in_raw_mode(pty: tuple[int, int]) -> None:
    master, slave = pty
    term = Terminal(slave, slave, slave)
    term.status("plain")
    assert os.read(master, 100).replace(b"\r\n", b"\n") == b"plain\n"
    with term.raw_mode():
        term.status("raw")  # the cursor is at column 0: no blank line first
        assert os.read(master, 100) == b"raw\r\n"
        term.wrote(b"$ ")  # a prompt left the cursor mid-line
        term.status("again")
        assert os.read(master, 100) == b"\r\nagain\r\n"


def test_status_after_restore_starts_on_a_fresh_line(pty: tuple[int, int]) -> None:
    # The final error line comes after the terminal is restored (cooked): it must
    # still start at column 0 when the remote output left the cursor mid-line.
    master, slave = pty
    term = Terminal(slave, slave, slave)
    with term.raw_mode():
        term.wrote(b"prompt$ ", slave)
    term.status("ssmsh: connection failed: gone")
    assert os.read(master, 100) == b"\r\r\nssmsh: connection failed: gone\r\n"
    term.status("next")  # already at column 0
    assert os.read(master, 100) == b"next\r\n"


def test_only_a_newline_ends_a_line(pty: tuple[int, int]) -> None:
    master, slave = pty
    term = Terminal(slave, slave, slave)
    term.wrote(b"50%\r", slave)  # a progress line: column 0, but the line is not empty
    term.status("status")
    assert os.read(master, 100) == b"\r\r\nstatus\r\n"
    term.wrote(b"done\r\n", slave)
    term.status("status")
    assert os.read(master, 100) == b"status\r\n"


def test_output_that_does_not_reach_the_screen_needs_no_line_break(
    pty: tuple[int, int], tmp_path: object
) -> None:
    master, slave = pty
    with open(f"{tmp_path}/out", "wb") as out:
        term = Terminal(slave, out.fileno(), slave)  # ssmsh ... > out
        term.wrote(b"no newline at the end", out.fileno())
        term.status("status")
        assert os.read(master, 100) == b"status\r\n"
        term.wrote(b"$ ", slave)  # but stderr output does
        term.status("status")
        assert os.read(master, 100) == b"\r\r\nstatus\r\n"


def test_stdout_and_stderr_on_one_pipe_get_a_plain_line_break() -> None:
    read_end, write_end = os.pipe()
    try:
        term = Terminal(write_end, write_end, write_end)  # ssmsh ... 2>&1 | cat
        term.wrote(b"partial", write_end)
        term.status("status")
        assert os.read(read_end, 100) == b"\nstatus\n"
    finally:
        os.close(read_end)
        os.close(write_end)
