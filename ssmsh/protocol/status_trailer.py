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

The wrappers also print ``ESC ] ssmsh-go ; <marker> ; <word> BEL`` when they wait for
the client (the ``exec -t`` wrapper, for the terminal size; the piped-stdin wrapper
of :mod:`.piped_stdin`, for the input): :class:`ReadyFilter` takes those out.

This is Sans-I/O: no processes, no sessions; :func:`wrap_command` builds the text and
:class:`TrailerFilter` reads it back.
"""

from __future__ import annotations

import secrets
import shlex

__all__ = [
    "ReadyFilter",
    "TrailerFilter",
    "new_marker",
    "report_status",
    "say_ready",
    "wrap_command",
]

_PREFIX = b"\x1b]ssmsh-status;"
_GO_PREFIX = b"\x1b]ssmsh-go;"
_END = b"\x07"
#: Longest status text accepted after the marker ("-2147483648" is 11 bytes).
_MAX_STATUS = 11


def new_marker() -> str:
    """A fresh per-run marker: 32 hex digits."""
    return secrets.token_hex(16)


def report_status(marker: str) -> str:
    """Shell text: print the trailer for ``$s``, then exit with it (so that an agent that
    does report a status, with ``separateOutputStream``, reports the command's too)."""
    # printf's format is fixed text; the status is its only argument.
    printf = "printf '\\033]ssmsh-status;%s;%d\\007' " + shlex.quote(marker) + ' "$s"'
    return f"{printf}; exit $s"


def _report(marker: str) -> str:
    return f"s=$?; {report_status(marker)}"


def say_ready(marker: str, word: str) -> str:
    """Shell text: print the ``ssmsh-go`` sequence with ``word`` (see :class:`ReadyFilter`)."""
    return "printf '\\033]ssmsh-go;%s;%s\\007' " + shlex.quote(marker) + " " + word


def wrap_command(line: str, marker: str, *, tty: bool) -> str:
    """The command text to give the agent so that ``line``'s status comes back.

    Without a terminal (AWS-StartNonInteractiveCommand) the agent splits the text
    into words like a shell would and executes them, so the result is an ``sh -c``
    invocation with ``line`` as a separate argument. With a terminal
    (AWS-StartInteractiveCommand) the agent already runs the text under ``sh -c``; the
    outer shell ignores Ctrl-C's SIGINT (with a handler, which the command does not
    inherit) so that it lives to report the status of a command Ctrl-C ended (130).

    With a terminal, ``line`` starts only once the client's terminal size is in
    place. The official agent starts the program at once in a pty of no size
    (0x0: it gives no size to ``pty.Start``) and applies the client's Size message
    when it comes; the official plugin sends that only after the agent's first output
    (``protocol/traces/shell-exit-3``). So the wrapper turns echo off, prints
    ``ssmsh-go;MARKER;tty`` (that first output), and reads one line: the client
    sends its size, then an empty line; the agent handles them in order, so the size
    is set when the line arrives. Echo back on, ``ssmsh-go;MARKER;run`` tells the
    client that what the user typed meanwhile may go (it would not be echoed
    before), and ``line`` runs.
    """
    if tty:
        wait = (
            f"stty -echo 2>/dev/null; {say_ready(marker, 'tty')}; IFS= read -r ssmsh_go; "
            f"stty echo 2>/dev/null; {say_ready(marker, 'run')}"
        )
        return f"trap : INT QUIT; {wait}; sh -c {shlex.quote(line)}; {_report(marker)}"
    script = f'sh -c "$1"; {_report(marker)}'
    return shlex.join(["sh", "-c", script, "ssmsh", line])


class _OscFilter:
    """Takes one ``ESC ] <name> ; <marker> ; <value> BEL`` sequence out of a stream.

    :meth:`feed` returns what may be shown now; :meth:`finish` what remains at the
    end; :attr:`value` is the value once the whole sequence was seen. Only a tail
    that could be the start of the sequence is held back. Subclasses say which
    values are plausible.
    """

    _prefix = b""

    def __init__(self, marker: str) -> None:
        self._token = self._prefix + marker.encode("ascii") + b";"
        self._held = b""
        self._digits: bytearray | None = None  # set once the token was seen
        self.value: bytes | None = None

    @property
    def done(self) -> bool:
        return self.value is not None

    def _plausible(self, text: bytes) -> bool:
        raise NotImplementedError

    def _complete(self, text: bytes) -> bool:
        """Whether ``text`` (BEL came after it) is a whole value."""
        return True

    def feed(self, data: bytes) -> bytes:
        if self.value is not None:
            return data
        if self._digits is not None:
            return self._read_value(data)
        buffer = self._held + data
        self._held = b""
        found = buffer.find(self._token)
        if found >= 0:
            self._digits = bytearray()
            return buffer[:found] + self._read_value(buffer[found + len(self._token) :])
        keep = _partial_suffix(buffer, self._token)
        if keep:
            self._held = buffer[-keep:]
            return buffer[:-keep]
        return buffer

    def _read_value(self, data: bytes) -> bytes:
        assert self._digits is not None
        end = data.find(_END)
        text = bytes(self._digits) + (data if end < 0 else data[:end])
        if not self._plausible(text) or len(text) > _MAX_STATUS:
            # Not our sequence after all (it cannot be, short of a forgery): give it back.
            return self._give_back(text + (b"" if end < 0 else data[end:]))
        if end < 0:
            self._digits[:] = text
            return b""
        if not self._complete(text):  # BEL right after the token, or after "-": not ours
            return self._give_back(text + data[end:])
        self.value = text
        self._digits = None
        return self._after(data[end + 1 :])

    def _after(self, rest: bytes) -> bytes:
        """What follows the sequence, in the same :meth:`feed`: passed on."""
        return rest

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


class TrailerFilter(_OscFilter):
    """Removes the trailer of :func:`wrap_command` from a stream of output.

    :meth:`feed` returns what may be shown now; :meth:`finish` what remains at the
    end. :attr:`status` is the command's status once the whole trailer was seen
    (None before, and for ever if it never came: the status is then unknown).
    Output after the trailer (a background job that outlived the command) passes.
    """

    _prefix = _PREFIX

    @property
    def status(self) -> int | None:
        return int(self.value) if self.value is not None else None

    def _plausible(self, text: bytes) -> bool:
        return _plausible(text)

    def _complete(self, text: bytes) -> bool:
        return bool(text.lstrip(b"-"))


class ReadyFilter(_OscFilter):
    """Takes the wrapper's ``ESC ] ssmsh-go ; <marker> ; <word> BEL`` out of the output.

    The wrapper prints it when it is ready for what only the client can send next
    (:func:`wrap_command` with a terminal: the terminal size and one line;
    :mod:`ssmsh.protocol.piped_stdin`: the framed stdin). :attr:`word` is the word
    (``tty``, ``run``, ``head``, ``dd``...); :meth:`rearm` looks for the next one.
    """

    _prefix = _GO_PREFIX

    @property
    def word(self) -> str | None:
        return self.value.decode("ascii") if self.value is not None else None

    def _plausible(self, text: bytes) -> bool:
        return all(48 <= b <= 57 or 97 <= b <= 122 for b in text)

    def _complete(self, text: bytes) -> bool:
        return bool(text)

    def __init__(self, marker: str) -> None:
        super().__init__(marker)
        self._rest = b""

    def _after(self, rest: bytes) -> bytes:
        # Kept apart: the caller answers the sequence before what follows it is fed.
        self._rest = rest
        return b""

    def take_rest(self) -> bytes:
        """The output that came after the sequence (not yet looked at)."""
        rest, self._rest = self._rest, b""
        return rest

    def rearm(self) -> None:
        """Look for the next sequence (feed it :meth:`take_rest` first)."""
        self.value = None


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
