"""The exit-status trailer: the wrapper a real sh runs, and the filter that reads it back."""

from __future__ import annotations

import os
import pty
import shlex
import subprocess

from hypothesis import given
from hypothesis import strategies as st

from ssmsh.protocol.status_trailer import TrailerFilter, new_marker, wrap_command

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


def test_the_tty_wrapper_in_a_real_pty() -> None:
    """AWS-StartInteractiveCommand runs the text under sh -c in a pty."""
    marker = new_marker()
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execvp("sh", ["sh", "-c", wrap_command("echo hi; exit 7", marker, tty=True)])
    chunks = []
    while True:
        try:
            data = os.read(fd, 1024)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.waitpid(pid, 0)
    os.close(fd)
    out, status = run_filter(chunks, marker)
    assert (out, status) == (b"hi\r\n", 7)
