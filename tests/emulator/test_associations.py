"""State Manager in the emulator, driven by real boto3 clients (botocore parses every answer).

Executions really run through Run Command on an emulated fleet of 20 instances; schedules
run on the emulator's clock, which the tests advance instead of waiting.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ssmsh.emulator import EmulatorConfig
from tests.conftest import scaled
from tests.emulator.conftest import EmulatorThread
from tests.emulator.refusals import refused
from tests.emulator.shapes import check_outputs

OPERATIONS = (
    "CreateAssociation",
    "DescribeAssociation",
    "ListAssociations",
    "ListAssociationVersions",
    "UpdateAssociation",
    "DeleteAssociation",
    "StartAssociationsOnce",
    "DescribeAssociationExecutions",
    "DescribeAssociationExecutionTargets",
    "GetCommandInvocation",
)
FLEET = [f"i-{n:017x}" for n in range(1, 21)]
ALL = [{"Key": "tag-key", "Values": ["Role"]}]  # the 20 fleet nodes, not the default target


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(instances=20, command_visibility_delay=0.0, command_timeout_scale=0.01)


@pytest.fixture(autouse=True)
def answers_fit_the_model(emu: EmulatorThread) -> Iterator[None]:
    """Every answer of the operations under test is checked against botocore's shape."""
    errors = check_outputs(emu.emulator.api, OPERATIONS)
    yield
    assert not errors


def expect(code: str, fn: Callable[..., Any], **kwargs: Any) -> str:
    """The message of a call refused with ``code``."""
    found, message = refused(fn, **kwargs)
    assert found == code, message
    return message


def script(*lines: str) -> dict[str, list[str]]:
    return {"commands": list(lines), "executionTimeout": ["30"]}


def executions(ssm: Any, association_id: str, **kwargs: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = ssm.describe_association_executions(
        AssociationId=association_id, **kwargs
    )["AssociationExecutions"]
    return found


def settled(ssm: Any, association_id: str, count: int, timeout: float = 20) -> list[dict[str, Any]]:
    """The association's executions once there are ``count`` and all have ended."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        found = executions(ssm, association_id)
        if len(found) == count and all(e["Status"] in ("Success", "Failed") for e in found):
            return found
        assert time.monotonic() < deadline, f"executions: {[e['Status'] for e in found]}"
        time.sleep(0.05)


def iso(moment: dt.datetime) -> str:
    """``2018-04-10T19:15:38.372Z``, to the nearest millisecond."""
    moment = moment.astimezone(dt.UTC)
    moment += dt.timedelta(microseconds=round(moment.microsecond, -3) - moment.microsecond)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def advance(emu: EmulatorThread, seconds: float) -> None:
    emu.call(emu.emulator.clock.advance, seconds)


def now(emu: EmulatorThread) -> float:
    return emu.call(emu.emulator.clock.now)


def test_run_once_on_twenty_instances_with_three_failures(
    emu: EmulatorThread, ssm: Any, tmp_path: Path
) -> None:
    broken = FLEET[4:7]
    for instance_id in broken:
        (tmp_path / instance_id).touch()
    created = ssm.create_association(
        Name="AWS-RunShellScript",
        AssociationName="fleet-health",
        Targets=ALL,
        Parameters=script(f"if [ -e {tmp_path}/$AWS_SSM_INSTANCE_ID ]; then exit 1; fi", "echo ok"),
    )["AssociationDescription"]
    association_id = created["AssociationId"]
    assert created["Overview"]["Status"] == "Pending"
    assert (created["AssociationVersion"], created["DocumentVersion"]) == ("1", "$DEFAULT")
    [first] = settled(ssm, association_id, 1)
    assert (first["Status"], first["DetailedStatus"]) == ("Failed", "Failed")
    assert first["ResourceCountByStatus"] == "{Failed=3, Success=17}"
    assert first["AssociationVersion"] == "1"
    description = ssm.describe_association(AssociationId=association_id)["AssociationDescription"]
    assert description["Overview"] == {
        "Status": "Failed",
        "DetailedStatus": "Failed",
        "AssociationStatusAggregatedCount": {"Failed": 3, "Success": 17},
    }
    assert "LastSuccessfulExecutionDate" not in description
    # The three are repaired; an hour later the association is applied once more.
    for instance_id in broken:
        (tmp_path / instance_id).unlink()
    advance(emu, 3600)
    ssm.start_associations_once(AssociationIds=[association_id])
    second, first = settled(ssm, association_id, 2)  # newest first
    assert (second["Status"], second["ResourceCountByStatus"]) == ("Success", "{Success=20}")
    assert second["CreatedTime"] - first["CreatedTime"] >= dt.timedelta(hours=1)
    description = ssm.describe_association(AssociationId=association_id)["AssociationDescription"]
    assert description["Overview"]["Status"] == "Success"
    assert description["LastSuccessfulExecutionDate"] == description["LastExecutionDate"]

    # History, filtered by status...
    def ids(**kwargs: Any) -> list[str]:
        return [e["ExecutionId"] for e in executions(ssm, association_id, **kwargs)]

    failed = [{"Key": "Status", "Value": "Failed", "Type": "EQUAL"}]
    assert ids(Filters=failed) == [first["ExecutionId"]]
    succeeded = [{"Key": "Status", "Value": "Success", "Type": "EQUAL"}]
    assert ids(Filters=succeeded) == [second["ExecutionId"]]
    # ...and by CreatedTime.
    between = iso(first["CreatedTime"] + dt.timedelta(minutes=30))
    before = [{"Key": "CreatedTime", "Value": between, "Type": "LESS_THAN"}]
    after = [{"Key": "CreatedTime", "Value": between, "Type": "GREATER_THAN"}]
    assert ids(Filters=before) == [first["ExecutionId"]]
    assert ids(Filters=after) == [second["ExecutionId"]]
    assert ids(Filters=[*after, *failed]) == []
    exactly = [{"Key": "CreatedTime", "Value": iso(first["CreatedTime"]), "Type": "EQUAL"}]
    assert ids(Filters=exactly) == [first["ExecutionId"]]
    by_id = [{"Key": "ExecutionId", "Value": second["ExecutionId"], "Type": "EQUAL"}]
    assert ids(Filters=by_id) == [second["ExecutionId"]]
    # Paging with small pages.
    page = ssm.describe_association_executions(AssociationId=association_id, MaxResults=1)
    assert [e["ExecutionId"] for e in page["AssociationExecutions"]] == [second["ExecutionId"]]
    rest = ssm.describe_association_executions(
        AssociationId=association_id, MaxResults=1, NextToken=page["NextToken"]
    )
    assert [e["ExecutionId"] for e in rest["AssociationExecutions"]] == [first["ExecutionId"]]
    assert "NextToken" not in rest

    # The first execution's targets, filtered by status, and paged.
    def targets(**kwargs: Any) -> list[dict[str, Any]]:
        paginator = ssm.get_paginator("describe_association_execution_targets")
        pages = paginator.paginate(
            AssociationId=association_id, ExecutionId=first["ExecutionId"], **kwargs
        )
        return [t for p in pages for t in p["AssociationExecutionTargets"]]

    every = targets(PaginationConfig={"PageSize": 7})
    assert [t["ResourceId"] for t in every] == FLEET
    failures = targets(Filters=[{"Key": "Status", "Value": "Failed"}])
    assert [t["ResourceId"] for t in failures] == broken
    target = failures[0]
    assert (target["ResourceType"], target["DetailedStatus"]) == ("ManagedInstance", "Failed")
    assert target["OutputSource"]["OutputSourceType"] == "RunCommand"
    assert len(targets(Filters=[{"Key": "Status", "Value": "Success"}])) == 17
    one = targets(
        Filters=[
            {"Key": "ResourceId", "Value": FLEET[0]},
            {"Key": "ResourceType", "Value": "ManagedInstance"},
        ]
    )
    assert [(t["ResourceId"], t["Status"]) for t in one] == [(FLEET[0], "Success")]
    # The output source is the Run Command command that ran there.
    invocation = ssm.get_command_invocation(
        CommandId=target["OutputSource"]["OutputSourceId"], InstanceId=target["ResourceId"]
    )
    assert (invocation["Status"], invocation["ResponseCode"]) == ("Failed", 1)
    pages = ssm.get_paginator("describe_association_execution_targets").paginate(
        AssociationId=association_id,
        ExecutionId=first["ExecutionId"],
        PaginationConfig={"PageSize": 7},
    )
    assert [len(p["AssociationExecutionTargets"]) for p in pages] == [7, 7, 6]


def test_schedules_follow_the_emulators_clock(emu: EmulatorThread, ssm: Any) -> None:
    cron = ssm.create_association(
        Name="AWS-RunShellScript",
        Targets=[{"Key": "tag:Role", "Values": ["db"]}],
        Parameters=script("true"),
        ScheduleExpression="cron(0 * * * ? *)",
        ApplyOnlyAtCronInterval=True,
    )["AssociationDescription"]["AssociationId"]
    assert executions(ssm, cron) == []  # only at the cron interval
    described = ssm.describe_association(AssociationId=cron)["AssociationDescription"]
    assert described["Overview"] == {"Status": "Pending", "DetailedStatus": "Creating"}
    assert described["ApplyOnlyAtCronInterval"] is True
    advance(emu, 3600 - now(emu) % 3600 + 1)  # to one second past the hour
    [run] = settled(ssm, cron, 1)
    assert run["ResourceCountByStatus"] == "{Success=5}"  # nodes 3, 7, 11, 15, 19
    assert run["CreatedTime"].timestamp() % 3600 < scaled(60)
    rate = ssm.create_association(
        Name="AWS-RunShellScript",
        Targets=[{"Key": "InstanceIds", "Values": FLEET[:2]}],
        Parameters=script("true"),
        ScheduleExpression="rate(30 minutes)",
    )["AssociationDescription"]["AssociationId"]
    settled(ssm, rate, 1)  # at creation
    advance(emu, 1800)
    settled(ssm, rate, 2)
    assert len(executions(ssm, cron)) == 1
    # A jump over several occurrences runs each schedule once.
    advance(emu, 3 * 3600)
    settled(ssm, cron, 2)
    settled(ssm, rate, 3)
    ssm.delete_association(AssociationId=rate)
    advance(emu, 3600)
    expect("AssociationDoesNotExist", ssm.describe_association_executions, AssociationId=rate)
    settled(ssm, cron, 3)


def test_create_refusals(ssm: Any) -> None:
    ssm.create_document(
        Name="Say-Hello",
        Content='{"schemaVersion": "2.2", "parameters": {"who": {"type": "String"}}, '
        '"mainSteps": [{"action": "aws:runShellScript", "name": "hello", '
        '"inputs": {"runCommand": ["echo {{ who }}"]}}]}',
    )
    create = ssm.create_association
    base: dict[str, Any] = {"Targets": ALL}
    expect("InvalidDocument", create, Name="No-Such-Document", **base)
    expect("InvalidDocument", create, Name="AWS-StartSSHSession", **base)
    expect("InvalidDocumentVersion", create, Name="Say-Hello", DocumentVersion="9", **base)
    expect("InvalidParameters", create, Name="Say-Hello", **base)
    params = {"Name": "Say-Hello", "Parameters": {"who": ["me"]}}
    for schedule in ("rate(10 minutes)", "rate(1 hours)", "cron(0 0 * * * *)", "weekly"):
        expect("InvalidSchedule", create, ScheduleExpression=schedule, **params, **base)
    only_at_cron = {"ScheduleExpression": "rate(1 day)", "ApplyOnlyAtCronInterval": True}
    expect("InvalidSchedule", create, **only_at_cron, **params, **base)
    for targets in (
        [{"Key": "InstanceIds", "Values": ["i-0000000000000dead"]}],
        [{"Key": "resource-groups:Name", "Values": ["web"]}],
    ):
        expect("InvalidTarget", create, Targets=targets, **params)
    expect("ValidationException", create, **params)
    expect("ValidationException", create, InstanceId=FLEET[0], **params, **base)
    # The deprecated InstanceId form: schemaVersion 1.2 documents, no schedule, one per pair.
    expect("InvalidDocument", create, InstanceId=FLEET[0], **params)
    legacy = {"Name": "AWS-RunShellScript", "InstanceId": FLEET[0], "Parameters": script("true")}
    expect("ValidationException", create, ScheduleExpression="rate(1 day)", **legacy)
    made = create(**legacy)["AssociationDescription"]
    assert made["InstanceId"] == FLEET[0] and made["Status"]["Name"] == "Pending"
    expect("AssociationAlreadyExists", create, **legacy)
    found = ssm.describe_association(Name="AWS-RunShellScript", InstanceId=FLEET[0])
    assert found["AssociationDescription"]["AssociationId"] == made["AssociationId"]
    ssm.delete_association(Name="AWS-RunShellScript", InstanceId=FLEET[0])
    expect("AssociationDoesNotExist", ssm.describe_association, AssociationId=made["AssociationId"])


def test_update_versions_list_and_delete(ssm: Any) -> None:
    first = ssm.create_association(
        Name="AWS-RunShellScript",
        AssociationName="first",
        Targets=[{"Key": "tag:Env", "Values": ["prod"]}],
        Parameters=script("echo one"),
        ScheduleExpression="rate(1 day)",
        MaxConcurrency="2",
        MaxErrors="1",
        ComplianceSeverity="HIGH",
    )["AssociationDescription"]
    association_id = first["AssociationId"]
    other = ssm.create_association(
        Name="AWS-RunShellScript",
        AssociationName="second",
        Targets=[{"Key": "InstanceIds", "Values": ["*"]}],
        Parameters=script("true"),
    )["AssociationDescription"]["AssociationId"]
    settled(ssm, association_id, 1)
    update, describe = ssm.update_association, ssm.describe_association
    expect(
        "InvalidAssociationVersion", update, AssociationId=association_id, AssociationVersion="7"
    )
    updated = update(
        AssociationId=association_id,
        AssociationVersion="1",
        Parameters=script("echo two"),
        ScheduleExpression="rate(2 days)",
    )["AssociationDescription"]
    assert updated["AssociationVersion"] == "2"
    # What the update left out is gone (AWS's documented behaviour); Name and Targets stay.
    assert "AssociationName" not in updated and "MaxConcurrency" not in updated
    assert updated["Targets"] == [{"Key": "tag:Env", "Values": ["prod"]}]
    assert updated["Name"] == "AWS-RunShellScript"
    # The parameters changed: it ran again, as version 2.
    latest, _ = settled(ssm, association_id, 2)
    assert latest["AssociationVersion"] == "2"
    old = describe(AssociationId=association_id, AssociationVersion="1")
    assert old["AssociationDescription"]["AssociationName"] == "first"
    assert old["AssociationDescription"]["MaxErrors"] == "1"
    expect(
        "InvalidAssociationVersion", describe, AssociationId=association_id, AssociationVersion="5"
    )
    versions = ssm.list_association_versions(AssociationId=association_id)["AssociationVersions"]
    assert [(v["AssociationVersion"], v["ScheduleExpression"]) for v in versions] == [
        ("1", "rate(1 day)"),
        ("2", "rate(2 days)"),
    ]
    listed = ssm.list_associations(MaxResults=1)
    assert len(listed["Associations"]) == 1 and "NextToken" in listed
    everything = [
        a["AssociationId"]
        for page in ssm.get_paginator("list_associations").paginate(
            PaginationConfig={"PageSize": 1}
        )
        for a in page["Associations"]
    ]
    assert everything == [association_id, other]

    def matching(key: str, value: str) -> list[str]:
        found = ssm.list_associations(AssociationFilterList=[{"key": key, "value": value}])
        return [a["AssociationId"] for a in found["Associations"]]

    assert matching("AssociationName", "second") == [other]
    assert matching("InstanceId", FLEET[0]) == [association_id, other]  # node 1 is prod
    assert matching("InstanceId", FLEET[1]) == [other]
    assert matching("Name", "AWS-RunShellScript") == [association_id, other]
    settled(ssm, other, 1)
    assert matching("AssociationStatusName", "Success") == [association_id, other]
    assert matching("LastExecutedAfter", "2000-01-01T00:00:00Z") == [association_id, other]
    assert matching("LastExecutedBefore", "2000-01-01T00:00:00Z") == []
    ssm.delete_association(AssociationId=other)
    expect("AssociationDoesNotExist", ssm.start_associations_once, AssociationIds=[other])
    expect("AssociationDoesNotExist", ssm.delete_association, AssociationId=other)
    expect(
        "AssociationExecutionDoesNotExist",
        ssm.describe_association_execution_targets,
        AssociationId=association_id,
        ExecutionId="00000000-0000-0000-0000-000000000000",
    )
    for wrong in (
        {"Key": "Status", "Value": "Success", "Type": "LESS_THAN"},
        {"Key": "CreatedTime", "Value": "yesterday", "Type": "LESS_THAN"},
    ):
        expect(
            "ValidationException",
            ssm.describe_association_executions,
            AssociationId=association_id,
            Filters=[wrong],
        )


def test_rate_controls_stop_after_max_errors(ssm: Any) -> None:
    association_id = ssm.create_association(
        Name="AWS-RunShellScript",
        Targets=[{"Key": "InstanceIds", "Values": FLEET[:5]}],
        Parameters=script("exit 1"),
        MaxConcurrency="1",
        MaxErrors="1",
    )["AssociationDescription"]["AssociationId"]
    [execution] = settled(ssm, association_id, 1)
    assert execution["ResourceCountByStatus"] == "{Failed=5}"
    found = ssm.describe_association_execution_targets(
        AssociationId=association_id, ExecutionId=execution["ExecutionId"]
    )["AssociationExecutionTargets"]
    assert [t["DetailedStatus"] for t in found] == [
        "Failed",
        "Failed",
        "Terminated",
        "Terminated",
        "Terminated",
    ]
