"""The ``ssmsh`` console script: :func:`main` with no traceback for an early Ctrl-C.

Importing the command line (asyncio, ssl, websockets, botocore...) takes a few
hundred milliseconds, and a Ctrl-C in that time would otherwise end in a
KeyboardInterrupt traceback from somewhere inside an import. This module
imports nothing heavy itself: it catches SIGINT while the rest is imported,
and turns any KeyboardInterrupt that escapes the command into the same one
line and exit status 130 that an interrupted session gets.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

__all__ = ["main"]

#: 128 + SIGINT, as for an interrupted session (``errors.EXIT_INTERRUPTED``).
_EXIT_INTERRUPTED = 130
_LINE = b"ssmsh: interrupted\n"


def _interrupted_while_importing(signum: int, frame: FrameType | None) -> None:
    # Nothing has been set up yet (no terminal mode, no session): leave at once.
    os.write(2, _LINE)
    os._exit(_EXIT_INTERRUPTED)


#: ssmsh drives POSIX terminals and signals (termios, SIGWINCH, SIGTSTP...).
_NOT_POSIX = (
    "ssmsh: this system is not supported: the ssmsh client needs a POSIX system "
    "(Linux, macOS); its targets may run anything"
)


def main(argv: list[str] | None = None) -> int:
    if os.name != "posix":
        sys.stderr.write(_NOT_POSIX + "\n")
        return 255
    previous = None
    try:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not ignored
            previous = signal.signal(signal.SIGINT, _interrupted_while_importing)
    except ValueError:  # not the main thread: no signal handling of ours
        pass
    try:
        from .main import main as run
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    try:
        return run(argv)
    except KeyboardInterrupt:
        # Between the imports and the session's own handling (argument parsing,
        # logging set-up): one line, no traceback.
        sys.stderr.write(_LINE.decode())
        return _EXIT_INTERRUPTED
