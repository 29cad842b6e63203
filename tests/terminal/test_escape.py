"""The ssh-style escape filter."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssmsh.terminal.escape import EscapeAction, EscapeFilter, escape_help, parse_escape_char

D, H, S = EscapeAction.DISCONNECT, EscapeAction.HELP, EscapeAction.SUSPEND


def feed_all(f: EscapeFilter, *chunks: bytes) -> list[bytes | EscapeAction]:
    out: list[bytes | EscapeAction] = []
    for chunk in chunks:
        out.extend(f.feed(chunk))
    return out


def joined(items: list[bytes | EscapeAction]) -> bytes:
    return b"".join(i for i in items if isinstance(i, bytes))


def test_disconnect_at_start_and_after_enter() -> None:
    assert EscapeFilter().feed(b"~.") == [D]
    assert EscapeFilter().feed(b"ls\r~.") == [b"ls\r", D]
    assert EscapeFilter().feed(b"ls\n~.") == [b"ls\n", D]


def test_not_recognised_mid_line() -> None:
    assert EscapeFilter().feed(b"echo ~.") == [b"echo ~."]
    assert EscapeFilter().feed(b"a~?") == [b"a~?"]


def test_split_across_reads() -> None:
    f = EscapeFilter()
    assert f.feed(b"x\r~") == [b"x\r"]
    assert f.pending
    assert f.feed(b".") == [D]


def test_double_escape_sends_one() -> None:
    f = EscapeFilter()
    assert joined(f.feed(b"~~.")) == b"~."  # the second ~ is literal, the . ordinary
    assert EscapeFilter().feed(b"~~") == [b"~"]


def test_unknown_escape_sends_both() -> None:
    assert EscapeFilter().feed(b"~x") == [b"~x"]
    assert EscapeFilter().feed(b"~\r") == [b"~\r"]


def test_help_and_suspend_keep_line_start() -> None:
    assert EscapeFilter().feed(b"~?~.") == [H, D]
    assert EscapeFilter().feed(b"~\x1a") == [S]


def test_disabled_and_custom_char() -> None:
    assert EscapeFilter(None).feed(b"~.") == [b"~."]
    f = EscapeFilter(ord("%"))
    assert f.feed(b"~.") == [b"~."]
    assert f.feed(b"\r%.") == [b"\r", D]


def test_parse_escape_char() -> None:
    assert parse_escape_char("~") == ord("~")
    assert parse_escape_char("none") is None
    assert parse_escape_char("^]") == 0x1D
    for bad in ("", "ab", "é", "\x01"):
        with pytest.raises(ValueError, match="escape character"):
            parse_escape_char(bad)


def test_help_mentions_every_escape() -> None:
    text = escape_help(ord("~"))
    for seq in ("~.", "~?", "~~", "~^Z"):
        assert seq in text
    assert "^]." in escape_help(0x1D)


@given(st.lists(st.binary(max_size=20), max_size=20))
def test_without_escape_chars_data_passes_unchanged(chunks: list[bytes]) -> None:
    chunks = [c.replace(b"~", b"") for c in chunks]
    f = EscapeFilter()
    assert joined(feed_all(f, *chunks)) == b"".join(chunks)


@given(st.binary(max_size=200), st.integers(min_value=1, max_value=7))
def test_chunking_does_not_matter(data: bytes, step: int) -> None:
    whole = EscapeFilter().feed(data)
    f = EscapeFilter()
    parts = feed_all(f, *(data[i : i + step] for i in range(0, len(data), step)))
    assert joined(whole) == joined(parts)
    assert [i for i in whole if not isinstance(i, bytes)] == [
        i for i in parts if not isinstance(i, bytes)
    ]
