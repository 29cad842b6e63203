"""A fuzzy picker on the terminal: type to filter, arrows to move, Enter to choose.

:func:`pick` shows rows (:class:`Choice`) below a prompt, on stderr, in as few lines
as it needs (it does not take the screen, and leaves nothing behind). Typing filters
them: every word typed must appear in a row in that order, not necessarily together
(``wb1`` finds ``web-1``); rows where the words appear whole come first. Up/Down,
Ctrl-P/Ctrl-N and Tab move; Enter chooses; Esc, Ctrl-D and Ctrl-G give up (None);
Ctrl-C raises :class:`~.errors.StartInterrupted` (``interrupted``, 130, as everywhere else
in ssmsh). More rows may arrive
while it is open (the instances, listed while the aliases are already shown).

prompt_toolkit is imported by :func:`pick` alone: the commands that never pick do
not load it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

from .errors import StartInterrupted, describe

if TYPE_CHECKING:
    from prompt_toolkit.input import Input
    from prompt_toolkit.output import Output

__all__ = ["Choice", "Picker", "match", "pick"]

#: Rows shown at most (fewer on a small terminal).
MAX_ROWS = 12
PROMPT = "target> "


@dataclasses.dataclass(frozen=True, slots=True)
class Choice:
    """One row: what choosing it returns, and the columns shown (and searched)."""

    value: str
    columns: tuple[str, ...]


def match(query: str, columns: Sequence[str]) -> tuple[int, int] | None:
    """How well a row's ``columns`` match ``query`` (lower is better), or None.

    Each word of ``query`` must be a subsequence of one column (case-insensitive
    unless the word has a capital, as fzf's smart case): ``wb1`` finds ``web-1``.
    Ranked by the number of words not found whole, then by how spread out the
    letters of the others are.
    """
    score = spread = 0
    for word in query.split():
        best: int | None = None
        for column in columns:
            found = _subsequence(word, column if any(c.isupper() for c in word) else column.lower())
            if found is not None and (best is None or found < best):
                best = found
        if best is None:
            return None
        if best:
            score += 1
            spread += best
    return score, spread


def _subsequence(word: str, text: str) -> int | None:
    """0 when ``word`` is in ``text``; else how far its letters spread (None: absent)."""
    if word in text:
        return 0
    start = position = -1
    for char in word:
        position = text.find(char, position + 1)
        if position < 0:
            return None
        if start < 0:
            start = position
    return position - start + 1


class Picker:
    """The picker's state, apart from the screen: rows, filter, selection."""

    def __init__(self, choices: Sequence[Choice] = ()) -> None:
        self.choices: list[Choice] = list(choices)
        self.query = ""
        self.shown: list[Choice] = list(self.choices)
        self.index = 0
        self.top = 0
        #: A note after the count (``listing instances...``, or why they are not there).
        self.note = ""

    def add(self, choices: Sequence[Choice]) -> None:
        selected = self.selected
        self.choices.extend(choices)
        self.filter(self.query)
        if selected is not None and selected in self.shown:
            self.index = self.shown.index(selected)

    def filter(self, query: str) -> None:
        self.query = query
        ranked = []
        for order, choice in enumerate(self.choices):
            score = match(query, choice.columns)
            if score is not None:
                ranked.append((score, order, choice))
        ranked.sort(key=lambda item: (item[0], item[1]))
        self.shown = [choice for _, _, choice in ranked]
        self.index = 0
        self.top = 0

    def move(self, step: int) -> None:
        if self.shown:
            self.index = max(0, min(len(self.shown) - 1, self.index + step))

    @property
    def selected(self) -> Choice | None:
        return self.shown[self.index] if self.shown else None

    def visible(self, rows: int) -> list[tuple[bool, Choice]]:
        """The rows on screen (``rows`` of them at most), scrolled to the selection."""
        if self.index < self.top:
            self.top = self.index
        elif self.index >= self.top + rows:
            self.top = self.index - rows + 1
        window = self.shown[self.top : self.top + rows]
        return [(self.top + n == self.index, choice) for n, choice in enumerate(window)]

    def lines(self, rows: int, width: int) -> list[tuple[bool, str]]:
        """The visible rows as text, in columns as wide as their widest entry."""
        widths = [0] * max((len(c.columns) for c in self.choices), default=0)
        for choice in self.choices:
            for n, column in enumerate(choice.columns):
                widths[n] = max(widths[n], len(column))
        lines = []
        for selected, choice in self.visible(rows):
            cells = [column.ljust(widths[n]) for n, column in enumerate(choice.columns)]
            text = ("> " if selected else "  ") + "  ".join(cells).rstrip()
            lines.append((selected, text[: max(width - 1, 0)]))
        return lines


async def pick(
    choices: Sequence[Choice],
    more: Awaitable[Sequence[Choice]] | None = None,
    *,
    loading: str = "listing...",
    input: Input | None = None,
    output: Output | None = None,
) -> str | None:
    """The value of the row chosen, or None (Esc, Ctrl-D). Ctrl-C: StartInterrupted.

    ``more``, when given, brings more rows while the picker is open; if it fails, the
    failure is the note shown, or raised when there are no rows at all. Drawn on stderr
    unless ``output`` says otherwise; read from stdin unless ``input`` does.
    """
    import sys

    from prompt_toolkit.application import Application
    from prompt_toolkit.buffer import Buffer
    from prompt_toolkit.formatted_text import StyleAndTextTuples
    from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
    from prompt_toolkit.layout import HSplit, Layout, Window
    from prompt_toolkit.layout.controls import BufferControl, FormattedTextControl
    from prompt_toolkit.layout.processors import BeforeInput
    from prompt_toolkit.output import create_output

    state = Picker(choices)
    buffer = Buffer(multiline=False, on_text_changed=lambda b: state.filter(b.text))
    if output is None:
        output = create_output(stdout=sys.stderr)

    def rows() -> int:
        return max(1, min(MAX_ROWS, output.get_size().rows - 3))

    def status() -> StyleAndTextTuples:
        count = f"  {len(state.shown)}/{len(state.choices)}"
        return [("class:status", count + (f"  {state.note}" if state.note else ""))]

    def listing() -> StyleAndTextTuples:
        lines = state.lines(rows(), output.get_size().columns)
        text: StyleAndTextTuples = []
        for n, (selected, line) in enumerate(lines):
            text.append(("reverse" if selected else "", line))
            if n + 1 < len(lines):
                text.append(("", "\n"))
        return text

    keys = KeyBindings()

    def moving(step: int) -> Any:
        def handler(event: KeyPressEvent) -> None:
            state.move(step)

        return handler

    for names, step in (
        (("up",), -1),
        (("c-p",), -1),
        (("s-tab",), -1),
        (("down",), 1),
        (("c-n",), 1),
        (("tab",), 1),
        (("pageup",), -MAX_ROWS),
        (("pagedown",), MAX_ROWS),
    ):
        keys.add(*names)(moving(step))

    @keys.add("enter")
    def _choose(event: KeyPressEvent) -> None:
        if state.selected is not None:
            event.app.exit(result=state.selected.value)

    @keys.add("escape", eager=True)
    @keys.add("c-d")
    @keys.add("c-g")
    def _cancel(event: KeyPressEvent) -> None:
        event.app.exit(result=None)

    @keys.add("c-c")
    def _interrupt(event: KeyPressEvent) -> None:
        # As SIGINT while a session starts: "interrupted", 130 (a KeyboardInterrupt
        # would go through the event loop itself).
        event.app.exit(exception=StartInterrupted(signal.SIGINT))

    layout = Layout(
        HSplit(
            [
                Window(BufferControl(buffer, input_processors=[BeforeInput(PROMPT)]), height=1),
                Window(FormattedTextControl(status), height=1),
                Window(
                    FormattedTextControl(listing),
                    height=lambda: max(1, min(rows(), len(state.shown))),
                ),
            ]
        )
    )
    app: Application[str | None] = Application(
        layout=layout,
        key_bindings=keys,
        full_screen=False,
        erase_when_done=True,
        input=input,
        output=output,
    )
    app.ttimeoutlen = 0.05  # Esc alone: no half-second wait for a sequence
    app.timeoutlen = 0.05

    async def arrive(work: Awaitable[Sequence[Choice]]) -> None:
        try:
            found = await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            while not app.is_running:  # it failed before the picker was up
                await asyncio.sleep(0.01)
            if not state.choices:
                app.exit(exception=exc)
                return
            state.note = describe(exc)
        else:
            state.note = ""
            state.add(found)
            if not state.choices:
                state.note = "none found"
        app.invalidate()

    task: asyncio.Future[None] | None = None
    if more is not None:
        state.note = loading
        task = asyncio.ensure_future(arrive(more))
    try:
        return await app.run_async(handle_sigint=False)
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
