"""State Manager schedule expressions and the emulator's clock, without an emulator."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from ssmsh.emulator.associations import parse_schedule
from ssmsh.emulator.clock import EmulatorClock
from ssmsh.emulator.errors import ServiceError


def epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def iso(value: float | None) -> str | None:
    if value is None:
        return None
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%dT%H:%M")


TUESDAY = epoch("2024-06-04T10:07:00")


@pytest.mark.parametrize(
    ("expression", "offset", "expected"),
    [
        ("cron(0/30 * * * ? *)", None, "2024-06-04T10:30"),
        ("cron(0 */30 * * * ? *)", None, "2024-06-04T10:30"),  # with a seconds field
        ("cron(0 0/4 * * ? *)", None, "2024-06-04T12:00"),
        ("cron(15 13 ? * MON *)", None, "2024-06-10T13:15"),
        ("cron(15 13 ? * 2-4 *)", None, "2024-06-04T13:15"),
        ("cron(30 23 ? * TUE#3 *)", None, "2024-06-18T23:30"),
        ("cron(0 0 ? * 3L *)", None, "2024-06-25T00:00"),
        ("cron(0 0 L * ? *)", None, "2024-06-30T00:00"),
        ("cron(0 12 1,15 * ? 2025)", None, "2025-01-01T12:00"),
        ("cron(0 0 ? * THU#2 *)", 3, "2024-06-16T00:00"),
        ("at(2024-07-01T00:00:00)", None, "2024-07-01T00:00"),
        ("at(2024-01-01T00:00:00)", None, None),
    ],
)
def test_next_occurrence(expression: str, offset: int | None, expected: str | None) -> None:
    assert iso(parse_schedule(expression, offset).next_after(TUESDAY, TUESDAY)) == expected


def test_rates_count_from_their_start() -> None:
    schedule = parse_schedule("rate(30 minutes)")
    start = TUESDAY - 100
    assert schedule.next_after(TUESDAY, start) == start + 1800
    assert schedule.next_after(start + 1800, start) == start + 3600
    assert parse_schedule("rate(1 day)").next_after(TUESDAY, TUESDAY) == TUESDAY + 86400


@pytest.mark.parametrize(
    "expression",
    [
        "rate(1 hours)",
        "rate(5 hour)",
        "rate(10 minutes)",
        "rate(31 days)",
        "cron(* * * * ? *)",
        "cron(0/15 * * * ? *)",
        "cron(0 0 * * * *)",
        "cron(0 0 ? JAN MON *)",
        "cron(0 25 * * ? *)",
        "cron(5 0 0 * * ? *)",
        "cron(0 0 ? * MON)",
        "at(2024-13-01T00:00:00)",
        "nightly",
    ],
)
def test_invalid_schedules(expression: str) -> None:
    with pytest.raises(ServiceError) as exc_info:
        parse_schedule(expression)
    assert exc_info.value.code == "InvalidSchedule"


def test_offsets_need_cron() -> None:
    with pytest.raises(ServiceError):
        parse_schedule("rate(1 day)", 2)


async def test_the_clock_wakes_sleepers_when_advanced() -> None:
    clock = EmulatorClock()
    start = clock.now()
    sleeper = asyncio.ensure_future(clock.sleep(3600))
    await asyncio.sleep(0.01)
    assert not sleeper.done()
    clock.advance(1800)
    await asyncio.sleep(0.01)
    assert not sleeper.done()
    clock.advance(1800)
    await asyncio.wait_for(sleeper, 1)
    assert clock.now() - start >= 3600
    with pytest.raises(ValueError):
        clock.advance(-1)
