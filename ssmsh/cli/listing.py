"""What the listing commands (``sessions``, ``ls``) share: the output, times, failures.

On a terminal a listing is an aligned table for people. When stdout is a pipe
or a file, or with ``--json``, it is JSON for programs: a list of objects with
the API's field names, datetimes as ISO 8601 in UTC
(``2024-08-29T10:01:02.123+00:00``). Nothing else goes to stdout; notes such as
"No active sessions." are status lines on stderr.

``--since`` / ``--until`` take an ISO date or time (local time unless it says
otherwise) or a duration ago (``30m``, ``2h``, ``3d``, ``1w``, ``1h30m``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from ..aws.errors import affects_every_call
from ..exceptions import AwsError, SsmshError, UsageError
from ..terminal.tty import Terminal, write_all
from .errors import EXIT_OK, describe
from .runtime import Reporter
from .shell import EXIT_BROKEN_PIPE

__all__ = [
    "add_output_options",
    "api_time",
    "duration",
    "emit",
    "fit",
    "json_document",
    "local_time",
    "parse_when",
    "report_or_raise",
    "table",
    "to_json",
    "wants_json",
]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_RELATIVE_RE = re.compile(r"(\d+)([smhdw])")


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help="JSON on a terminal too (a pipe or a file always gets JSON)",
    )


def wants_json(args: argparse.Namespace, terminal: Terminal) -> bool:
    return bool(getattr(args, "json", False)) or not terminal.stdout_is_tty


def emit(terminal: Terminal, text: str) -> int:
    """Write ``text`` to stdout: 0, or 141 when its reader has gone (``| head``)."""
    data = text.encode(errors="replace")
    try:
        write_all(terminal.stdout, data)
    except BrokenPipeError:
        return EXIT_BROKEN_PIPE
    terminal.wrote(data, terminal.stdout)
    return EXIT_OK


def report_or_raise(exc: SsmshError, reporter: Reporter) -> None:
    """One ``ssmsh:`` line for a failure that concerns one item of several (an
    unknown id, access denied to that one); a failure that every further call
    would repeat (endpoint unreachable, no or expired credentials) is raised."""
    if isinstance(exc, AwsError) and affects_every_call(exc):
        raise exc
    reporter.error(describe(exc))


# -- JSON and tables ----------------------------------------------------------------


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return iso_time(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def iso_time(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds")


def to_json(items: Sequence[Any]) -> str:
    """A list of API objects as JSON text (datetimes in ISO 8601, UTC)."""
    return json.dumps(list(items), indent=2, default=_json_value) + "\n"


def json_document(value: Any) -> str:
    """One API object (or any JSON value) as JSON text (datetimes in ISO 8601, UTC)."""
    return json.dumps(value, indent=2, default=_json_value) + "\n"


def fit(text: str, terminal: Terminal) -> str:
    """``text`` with every line cut to the terminal's width (``…`` where cut) when stdout
    is a terminal: a table's last column, free text, is what gives way."""
    size = terminal.size() if terminal.stdout_is_tty else None
    if size is None:
        return text
    width = size[0]
    lines = [
        line if len(line) <= width else line[: max(width - 1, 0)] + "…" for line in text.split("\n")
    ]
    return "\n".join(lines)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns aligned with two spaces between them; the last one is not padded."""
    lines = [list(headers), *([" ".join(str(cell).split()) or "-" for cell in r] for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    out = []
    for line in lines:
        cells = [cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=False)]
        out.append("  ".join([*cells, line[-1]]).rstrip())
    return "\n".join(out) + "\n"


# -- times ----------------------------------------------------------------------------


def local_time(value: dt.datetime | None) -> str:
    """``2024-08-29 12:01:02`` in the local time zone; ``-`` for none."""
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float) -> str:
    """``45s``, ``12m03s``, ``1h02m``, ``3d04h``."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def parse_when(text: str, option: str, now: dt.datetime | None = None) -> dt.datetime:
    """An aware datetime for ``--since`` / ``--until``: an ISO date or time (local
    unless it gives an offset or ``Z``), or a duration ago (``30m``, ``2h``, ``1h30m``)."""
    word = text.strip()
    if word and _RELATIVE_RE.sub("", word.lower()) == "":
        seconds = sum(int(n) * _UNITS[unit] for n, unit in _RELATIVE_RE.findall(word.lower()))
        return (now or dt.datetime.now(dt.UTC)) - dt.timedelta(seconds=seconds)
    try:
        when = dt.datetime.fromisoformat(word)
    except ValueError:
        raise UsageError(
            f"{option} expects a date or time (2024-08-29, 2024-08-29T10:00, "
            f"2024-08-29T10:00:00Z) or a time ago (30m, 2h, 3d), not {text!r}"
        ) from None
    return when if when.tzinfo is not None else when.astimezone()  # naive: local time


def api_time(when: dt.datetime) -> str:
    """The form DescribeSessions' InvokedAfter/InvokedBefore take: 2024-08-29T10:00:00Z."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
