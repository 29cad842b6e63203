"""``ssmsh association``: the real CLI against an emulated fleet of 20 instances.

The association runs AWS-RunShellScript on ``tag-key Role`` (the 20 generated instances,
``node-1``...``node-20``); an instance fails when a file named after it exists in the test's
directory, so a test breaks and repairs instances between runs. Executions are made days
apart by advancing the emulator's clock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ssmsh.cli.associations import created_time
from ssmsh.emulator import Emulator, EmulatorConfig
from tests.conftest import scaled
from tests.emulator.conftest import make_client

from .fleet import one_line, ssmsh
from .harness import PtyProcess

pytestmark = pytest.mark.timeout(120)

BROKEN = (5, 6, 7)
DAY = 86400.0


def node(n: int) -> str:
    return f"i-{n:017x}"


@pytest.fixture
async def fleet20() -> AsyncIterator[Emulator]:
    config = EmulatorConfig(instances=20, command_visibility_delay=0.0, command_timeout_scale=0.01)
    async with Emulator(config) as emu:
        yield emu


async def create(emu: Emulator, tmp_path: Path, name: str = "fleet-health", **extra: Any) -> str:
    ssm = make_client("ssm", emu.endpoint_url)
    check = f"if [ -e {tmp_path}/$AWS_SSM_INSTANCE_ID ]; then echo broken >&2; exit 1; fi"
    created = await asyncio.to_thread(
        ssm.create_association,
        Name="AWS-RunShellScript",
        AssociationName=name,
        Targets=[{"Key": "tag-key", "Values": ["Role"]}],
        Parameters={"commands": [check, "echo ok"], "executionTimeout": ["30"]},
        **extra,
    )
    return str(created["AssociationDescription"]["AssociationId"])


async def history(emu: Emulator, *args: str) -> list[dict[str, Any]]:
    code, out, err = await ssmsh(emu, "association", "history", *args)
    assert (code, err) == (0, ""), err
    found: list[dict[str, Any]] = json.loads(out)
    return found


async def settled(emu: Emulator, association: str, count: int) -> list[dict[str, Any]]:
    """The association's executions once there are ``count``, all ended."""
    async with asyncio.timeout(scaled(30)):
        while True:
            found = await history(emu, association)
            if len(found) == count and all(e["Status"] in ("Success", "Failed") for e in found):
                return found
            await asyncio.sleep(0.1)


def break_nodes(tmp_path: Path) -> None:
    for n in BROKEN:
        (tmp_path / node(n)).touch()


# -- run once on 20 instances, 3 fail; the history; the targets ---------------------------


async def test_run_history_and_targets(fleet20: Emulator, tmp_path: Path) -> None:
    association_id = await create(fleet20, tmp_path)
    [first] = await settled(fleet20, "fleet-health", 1)
    assert (first["Status"], first["ResourceCountByStatus"]) == ("Success", "{Success=20}")

    fleet20.clock.advance(2 * DAY)
    break_nodes(tmp_path)
    code, out, err = await ssmsh(fleet20, "association", "run", "fleet-health", "--wait")
    assert code == 1, err
    executions = await history(fleet20, association_id)
    assert [e["ExecutionId"] for e in executions][1:] == [first["ExecutionId"]]
    second = executions[0]
    assert (second["Status"], second["ResourceCountByStatus"]) == (
        "Failed",
        "{Failed=3, Success=17}",
    )
    lines = out.splitlines()
    assert lines[0] == (
        f"Association fleet-health ({association_id}), execution {second['ExecutionId']}: Failed"
    )
    assert re.fullmatch(r"INSTANCE +NAME +STATUS +DETAIL +LAST RUN", lines[1])
    rows = [line.split()[:4] for line in lines[2:]]
    assert [r[1] for r in rows] == [f"node-{n}" for n in range(1, 21)]  # natural order
    for n, (instance_id, _, status, detail) in enumerate(rows, start=1):
        assert instance_id == node(n)
        wanted = "Failed" if n in BROKEN else "Success"
        assert (status, detail) == (wanted, wanted)
    assert f"Association fleet-health ({association_id}): execution {second['ExecutionId']}" in err
    assert "20 targets: 3 Failed, 17 Success (not successful: node-5, node-6, node-7)\n" in err
    command_id = re.search(r"Output: ssmsh commands show (\S+)\n", err)
    assert command_id is not None, err
    assert command_id.group(1) in fleet20.commands.commands

    # History by status, and by CreatedTime: GREATER_THAN --since, LESS_THAN --until; a
    # time ago (both are newer than an hour ago: the clock went forward). Read-only: at once.
    moment = (dt.datetime.fromisoformat(first["CreatedTime"]) + dt.timedelta(days=1)).isoformat()
    failed, succeeded, after, before, none, recent, older = await asyncio.gather(
        history(fleet20, "fleet-health", "--status", "failed"),
        history(fleet20, association_id, "--status", "Success"),
        history(fleet20, "fleet-health", "--since", moment),
        history(fleet20, "fleet-health", "--until", moment),
        history(fleet20, "fleet-health", "--since", moment, "--status", "Success"),
        history(fleet20, "fleet-health", "--since", "1h"),
        history(fleet20, "fleet-health", "--until", "1h"),
    )
    assert [e["ExecutionId"] for e in failed] == [second["ExecutionId"]]
    assert [e["ExecutionId"] for e in succeeded] == [first["ExecutionId"]]
    assert [e["ExecutionId"] for e in after] == [second["ExecutionId"]]
    assert [e["ExecutionId"] for e in before] == [first["ExecutionId"]]
    assert none == [] and older == []
    assert len(recent) == 2
    # Paging with small pages.
    calls = fleet20.api.calls.get("AmazonSSM.DescribeAssociationExecutions", 0)
    paged = await history(fleet20, "fleet-health", "--page-size", "1")
    assert [e["ExecutionId"] for e in paged] == [e["ExecutionId"] for e in executions]
    assert fleet20.api.calls["AmazonSSM.DescribeAssociationExecutions"] - calls >= 2
    assert len(await history(fleet20, "fleet-health", "--limit", "1", "--page-size", "1")) == 1

    # Targets, filtered by status, and every one of them over pages of 3.
    code, out, err = await ssmsh(
        fleet20,
        "association",
        "targets",
        "fleet-health",
        second["ExecutionId"],
        "--status",
        "failed",
    )
    assert (code, err) == (0, ""), err
    failing = json.loads(out)
    assert [(t["ResourceId"], t["NameTag"], t["Status"]) for t in failing] == [
        (node(n), f"node-{n}", "Failed") for n in BROKEN
    ]
    assert failing[0]["OutputSource"]["OutputSourceId"] == command_id.group(1)
    calls = fleet20.api.calls.get("AmazonSSM.DescribeAssociationExecutionTargets", 0)
    code, out, err = await ssmsh(
        fleet20, "association", "targets", association_id, second["ExecutionId"], "--page-size", "3"
    )
    assert code == 0, err
    assert sorted(t["ResourceId"] for t in json.loads(out)) == [node(n) for n in range(1, 21)]
    assert fleet20.api.calls["AmazonSSM.DescribeAssociationExecutionTargets"] - calls == 7

    # Repaired: the next run succeeds everywhere, exit status 0; --json for scripts.
    for n in BROKEN:
        (tmp_path / node(n)).unlink()
    code, out, err = await ssmsh(fleet20, "association", "run", association_id, "--wait", "--json")
    assert code == 0, err
    (report,) = json.loads(out)
    assert (report["AssociationId"], report["AssociationName"]) == (association_id, "fleet-health")
    assert report["Execution"]["Status"] == "Success"
    assert report["Execution"]["ExecutionId"] not in {first["ExecutionId"], second["ExecutionId"]}
    assert len(report["Targets"]) == 20
    assert {t["Status"] for t in report["Targets"]} == {"Success"}
    assert report["Targets"][0]["NameTag"] == "node-1"


async def test_run_without_wait_and_several_associations(fleet20: Emulator, tmp_path: Path) -> None:
    first = await create(fleet20, tmp_path, "first")
    second = await create(fleet20, tmp_path, "second")
    await settled(fleet20, "first", 1)
    await settled(fleet20, "second", 1)
    code, out, err = await ssmsh(fleet20, "association", "run", "first", second)
    assert (code, out) == (0, ""), err
    assert f"Started association first ({first}).\nStarted association second ({second}).\n" == err
    await settled(fleet20, "first", 2)
    await settled(fleet20, "second", 2)

    break_nodes(tmp_path)
    code, out, err = await ssmsh(fleet20, "association", "run", "--wait", first, "second")
    assert code == 1, err
    assert out.count("\nINSTANCE ") == 2 and out.startswith("Association first")
    assert "\nAssociation second" in out
    assert err.count("20 targets: 3 Failed, 17 Success") == 2


async def test_the_targets_table_on_a_terminal(fleet20: Emulator, tmp_path: Path) -> None:
    break_nodes(tmp_path)
    await create(fleet20, tmp_path)
    [execution] = await settled(fleet20, "fleet-health", 1)
    proc = PtyProcess(
        [
            "association",
            "targets",
            "fleet-health",
            execution["ExecutionId"],
            "--status",
            "Failed",
            "--endpoint-url",
            fleet20.endpoint_url,
        ],
        cols=80,
    )
    try:
        assert await proc.wait() == 0
    finally:
        proc.close()
    lines = proc.text.rstrip("\r\n").split("\r\n")
    assert re.fullmatch(r"INSTANCE {13}NAME {4}STATUS {2}DETAIL {2}LAST RUN", lines[0]), lines
    for n, line in zip(BROKEN, lines[1:4], strict=True):
        assert re.fullmatch(
            rf"{node(n)}  node-{n}  Failed  Failed  \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d", line
        )
        assert len(line) <= 80
    assert re.fullmatch(r"Output: ssmsh commands show [0-9a-f-]{36}", lines[4])
    assert len(lines) == 5

    proc = PtyProcess(["association", "ls", "--endpoint-url", fleet20.endpoint_url], cols=100)
    try:
        assert await proc.wait() == 0
    finally:
        proc.close()
    header, row = proc.text.rstrip("\r\n").split("\r\n")
    assert re.fullmatch(r"ASSOCIATION ID +NAME +DOCUMENT +SCHEDULE +STATUS +LAST RUN", header)
    assert re.match(r"[0-9a-f-]{36}  fleet-health  AWS-RunShellScript  -  +Failed  \d{4}-", row)


async def test_ctrl_c_while_waiting_leaves_the_run_going(fleet20: Emulator, tmp_path: Path) -> None:
    ssm = make_client("ssm", fleet20.endpoint_url)
    created = await asyncio.to_thread(
        ssm.create_association,
        Name="AWS-RunShellScript",
        AssociationName="slow",
        Targets=[{"Key": "tag:Role", "Values": ["web"]}],
        Parameters={"commands": ["sleep 60"], "executionTimeout": ["6000"]},
    )
    association_id = created["AssociationDescription"]["AssociationId"]
    proc = PtyProcess(
        ["association", "run", "slow", "--wait", "--endpoint-url", fleet20.endpoint_url]
    )
    try:
        await proc.expect(r"slow: InProgress \{InProgress=5\} - \d+s")  # the progress line
        proc.send(b"\x03")
        assert await proc.wait() == 130
    finally:
        proc.close()
    assert "ssmsh: interrupted; the association runs go on" in proc.text
    assert "Traceback" not in proc.text
    found = await history(fleet20, association_id)
    assert [e["Status"] for e in found] == ["InProgress", "InProgress"]


# -- failures: one line, 255 ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nosuch"], "no association named 'nosuch'"),
        (["run", "00000000-0000-0000-0000-000000000000"], "AssociationDoesNotExist"),
        (["history", "00000000-0000-0000-0000-000000000000"], "AssociationDoesNotExist"),
        (["history", "fleet-health", "--since", "someday"], "--since expects a date or time"),
        (["history", "fleet-health", "--since", "1h", "--until", "2h"], "--since is later"),
        (["history", "fleet-health", "--page-size", "0"], "--page-size must be 1 to 50"),
        (
            ["targets", "fleet-health", "00000000-0000-0000-0000-000000000000"],
            "AssociationExecutionDoesNotExist",
        ),
        (["targets", "fleet-health", " "], "the EXECUTION_ID is empty"),
    ],
)
async def test_failures_are_one_line(
    fleet20: Emulator, tmp_path: Path, args: list[str], message: str
) -> None:
    await create(fleet20, tmp_path)
    code, out, err = await ssmsh(fleet20, "association", *args)
    assert (code, out) == (255, ""), err
    assert message in one_line(err)


async def test_two_associations_with_one_name(fleet20: Emulator, tmp_path: Path) -> None:
    await create(fleet20, tmp_path, "twin")
    await create(fleet20, tmp_path, "twin")
    code, out, err = await ssmsh(fleet20, "association", "history", "twin")
    assert (code, out) == (255, "")
    assert "several associations are named 'twin'" in one_line(err)


def test_created_time_is_what_the_filter_takes() -> None:
    moment = dt.datetime(2024, 8, 29, 10, 1, 2, 345678, tzinfo=dt.UTC)
    assert created_time(moment) == "2024-08-29T10:01:02.345Z"
    local = moment.astimezone(dt.timezone(dt.timedelta(hours=2)))
    assert created_time(local) == "2024-08-29T10:01:02.345Z"
