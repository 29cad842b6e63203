"""The exit-status trailer: the wrapper a real sh runs, and the filter that reads it back."""

from __future__ import annotations

import fcntl
import os
import pty
import shlex
import struct
import subprocess
import termios

from hypothesis import given
from hypothesis import strategies as st

from ssmsh.protocol.status_trailer import ReadyFilter, TrailerFilter, new_marker, wrap_command

MARKER = "0123456789abcdef0123456789abcdef"


def trailer(status: int, marker: str = MARKER) -> bytes:
    return b"\x1b]ssmsh-status;" + marker.encode() + b";" + str(status).encode() + b"\x07"


def run_filter(chunks: list[bytes], marker: str = MARKER) -> tuple[bytes, int | None]:
    filt = TrailerFilter(marker)
    out = b"".join(filt.feed(chunk) for chunk in chunks) + filt.finish()
    return out, filt.status


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks, last = [], 0
    for point in points:
        chunks.append(data[last:point])
        last = point
    chunks.append(data[last:])
    return chunks


@given(st.binary(max_size=300), st.integers(0, 255), st.lists(st.integers(0, 10_000)))
def test_any_output_any_cut(output: bytes, status: int, cuts: list[int]) -> None:
    out, got = run_filter(split(output + trailer(status), cuts))
    assert (out, got) == (output, status)


@given(st.binary(max_size=200), st.lists(st.integers(0, 10_000)))
def test_without_a_trailer_the_status_is_unknown_and_nothing_is_lost(
    output: bytes, cuts: list[int]
) -> None:
    out, got = run_filter(split(output, cuts))
    assert (out, got) == (output, None)


def test_byte_at_a_time_with_marker_like_output() -> None:
    tricky = b"\x1b]ssmsh-status;" + MARKER[:10].encode() + b"x\x1b\x1b]ssmsh"
    data = tricky + trailer(7) + b"after"
    out, got = run_filter([bytes([b]) for b in data])
    assert (out, got) == (tricky + b"after", 7)


def test_a_token_without_digits_is_output() -> None:
    for bad in (b"", b"-"):
        data = b"x" + trailer(0)[: -len(b"0\x07")] + bad + b"\x07y"
        assert run_filter([data]) == (data, None)
        assert run_filter([bytes([b]) for b in data]) == (data, None)


def test_a_trailer_with_another_marker_is_output() -> None:
    data = b"a" + trailer(3, "f" * 32) + b"b"
    assert run_filter([data]) == (data, None)


def test_output_flows_without_waiting_for_the_end() -> None:
    filt = TrailerFilter(MARKER)
    assert filt.feed(b"progress: 10%") == b"progress: 10%"
    assert filt.feed(b"\r20%\x1b") == b"\r20%"  # only a possible trailer start is held
    assert filt.feed(b"[K") == b"\x1b[K"


def _agent_runs(command: str) -> subprocess.CompletedProcess[bytes]:
    """What the official agent does with a NonInteractiveCommands command: split, exec."""
    return subprocess.run(shlex.split(command), stdin=subprocess.DEVNULL, capture_output=True)


def test_the_wrapper_reports_the_status_through_a_real_sh() -> None:
    marker = new_marker()
    line = "printf 'no newline'; echo err >&2; exit 5"
    done = _agent_runs(wrap_command(line, marker, tty=False))
    out, status = run_filter([done.stdout], marker)
    assert (out, status, done.stderr) == (b"no newline", 5, b"err\n")


def test_the_wrapper_keeps_quotes_and_binary_output() -> None:
    marker = new_marker()
    line = """printf '\\000\\377"'"'"; test "$0" = sh"""
    done = _agent_runs(wrap_command(line, marker, tty=False))
    out, status = run_filter([done.stdout], marker)
    assert (out, status) == (b"\x00\xff\"'", 0)


def test_the_tty_wrapper_waits_for_the_size_in_a_real_pty() -> None:
    """AWS-StartInteractiveCommand runs the text under sh -c in a pty of no size (the
    official agent's pty.Start gives none); the command starts only once the client
    has set the size and sent a line, and sees that size (issue #17 item 5)."""
    marker = new_marker()
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        line = "stty size; exit 7"
        os.execvp("sh", ["sh", "-c", wrap_command(line, marker, tty=True)])
    set_winsize(fd, 0, 0)
    ready = ReadyFilter(marker)
    before = b""
    while not ready.done:
        before += ready.feed(os.read(fd, 1024))
    assert (before, ready.word) == (b"", "tty")  # echo is off: nothing before it
    set_winsize(fd, 40, 120)  # the client's Size message...
    os.write(fd, b"\n")  # ... then the line the wrapper waits for
    rest = ready.take_rest()
    ready.rearm()
    chunks = [ready.feed(rest)]
    while True:
        try:
            data = os.read(fd, 1024)
        except OSError:
            break
        if not data:
            break
        chunks.append(ready.feed(data))
    os.waitpid(pid, 0)
    os.close(fd)
    assert ready.word == "run"
    out, status = run_filter([*chunks, ready.take_rest()], marker)
    assert (out, status) == (b"40 120\r\n", 7)


def set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def go(word: str, marker: str = MARKER) -> bytes:
    return b"\x1b]ssmsh-go;" + marker.encode() + b";" + word.encode() + b"\x07"


@given(st.binary(max_size=100), st.binary(max_size=100), st.lists(st.integers(0, 10_000)))
def test_ready_sequences_come_out_one_at_a_time(
    first: bytes, second: bytes, cuts: list[int]
) -> None:
    data = first + go("tty") + second + go("run") + b"after" + trailer(4)
    ready, out = ReadyFilter(MARKER), b""
    words: list[str | None] = []
    for chunk in split(data, cuts):
        out += ready.feed(chunk) if not ready.done else chunk
        while ready.done and len(words) < 2:
            words.append(ready.word)
            rest = ready.take_rest()
            if len(words) == 2:
                out += rest
                break
            ready.rearm()
            out += ready.feed(rest)
    if not ready.done:
        out += ready.finish()
    assert words == ["tty", "run"]
    assert run_filter([out]) == (first + second + b"after", 4)


def test_a_ready_sequence_with_another_marker_or_word_is_output() -> None:
    for data in (go("tty", "f" * 32), go("TTY"), go(""), go("x" * 40)):
        ready = ReadyFilter(MARKER)
        assert ready.feed(b"a" + data + b"b") + ready.finish() == b"a" + data + b"b"
        assert not ready.done
