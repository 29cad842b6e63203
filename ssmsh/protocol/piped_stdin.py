"""Piped stdin for a remote command, through the only input the official agent has.

The official agent gives a command's stdin only to sessions with a pty
(Standard_Stream, InteractiveCommands): a NonInteractiveCommands command gets none
(``protocol/traces/noninteractive-stdin*.jsonl``: typed bytes are acked and dropped).
And a pty is no pipe: its line discipline edits, echoes and signals, lines longer than
4095 bytes are cut, and the end of input is a Ctrl-D that a program switching
terminal modes (a shell's line editor) may swallow. So ``ssmsh exec`` with piped
stdin (and ``ssmsh shell`` with a script on stdin) runs the command through
AWS-StartInteractiveCommand under a POSIX ``sh`` wrapper that makes the pty carry a
byte stream, as ``ssh host cmd < file`` does:

1. ``stty raw -echo``: no editing, echo, signals, flow control or CR/NL mapping in
   either direction (cfmakeraw), so every byte value passes as it is, and the pty
   throttles the agent's writes instead of dropping bytes.
2. It checks that ``head -c N`` reads no more than N bytes (GNU coreutils does;
   busybox and BSD ``head`` read ahead) and picks ``head -c`` or the slower
   ``dd bs=1 count=N``.
3. It prints ``ESC ] ssmsh-go ; MARKER ; head|dd BEL`` (:class:`ReadyFilter`). The
   client sends nothing before that, so nothing can meet a pty in its default mode.
4. The client sends stdin as frames: N as 8 decimal digits, then N bytes, as it reads
   them (no delay for a slow producer), and ``00000000`` at its end. A ``sh`` loop
   reads each length and body with the exact reader (two processes a frame, so frames
   are up to 64 KiB), into a pipe: the command's stdin, which then ends as a pipe's
   does.
5. The command's stdout and stderr are one pipe (``2>&1``, in the order written),
   copied to the pty by ``cat``: the command sees no terminal on any of them, as
   under ssh without ``-t`` (no pager, no colours, no prompts), and the output
   arrives byte for byte (``-opost``: no CR added).
6. Its status comes back in the trailer of :mod:`.status_trailer`, printed as soon as
   the command is over, without waiting for the reader loop: the client answers the
   trailer with the end frame (the rest of its stdin is not wanted, as with ssh), the loop
   ends, and with it the session.

The command keeps the pty as its controlling terminal: a program that opens
``/dev/tty`` (``sudo`` asking for a password) would read from the framed stream.

Sans-I/O: :func:`wrap_piped` builds the text, :func:`frame` the input.
"""

from __future__ import annotations

import shlex

from .status_trailer import report_status, say_ready

__all__ = ["END_FRAME", "MAX_FRAME", "frame", "wrap_piped"]

#: The last frame: end of input (a length of 0).
END_FRAME = b"00000000"
#: Largest body per frame (bigger reads are cut): one ``head``/``dd`` each.
MAX_FRAME = 64 * 1024

#: Whether ``head -c`` reads exactly what it is asked for (no read-ahead into the
#: next frame): it must leave ``cdef`` to the ``cat`` after it.
_HEAD_EXACT = '[ "$(printf abcdef | { head -c 2 >/dev/null 2>&1; cat; })" = cdef ]'


def frame(data: bytes) -> bytes:
    """One frame of input (``data`` must not be empty: that is :data:`END_FRAME`)."""
    if not 0 < len(data) <= MAX_FRAME:
        raise ValueError(f"a frame holds 1 to {MAX_FRAME} bytes, not {len(data)}")
    return b"%08d" % len(data) + data


def wrap_piped(line: str, marker: str) -> str:
    """The command text for AWS-StartInteractiveCommand: ``line`` under ``sh -c``, with
    the client's framed stdin as its stdin and a pipe as its stdout and stderr."""
    # The length is read with the exact reader too: the shell's own ``read`` may read
    # ahead on a terminal (bash, when lseek on it does not fail) and lose the excess.
    reader = (
        "while n=$(ssmsh_read 8 2>/dev/null); do "
        'n=${n#"${n%%[!0]*}"}; case $n in ""|*[!0-9]*) break;; esac; '
        'ssmsh_read "$n" 2>/dev/null || break; done'
    )
    command = f"sh -c {shlex.quote(line)} 2>&1 3>&- 4>&-"
    # The status of the command, not of cat: it comes out on fd 3 (the capture).
    run = f"s=$( {{ {{ {command}; echo $? >&3; }} | cat >&4 3>&-; }} 3>&1 ); s=${{s:-255}}"
    return (
        "stty raw -echo 2>/dev/null || exit 125; "
        f'if {_HEAD_EXACT}; then ssmsh_read() {{ head -c "$1"; }}; m=head; '
        'else ssmsh_read() { dd bs=1 count="$1" 2>/dev/null; }; m=dd; fi; '
        f"{say_ready(marker, '$m')}; "
        "exec 4>&1; "
        f"{reader} 4>&- | {{ {run}; {report_status(marker)}; }}"
    )
