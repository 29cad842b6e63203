"""A command's exit status carried in its own output, for agents that report none.

The official agent sends an exit status only for NonInteractiveCommands sessions whose
document sets ``separateOutputStream`` (``protocol/traces/noninteractive-*-exit-5``);
AWS-StartNonInteractiveCommand and AWS-StartInteractiveCommand, the documents every
account has, never do. So ``ssmsh exec`` wraps the command line in a small POSIX
``sh`` script that runs it and then prints a *trailer*::

    ESC ] ssmsh-status ; <marker> ; <status> BEL

where ``<marker>`` is 32 random hex digits chosen for this run and ``<status>`` the
decimal ``$?`` of the command. :class:`TrailerFilter` takes the trailer out of the
output stream again: bytes in, bytes out, the status on the side. It holds back only
a tail that could be the start of the trailer, so output flows as it comes (a prompt
without a newline is not delayed unless it ends with ``ESC``), works on any binary
output (128 random bits cannot appear by chance), and on output that did not end with
a newline. On a terminal the trailer is an OSC sequence with a name no terminal knows,
so even an unfiltered one would not show.

This is Sans-I/O: no processes, no sessions; :func:`wrap_command` builds the text and
:class:`TrailerFilter` reads it back.
"""

from __future__ import annotations

import secrets
import shlex

__all__ = ["TrailerFilter", "new_marker", "wrap_command"]

_PREFIX = b"\x1b]ssmsh-status;"
_END = b"\x07"
#: Longest status text accepted after the marker ("-2147483648" is 11 bytes).
_MAX_STATUS = 11


def new_marker() -> str:
    """A fresh per-run marker: 32 hex digits."""
    return secrets.token_hex(16)


def _report(marker: str) -> str:
    """Shell text: print the trailer for ``$?``, then exit with it (so that an agent that
    does report a status, with ``separateOutputStream``, reports the command's too)."""
    # printf's format is fixed text; the status is its only argument.
    printf = "printf '\\033]ssmsh-status;%s;%d\\007' " + shlex.quote(marker) + ' "$s"'
    return f"s=$?; {printf}; exit $s"


def wrap_command(line: str, marker: str, *, tty: bool) -> str:
    """The command text to give the agent so that ``line``'s status comes back.

    Without a terminal (AWS-StartNonInteractiveCommand) the agent splits the text
    into words like a shell would and executes them, so the result is an ``sh -c``
    invocation with ``line`` as a separate argument. With a terminal
    (AWS-StartInteractiveCommand) the agent already runs the text under ``sh -c``; the
    outer shell ignores Ctrl-C's SIGINT (with a handler, which the command does not
    inherit) so that it lives to report the status of a command Ctrl-C ended (130).
    """
    if tty:
        return f"trap : INT QUIT; sh -c {shlex.quote(line)}; {_report(marker)}"
    script = f'sh -c "$1"; {_report(marker)}'
    return shlex.join(["sh", "-c", script, "ssmsh", line])


class TrailerFilter:
    """Removes the trailer of :func:`wrap_command` from a stream of output.

    :meth:`feed` returns what may be shown now; :meth:`finish` what remains at the
    end. :attr:`status` is the command's status once the whole trailer was seen
    (None before, and for ever if it never came: the status is then unknown).
    Output after the trailer (a background job that outlived the command) passes.
    """

    def __init__(self, marker: str) -> None:
        self._token = _PREFIX + marker.encode("ascii") + b";"
        self._held = b""
        self._digits: bytearray | None = None  # set once the token was seen
        self.status: int | None = None

    @property
    def done(self) -> bool:
        return self.status is not None

    def feed(self, data: bytes) -> bytes:
        if self.status is not None:
            return data
        if self._digits is not None:
            return self._read_status(data)
        buffer = self._held + data
        self._held = b""
        found = buffer.find(self._token)
        if found >= 0:
            self._digits = bytearray()
            return buffer[:found] + self._read_status(buffer[found + len(self._token) :])
        keep = _partial_suffix(buffer, self._token)
        if keep:
            self._held = buffer[-keep:]
            return buffer[:-keep]
        return buffer

    def _read_status(self, data: bytes) -> bytes:
        assert self._digits is not None
        end = data.find(_END)
        text = bytes(self._digits) + (data if end < 0 else data[:end])
        if not _plausible(text) or len(text) > _MAX_STATUS:
            # Not our trailer after all (it cannot be, short of a forgery): give it back.
            return self._give_back(text + (b"" if end < 0 else data[end:]))
        if end < 0:
            self._digits[:] = text
            return b""
        if not text.lstrip(b"-"):  # BEL right after the token, or after "-": not ours
            return self._give_back(text + data[end:])
        self.status = int(text)
        self._digits = None
        return data[end + 1 :]

    def _give_back(self, rest: bytes) -> bytes:
        self._digits = None
        return self._token + self.feed(rest)

    def finish(self) -> bytes:
        """The held-back tail, once the output has ended."""
        if self._digits is not None:
            held = self._token + bytes(self._digits)
            self._digits = None
            return held
        held, self._held = self._held, b""
        return held


def _plausible(text: bytes) -> bool:
    body = text[1:] if text.startswith(b"-") else text
    return body.isdigit() or not body


def _partial_suffix(buffer: bytes, token: bytes) -> int:
    """Length of the longest suffix of ``buffer`` that starts ``token`` (0 if none)."""
    start = buffer.rfind(token[:1], max(0, len(buffer) - len(token) + 1))
    while start >= 0:
        if token.startswith(buffer[start:]):
            return len(buffer) - start
        start = buffer.find(token[:1], start + 1)
    return 0
