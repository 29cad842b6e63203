"""ssh-style escape sequences in the input stream, Sans-I/O.

An escape is recognised only at the start of a line (the very first byte, or
right after a CR or LF): ``~.`` disconnects, ``~?`` lists the escapes, ``~~``
sends one ``~``, ``~^Z`` suspends ssmsh. Any other byte after the escape
character is sent together with the held escape character, as ssh does.
The character is configurable (``-e CHAR``) or disabled (``-e none``).

Feed input with :meth:`EscapeFilter.feed`; it returns a list of bytes to send
and :class:`EscapeAction` values, in order.
"""

from __future__ import annotations

import enum

__all__ = ["EscapeAction", "EscapeFilter", "escape_help", "parse_escape_char"]


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


def _show(char: int) -> str:
    return f"^{chr(char | 0x40)}" if char < 0x20 else chr(char)


def escape_help(char: int) -> str:
    """The text shown for ``~?`` (lines separated by CRLF, for a raw terminal)."""
    e = _show(char)
    lines = [
        "Supported escape sequences:",
        f" {e}.   - terminate the session and disconnect",
        f" {e}^Z  - suspend ssmsh",
        f" {e}?   - this message",
        f" {e}{e}   - send the escape character by typing it twice",
        "(Note that escapes are only recognized immediately after newline.)",
    ]
    return "\r\n".join(lines) + "\r\n"


class EscapeFilter:
    """Splits escape commands out of a byte stream."""

    def __init__(self, char: int | None = ord("~")) -> None:
        self.char = char
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
                action = _ACTIONS.get(byte)
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
