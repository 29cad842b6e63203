"""write_now: small output written on the spot when the fd takes it, never blocking."""

from __future__ import annotations

import fcntl
import os

from ssmsh.terminal.tty import SMALL_WRITE, write_now


def test_small_writes_go_at_once_and_a_full_pipe_is_left_to_the_thread() -> None:
    r, w = os.pipe()
    try:
        assert write_now(w, b"echo")
        assert os.read(r, 100) == b"echo"
        assert not write_now(w, b"x" * (SMALL_WRITE + 1))  # large: the caller's thread
        # Fill the pipe (non-blocking only for filling it here), then: not ready, untouched.
        flags = fcntl.fcntl(w, fcntl.F_GETFL)
        fcntl.fcntl(w, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        try:
            while True:
                os.write(w, b"y" * 65536)
        except BlockingIOError:
            pass
        fcntl.fcntl(w, fcntl.F_SETFL, flags)
        assert not write_now(w, b"z")
        drained = b""
        while len(drained) < 65536:
            drained += os.read(r, 65536)
        assert b"z" not in drained
    finally:
        os.close(r)
        os.close(w)
