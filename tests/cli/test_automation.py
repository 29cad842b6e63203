"""``ssmsh automation``, ``ssmsh approve`` and ``ssmsh reject``: the real CLI against the emulator.

Three principals sign requests: the default key (``user/emulated``, no approver), alice (a
user) and bob, a session of the ``Approvers`` role. Runbooks are made with boto3; everything
else goes through ``python -m ssmsh``.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from typing import Any

import botocore.session
import pytest

from ssmsh.cli.timeline import RUNNING, SUCCEEDED, Waiting, step_detail, waiting_for
from ssmsh.emulator import Emulator, EmulatorConfig
from tests.conftest import scaled
from tests.emulator.conftest import make_client

from .fleet import one_line, ssmsh
from .harness import PtyProcess, cli_env

pytestmark = pytest.mark.timeout(120)

ALICE_KEY = "AKIDALICE"
BOB_KEY = "AKIDBOB"
ALICE = "arn:aws:iam::123456789012:user/alice"
ROLE = "arn:aws:iam::123456789012:role/Approvers"
SESSION = "arn:aws:sts::123456789012:assumed-role/Approvers/bob"
NODE1 = "i-00000000000000001"
AS_ALICE = {"AWS_ACCESS_KEY_ID": ALICE_KEY}
AS_BOB = {"AWS_ACCESS_KEY_ID": BOB_KEY}

APPROVE_THEN_RUN = """
schemaVersion: '0.3'
parameters:
  approvers:
    type: StringList
  instance:
    type: String
mainSteps:
- name: approve
  action: aws:approve
  inputs:
    Approvers: "{{ approvers }}"
    Message: Restart the web tier on {{ instance }}?
- name: restart
  action: aws:runCommand
  inputs:
    DocumentName: AWS-RunShellScript
    InstanceIds: ["{{ instance }}"]
    Parameters:
      commands: ["echo restarted on $AWS_SSM_INSTANCE_ID"]
      executionTimeout: ["30"]
"""


def runbook(*steps: dict[str, Any]) -> str:
    return json.dumps({"schemaVersion": "0.3", "mainSteps": list(steps)})


NAP = runbook({"name": "nap", "action": "aws:sleep", "inputs": {"Duration": "PT2H"}})
PAUSE = runbook(
    {"name": "hold", "action": "aws:pause", "inputs": {}},
    {"name": "after", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}},
)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    config = EmulatorConfig(
        instances=3,
        command_visibility_delay=0.0,
        command_timeout_scale=0.01,
        identities={ALICE_KEY: ALICE, BOB_KEY: SESSION},
    )
    async with Emulator(config) as emulator:
        yield emulator


async def create_runbook(emu: Emulator, name: str, content: str) -> None:
    ssm = make_client("ssm", emu.endpoint_url)
    document_format = "JSON" if content.lstrip().startswith("{") else "YAML"
    await asyncio.to_thread(
        ssm.create_document,
        Name=name,
        Content=content,
        DocumentType="Automation",
        DocumentFormat=document_format,
    )


async def start(emu: Emulator, name: str, *parameters: str) -> str:
    """``ssmsh automation start NAME -p ...``: the id it prints."""
    words = [w for p in parameters for w in ("-p", p)]
    code, out, err = await ssmsh(emu, "automation", "start", name, *words)
    assert code == 0, err
    assert re.fullmatch(r"[0-9a-f-]{36}\n", out), out
    assert f"Started automation execution {out.strip()} of {name}." in err
    return out.strip()


async def status_of(emu: Emulator, execution_id: str) -> str:
    code, out, err = await ssmsh(emu, "automation", "show", execution_id, "--json")
    assert code == 0, err
    return str(json.loads(out)["AutomationExecutionStatus"])


async def wait_status(emu: Emulator, execution_id: str, wanted: str) -> None:
    async with asyncio.timeout(scaled(20)):
        while await status_of(emu, execution_id) != wanted:
            await asyncio.sleep(0.1)


async def spawn(emu: Emulator, *args: str) -> asyncio.subprocess.Process:
    """``ssmsh ARGS --endpoint-url URL`` in the background, with pipes."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ssmsh",
        *args,
        "--endpoint-url",
        emu.endpoint_url,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )


async def finish(proc: asyncio.subprocess.Process, timeout: float = 30) -> tuple[int, str, str]:
    async with asyncio.timeout(scaled(timeout)):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    assert "Traceback" not in err.decode(), err.decode()
    return proc.returncode, out.decode(), err.decode()


def steps(execution: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["StepName"]: s for s in execution["StepExecutions"]}


# -- an approval: waits, approved with a comment, goes on to runCommand ------------------


async def test_approval_with_a_comment_then_the_command(emu: Emulator) -> None:
    await create_runbook(emu, "Approve-Then-Run", APPROVE_THEN_RUN)
    execution_id = await start(
        emu, "Approve-Then-Run", "approvers=alice", f"approvers={ROLE}", f"instance={NODE1}"
    )
    follower = await spawn(emu, "automation", "follow", execution_id)
    try:
        await wait_status(emu, execution_id, "Waiting")
        code, out, err = await ssmsh(emu, "automation", "ls", "--waiting")
        assert code == 0, err
        (waiting,) = json.loads(out)
        assert waiting["AutomationExecutionId"] == execution_id
        assert waiting["Waiting"] == {
            "StepName": "approve",
            "Action": "aws:approve",
            "Signal": "Approve",
            "Since": waiting["Waiting"]["Since"],
            "Message": f"Restart the web tier on {NODE1}?",
            "Approvers": ["alice", ROLE],
            "MinRequiredApprovals": 1,
        }
        # The default principal is no approver: AWS refuses, in one line.
        code, out, err = await ssmsh(emu, "approve", execution_id)
        assert (code, out) == (255, "")
        assert "is not an approver of step approve" in one_line(err)
        assert await status_of(emu, execution_id) == "Waiting"

        code, out, err = await ssmsh(
            emu, "approve", execution_id, "--comment", "Go ahead", env=AS_ALICE
        )
        assert (code, out) == (0, ""), err
        assert err == (
            f"Approved automation execution {execution_id} at step approve "
            'with comment "Go ahead".\n'
        )
        code, out, err = await finish(follower)
    finally:
        if follower.returncode is None:
            follower.kill()
            await follower.wait()
    assert code == 0, err
    lines = out.splitlines()
    approve = next(
        i for i, line in enumerate(lines) if re.search(r"\bapprove\s+aws:approve\b", line)
    )
    assert lines[approve].endswith("Success")
    assert lines[approve + 1] == '    Approved by alice: "Go ahead"'
    restart = next(line for line in lines if re.search(r"\brestart\s+aws:runCommand\b", line))
    assert restart.endswith("Success")
    assert f"    Output: restarted on {NODE1}" in lines
    assert (
        f"Waiting for approval at step approve: Restart the web tier on {NODE1}? "
        "(approvers: alice, Approvers (1 approval needed)); "
        f"ssmsh approve {execution_id} or ssmsh reject {execution_id}\n"
    ) in err
    assert re.search(rf"Automation execution {execution_id}: Success in \d+s\.\n$", err), err

    # show, as JSON (a pipe) and as a timeline (a terminal).
    code, out, err = await ssmsh(emu, "automation", "show", execution_id)
    assert code == 0, err
    done = json.loads(out)
    assert done["AutomationExecutionStatus"] == "Success"
    assert steps(done)["restart"]["Outputs"]["Output"] == [f"restarted on {NODE1}\n"]
    decisions = [json.loads(d) for d in steps(done)["approve"]["Outputs"]["ApproverDecisions"]]
    assert [(d["Approver"], d["Comment"]) for d in decisions] == [(ALICE, "Go ahead")]

    proc = PtyProcess(["automation", "show", execution_id, "--endpoint-url", emu.endpoint_url])
    try:
        assert await proc.wait() == 0
    finally:
        proc.close()
    text = proc.text.replace("\r\n", "\n")
    assert f"Execution:  {execution_id}\n" in text
    assert "Runbook:    Approve-Then-Run (version 1)\n" in text
    assert "Status:     Success\n" in text
    assert re.search(r"STARTED\s+DURATION\s+STEP\s+ACTION\s+STATUS\n", text)
    assert '    Approved by alice: "Go ahead"\n' in text

    # Decided: a second decision finds nothing waiting.
    code, out, err = await ssmsh(emu, "reject", execution_id, env=AS_ALICE)
    assert (code, out) == (1, "")
    assert one_line(err) == (
        f"ssmsh: automation execution {execution_id} is Success: it is not waiting for an approval"
    )


async def test_rejection_fails_the_execution(emu: Emulator) -> None:
    await create_runbook(emu, "Approve-Then-Run", APPROVE_THEN_RUN)
    execution_id = await start(emu, "Approve-Then-Run", f"approvers={ROLE}", f"instance={NODE1}")
    await wait_status(emu, execution_id, "Waiting")
    code, out, err = await ssmsh(emu, "reject", execution_id, "--comment", "Not now", env=AS_BOB)
    assert (code, out) == (0, ""), err
    assert f"Rejected automation execution {execution_id} at step approve" in err

    code, out, err = await finish(await spawn(emu, "automation", "follow", execution_id))
    assert code == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"ssmsh: automation execution {execution_id} Failed")
    assert "rejected by" in last and "Not now" in last
    assert re.search(r"\bapprove\s+aws:approve\s+Failed\n", out), out
    assert 'Rejected by Approvers/bob: "Not now"' in out

    code, out, err = await ssmsh(emu, "automation", "show", execution_id, "--json")
    assert code == 0, err
    by_name = steps(json.loads(out))
    assert (by_name["approve"]["StepStatus"], by_name["restart"]["StepStatus"]) == (
        "Failed",
        "Pending",
    )


# -- signals to executions that do not wait for them --------------------------------------


async def test_signals_to_an_execution_that_is_not_waiting(emu: Emulator) -> None:
    await create_runbook(emu, "Long-Nap", NAP)
    execution_id = await start(emu, "Long-Nap")
    await wait_status(emu, execution_id, "InProgress")
    for command in ("approve", "reject"):
        code, out, err = await ssmsh(emu, command, execution_id, "--comment", "x", env=AS_ALICE)
        assert (code, out) == (1, "")
        assert one_line(err) == (
            f"ssmsh: automation execution {execution_id} is InProgress: "
            "it is not waiting for an approval"
        )
    assert "AmazonSSM.SendAutomationSignal" not in emu.api.calls

    code, out, err = await ssmsh(emu, "automation", "stop", execution_id)
    assert (code, out) == (0, ""), err
    code, out, err = await finish(await spawn(emu, "automation", "follow", execution_id))
    assert code == 1, err
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(f"ssmsh: automation execution {execution_id} Cancelled")
    )
    code, out, err = await ssmsh(emu, "approve", execution_id, env=AS_ALICE)
    assert (code, out) == (1, "")
    assert "is Cancelled: it is not waiting for an approval" in one_line(err)


async def test_a_pause_takes_resume_not_an_approval(emu: Emulator) -> None:
    await create_runbook(emu, "Hold", PAUSE)
    execution_id = await start(emu, "Hold")
    await wait_status(emu, execution_id, "Waiting")
    code, out, err = await ssmsh(emu, "approve", execution_id, env=AS_ALICE)
    assert (code, out) == (1, "")
    assert one_line(err) == (
        f"ssmsh: automation execution {execution_id} waits at step hold (aws:pause) "
        "for a Resume signal, not for an approval"
    )
    code, out, err = await ssmsh(emu, "automation", "ls", "--waiting", "--json")
    assert code == 0, err
    (listed,) = json.loads(out)
    assert listed["Waiting"]["Signal"] == "Resume"
    code, out, err = await ssmsh(emu, "automation", "resume", execution_id)
    assert (code, out) == (0, ""), err
    assert f"Resumed automation execution {execution_id} at step hold." in err
    code, out, err = await finish(await spawn(emu, "automation", "show", "--follow", execution_id))
    assert code == 0, err
    assert re.search(r"\bhold\s+aws:pause\s+Success\n", out)
    assert re.search(r"\bafter\s+aws:sleep\s+Success\n", out)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["approve", "00000000-0000-0000-0000-000000000000"],
            "AutomationExecutionNotFoundException",
        ),
        (["reject", "abc"], "'abc' is not an Automation execution id"),
        (
            ["automation", "show", "00000000-0000-0000-0000-000000000000"],
            "AutomationExecutionNotFoundException",
        ),
        (
            ["automation", "follow", "00000000-0000-0000-0000-000000000000"],
            "AutomationExecutionNotFoundException",
        ),
        (["automation", "start", "No-Such-Runbook"], "AutomationDefinitionNotFoundException"),
        (["automation", "start", "X", "-p", "novalue"], "--parameter expects KEY=VALUE"),
        (["automation", "ls", "--status", "Sleeping"], "--status must be one of"),
        (["automation", "ls", "--waiting", "--status", "Failed"], "--waiting lists Waiting"),
        (["automation", "ls", "--page-size", "51"], "--page-size must be 1 to 50"),
        (["automation", "ls", "--since", "yesterday"], "--since expects a date or time"),
    ],
)
async def test_bad_input_is_one_line(emu: Emulator, args: list[str], message: str) -> None:
    code, out, err = await ssmsh(emu, *args)
    assert (code, out) == (255, ""), err
    assert message in one_line(err)


async def test_an_unreachable_endpoint_is_one_line() -> None:
    from .fleet import closed_port_url

    code, out, err = await ssmsh(closed_port_url(), "automation", "ls")
    assert (code, out) == (255, "")
    assert "cannot reach the AWS endpoint" in one_line(err)


# -- listing: filters, paging, the table ----------------------------------------------------


async def test_list_pages_and_filters(emu: Emulator) -> None:
    await create_runbook(emu, "Long-Nap", NAP)
    await create_runbook(emu, "Hold", PAUSE)
    naps = [await start(emu, "Long-Nap") for _ in range(4)]
    holds = [await start(emu, "Hold") for _ in range(3)]
    for execution_id in holds:
        await wait_status(emu, execution_id, "Waiting")

    before = emu.api.calls.get("AmazonSSM.DescribeAutomationExecutions", 0)
    code, out, err = await ssmsh(emu, "automation", "ls", "--page-size", "2")
    assert code == 0, err
    listed = json.loads(out)
    assert emu.api.calls["AmazonSSM.DescribeAutomationExecutions"] - before == 4  # 7 by 2
    assert {e["AutomationExecutionId"] for e in listed} == set(naps + holds)
    starts = [e["ExecutionStartTime"] for e in listed]
    assert starts == sorted(starts, reverse=True)  # newest first

    # The rest only read: run at once (each is a whole ssmsh process).
    results = await asyncio.gather(
        ssmsh(emu, "automation", "ls", "--limit", "3", "--page-size", "2"),
        ssmsh(emu, "automation", "ls", "--waiting", "--page-size", "1"),
        ssmsh(emu, "automation", "ls", "--status", "inprogress"),
        ssmsh(emu, "automation", "ls", "--document", "Hol", "--since", "1h"),
        ssmsh(emu, "automation", "ls", "--until", "1h"),
        ssmsh(emu, "automation", "ls", "--status", "Success"),
    )
    for code, _, err in results:
        assert code == 0, err
    limited, waiting, running, by_document, until, succeeded = (
        json.loads(out) for _, out, _ in results
    )
    assert len(limited) == 3
    assert sorted(e["AutomationExecutionId"] for e in waiting) == sorted(holds)
    assert sorted(e["AutomationExecutionId"] for e in running) == sorted(naps)
    assert sorted(e["AutomationExecutionId"] for e in by_document) == sorted(holds)
    assert until == [] and succeeded == []


async def test_the_waiting_table_fits_the_terminal(emu: Emulator) -> None:
    long_message = "Roll the new kernel out to every database primary " * 3
    content = runbook(
        {
            "name": "approve",
            "action": "aws:approve",
            "inputs": {"Approvers": [ROLE, "alice"], "Message": long_message},
        }
    )
    await create_runbook(emu, "Kernel-Rollout", content)
    execution_id = await start(emu, "Kernel-Rollout")
    await wait_status(emu, execution_id, "Waiting")
    proc = PtyProcess(
        ["automation", "ls", "--waiting", "--endpoint-url", emu.endpoint_url], cols=150
    )
    try:
        assert await proc.wait() == 0
    finally:
        proc.close()
    lines = proc.text.rstrip("\r\n").split("\r\n")
    assert len(lines) == 2, lines
    header, row = lines
    assert re.fullmatch(r"EXECUTION ID +DOCUMENT +STEP +WAITING +APPROVERS +MESSAGE", header)
    assert row.startswith(f"{execution_id}  Kernel-Rollout  approve (aws:approve)  ")
    assert "Approvers, alice (1 approval needed)  Roll the new kernel" in row
    assert len(row) == 150 and row.endswith("…")  # the message gives way
    assert header.index("MESSAGE") == row.index("Roll the new kernel")


async def test_ctrl_c_while_following_leaves_the_execution_waiting(emu: Emulator) -> None:
    await create_runbook(emu, "Approve-Then-Run", APPROVE_THEN_RUN)
    execution_id = await start(emu, "Approve-Then-Run", "approvers=alice", f"instance={NODE1}")
    proc = PtyProcess(["automation", "follow", execution_id, "--endpoint-url", emu.endpoint_url])
    try:
        await proc.expect(r"Waiting at approve: 0/2 steps done - \d+s")  # the progress line
        proc.send(b"\x03")
        assert await proc.wait() == 130
    finally:
        proc.close()
    assert f"ssmsh: interrupted; automation execution {execution_id} goes on" in proc.text
    assert "Traceback" not in proc.text
    assert await status_of(emu, execution_id) == "Waiting"


# -- pieces -----------------------------------------------------------------------------------


def test_the_statuses_are_the_models() -> None:
    model = botocore.session.get_session().get_service_model("ssm")
    enum = set(getattr(model.shape_for("AutomationExecutionStatus"), "enum", ()))
    assert enum >= RUNNING | SUCCEEDED
    assert not RUNNING & SUCCEEDED
    assert {"Failed", "TimedOut", "Cancelled", "Success"} <= enum - RUNNING


def test_what_a_waiting_execution_waits_for() -> None:
    step = {
        "StepName": "approve",
        "Action": "aws:approve",
        "StepStatus": "Waiting",
        "Inputs": {
            "Approvers": json.dumps(["alice", ROLE]),
            "MinRequiredApprovals": "2",
            "Message": json.dumps("Go?"),
        },
    }
    execution = {"AutomationExecutionStatus": "Waiting", "StepExecutions": [step]}
    waiting = waiting_for(execution)
    assert waiting is not None
    assert (waiting.signal, waiting.message, waiting.approvers, waiting.required) == (
        "Approve",
        "Go?",
        ("alice", ROLE),
        2,
    )
    assert waiting.approvers_text() == "alice, Approvers (2 approvals needed)"
    # A step list cut short (StepExecutionsTruncated): the current step still tells.
    truncated = {
        "AutomationExecutionStatus": "Waiting",
        "StepExecutions": [],
        "CurrentStepName": "hold",
        "CurrentAction": "aws:pause",
    }
    assert (waiting_for(truncated) or Waiting("", "", None, "")).signal == "Resume"
    assert waiting_for({**execution, "AutomationExecutionStatus": "InProgress"}) is None


def test_step_details() -> None:
    decision = {"Approver": SESSION, "Decision": "Rejected", "Comment": "Not\nnow"}
    step = {
        "StepName": "approve",
        "FailureMessage": "Step approve was rejected",
        "Outputs": {
            "ApprovalStatus": ["Rejected"],
            "ApproverDecisions": [json.dumps(decision)],
            "Output": ["line one\nline two\nline three\n"],
            "Long": ["x" * 300],
        },
    }
    assert step_detail(step) == [
        'Rejected by Approvers/bob: "Not now"',
        "Failure: Step approve was rejected",
        "Output: line one (+2 lines)",
        f"Long: {'x' * 99}…",
    ]
