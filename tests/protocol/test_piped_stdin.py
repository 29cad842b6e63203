"""The piped-stdin wrapper, run by real shells in a real pty as the official agent runs
an InteractiveCommands command (``sh -c TEXT`` in a pty), fed the client's frames."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pty
import random
import select
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ssmsh.protocol.piped_stdin import END_FRAME, MAX_FRAME, frame, wrap_piped
from ssmsh.protocol.status_trailer import ReadyFilter, TrailerFilter, new_marker

pytestmark = pytest.mark.timeout(60)


def _shells(tmp: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """(sh, environment) pairs: the system's sh, bash (Amazon Linux's sh), busybox."""
    yield "sh", {}
    if shutil.which("bash"):
        yield "bash", {}
    busybox = shutil.which("busybox")
    if busybox:
        # busybox's head -c reads ahead: the wrapper must notice and use dd.
        for tool in ("sh", "head", "dd", "cat", "stty", "printf", "sha256sum", "wc"):
            (tmp / tool).symlink_to(busybox)
        yield str(tmp / "sh"), {"PATH": f"{tmp}:{os.environ['PATH']}"}


@pytest.fixture(params=["sh", "bash", "busybox"])
def shell(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    found = dict(
        (name if name in ("sh", "bash") else "busybox", (name, env))
        for name, env in _shells(tmp_path)
    )
    if request.param not in found:
        pytest.skip(f"no {request.param} here")
    return found[request.param]


def run(
    shell: tuple[str, dict[str, str]], line: str, data: bytes, chunk: int = MAX_FRAME
) -> tuple[bytes, int | None, str | None]:
    """Run the wrapper as the agent would and act as the client: (output, status, how)."""
    program, extra = shell
    marker = new_marker()
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.environ.update(extra)
        os.execvp(program, [program, "-c", wrap_piped(line, marker)])
    os.set_blocking(fd, False)
    ready, trailer = ReadyFilter(marker), TrailerFilter(marker)
    out, pending, sent, ended = b"", bytearray(), 0, False
    while True:
        want_write = ready.done and (pending or not ended)
        readable, writable, _ = select.select([fd], [fd] if want_write else [], [], 20)
        assert readable or writable, f"stuck; output so far {out[-200:]!r}"
        if readable:
            try:
                data_in = os.read(fd, 65536)
            except OSError:
                data_in = b""
            if not data_in:
                break
            if not ready.done:
                assert ready.feed(data_in) == b"", "output before the wrapper was ready"
                data_in = ready.take_rest() if ready.done else b""
            out += trailer.feed(data_in)
            if trailer.done and not ended:  # the command is over: no more input
                pending += END_FRAME
                ended = True
        if writable:
            if not pending and not ended:
                if sent < len(data):
                    pending += frame(data[sent : sent + chunk])
                    sent += len(data[sent : sent + chunk])
                else:
                    pending += END_FRAME
                    ended = True
            with contextlib.suppress(BlockingIOError, OSError):
                del pending[: os.write(fd, pending)]
    os.waitpid(pid, 0)
    os.close(fd)
    return out + trailer.finish(), trailer.status, ready.word


def test_binary_stdin_arrives_byte_for_byte(shell: tuple[str, dict[str, str]]) -> None:
    data = random.Random(7).randbytes(200_000)  # every byte value: ^C ^D ^S CR NUL ...
    out, status, how = run(shell, "sha256sum; exit 3", data, chunk=50_000)
    assert (out, status) == (hashlib.sha256(data).hexdigest().encode() + b"  -\n", 3)
    assert how == ("dd" if "busybox" in shell[0] or shell[1] else "head")


def test_output_is_clean_and_stderr_is_merged_in_order(shell: tuple[str, dict[str, str]]) -> None:
    out, status, _ = run(shell, "cat; echo err >&2; printf 'no newline'", b"a\r\nb\x00\n")
    assert (out, status) == (b"a\r\nb\x00\nerr\nno newline", 0)


def test_a_script_for_sh_runs_without_prompts(shell: tuple[str, dict[str, str]]) -> None:
    script = (
        b"echo one\n[ -t 0 ] || echo stdin-is-no-tty\n[ -t 1 ] || echo stdout-is-no-tty\nexit 4\n"
    )
    out, status, _ = run(shell, "exec sh", script)
    assert (out, status) == (b"one\nstdin-is-no-tty\nstdout-is-no-tty\n", 4)


def test_a_command_that_stops_reading_ends_the_session(shell: tuple[str, dict[str, str]]) -> None:
    out, status, _ = run(shell, "head -c 5", b"0123456789" * 100_000, chunk=4096)
    assert (out, status) == (b"01234", 0)


def test_empty_stdin(shell: tuple[str, dict[str, str]]) -> None:
    assert run(shell, "wc -c | tr -d ' '", b"")[:2] == (b"0\n", 0)
