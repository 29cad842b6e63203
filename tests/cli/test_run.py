"""``ssmsh run`` and ``ssmsh commands``: the real CLI against an emulated fleet.

The fleet has 20 generated instances (``node-1``...``node-20``, tagged Env and Role in
turn) with node 7 offline. Delivery and execution timeouts are scaled down (a 30 s
TimeoutSeconds runs out in 0.3 s); the visibility delay after SendCommand keeps its
default, so every test also goes through invocations that are not listed yet.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import botocore.session
import pytest

from ssmsh.cli.follow import FINAL_COMMAND, FINAL_INVOCATION
from ssmsh.cli.runcommand import parse_targets
from ssmsh.cli.runoutput import split_details
from ssmsh.emulator import Emulator, EmulatorConfig
from ssmsh.exceptions import UsageError
from tests.emulator.conftest import make_client

from .fleet import one_line
from .harness import PtyProcess, run_cli

pytestmark = pytest.mark.timeout(90)

OFFLINE = 7
#: Delivery timeout 30 s plus execution timeout 30 s: 0.6 s once scaled.
QUICK_TIMEOUTS = ("--timeout-seconds", "30", "--execution-timeout", "30")


def node(n: int) -> str:
    return f"i-{n:017x}"


@pytest.fixture
async def fleet20() -> AsyncIterator[Emulator]:
    config = EmulatorConfig(instances=20, offline_instances=(OFFLINE,), command_timeout_scale=0.01)
    async with Emulator(config) as emu:
        yield emu


async def ssmsh(emu: Emulator, command: str, *args: str) -> tuple[int, str, str]:
    """``ssmsh COMMAND --endpoint-url URL ARGS`` (the URL before any ``--``), with pipes."""
    code, out, err = await run_cli([command, "--endpoint-url", emu.endpoint_url, *args])
    assert "Traceback" not in err.decode(), err.decode()
    return code, out.decode(), err.decode()


def sent(emu: Emulator) -> list[Any]:
    return list(emu.commands.commands.values())


# -- one target -------------------------------------------------------------------------


async def test_one_target_exit_status_and_streams(fleet20: Emulator) -> None:
    code, out, err = await ssmsh(fleet20, "run", "node-1", "--", "echo out; echo err >&2")
    assert code == 0, err
    assert out == "node-1 | out\n"
    assert "node-1 | err\n" in err
    assert re.match(r"Command ID: [0-9a-f-]{36}\n", err)

    code, out, err = await ssmsh(fleet20, "run", node(2), "--", "echo before; exit 7")
    assert code == 7, err
    assert out == "node-2 | before\n"
    assert f"node-2 ({node(2)}): Failed, exit status 7" in err


async def test_one_offline_target_did_not_run(fleet20: Emulator) -> None:
    code, out, err = await ssmsh(fleet20, "run", "node-7", *QUICK_TIMEOUTS, "--", "echo never")
    assert (code, out) == (1, "")
    assert f"node-7 ({node(OFFLINE)}): TimedOut (DeliveryTimedOut), did not run" in err


# -- a fleet ----------------------------------------------------------------------------


async def test_tag_target_over_the_fleet(fleet20: Emulator) -> None:
    failing = {node(n) for n in (3, 6, 19)}
    script = 'case "$AWS_SSM_INSTANCE_ID" in *03|*06|*13) echo no >&2; exit 4;; esac; echo ok'
    code, out, err = await ssmsh(
        fleet20, "run", "tag:Env", *QUICK_TIMEOUTS, "--max-errors", "100%", "--", script
    )
    assert code == 1, err
    ok_lines = sorted(out.splitlines())
    assert ok_lines == sorted(f"node-{n} | ok" for n in range(1, 21) if n not in (3, 6, 7, 19))
    for instance_id in failing:
        n = int(instance_id[2:], 16)
        assert f"node-{n} | no\n" in err
        assert f"node-{n} ({instance_id}): Failed, exit status 4" in err
    assert "node-7 (i-00000000000000007): TimedOut (DeliveryTimedOut), did not run" in err
    summary = err.strip().splitlines()[-1]
    assert summary.startswith("20 instances: 3 Failed, 16 Success, 1 TimedOut"), summary
    assert "node-19" in summary and "node-7" in summary
    (command,) = sent(fleet20)
    assert command.targets == [{"Key": "tag-key", "Values": ["Env"]}]


async def test_prefixed_and_grouped_output(fleet20: Emulator) -> None:
    script = "echo one; echo two; echo three >&2"
    code, out, err = await ssmsh(fleet20, "run", "node-1", "node-2", "--", script)
    assert code == 0, err
    for name in ("node-1", "node-2"):
        assert f"{name} | one\n{name} | two\n" in out
        assert f"{name} | three\n" in err
    assert "2 instances: 2 Success" in err

    code, out, err = await ssmsh(fleet20, "run", "--group", "node-1", "node-2", "--", script)
    assert code == 0, err
    assert f"=== node-1 ({node(1)}): Success, exit status 0\none\ntwo\n" in out
    assert f"=== node-2 ({node(2)}): Success, exit status 0\none\ntwo\n" in out
    assert err.count("three\n") == 2


async def test_json_document(fleet20: Emulator) -> None:
    code, out, err = await ssmsh(
        fleet20, "run", "--json", "tag:Role=web", "--comment", "hello", "--", "echo hi; exit 0"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc) == {"Command", "Invocations"}
    assert doc["Command"]["Comment"] == "hello"
    assert doc["Command"]["Status"] == "Success"
    web = [node(n) for n in (1, 5, 9, 13, 17)]
    assert [i["InstanceId"] for i in doc["Invocations"]] == web
    first = doc["Invocations"][0]
    assert first == {
        "InstanceId": node(1),
        "InstanceName": "node-1",
        "Status": "Success",
        "StatusDetails": "Success",
        "ResponseCode": 0,
        "StandardOutputContent": "hi\n",
        "StandardErrorContent": "",
        "StandardOutputTruncated": False,
        "StandardErrorTruncated": False,
        "StandardOutputUrl": "",
        "StandardErrorUrl": "",
    }


async def test_truncated_output_is_marked(fleet20: Emulator) -> None:
    script = "head -c 30000 /dev/zero | tr '\\0' x; echo; head -c 100 /dev/zero | tr '\\0' e >&2"
    code, out, err = await ssmsh(fleet20, "run", "--json", "node-1", "--", script)
    assert code == 0, err
    (invocation,) = json.loads(out)["Invocations"]
    assert invocation["StandardOutputContent"] == "x" * 24000
    assert invocation["StandardOutputTruncated"] is True
    assert invocation["StandardErrorContent"] == "e" * 100
    assert invocation["StandardErrorTruncated"] is False

    code, out, err = await ssmsh(fleet20, "run", "node-1", "--", script)
    assert code == 0, err
    assert "node-1: stdout truncated by AWS at 24,000 characters" in err
    assert "(--output-s3-bucket-name keeps it whole)" in err

    code, out, err = await ssmsh(
        fleet20, "run", "node-1", "--output-s3-bucket-name", "my-bucket", "--", script
    )
    assert code == 0, err
    assert out == f"node-1 | {'x' * 24000}\n"
    url = re.search(r"stdout truncated by AWS at 24,000 characters \(the whole of it: (\S+)\)", err)
    assert url is not None, err
    assert url.group(1).startswith("https://s3.us-east-1.amazonaws.com/my-bucket/")
    assert url.group(1).endswith(f"/{node(1)}/awsrunShellScript/0.awsrunShellScript/stdout")


async def test_dry_run_sends_nothing(fleet20: Emulator) -> None:
    code, out, err = await ssmsh(fleet20, "run", "--dry-run", "tag:Role=db", "--", "reboot")
    assert code == 0, err
    assert [i["InstanceId"] for i in json.loads(out)] == [node(n) for n in (3, 7, 11, 15, 19)]
    assert err == "Would run on 5 instances.\n"

    code, out, err = await ssmsh(fleet20, "run", "--dry-run", "node-2", node(4), "--", "reboot")
    assert code == 0, err
    assert [i["InstanceId"] for i in json.loads(out)] == [node(2), node(4)]
    assert sent(fleet20) == []
    assert "AmazonSSM.SendCommand" not in fleet20.api.calls


# -- following earlier commands -----------------------------------------------------------


async def test_commands_list_and_show(fleet20: Emulator) -> None:
    code, _, err = await ssmsh(fleet20, "run", "-q", "node-1", "--comment", "first", "--", "echo a")
    assert code == 0, err
    (command,) = sent(fleet20)
    code, out, err = await ssmsh(fleet20, "commands", "--since", "1h", "--status", "success")
    assert code == 0, err
    listed = json.loads(out)
    assert [c["CommandId"] for c in listed] == [command.command_id]
    code, out, err = await ssmsh(fleet20, "commands", "--status", "Failed")
    assert (code, json.loads(out)) == (0, [])

    for args in (("commands", "show", command.command_id), ("run", "--wait", command.command_id)):
        code, out, err = await ssmsh(fleet20, *args)
        assert (code, out) == (0, "node-1 | a\n"), err


# -- Ctrl-C -------------------------------------------------------------------------------


async def test_ctrl_c_cancels_the_command(fleet20: Emulator) -> None:
    proc = PtyProcess(
        ["run", "tag:Role=app", "--endpoint-url", fleet20.endpoint_url, "--", "sleep 60"]
    )
    try:
        await proc.expect(r"InProgress: 0/5 done")  # the live progress line
        proc.send(b"\x03")
        assert await proc.wait() == 130
    finally:
        proc.close()
    assert "cancelling command" in proc.text
    assert re.search(r"5 instances: 5 Cancelled", proc.text), proc.text
    assert "ssmsh: interrupted; command" in proc.text
    assert "Traceback" not in proc.text
    (command,) = sent(fleet20)
    assert command.status == "Cancelled"


async def test_ctrl_c_while_watching_leaves_the_command_running(fleet20: Emulator) -> None:
    ssm = make_client("ssm", fleet20.endpoint_url)
    sent_command = await asyncio.to_thread(
        ssm.send_command,
        InstanceIds=[node(1)],
        DocumentName="AWS-RunShellScript",
        Parameters={"commands": ["sleep 60"]},
    )
    command_id = sent_command["Command"]["CommandId"]
    proc = PtyProcess(["run", "--wait", command_id, "--endpoint-url", fleet20.endpoint_url])
    try:
        await proc.expect(r"InProgress: 0/1 done")
        proc.send(b"\x03")
        assert await proc.wait() == 130
    finally:
        proc.close()
    assert f"ssmsh: interrupted; command {command_id} may still run" in proc.text
    assert "cancelling" not in proc.text
    assert fleet20.commands.commands[command_id].status == "InProgress"


# -- failures: one line, 255 -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "node-1"], "run needs a command"),
        (["run", "node-1", "tag:Env=prod", "--", "x"], "not both"),
        (["run", "tag:=prod", "--", "x"], "expected tag:KEY=VALUE"),
        (["run", "nosuch", "--", "x"], "no managed instance named 'nosuch'"),
        (["run", "i-0000000000000abcd", "--", "x"], "InvalidInstanceId"),
        (["run", "node-1", "--notification-type", "x", "--", "x"], "--notification-type must be"),
        (["run", "node-1", "--timeout-seconds", "5", "--", "x"], "TimeoutSeconds"),
        (["run", "--wait", "00000000-0000-0000-0000-000000000000"], "InvalidCommandId"),
        (["run", "--wait", "x", "node-1"], "--wait takes a command id alone"),
        (["commands", "show"], "commands show COMMAND_ID"),
    ],
)
async def test_failures_are_one_line(fleet20: Emulator, args: list[str], message: str) -> None:
    code, out, err = await ssmsh(fleet20, *args)
    assert (code, out) == (255, ""), err
    assert message in one_line(err)


async def test_a_tag_matching_nothing(fleet20: Emulator) -> None:
    code, out, err = await ssmsh(fleet20, "run", "tag:Env=nowhere", "--", "echo x")
    assert (code, out) == (255, "")
    assert err.strip().splitlines()[-1] == "ssmsh: no managed instance matches tag:Env=nowhere"


# -- pieces ---------------------------------------------------------------------------------


def test_targets_parse() -> None:
    selection = parse_targets(["tag:Env=prod,dev", "tag:Role=web", "tag:Env=qa", "tag:Team"])
    assert selection.targets == [
        {"Key": "tag:Env", "Values": ["prod", "dev", "qa"]},
        {"Key": "tag:Role", "Values": ["web"]},
        {"Key": "tag-key", "Values": ["Team"]},
    ]
    selection = parse_targets([node(1), "web-1", node(1)])
    assert (selection.instance_ids, selection.names) == ([node(1)], ["web-1"])
    with pytest.raises(UsageError):
        parse_targets([f"i-{n:017x}" for n in range(51)])


def test_details_output_split() -> None:
    title = "\n----------ERROR-------\n"
    assert split_details("out\n") == ("out\n", "", False, False)
    assert split_details("out\n" + title + "err\n") == ("out\n", "err\n", False, False)
    cut = "o" * 10 + "\n---Output truncated---" + title + "e\n---Error truncated----"
    assert split_details(cut) == ("o" * 10, "e", True, True)


def test_final_statuses_are_the_models() -> None:
    model = botocore.session.get_session().get_service_model("ssm")
    for final, shape in (
        (FINAL_COMMAND, "CommandStatus"),
        (FINAL_INVOCATION, "CommandInvocationStatus"),
    ):
        enum = set(getattr(model.shape_for(shape), "enum", ()))
        assert final.issubset(enum), shape


def test_instances_are_listed_in_natural_order() -> None:
    from ssmsh.cli.runoutput import natural_key

    labels = ["node-105", "node-21", "node-3", "web-1", "node-2"]
    assert sorted(labels, key=natural_key) == ["node-2", "node-3", "node-21", "node-105", "web-1"]
