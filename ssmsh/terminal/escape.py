"""ssh-style escape sequences in the input stream, Sans-I/O.

An escape is recognised only at the start of a line (the very first byte, or
right after a CR or LF): ``~.`` disconnects, ``~?`` lists the escapes, ``~~``
sends one ``~``, ``~^Z`` suspends ssmsh. Any other byte after the escape
character is sent together with the held escape character, as ssh does.
The character is configurable (``-e CHAR``) or disabled (``-e none``).

``~^Z`` exists only where suspending can work: not when SIGTSTP is ignored, as
under the AWS CLI (plugin mode), where stopping ssmsh alone would leave the AWS
CLI holding the terminal (:func:`can_suspend`). There it is no escape, and
``~?`` does not list it.

Feed input with :meth:`EscapeFilter.feed`; it returns a list of bytes to send
and :class:`EscapeAction` values, in order.
"""

from __future__ import annotations

import enum
import signal

__all__ = ["EscapeAction", "EscapeFilter", "can_suspend", "escape_help", "parse_escape_char"]


class EscapeAction(enum.Enum):
    DISCONNECT = "disconnect"
    HELP = "help"
    SUSPEND = "suspend"


_ACTIONS = {
    ord("."): EscapeAction.DISCONNECT,
    ord("?"): EscapeAction.HELP,
    0x1A: EscapeAction.SUSPEND,  # Ctrl-Z
}
_NEWLINES = (0x0D, 0x0A)


def parse_escape_char(text: str) -> int | None:
    """``-e`` argument -> byte value; ``none`` -> None. ``^X`` means Ctrl-X.

    Raises ValueError for anything else.
    """
    if text.lower() == "none":
        return None
    if len(text) == 2 and text[0] == "^" and text[1].isascii():
        return ord(text[1].upper()) & 0x1F
    if len(text) == 1 and text.isascii() and text.isprintable():
        return ord(text)
    raise ValueError(f"bad escape character {text!r} (give one character, ^X, or none)")


def show_char(char: int) -> str:
    """How the escape character is written: ``~``, or ``^B`` for a control character."""
    return f"^{chr(char | 0x40)}" if char < 0x20 else chr(char)


def can_suspend() -> bool:
    """Whether ``~^Z`` can suspend this process: SIGTSTP exists and is not ignored."""
    signum = getattr(signal, "SIGTSTP", None)
    if signum is None:
        return False
    try:
        return signal.getsignal(signum) != signal.SIG_IGN
    except ValueError:  # not the main thread
        return False


def escape_help(char: int, suspend: bool | None = None) -> str:
    """The text shown for ``~?`` (lines separated by CRLF, for a raw terminal).

    ``~^Z`` is listed when ``suspend`` (default: :func:`can_suspend`).
    """
    if suspend is None:
        suspend = can_suspend()
    e = show_char(char)
    entries = [(f"{e}.", "terminate the session and disconnect")]
    if suspend:
        entries.append((f"{e}^Z", "suspend ssmsh"))
    entries += [
        (f"{e}?", "this message"),
        (f"{e}{e}", "send the escape character by typing it twice"),
    ]
    width = max(len(keys) for keys, _ in entries) + 2
    lines = [
        "Supported escape sequences:",
        *(f" {keys.ljust(width)}- {what}" for keys, what in entries),
        "(Note that escapes are only recognized immediately after newline.)",
    ]
    return "\r\n".join(lines) + "\r\n"


class EscapeFilter:
    """Splits escape commands out of a byte stream."""

    def __init__(self, char: int | None = ord("~"), suspend: bool | None = None) -> None:
        """``suspend``: whether ``~^Z`` is an escape (default: :func:`can_suspend`)."""
        self.char = char
        self.suspend = can_suspend() if suspend is None else suspend
        self._actions = (
            _ACTIONS
            if self.suspend
            else {k: v for k, v in _ACTIONS.items() if v is not EscapeAction.SUSPEND}
        )
        self._line_start = True
        self._pending = False

    def feed(self, data: bytes) -> list[bytes | EscapeAction]:
        """Process input; consecutive plain bytes are returned as one ``bytes``."""
        if self.char is None:
            return [data] if data else []
        out: list[bytes | EscapeAction] = []
        plain = bytearray()
        char = self.char
        for byte in data:
            if self._pending:
                self._pending = False
                if byte == char:
                    plain.append(char)
                    self._line_start = False
                    continue
                action = self._actions.get(byte)
                if action is not None:
                    if plain:
                        out.append(bytes(plain))
                        plain.clear()
                    out.append(action)
                    # still at the start of a line: another escape may follow
                    self._line_start = True
                    continue
                plain.append(char)
                # fall through: the byte itself is ordinary
            elif self._line_start and byte == char:
                self._pending = True
                continue
            plain.append(byte)
            self._line_start = byte in _NEWLINES
        if plain:
            out.append(bytes(plain))
        return out

    @property
    def pending(self) -> bool:
        """True while an escape character is held, waiting for the next byte."""
        return self._pending
