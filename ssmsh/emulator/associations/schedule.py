"""State Manager schedule expressions: ``rate(...)``, ``cron(...)`` and ``at(...)``.

After the user guide's "Reference: Cron and rate expressions for Systems Manager":

- ``rate(N unit)``: minute(s), hour(s), day(s); singular for 1, plural otherwise
  (``rate(1 hours)`` is invalid); at least 30 minutes and less than 31 days. Occurrences
  are counted from the moment the schedule was set (creation or update).
- ``cron(minutes hours day-of-month month day-of-week year)``, optionally preceded by a
  seconds field that must be 0; all in UTC. Day-of-week is 1-7 (1 = Sunday) or SUN-SAT,
  with ``n#k`` (the k-th such day of the month) and ``nL`` (the last one); day-of-month
  takes ``L`` (the last day). One of day-of-month and day-of-week must be ``?``. Values,
  ``a-b`` ranges, ``a,b`` lists, ``*`` and ``/`` steps. State Manager does not take
  months (the month field must be ``*``), nor a schedule more often than every 30
  minutes.
- ``at(yyyy-mm-ddThh:mm:ss)``: once, at that UTC time.

``ScheduleOffset`` (days) moves every cron occurrence later. Anything else is
InvalidSchedule. No I/O.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import re

from ..errors import ServiceError

__all__ = ["Schedule", "parse_schedule"]

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_UNIT = {"minute": 60, "hour": 3600, "day": 86400}
_DAYS = {name: n for n, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), 1)}
#: How far ahead a cron expression is searched for its next occurrence.
_HORIZON_DAYS = 6 * 366


def invalid_schedule(message: str) -> ServiceError:
    return ServiceError("InvalidSchedule", message)


@dataclasses.dataclass(frozen=True, slots=True)
class _Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    #: Days of the month; 0 stands for L (the last day).
    days: frozenset[int] | None
    #: (weekday 1-7, nth or 0 for any, last) items; None when day-of-week is ``?``.
    weekdays: tuple[tuple[int, int, bool], ...] | None
    years: frozenset[int] | None

    def matches_day(self, day: dt.date) -> bool:
        if self.years is not None and day.year not in self.years:
            return False
        last = calendar.monthrange(day.year, day.month)[1]
        if self.days is not None and not (
            day.day in self.days or (0 in self.days and day.day == last)
        ):
            return False
        if self.weekdays is not None:
            weekday = (day.isoweekday() % 7) + 1  # Sunday 1 ... Saturday 7
            return any(
                weekday == wanted
                and (nth == 0 or (day.day - 1) // 7 + 1 == nth)
                and (not is_last or day.day + 7 > last)
                for wanted, nth, is_last in self.weekdays
            )
        return True


@dataclasses.dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed ScheduleExpression."""

    expression: str
    kind: str  # "rate", "cron" or "at"
    interval: float = 0.0
    at: float = 0.0
    cron: _Cron | None = None
    offset_days: int = 0

    def next_after(self, after: float, anchor: float) -> float | None:
        """The first occurrence later than ``after`` (``anchor``: when a rate started)."""
        if self.kind == "rate":
            count = max(0, int((after - anchor) // self.interval) + 1)
            return anchor + count * self.interval
        if self.kind == "at":
            return self.at if self.at > after else None
        assert self.cron is not None
        offset = self.offset_days * 86400
        start = dt.datetime.fromtimestamp(after - offset, dt.UTC)
        day = start.date()
        for _ in range(_HORIZON_DAYS):
            if self.cron.matches_day(day):
                for hour in sorted(self.cron.hours):
                    for minute in sorted(self.cron.minutes):
                        moment = dt.datetime(
                            day.year, day.month, day.day, hour, minute, tzinfo=dt.UTC
                        )
                        when = moment.timestamp() + offset
                        if when > after:
                            return when
            day += dt.timedelta(days=1)
        return None


def parse_schedule(expression: str, offset_days: int | None = None) -> Schedule:
    """The schedule ``expression`` describes; InvalidSchedule if it is not one."""
    text = expression.strip()
    if offset_days is not None and not text.startswith("cron("):
        raise invalid_schedule("ScheduleOffset applies to cron expressions only.")
    if match := _RATE.match(text):
        value, unit = int(match.group(1)), match.group(2)
        if (value == 1) != (not unit.endswith("s")):
            raise invalid_schedule(f"{text}: use a singular unit for 1 and a plural one otherwise.")
        seconds = value * _UNIT[unit.rstrip("s")]
        if not 1800 <= seconds < 31 * 86400:
            raise invalid_schedule(f"{text}: rates run from 30 minutes to less than 31 days.")
        return Schedule(text, "rate", interval=float(seconds))
    if match := _AT.match(text):
        try:
            moment = dt.datetime.fromisoformat(match.group(1)).replace(tzinfo=dt.UTC)
        except ValueError:
            raise invalid_schedule(f"{text} is not a valid time.") from None
        return Schedule(text, "at", at=moment.timestamp())
    if match := _CRON.match(text):
        return Schedule(
            text, "cron", cron=_cron(match.group(1).split()), offset_days=offset_days or 0
        )
    raise invalid_schedule(f"{expression!r} is not a rate(...), cron(...) or at(...) expression.")


def _cron(fields: list[str]) -> _Cron:
    if len(fields) == 7:
        if fields[0] != "0":
            raise invalid_schedule("The seconds field of a cron expression can only be 0.")
        fields = fields[1:]
    if len(fields) != 6:
        raise invalid_schedule(
            "A cron expression has six fields: minutes hours day-of-month month "
            "day-of-week year (and may start with seconds)."
        )
    minute, hour, dom, month, dow, year = fields
    if month != "*":
        raise invalid_schedule("State Manager does not take months in cron expressions.")
    if "?" not in (dom, dow) or dom == dow:
        raise invalid_schedule("One of day-of-month and day-of-week must be ?, not both.")
    minutes = _values(minute, 0, 59, "minutes")
    ordered = sorted(minutes)
    gaps = [(b - a) for a, b in zip(ordered, [*ordered[1:], ordered[0] + 60], strict=True)]
    if min(gaps) < 30:
        raise invalid_schedule("Associations run at most every 30 minutes.")
    days: frozenset[int] | None = None
    if dom == "L":
        days = frozenset({0})
    elif dom not in ("?", "*"):
        days = _values(dom, 1, 31, "day-of-month")
    return _Cron(
        minutes=minutes,
        hours=_values(hour, 0, 23, "hours"),
        days=days,
        weekdays=None if dow in ("?", "*") else tuple(_weekdays(dow)),
        years=None if year == "*" else _values(year, 1970, 2199, "year"),
    )


def _number(text: str, low: int, high: int, what: str, names: dict[str, int] | None = None) -> int:
    value = (names or {}).get(text.upper()) if not text.isdigit() else int(text)
    if value is None or not low <= value <= high:
        raise invalid_schedule(f"{text!r} is not a valid {what} value ({low}-{high}).")
    return value


def _values(
    field: str, low: int, high: int, what: str, names: dict[str, int] | None = None
) -> frozenset[int]:
    found: set[int] = set()
    for part in field.split(","):
        base, slash, step_text = part.partition("/")
        step = _number(step_text, 1, high, what) if slash else 1
        if base in ("*", ""):
            first, last = low, high
        elif "-" in base:
            a, b = base.split("-", 1)
            first, last = _number(a, low, high, what, names), _number(b, low, high, what, names)
        else:
            first = _number(base, low, high, what, names)
            last = high if slash else first
        if first > last:
            raise invalid_schedule(f"{part!r}: a range goes from low to high.")
        found.update(range(first, last + 1, step))
    return frozenset(found)


def _weekdays(field: str) -> list[tuple[int, int, bool]]:
    items: list[tuple[int, int, bool]] = []
    for part in field.split(","):
        if "#" in part:
            day, _, nth = part.partition("#")
            items.append((_number(day, 1, 7, "day-of-week", _DAYS), _number(nth, 1, 5, "#"), False))
        elif part.endswith("L") and len(part) > 1:
            items.append((_number(part[:-1], 1, 7, "day-of-week", _DAYS), 0, True))
        else:
            items += [(d, 0, False) for d in sorted(_values(part, 1, 7, "day-of-week", _DAYS))]
    return items
