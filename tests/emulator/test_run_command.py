"""Run Command in the emulator, driven by real boto3 clients (botocore parses every answer).

Delivery and execution timeouts are scaled down (``command_timeout_scale``) so the
model's smallest TimeoutSeconds, 30, passes in 0.3 s; the visibility delay is 0 unless a
test is about it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import botocore.exceptions
import botocore.session
import pytest

from ssmsh.emulator import DEFAULT_TARGET, EmulatorConfig
from ssmsh.emulator.cli import build_config, configure_parser
from ssmsh.emulator.commands.model import plugin_output
from tests.conftest import scaled
from tests.emulator.conftest import EmulatorThread, PlaceholderGateway, make_client
from tests.emulator.refusals import refused

SCALE = 0.01
ROLE = "arn:aws:iam::123456789012:role/sns-publisher"
TOPIC = "arn:aws:sns:us-east-1:123456789012:run-command"


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(instances=6, command_visibility_delay=0.0, command_timeout_scale=SCALE)


def node(n: int) -> str:
    return f"i-{n:017x}"


def wait_done(ssm: Any, command_id: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + scaled(timeout)
    while True:
        command: dict[str, Any] = ssm.list_commands(CommandId=command_id)["Commands"][0]
        if command["Status"] not in ("Pending", "InProgress", "Cancelling"):
            return command
        assert time.monotonic() < deadline, f"command still {command['Status']}"
        time.sleep(0.05)


def invocations(ssm: Any, command_id: str, **kwargs: Any) -> list[dict[str, Any]]:
    paginator = ssm.get_paginator("list_command_invocations")
    return [
        item
        for page in paginator.paginate(CommandId=command_id, **kwargs)
        for item in page["CommandInvocations"]
    ]


def shell(ssm: Any, commands: list[str], **kwargs: Any) -> str:
    kwargs.setdefault("InstanceIds", [DEFAULT_TARGET])
    if kwargs["InstanceIds"] is None:
        del kwargs["InstanceIds"]
    timeout_seconds = kwargs.pop("TimeoutSeconds", 30)
    parameters = {"commands": commands, "executionTimeout": [kwargs.pop("timeout", "30")]}
    response = ssm.send_command(
        DocumentName="AWS-RunShellScript",
        Parameters=parameters,
        TimeoutSeconds=timeout_seconds,
        **kwargs,
    )
    return str(response["Command"]["CommandId"])


# -- one instance ---------------------------------------------------------------------


def test_shell_script_runs_and_reports(ssm: Any, tmp_path: Path) -> None:
    response = ssm.send_command(
        InstanceIds=[DEFAULT_TARGET],
        DocumentName="AWS-RunShellScript",
        Parameters={
            "commands": ["pwd", "echo $AWS_SSM_INSTANCE_ID"],
            "workingDirectory": [str(tmp_path)],
            "executionTimeout": ["30"],
        },
        Comment="hello",
        TimeoutSeconds=30,
        CloudWatchOutputConfig={"CloudWatchOutputEnabled": True},
        AlarmConfiguration={"Alarms": [{"Name": "cpu"}], "IgnorePollAlarmFailure": True},
    )["Command"]
    assert response["Status"] == "Pending"
    assert response["MaxConcurrency"] == "50" and response["MaxErrors"] == "0"
    assert response["TimeoutSeconds"] == 30
    assert response["AlarmConfiguration"]["Alarms"] == [{"Name": "cpu"}]
    expires = response["ExpiresAfter"] - response["RequestedDateTime"]
    assert abs(expires.total_seconds() - 60) < 0.01  # TimeoutSeconds + executionTimeout
    command = wait_done(ssm, response["CommandId"])
    assert (command["Status"], command["StatusDetails"]) == ("Success", "Success")
    assert (command["TargetCount"], command["CompletedCount"], command["ErrorCount"]) == (1, 1, 0)
    result = ssm.get_command_invocation(CommandId=response["CommandId"], InstanceId=DEFAULT_TARGET)
    assert result["StandardOutputContent"] == f"{tmp_path}\n{DEFAULT_TARGET}\n"
    assert (result["Status"], result["StatusDetails"], result["ResponseCode"]) == (
        "Success",
        "Success",
        0,
    )
    assert result["PluginName"] == "aws:runShellScript"
    assert result["Comment"] == "hello"
    assert result["ExecutionElapsedTime"].startswith("PT")
    assert result["CloudWatchOutputConfig"]["CloudWatchOutputEnabled"] is True
    [invocation] = invocations(ssm, response["CommandId"], Details=True)
    [plugin] = invocation["CommandPlugins"]
    assert plugin["Name"] == "aws:runShellScript" and plugin["Output"].endswith(
        f"{DEFAULT_TARGET}\n"
    )
    assert invocation["InstanceName"] == "emulated"
    [brief] = invocations(ssm, response["CommandId"])
    assert brief["CommandPlugins"] == []


def test_failure_and_execution_timeout(ssm: Any) -> None:
    failed = shell(ssm, ["echo out", "echo err >&2", "exit 3"])
    slow = shell(ssm, ["sleep 5"])  # 30 s execution timeout, scaled to 0.3 s
    assert wait_done(ssm, failed)["StatusDetails"] == "Failed"
    result = ssm.get_command_invocation(CommandId=failed, InstanceId=DEFAULT_TARGET)
    assert (result["Status"], result["ResponseCode"]) == ("Failed", 3)
    assert result["StandardErrorContent"] == "err\nfailed to run commands: exit status 3"
    command = wait_done(ssm, slow)
    assert (command["Status"], command["StatusDetails"], command["ErrorCount"]) == (
        "TimedOut",
        "ExecutionTimedOut",
        1,
    )
    result = ssm.get_command_invocation(CommandId=slow, InstanceId=DEFAULT_TARGET)
    assert (result["Status"], result["StatusDetails"], result["ResponseCode"]) == (
        "TimedOut",
        "ExecutionTimedOut",
        137,
    )


def test_output_truncated_as_aws_documents(ssm: Any) -> None:
    script = ["head -c 30000 /dev/zero | tr '\\0' o", "head -c 10000 /dev/zero | tr '\\0' e >&2"]
    command_id = shell(ssm, script, OutputS3BucketName="my-bucket", OutputS3KeyPrefix="runs")
    wait_done(ssm, command_id)
    result = ssm.get_command_invocation(CommandId=command_id, InstanceId=DEFAULT_TARGET)
    assert result["StandardOutputContent"] == "o" * 24000
    assert result["StandardErrorContent"] == "e" * 8000
    assert result["StandardOutputUrl"] == (
        f"https://s3.us-east-1.amazonaws.com/my-bucket/runs/{command_id}/{DEFAULT_TARGET}"
        "/awsrunShellScript/0.awsrunShellScript/stdout"
    )
    assert result["StandardErrorUrl"].endswith("/0.awsrunShellScript/stderr")
    [invocation] = invocations(ssm, command_id, Details=True)
    output = invocation["CommandPlugins"][0]["Output"]
    assert len(output) == 2500
    assert output.startswith("o" * 100) and "\n---Output truncated---" in output
    assert "\n----------ERROR-------\n" in output and output.endswith("\n---Error truncated----")
    assert output == plugin_output("o" * 30000, "e" * 10000)


def test_plugin_output_layout() -> None:
    assert plugin_output("", "") == ""
    assert plugin_output("out", "err") == "out\n----------ERROR-------\nerr"
    short_err = plugin_output("o" * 3000, "err")
    assert len(short_err) == 2500 and short_err.endswith(
        "---Output truncated---\n----------ERROR-------\nerr"
    )
    short_out = plugin_output("out", "e" * 3000)
    assert len(short_out) == 2500 and short_out.startswith("out\n----------ERROR-------\neee")


def test_command_document_steps_and_parameters(ssm: Any) -> None:
    content = {
        "schemaVersion": "2.2",
        "description": "Two steps",
        "parameters": {"word": {"type": "String", "allowedPattern": "^[a-z]+$"}},
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "first",
                "inputs": {"runCommand": ["echo {{ word }}"]},
            },
            {
                "action": "aws:runShellScript",
                "name": "second",
                "inputs": {"runCommand": ["exit 2"], "timeoutSeconds": "30"},
            },
        ],
    }
    ssm.create_document(Name="Two-Steps", Content=json.dumps(content), DocumentType="Command")
    code, _ = refused(
        ssm.send_command,
        InstanceIds=[DEFAULT_TARGET],
        DocumentName="Two-Steps",
        Parameters={"word": ["NO"]},
    )
    assert code == "InvalidParameters"
    arn = "arn:aws:ssm:us-east-1:123456789012:document/Two-Steps"
    response = ssm.send_command(
        InstanceIds=[DEFAULT_TARGET], DocumentName=arn, Parameters={"word": ["hi"]}
    )
    command_id = response["Command"]["CommandId"]
    assert wait_done(ssm, command_id)["StatusDetails"] == "Failed"
    code, _ = refused(ssm.get_command_invocation, CommandId=command_id, InstanceId=DEFAULT_TARGET)
    assert code == "InvalidPluginName"
    first = ssm.get_command_invocation(
        CommandId=command_id, InstanceId=DEFAULT_TARGET, PluginName="first"
    )
    assert (first["StandardOutputContent"], first["Status"]) == ("hi\n", "Success")
    second = ssm.get_command_invocation(
        CommandId=command_id, InstanceId=DEFAULT_TARGET, PluginName="second"
    )
    assert (second["ResponseCode"], second["Status"]) == (2, "Failed")
    [invocation] = invocations(ssm, command_id, Details=True)
    assert [p["Name"] for p in invocation["CommandPlugins"]] == ["first", "second"]
    assert invocation["Status"] == "Failed"


def test_refusals(ssm: Any) -> None:
    run = {"DocumentName": "AWS-RunShellScript", "Parameters": {"commands": ["true"]}}
    cases: list[tuple[str, dict[str, Any]]] = [
        ("InvalidInstanceId", {"InstanceIds": ["i-0aaaaaaaaaaaaaaaa"], **run}),
        ("DuplicateInstanceId", {"InstanceIds": [DEFAULT_TARGET, DEFAULT_TARGET], **run}),
        ("InvalidDocument", {"InstanceIds": [DEFAULT_TARGET], "DocumentName": "Nope"}),
        (
            "InvalidDocument",
            {"InstanceIds": [DEFAULT_TARGET], "DocumentName": "AWS-StartSSHSession"},
        ),
        (
            "InvalidParameters",
            {"InstanceIds": [DEFAULT_TARGET], "DocumentName": "AWS-RunShellScript"},
        ),
        (
            "InvalidParameters",
            {
                "InstanceIds": [DEFAULT_TARGET],
                "DocumentName": "AWS-RunShellScript",
                "Parameters": {"commands": ["true"], "nope": ["x"]},
            },
        ),
        (
            "InvalidDocumentVersion",
            {"InstanceIds": [DEFAULT_TARGET], "DocumentVersion": "9", **run},
        ),
        ("InvalidDocument", {"InstanceIds": [DEFAULT_TARGET], "DocumentHash": "0" * 64, **run}),
        ("ValidationException", {"InstanceIds": [DEFAULT_TARGET], "MaxConcurrency": "0", **run}),
        ("ValidationException", {**run}),
        (
            "InvalidRole",
            {
                "InstanceIds": [DEFAULT_TARGET],
                "NotificationConfig": {"NotificationArn": TOPIC},
                **run,
            },
        ),
        (
            "InvalidNotificationConfig",
            {
                "InstanceIds": [DEFAULT_TARGET],
                "ServiceRoleArn": ROLE,
                "NotificationConfig": {"NotificationArn": "topic"},
                **run,
            },
        ),
    ]
    for expected, kwargs in cases:
        assert refused(ssm.send_command, **kwargs)[0] == expected, kwargs
    missing = "00000000-0000-0000-0000-000000000000"
    assert refused(ssm.list_commands, CommandId=missing)[0] == "InvalidCommandId"
    assert refused(ssm.list_command_invocations, CommandId=missing)[0] == "InvalidCommandId"
    assert (
        refused(ssm.get_command_invocation, CommandId=missing, InstanceId=DEFAULT_TARGET)[0]
        == "InvalidCommandId"
    )
    assert refused(ssm.cancel_command, CommandId=missing)[0] == "InvalidCommandId"
    command_id = shell(ssm, ["true"])
    code, _ = refused(ssm.get_command_invocation, CommandId=command_id, InstanceId=node(1))
    assert code == "InvocationDoesNotExist"
    assert (
        refused(ssm.cancel_command, CommandId=command_id, InstanceIds=[node(1)])[0]
        == "InvalidInstanceId"
    )
    code, _ = refused(ssm.list_commands, Filters=[{"key": "Owner", "value": "me"}])
    assert code == "InvalidFilterKey"
    good = ssm.get_document(Name="AWS-RunShellScript")
    digest = ssm.describe_document(Name="AWS-RunShellScript")["Document"]["Hash"]
    ok = ssm.send_command(
        InstanceIds=[DEFAULT_TARGET],
        DocumentHash=digest,
        DocumentHashType="Sha256",
        DocumentVersion=good["DocumentVersion"],
        **run,
    )
    assert ok["Command"]["DocumentVersion"] == "1"


# -- visibility, cancel, paging, notifications ---------------------------------------


@pytest.mark.parametrize(
    "emulator_config", [EmulatorConfig(command_visibility_delay=1.0, command_timeout_scale=SCALE)]
)
def test_invocations_appear_after_the_visibility_delay(ssm: Any) -> None:
    command_id = shell(ssm, ["echo late"])
    code, _ = refused(ssm.get_command_invocation, CommandId=command_id, InstanceId=DEFAULT_TARGET)
    assert code == "InvocationDoesNotExist"
    assert invocations(ssm, command_id) == []
    assert ssm.list_commands(CommandId=command_id)["Commands"][0]["Status"] == "Pending"
    deadline = time.monotonic() + scaled(10)
    while True:  # what a client must do: retry InvocationDoesNotExist for a while
        try:
            result = ssm.get_command_invocation(CommandId=command_id, InstanceId=DEFAULT_TARGET)
        except botocore.exceptions.ClientError as exc:
            assert exc.response["Error"]["Code"] == "InvocationDoesNotExist"
            assert time.monotonic() < deadline
            time.sleep(0.1)
            continue
        if result["Status"] == "Success":
            break
        time.sleep(0.05)
    assert result["StandardOutputContent"] == "late\n"


def test_cancel_mid_run(ssm: Any, tmp_path: Path) -> None:
    marker = tmp_path / "finished"
    targets = [node(1), node(2), node(3)]
    command_id = shell(
        ssm, ["sleep 1", f"touch {marker}-$AWS_SSM_INSTANCE_ID"], InstanceIds=targets
    )
    deadline = time.monotonic() + scaled(10)
    while not all(i["Status"] == "InProgress" for i in invocations(ssm, command_id)):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    ssm.cancel_command(CommandId=command_id, InstanceIds=[node(1)])
    deadline = time.monotonic() + scaled(10)
    while invocations(ssm, command_id)[0]["Status"] != "Cancelled":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    ssm.cancel_command(CommandId=command_id)
    command = wait_done(ssm, command_id)
    assert (command["Status"], command["StatusDetails"], command["CompletedCount"]) == (
        "Cancelled",
        "Cancelled",
        3,
    )
    for item in invocations(ssm, command_id, Details=True):
        assert (item["Status"], item["StatusDetails"]) == ("Cancelled", "Cancelled")
        assert item["CommandPlugins"][0]["ResponseCode"] == 137
    time.sleep(1.3)  # the scripts would have finished by now: they were killed
    assert not list(tmp_path.iterdir())


def test_paging_and_filters(ssm: Any) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    ids = [shell(ssm, ["true"], InstanceIds=[node(n) for n in range(1, 6)]) for _ in range(3)]
    failed = shell(ssm, ["false"])
    for command_id in [*ids, failed]:
        wait_done(ssm, command_id)
    pages = list(ssm.get_paginator("list_commands").paginate(PaginationConfig={"PageSize": 1}))
    assert [c["CommandId"] for p in pages for c in p["Commands"]] == [failed, *reversed(ids)]
    assert all(len(p["Commands"]) == 1 for p in pages)
    pages = list(
        ssm.get_paginator("list_command_invocations").paginate(
            CommandId=ids[0], PaginationConfig={"PageSize": 2}
        )
    )
    assert [len(p["CommandInvocations"]) for p in pages] == [2, 2, 1]
    assert [i["InstanceId"] for p in pages for i in p["CommandInvocations"]] == [
        node(n) for n in range(1, 6)
    ]
    token = ssm.list_commands(MaxResults=1)["NextToken"]
    assert refused(ssm.list_commands, MaxResults=1, NextToken=token + "x")[0] == "InvalidNextToken"

    def listed(*filters: tuple[str, str]) -> list[str]:
        wanted = [{"key": k, "value": v} for k, v in filters]
        return [c["CommandId"] for c in ssm.list_commands(Filters=wanted)["Commands"]]

    assert listed(("Status", "Failed")) == [failed]
    assert listed(("InvokedAfter", before.isoformat()), ("DocumentName", "AWS-RunShellScript")) == [
        failed,
        *reversed(ids),
    ]
    assert listed(("InvokedBefore", before.isoformat())) == []
    assert listed(("ExecutionStage", "Executing")) == []
    assert len(listed(("ExecutionStage", "Complete"))) == 4
    assert [c["CommandId"] for c in ssm.list_commands(InstanceId=node(5))["Commands"]] == list(
        reversed(ids)
    )
    status = [{"key": "Status", "value": "Failed"}]
    found = ssm.list_command_invocations(Filters=status)["CommandInvocations"]
    assert [(i["CommandId"], i["InstanceId"]) for i in found] == [(failed, DEFAULT_TARGET)]


def test_notifications_for_the_events_asked_for(emu: Any, ssm: Any) -> None:
    common = {"ServiceRoleArn": ROLE, "InstanceIds": [node(1), node(2)]}
    per_invocation = shell(
        ssm,
        ['[ "$AWS_SSM_INSTANCE_ID" = i-00000000000000002 ] && exit 1; true'],
        NotificationConfig={
            "NotificationArn": TOPIC,
            "NotificationEvents": ["Success", "Failed"],
            "NotificationType": "Invocation",
        },
        MaxErrors="1",
        **common,
    )
    summary = shell(
        ssm,
        ["true"],
        NotificationConfig={
            "NotificationArn": TOPIC,
            "NotificationEvents": ["All"],
            "NotificationType": "Command",
        },
        OutputS3BucketName="bucket",
        **common,
    )
    for command_id in (per_invocation, summary):
        wait_done(ssm, command_id)
    records = emu.call(lambda: list(emu.emulator.notifications))
    mine = [r for r in records if r.message["commandId"] == per_invocation]
    assert sorted((r.event, r.message["instanceId"]) for r in mine) == [
        ("Failed", node(2)),
        ("Success", node(1)),
    ]
    assert all(r.notification_type == "Invocation" and r.topic_arn == TOPIC for r in mine)
    assert set(mine[0].message) == {
        "commandId",
        "documentName",
        "instanceId",
        "requestedDateTime",
        "status",
        "eventTime",
    }
    events = [r for r in records if r.message["commandId"] == summary]
    assert [r.event for r in events] == ["InProgress", "Success"]
    assert events[-1].message["instanceIds"] == [node(1), node(2)]
    assert events[-1].message["outputS3BucketName"] == "bucket"
    assert events[-1].message["expiresAfter"].endswith("Z")
    reported = ssm.list_commands(CommandId=summary)["Commands"][0]["NotificationConfig"]
    assert reported == {
        "NotificationArn": TOPIC,
        "NotificationEvents": ["All"],
        "NotificationType": "Command",
    }


# -- a fleet ---------------------------------------------------------------------------

#: Node numbers: offline, failing (exit 1), hanging past the execution timeout, slow agent.
OFFLINE = (4, 52, 121, 151)
FAILING = tuple(range(7, 201, 10))
HANGING = (25, 125)
SLOW = {11: 0.3, 12: 0.3}


def _fleet_script(log: Path) -> list[str]:
    fail = " ".join(node(n) for n in FAILING)
    hang = " ".join(node(n) for n in HANGING)
    return [
        f'echo "start $(date +%s%N)" >> {log}',
        f'for i in {hang}; do [ "$i" = "$AWS_SSM_INSTANCE_ID" ] && sleep 5; done',
        f'echo "end $(date +%s%N)" >> {log}',
        f'for i in {fail}; do [ "$i" = "$AWS_SSM_INSTANCE_ID" ] && exit 1; done',
        "echo ok",
    ]


#: The 200-instance fleet (some failing, offline and slow nodes) the rate-control tests use.
FLEET_200 = pytest.mark.parametrize(
    "emulator_config",
    [
        EmulatorConfig(
            instances=200,
            offline_instances=OFFLINE,
            slow_instances=SLOW,
            command_visibility_delay=0.0,
            command_timeout_scale=SCALE,
        )
    ],
)


@FLEET_200
def test_fleet_rate_controls(ssm: Any, tmp_path: Path) -> None:
    log = tmp_path / "log"
    # Every node (all have a Role tag), 20 at a time, stop after the sixth error.
    command_id = shell(
        ssm,
        _fleet_script(log),
        InstanceIds=None,
        Targets=[{"Key": "tag-key", "Values": ["Role"]}],
        MaxConcurrency="20",
        MaxErrors="5",
        TimeoutSeconds=300,  # 3.3 s with the execution timeout, scaled
    )
    command = wait_done(ssm, command_id, timeout=60)
    items = {i["InstanceId"]: i for i in invocations(ssm, command_id, Details=True)}
    assert len(items) == command["TargetCount"] == 200
    assert (command["Status"], command["StatusDetails"]) == ("Failed", "Failed")
    assert command["CompletedCount"] == 200
    details = [i["StatusDetails"] for i in items.values()]
    errors = details.count("Failed") + details.count("ExecutionTimedOut")
    assert command["ErrorCount"] == errors and 6 <= errors <= 5 + 20
    assert command["DeliveryTimedOutCount"] == details.count("DeliveryTimedOut")
    terminated = [i for i in items.values() if i["StatusDetails"] == "Terminated"]
    assert terminated, "the invocations not yet sent when MaxErrors passed are terminated"
    for item in terminated:
        assert item["Status"] == "Cancelled"
        assert item["CommandPlugins"][0]["ResponseCode"] == -1
    for n in FAILING:
        assert items[node(n)]["StatusDetails"] in ("Failed", "Terminated")
    for n in OFFLINE:
        assert items[node(n)]["StatusDetails"] in ("DeliveryTimedOut", "Terminated")
        assert items[node(n)]["Status"] in ("TimedOut", "Cancelled")
    started = [i for i in items.values() if i["StatusDetails"] in ("Success", "Failed")]
    assert all(i["CommandPlugins"][0]["ResponseCode"] >= 0 for i in started)
    assert _max_overlap(log) <= 20


@FLEET_200
def test_fleet_incomplete_under_max_errors(emu: Any, ssm: Any, tmp_path: Path) -> None:
    log = tmp_path / "log"
    # Env=prod is nodes 1, 4, 7...: 7 fail, 1 hangs, 4 are offline (one comes back).
    command_id = shell(
        ssm,
        _fleet_script(log),
        InstanceIds=None,
        Targets=[{"Key": "tag:Env", "Values": ["prod"]}],
        MaxConcurrency="10%",
        MaxErrors="50%",
        TimeoutSeconds=300,
    )
    emu.call(emu.emulator.reconnect_instance, node(121))  # back online: it runs
    command = wait_done(ssm, command_id, timeout=60)
    prod = [n for n in range(1, 201) if n % 3 == 1]
    items = {i["InstanceId"]: i["StatusDetails"] for i in invocations(ssm, command_id)}
    assert sorted(items) == sorted(node(n) for n in prod)
    expected = {
        node(n): (
            "DeliveryTimedOut"
            if n in OFFLINE and n != 121
            else "ExecutionTimedOut"
            if n in HANGING
            else "Failed"
            if n in FAILING
            else "Success"
        )
        for n in prod
    }
    assert items == expected
    assert (command["Status"], command["StatusDetails"]) == ("Failed", "Incomplete")
    assert command["ErrorCount"] == sum(
        v in ("Failed", "ExecutionTimedOut") for v in items.values()
    )
    assert command["DeliveryTimedOutCount"] == 3
    assert command["CompletedCount"] == command["TargetCount"] == len(prod)
    assert _max_overlap(log) <= len(prod) // 10


def _max_overlap(log: Path) -> int:
    events = sorted(
        (int(stamp), 1 if kind == "start" else -1)
        for kind, stamp in (line.split() for line in log.read_text().splitlines())
    )
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_fleet_from_the_command_line() -> None:
    parser = configure_parser(argparse.ArgumentParser())
    config = build_config(
        parser.parse_args(
            [
                "--instances",
                "5",
                "--offline",
                "2,4",
                "--slow",
                "1,3:0.5",
                "--command-visibility-delay",
                "0",
            ]
        )
    )
    assert (config.instances, config.offline_instances) == (5, (2, 4))
    assert config.slow_instances == {1: 0.5, 3: 0.5}
    assert config.command_visibility_delay == 0.0


def test_shutdown_kills_running_commands(tmp_path: Path) -> None:
    config = EmulatorConfig(command_visibility_delay=0.0, command_timeout_scale=SCALE)
    thread = EmulatorThread(config, PlaceholderGateway).start()
    try:
        ssm = make_client("ssm", thread.endpoint_url)
        command_id = shell(ssm, ["sleep 1", f"touch {tmp_path}/finished"])
        deadline = time.monotonic() + scaled(10)
        while invocations(ssm, command_id)[0]["Status"] != "InProgress":
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        thread.stop()
    time.sleep(1.3)
    assert not list(tmp_path.iterdir())
