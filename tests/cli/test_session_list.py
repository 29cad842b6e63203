"""``ssmsh sessions`` and ``ssmsh terminate``, the real CLI against the emulator."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from ssmsh.emulator import Emulator, SessionRecord, SessionStatus

from .fleet import DB_1, WEB_1, WEB_2, closed_port_url, fleet, one_line, ssmsh, ssmsh_json
from .harness import PROMPT_RE, PtyProcess, run_cli

__all__ = ["fleet"]  # the fixture, imported for pytest

pytestmark = pytest.mark.timeout(90)

HOUR = 3600.0


def start(
    emu: Emulator, target: str, ago: float, owner: str = "alice", reason: str = ""
) -> SessionRecord:
    """A session started ``ago`` seconds ago (no data channel: it stays Connecting)."""
    return emu.state.start_session(target, reason=reason, owner_name=owner, now=time.time() - ago)


def ended(emu: Emulator, session: SessionRecord) -> SessionRecord:
    record = emu.state.end_session(session.session_id, "done")
    assert record is not None
    return record


def ids(sessions: list[dict[str, object]]) -> list[object]:
    return [s["SessionId"] for s in sessions]


def parse_time(value: object) -> float:
    assert isinstance(value, str)
    when = dt.datetime.fromisoformat(value)
    assert when.utcoffset() == dt.timedelta(0), value
    return when.timestamp()


async def test_active_and_history_as_json(fleet: Emulator) -> None:
    old = start(fleet, WEB_1, 3 * HOUR, reason="patching")
    new = start(fleet, DB_1, 60, owner="bob")
    gone = ended(fleet, start(fleet, WEB_2, 2 * HOUR))

    active = await ssmsh_json(fleet, "sessions")
    assert ids(active) == [new.session_id, old.session_id]  # newest first
    first = active[1]
    assert first["Target"] == WEB_1
    assert first["Status"] == "Connecting"
    assert first["Owner"] == "arn:aws:iam::123456789012:user/alice"
    assert first["Reason"] == "patching"
    assert first["DocumentName"] == "SSM-SessionManagerRunShell"
    assert abs(parse_time(first["StartDate"]) - old.start_date) < 0.002
    assert "EndDate" not in first

    [history] = await ssmsh_json(fleet, "sessions", "--history")
    assert history["SessionId"] == gone.session_id
    assert history["Status"] == "Terminated"
    assert gone.end_date is not None
    assert abs(parse_time(history["EndDate"]) - gone.end_date) < 0.002


async def test_each_filter(fleet: Emulator) -> None:
    web = start(fleet, WEB_1, 3 * HOUR)
    db = start(fleet, DB_1, 30 * 60, owner="bob")
    gone = ended(fleet, start(fleet, WEB_2, 2 * HOUR))
    failed = fleet.state.end_session(start(fleet, WEB_2, HOUR).session_id, "", SessionStatus.FAILED)
    assert failed is not None

    assert ids(await ssmsh_json(fleet, "sessions", "--target", "web-1")) == [web.session_id]
    assert ids(await ssmsh_json(fleet, "sessions", "--target", DB_1)) == [db.session_id]
    assert ids(await ssmsh_json(fleet, "sessions", "--owner", "bob")) == [db.session_id]
    owner_arn = "arn:aws:iam::123456789012:user/alice"
    assert ids(await ssmsh_json(fleet, "sessions", "--owner", owner_arn)) == [web.session_id]
    assert ids(await ssmsh_json(fleet, "sessions", "--since", "1h")) == [db.session_id]
    assert ids(await ssmsh_json(fleet, "sessions", "--until", "2h")) == [web.session_id]
    assert ids(await ssmsh_json(fleet, "sessions", "--since", "4h", "--until", "1h")) == [
        web.session_id
    ]
    later = dt.datetime.fromtimestamp(time.time() - HOUR, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ids(await ssmsh_json(fleet, "sessions", "--since", later)) == [db.session_id]
    assert ids(await ssmsh_json(fleet, "sessions", "--session-id", db.session_id)) == [
        db.session_id
    ]
    assert ids(await ssmsh_json(fleet, "sessions", "--status", "connecting")) == [
        db.session_id,
        web.session_id,
    ]
    assert await ssmsh_json(fleet, "sessions", "--status", "Connected") == []
    # statuses only ended sessions have imply --history
    assert ids(await ssmsh_json(fleet, "sessions", "--status", "Terminated")) == [gone.session_id]
    assert ids(await ssmsh_json(fleet, "sessions", "--status", "failed")) == [failed.session_id]
    assert ids(await ssmsh_json(fleet, "sessions", "--history", "--target", "web-2")) == [
        failed.session_id,
        gone.session_id,
    ]
    assert len(await ssmsh_json(fleet, "sessions", "--access-type", "Standard")) == 2
    assert await ssmsh_json(fleet, "sessions", "--access-type", "JustInTime") == []


async def test_every_page_is_followed(fleet: Emulator) -> None:
    # DescribeSessions answers at most 200 sessions a page.
    made = [start(fleet, WEB_1, 1000 - i) for i in range(230)]
    newest_first = [s.session_id for s in reversed(made)]
    assert ids(await ssmsh_json(fleet, "sessions")) == newest_first
    assert ids(await ssmsh_json(fleet, "sessions", "--limit", "215")) == newest_first[:215]
    assert ids(await ssmsh_json(fleet, "sessions", "--limit", "3")) == newest_first[:3]


async def test_a_table_on_a_terminal(fleet: Emulator) -> None:
    session = start(fleet, WEB_1, 3 * HOUR + 125, reason="fix  the\nthing")
    # UTC+05:30 without tzdata: the table shows local time
    proc = PtyProcess(
        ["sessions", "--endpoint-url", fleet.endpoint_url], cols=220, env={"TZ": "IST-05:30"}
    )
    try:
        assert await proc.wait() == 0
    finally:
        proc.close()
    lines = proc.text.replace("\r\n", "\n").strip().splitlines()
    assert len(lines) == 2, proc.text
    header, row = lines
    assert header.split() == [
        "SESSION", "ID", "TARGET", "STATUS", "STARTED", "DURATION", "OWNER", "DOCUMENT", "REASON"
    ]  # fmt: skip
    started = dt.datetime.fromtimestamp(session.start_date, dt.UTC) + dt.timedelta(hours=5.5)
    assert row.split() == [
        session.session_id,
        WEB_1,
        "Connecting",
        *started.strftime("%Y-%m-%d %H:%M:%S").split(),
        row.split()[5],
        "alice",
        "SSM-SessionManagerRunShell",
        "fix", "the", "thing",
    ]  # fmt: skip
    assert row.split()[5].startswith("3h02m")
    assert header.index("TARGET") == row.index(WEB_1)  # aligned

    # --json on a terminal too; a note (stderr) when there is nothing
    proc = PtyProcess(["sessions", "--json", "--endpoint-url", fleet.endpoint_url])
    try:
        assert await proc.wait() == 0
    finally:
        proc.close()
    assert ids(json.loads(proc.text)) == [session.session_id]
    proc = PtyProcess(["sessions", "--history", "--endpoint-url", fleet.endpoint_url])
    try:
        assert await proc.wait() == 0
    finally:
        proc.close()
    assert proc.text.strip() == "No ended sessions."


async def test_terminate_a_live_session_and_an_unknown_one(fleet: Emulator) -> None:
    shell = PtyProcess(["shell", "web-1", "--endpoint-url", fleet.endpoint_url])
    try:
        match = await shell.expect(r"Starting session with SessionId: (\S+)")
        await shell.expect(PROMPT_RE)
        session_id = match.group(1)
        [live] = await ssmsh_json(fleet, "sessions", "--target", "web-1")
        assert (live["SessionId"], live["Status"]) == (session_id, "Connected")

        code, out, err = await ssmsh(fleet, "terminate", session_id)
        assert (code, out, err) == (0, f"{session_id}\n", "")
        await shell.wait()  # the shell's session is over
    finally:
        shell.close()
    assert await ssmsh_json(fleet, "sessions") == []
    [gone] = await ssmsh_json(fleet, "sessions", "--history", "--session-id", session_id)
    assert gone["Status"] == "Terminated"

    # an unknown id: one line, and the next id is still terminated
    other = start(fleet, DB_1, 60)
    code, out, err = await ssmsh(fleet, "terminate", "alice-0000000000000dead", other.session_id)
    assert code == 255
    assert out == f"{other.session_id}\n"
    assert "no session 'alice-0000000000000dead'" in one_line(err)
    assert [s["Status"] for s in await ssmsh_json(fleet, "sessions", "--history")] == [
        "Terminated",
        "Terminated",
    ]
    # an ended session terminates again without complaint
    assert (await ssmsh(fleet, "terminate", session_id))[:2] == (0, f"{session_id}\n")


async def test_bad_arguments(fleet: Emulator) -> None:
    cases = [
        (["sessions", "--since", "yesterday"], "--since expects a date or time"),
        (["sessions", "--until", "2024-13-01"], "--until expects a date or time"),
        (["sessions", "--since", "1h", "--until", "2h"], "--since is later than --until"),
        (["sessions", "--status", "Running"], "--status must be one of Connected"),
        (["sessions", "--access-type", "x"], "--access-type must be one of Standard, JustInTime"),
        (["sessions", "--limit", "0"], "--limit must be 1 or more"),
        (["sessions", "--target", "nobody"], "no managed instance named 'nobody'"),
        (["terminate", ""], "a SESSION_ID is empty"),
    ]
    for args, expected in cases:
        code, out, err = await ssmsh(fleet, *args)
        assert (code, out) == (255, ""), (args, err)
        assert expected in one_line(err), (args, err)
    code, _, err = await ssmsh(fleet, "sessions", "--limit", "many")
    assert code == 2, err  # argparse's usage error
    code, _, err = await ssmsh(fleet, "terminate")
    assert code == 2, err


async def test_unreachable_endpoint() -> None:
    url = closed_port_url()
    for args in (["sessions"], ["sessions", "--history"], ["terminate", "a-1", "b-2"]):
        code, out, err = await ssmsh(url, *args)
        assert (code, out) == (255, ""), (args, err)
        assert f"cannot reach the AWS endpoint {url}" in one_line(err), (args, err)


async def test_local() -> None:
    code, out, err = await run_cli(["sessions", "--local"])
    assert (code, out) == (0, b"[]\n"), err
    code, out, err = await run_cli(["terminate", "--local", "nobody-1"])
    assert (code, out) == (255, b""), err
    assert "no session 'nobody-1'" in one_line(err.decode())
