"""The target picker (``ssmsh/cli/picker.py``, ``ssmsh/cli/choose.py``): matching and keys
in-process, and a real ``ssmsh shell`` without a TARGET under a pty."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from pathlib import Path

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from ssmsh.cli.choose import instance_choices
from ssmsh.cli.errors import StartInterrupted, describe, exit_status
from ssmsh.cli.picker import Choice, Picker, match, pick
from ssmsh.emulator import Emulator

from .harness import PROMPT_RE, PtyProcess

pytestmark = pytest.mark.timeout(60)

ROWS = [
    Choice("prod-web", ("prod-web", "Env=prod", "alias", "prod/eu-west-1", "")),
    Choice("i-0aaa", ("i-0aaa", "web-1", "Online", "Amazon Linux 2023", "10.0.1.5")),
    Choice("i-0bbb", ("i-0bbb", "db-1", "ConnectionLost", "Ubuntu 22.04", "10.0.2.7")),
]


def test_match_is_a_subsequence_within_a_column_smart_case() -> None:
    assert match("wb1", ["web-1"]) is not None
    assert match("web", ["web-1"]) == (0, 0)  # whole: best
    assert match("wb", ["w", "b"]) is None  # not across columns
    assert match("Web", ["web-1"]) is None  # a capital: case matters
    assert match("web 10.0", ["web-1", "10.0.1.5"]) == (0, 0)  # every word, any column
    assert match("", ["x"]) == (0, 0)


def test_filtering_ranks_whole_words_first_and_keeps_order() -> None:
    picker = Picker(ROWS)
    picker.filter("ubuntu")
    assert [c.value for c in picker.shown] == ["i-0bbb"]
    picker.filter("w")
    assert [c.value for c in picker.shown] == ["prod-web", "i-0aaa"]
    picker.filter("pwb")  # p..w..b in "prod-web" only
    assert [c.value for c in picker.shown] == ["prod-web"]
    picker.filter("zzz")
    assert picker.selected is None
    picker.move(1)  # nothing to move over


def test_moving_scrolls_and_stops_at_the_ends() -> None:
    picker = Picker([Choice(str(n), (f"row{n}",)) for n in range(10)])
    picker.move(-1)
    assert picker.index == 0
    picker.move(5)
    assert [selected for selected, _ in picker.visible(3)] == [False, False, True]
    assert picker.visible(3)[-1][1].value == "5"
    picker.move(100)
    assert picker.selected is not None and picker.selected.value == "9"
    lines = picker.lines(3, 20)
    assert lines[-1] == (True, "> row9")


def test_instances_online_first_then_by_name() -> None:
    rows = instance_choices(
        [
            {"InstanceId": "i-2", "PingStatus": "ConnectionLost", "NameTag": "a"},
            {"InstanceId": "i-3", "PingStatus": "Online", "NameTag": "b", "IPAddress": "10.0.0.3"},
            {"InstanceId": "i-1", "PingStatus": "Online", "PlatformType": "Windows"},
        ]
    )
    assert [r.value for r in rows] == ["i-3", "i-1", "i-2"]
    assert rows[0].columns == ("i-3", "b", "Online", "-", "10.0.0.3")
    assert rows[1].columns[3] == "Windows"


async def keys(
    data: str, choices: Sequence[Choice] = ROWS, more: asyncio.Future[list[Choice]] | None = None
) -> str | None:
    with create_pipe_input() as keyboard:
        keyboard.send_text(data)
        return await asyncio.wait_for(pick(choices, more, input=keyboard, output=DummyOutput()), 10)


async def test_keys() -> None:
    assert await keys("\r") == "prod-web"
    assert await keys("db\r") == "i-0bbb"
    assert await keys("\x1b[B\x1b[B\r") == "i-0bbb"  # Down, Down
    assert await keys("\x0e\x0e\x10\r") == "i-0aaa"  # Ctrl-N, Ctrl-N, Ctrl-P
    assert await keys("zzz\rdb\x7f\x7f\x7f\x7f\x7fweb-1\r") == "i-0aaa"  # Enter on nothing
    assert await keys("\x04") is None  # Ctrl-D
    assert await keys("\x07") is None  # Ctrl-G
    with pytest.raises(StartInterrupted) as raised:  # Ctrl-C: "interrupted", 130
        await keys("\x03")
    assert (describe(raised.value), exit_status(raised.value)) == ("interrupted", 130)


async def test_rows_that_arrive_later_and_failures() -> None:
    later: asyncio.Future[list[Choice]] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(0.2, later.set_result, ROWS[1:])
    with create_pipe_input() as keyboard:
        picked = asyncio.ensure_future(pick(ROWS[:1], later, input=keyboard, output=DummyOutput()))
        await later
        await asyncio.sleep(0.1)
        keyboard.send_text("db-1\r")
        assert await asyncio.wait_for(picked, 10) == "i-0bbb"
    failed: asyncio.Future[list[Choice]] = asyncio.get_running_loop().create_future()
    failed.set_exception(OSError("no route"))
    with pytest.raises(OSError, match="no route"):  # nothing else to pick from
        await keys("", [], failed)


async def test_shell_without_target_on_a_terminal_picks(emulator: Emulator, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[hosts.prod]\ntarget = "web-1"\nregion = "eu-west-1"\n')
    argv = ["shell", "--endpoint-url", emulator.endpoint_url]
    proc = PtyProcess(argv, env={"SSMSH_CONFIG": str(config)})
    try:
        await proc.expect_screen(r"secure-1")  # the instances, listed while it is open
        screen = proc.screen_text()
        assert "target>" in screen
        assert "3/3" in screen
        assert re.search(r"(?s)> prod +web-1 +alias +eu-west-1\n.* web-1 +Online", screen), screen
        proc.send("sec1")
        await proc.expect_screen(r"1/3")
        proc.send("\r")
        await proc.expect(PROMPT_RE)
        assert "target>" not in proc.screen_text()  # the picker left nothing behind
        proc.send("exit\r")
        assert await proc.wait() == 0
    finally:
        proc.close()
    proc = PtyProcess(argv, env={"SSMSH_CONFIG": str(config)})
    try:
        await proc.expect_screen(r"target>")
        proc.send("\x1b")  # Esc: nothing chosen, as fzf's 130
        assert await proc.wait() == 130
        assert "ssmsh: no target chosen" in proc.text
        assert proc.slave_attrs() == proc.initial_attrs
    finally:
        proc.close()
