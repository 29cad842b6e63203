"""Automation in the emulator, driven by real boto3 clients (botocore parses every answer).

Three principals sign requests: the default client (``user/emulated``), alice (a user)
and an ``Approvers`` role's assumed session. Run Command's timeouts are scaled down and
its visibility delay is 0; waits that the runbook expresses in hours run on the
emulator's clock, which the tests advance.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ssmsh.emulator import EmulatorConfig
from tests.conftest import scaled
from tests.emulator.conftest import EmulatorThread, make_client
from tests.emulator.refusals import refused
from tests.emulator.shapes import check_outputs

OPERATIONS = (
    "StartAutomationExecution",
    "GetAutomationExecution",
    "DescribeAutomationExecutions",
    "DescribeAutomationStepExecutions",
    "StopAutomationExecution",
    "SendAutomationSignal",
    "CreateDocument",
    "DescribeDocument",
    "GetDocument",
    "ListDocuments",
    "UpdateDocument",
    "GetCommandInvocation",
)
ALICE = "arn:aws:iam::123456789012:user/alice"
ROLE = "arn:aws:iam::123456789012:role/Approvers"
SESSION = "arn:aws:sts::123456789012:assumed-role/Approvers/bob"
EMULATED = "arn:aws:iam::123456789012:user/emulated"
NODE1 = "i-00000000000000001"


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(
        instances=3,
        command_visibility_delay=0.0,
        command_timeout_scale=0.01,
        identities={"AKIDALICE": ALICE, "AKIDBOB": SESSION},
    )


@pytest.fixture
def alice(emu: EmulatorThread) -> Any:
    return make_client("ssm", emu.endpoint_url, access_key="AKIDALICE")


@pytest.fixture
def bob(emu: EmulatorThread) -> Any:
    return make_client("ssm", emu.endpoint_url, access_key="AKIDBOB")


@pytest.fixture(autouse=True)
def answers_fit_the_model(emu: EmulatorThread) -> Iterator[None]:
    """Every answer of the operations under test is checked against botocore's shape."""
    errors = check_outputs(emu.emulator.api, OPERATIONS)
    yield
    assert not errors


def runbook(*steps: dict[str, Any], **extra: Any) -> str:
    return json.dumps({"schemaVersion": "0.3", "mainSteps": list(steps), **extra})


def execution(ssm: Any, execution_id: str) -> dict[str, Any]:
    found: dict[str, Any] = ssm.get_automation_execution(AutomationExecutionId=execution_id)[
        "AutomationExecution"
    ]
    return found


def wait_for(ssm: Any, execution_id: str, *statuses: str, timeout: float = 20) -> dict[str, Any]:
    """The execution once its status is one of ``statuses`` (default: any final one)."""
    wanted = statuses or ("Success", "Failed", "TimedOut", "Cancelled")
    deadline = time.monotonic() + scaled(timeout)
    while True:
        found = execution(ssm, execution_id)
        if found["AutomationExecutionStatus"] in wanted:
            return found
        assert time.monotonic() < deadline, f"still {found['AutomationExecutionStatus']}"
        time.sleep(0.02)


def steps(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["StepName"]: s for s in found["StepExecutions"]}


def start(ssm: Any, name: str, content: str, **parameters: list[str]) -> str:
    document_format = "JSON" if content.lstrip().startswith("{") else "YAML"
    ssm.create_document(
        Name=name, Content=content, DocumentType="Automation", DocumentFormat=document_format
    )
    extra: dict[str, Any] = {"Parameters": parameters} if parameters else {}
    response = ssm.start_automation_execution(DocumentName=name, **extra)
    return str(response["AutomationExecutionId"])


APPROVE_THEN_RUN = """
description: Approve, then restart
schemaVersion: '0.3'
parameters:
  approvers:
    type: StringList
  instance:
    type: String
mainSteps:
- name: approve
  action: aws:approve
  timeoutSeconds: 3600
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
    TimeoutSeconds: 30
outputs:
- restart.Output
- approve.ApprovalStatus
"""


def test_runbooks_are_documents(ssm: Any) -> None:
    created = ssm.create_document(
        Name="Approve-Then-Run",
        Content=APPROVE_THEN_RUN,
        DocumentType="Automation",
        DocumentFormat="YAML",
    )["DocumentDescription"]
    assert (created["DocumentType"], created["SchemaVersion"]) == ("Automation", "0.3")
    assert {p["Name"] for p in created["Parameters"]} == {"approvers", "instance"}
    described = ssm.describe_document(Name="Approve-Then-Run")["Document"]
    assert described["Description"] == "Approve, then restart"
    got = ssm.get_document(Name="Approve-Then-Run", DocumentFormat="JSON")
    assert json.loads(got["Content"])["mainSteps"][0]["action"] == "aws:approve"
    listed = ssm.list_documents(Filters=[{"Key": "DocumentType", "Values": ["Automation"]}])
    assert [d["Name"] for d in listed["DocumentIdentifiers"]] == ["Approve-Then-Run"]
    updated = ssm.update_document(
        Name="Approve-Then-Run",
        Content=runbook({"name": "wait", "action": "aws:pause", "inputs": {}}),
        DocumentVersion="$LATEST",
    )["DocumentDescription"]
    assert updated["DocumentVersion"] == "2"


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (json.dumps({"schemaVersion": "2.2", "mainSteps": []}), "InvalidDocumentSchemaVersion"),
        (runbook(), "InvalidDocumentContent"),
        (runbook({"name": "x", "action": "aws:teleport", "inputs": {}}), "InvalidDocumentContent"),
        (runbook({"name": "a-b", "action": "aws:pause", "inputs": {}}), "InvalidDocumentContent"),
        (
            runbook({"name": "x", "action": "aws:pause", "inputs": {}, "nextStep": "nowhere"}),
            "InvalidDocumentContent",
        ),
        (
            runbook({"name": "x", "action": "aws:pause", "inputs": {}, "onFailure": "Retry"}),
            "InvalidDocumentContent",
        ),
        (runbook({"name": "x", "action": "aws:approve", "inputs": {}}), "InvalidDocumentContent"),
        (
            runbook({"name": "x", "action": "aws:sleep", "inputs": {"Duration": "{{ nope }}"}}),
            "InvalidDocumentContent",
        ),
        (
            runbook({"name": "x", "action": "aws:pause", "inputs": {}}, outputs=["y.Out"]),
            "InvalidDocumentContent",
        ),
    ],
)
def test_bad_runbooks_are_refused(ssm: Any, content: str, code: str) -> None:
    assert (
        refused(
            ssm.create_document, Name="Bad-Runbook", Content=content, DocumentType="Automation"
        )[0]
        == code
    )


def test_approval_waits_then_runs_the_command(ssm: Any, alice: Any) -> None:
    execution_id = start(
        ssm, "Approve-Then-Run", APPROVE_THEN_RUN, approvers=["alice", ROLE], instance=[NODE1]
    )
    waiting = wait_for(ssm, execution_id, "Waiting")
    assert waiting["CurrentStepName"] == "approve"
    assert waiting["ExecutedBy"] == EMULATED
    by_name = steps(waiting)
    assert (by_name["approve"]["StepStatus"], by_name["restart"]["StepStatus"]) == (
        "Waiting",
        "Pending",
    )
    assert json.loads(by_name["approve"]["Inputs"]["Approvers"]) == ["alice", ROLE]
    message = json.loads(by_name["approve"]["Inputs"]["Message"])
    assert message == f"Restart the web tier on {NODE1}?"
    assert by_name["approve"]["TimeoutSeconds"] == 3600
    listed = ssm.describe_automation_executions(
        Filters=[{"Key": "ExecutionStatus", "Values": ["Waiting"]}]
    )["AutomationExecutionMetadataList"]
    assert [e["AutomationExecutionId"] for e in listed] == [execution_id]
    assert listed[0]["CurrentAction"] == "aws:approve"
    # The default principal is not an approver.
    code, message = refused(
        ssm.send_automation_signal, AutomationExecutionId=execution_id, SignalType="Approve"
    )
    assert code == "InvalidAutomationSignalException" and EMULATED in message
    assert wait_for(ssm, execution_id, "Waiting")
    alice.send_automation_signal(
        AutomationExecutionId=execution_id,
        SignalType="Approve",
        Payload={"Comment": ["Go ahead"]},
    )
    done = wait_for(ssm, execution_id)
    assert done["AutomationExecutionStatus"] == "Success"
    by_name = steps(done)
    approve = by_name["approve"]
    assert approve["StepStatus"] == "Success"
    assert approve["Outputs"]["ApprovalStatus"] == ["Approved"]
    [decision] = [json.loads(d) for d in approve["Outputs"]["ApproverDecisions"]]
    assert (decision["Approver"], decision["Decision"], decision["Comment"]) == (
        ALICE,
        "Approved",
        "Go ahead",
    )
    restart = by_name["restart"]
    assert restart["StepStatus"] == "Success" and restart["ResponseCode"] == "0"
    assert restart["Outputs"]["Output"] == [f"restarted on {NODE1}\n"]
    command_id = restart["Outputs"]["CommandId"][0]
    invocation = ssm.get_command_invocation(CommandId=command_id, InstanceId=NODE1)
    assert invocation["StandardOutputContent"] == f"restarted on {NODE1}\n"
    assert done["Outputs"] == {
        "restart.Output": [f"restarted on {NODE1}\n"],
        "approve.ApprovalStatus": ["Approved"],
    }
    assert done["ExecutionEndTime"] >= done["ExecutionStartTime"]
    assert done["ProgressCounters"]["SuccessSteps"] == 2
    assert done["Parameters"] == {"approvers": ["alice", ROLE], "instance": [NODE1]}


def test_rejection_fails_the_execution(ssm: Any, bob: Any) -> None:
    execution_id = start(
        ssm, "Approve-Then-Run", APPROVE_THEN_RUN, approvers=[ROLE], instance=[NODE1]
    )
    wait_for(ssm, execution_id, "Waiting")
    # bob is a session of the Approvers role.
    bob.send_automation_signal(
        AutomationExecutionId=execution_id, SignalType="Reject", Payload={"Comment": ["Not now"]}
    )
    done = wait_for(ssm, execution_id)
    assert done["AutomationExecutionStatus"] == "Failed"
    assert "rejected" in done["FailureMessage"] and "Not now" in done["FailureMessage"]
    by_name = steps(done)
    approve = by_name["approve"]
    assert approve["StepStatus"] == "Failed"
    assert approve["Outputs"]["ApprovalStatus"] == ["Rejected"]
    assert approve["FailureDetails"]["FailureType"] == "Action"
    assert by_name["restart"]["StepStatus"] == "Pending"
    assert "ExecutionStartTime" not in by_name["restart"]
    assert done["Outputs"]["restart.Output"][0].startswith("No output available")


def test_signals_to_executions_that_do_not_wait(ssm: Any, alice: Any) -> None:
    content = runbook({"name": "nap", "action": "aws:sleep", "inputs": {"Duration": "PT2H"}})
    execution_id = start(ssm, "Long-Nap", content)
    running = wait_for(ssm, execution_id, "InProgress")
    assert steps(running)["nap"]["StepStatus"] == "InProgress"
    code, message = refused(
        alice.send_automation_signal, AutomationExecutionId=execution_id, SignalType="Approve"
    )
    assert code == "InvalidAutomationSignalException" and "not waiting" in message
    code, _ = refused(
        alice.send_automation_signal,
        AutomationExecutionId="00000000-0000-0000-0000-000000000000",
        SignalType="Approve",
    )
    assert code == "AutomationExecutionNotFoundException"
    code, _ = refused(
        ssm.send_automation_signal, AutomationExecutionId=execution_id, SignalType="StartStep"
    )
    assert code == "InvalidAutomationSignalException"
    ssm.stop_automation_execution(AutomationExecutionId=execution_id)
    stopped = wait_for(ssm, execution_id)
    assert stopped["AutomationExecutionStatus"] == "Cancelled"
    assert steps(stopped)["nap"]["StepStatus"] == "Cancelled"
    code, _ = refused(
        alice.send_automation_signal, AutomationExecutionId=execution_id, SignalType="Reject"
    )
    assert code == "InvalidAutomationSignalException"
    code, _ = refused(ssm.stop_automation_execution, AutomationExecutionId=execution_id)
    assert code == "InvalidAutomationStatusUpdateException"


def test_several_approvals_and_one_decision_each(ssm: Any, alice: Any, bob: Any) -> None:
    content = runbook(
        {
            "name": "approve",
            "action": "aws:approve",
            "inputs": {"Approvers": ["alice", ROLE], "MinRequiredApprovals": 2},
        }
    )
    execution_id = start(ssm, "Two-Approvals", content)
    wait_for(ssm, execution_id, "Waiting")
    alice.send_automation_signal(AutomationExecutionId=execution_id, SignalType="Approve")
    assert wait_for(ssm, execution_id, "Waiting")
    code, message = refused(
        alice.send_automation_signal, AutomationExecutionId=execution_id, SignalType="Approve"
    )
    assert code == "InvalidAutomationSignalException" and "already" in message
    code, _ = refused(
        alice.send_automation_signal,
        AutomationExecutionId=execution_id,
        SignalType="Resume",
        Payload={"StepName": ["approve"]},
    )
    assert code == "InvalidAutomationSignalException"
    bob.send_automation_signal(AutomationExecutionId=execution_id, SignalType="Approve")
    done = wait_for(ssm, execution_id)
    assert done["AutomationExecutionStatus"] == "Success"
    decisions = [json.loads(d) for d in steps(done)["approve"]["Outputs"]["ApproverDecisions"]]
    assert [d["Approver"] for d in decisions] == [ALICE, SESSION]


def test_pause_waits_for_resume(ssm: Any) -> None:
    content = runbook(
        {"name": "hold", "action": "aws:pause", "inputs": {}},
        {"name": "after", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}},
    )
    execution_id = start(ssm, "Hold-On", content)
    wait_for(ssm, execution_id, "Waiting")
    code, _ = refused(
        ssm.send_automation_signal, AutomationExecutionId=execution_id, SignalType="Resume"
    )
    assert code == "InvalidAutomationSignalException"
    code, _ = refused(
        ssm.send_automation_signal,
        AutomationExecutionId=execution_id,
        SignalType="Resume",
        Payload={"StepName": ["nowhere"]},
    )
    assert code == "AutomationStepNotFoundException"
    code, _ = refused(
        ssm.send_automation_signal, AutomationExecutionId=execution_id, SignalType="Approve"
    )
    assert code == "InvalidAutomationSignalException"
    ssm.send_automation_signal(
        AutomationExecutionId=execution_id, SignalType="Resume", Payload={"StepName": ["hold"]}
    )
    done = wait_for(ssm, execution_id)
    assert done["AutomationExecutionStatus"] == "Success"
    assert [s["StepStatus"] for s in done["StepExecutions"]] == ["Success", "Success"]


def test_sleep_and_timeouts_follow_the_emulators_clock(emu: EmulatorThread, ssm: Any) -> None:
    napping = start(
        ssm, "Nap", runbook({"name": "nap", "action": "aws:sleep", "inputs": {"Duration": "PT1H"}})
    )
    approval = start(
        ssm,
        "Quick-Approval",
        runbook(
            {
                "name": "approve",
                "action": "aws:approve",
                "timeoutSeconds": 600,
                "inputs": {"Approvers": ["alice"]},
            },
            {"name": "never", "action": "aws:pause", "inputs": {}},
        ),
    )
    wait_for(ssm, napping, "InProgress")
    wait_for(ssm, approval, "Waiting")
    emu.call(emu.emulator.clock.advance, 3600)
    assert wait_for(ssm, napping)["AutomationExecutionStatus"] == "Success"
    timed_out = wait_for(ssm, approval)
    assert timed_out["AutomationExecutionStatus"] == "TimedOut"
    by_name = steps(timed_out)
    assert by_name["approve"]["StepStatus"] == "TimedOut"
    assert by_name["never"]["StepStatus"] == "Pending"
    assert timed_out["ProgressCounters"]["TimedOutSteps"] == 1


def test_stop_cancels_a_waiting_execution(ssm: Any) -> None:
    execution_id = start(
        ssm, "Approve-Then-Run", APPROVE_THEN_RUN, approvers=["alice"], instance=[NODE1]
    )
    wait_for(ssm, execution_id, "Waiting")
    code, _ = refused(
        ssm.stop_automation_execution, AutomationExecutionId=execution_id, Type="Complete"
    )
    assert code == "InvalidAutomationStatusUpdateException"
    ssm.stop_automation_execution(AutomationExecutionId=execution_id, Type="Cancel")
    assert execution(ssm, execution_id)["AutomationExecutionStatus"] in ("Cancelling", "Cancelled")
    done = wait_for(ssm, execution_id)
    assert done["AutomationExecutionStatus"] == "Cancelled"
    by_name = steps(done)
    assert (by_name["approve"]["StepStatus"], by_name["restart"]["StepStatus"]) == (
        "Cancelled",
        "Pending",
    )
    code, _ = refused(
        ssm.get_automation_execution, AutomationExecutionId="00000000-0000-0000-0000-000000000000"
    )
    assert code == "AutomationExecutionNotFoundException"


SCRIPT = """
def handler(events, context):
    if events["word"] == "boom":
        raise RuntimeError("the script failed on purpose")
    return {"shout": events["word"].upper(), "length": len(events["word"]),
            "execution": context["automation:EXECUTION_ID"]}
"""


def script_step(name: str, word: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "action": "aws:executeScript",
        "inputs": {
            "Runtime": "python3.8",
            "Handler": "handler",
            "Script": SCRIPT,
            "InputPayload": {"word": word},
        },
        "outputs": [
            {"Name": "shout", "Selector": "$.Payload.shout", "Type": "String"},
            {"Name": "length", "Selector": "$.Payload.length", "Type": "Integer"},
        ],
        **extra,
    }


def test_execute_script_outputs_and_references(ssm: Any) -> None:
    content = runbook(
        script_step("first", "{{ word }}"),
        script_step("second", "{{ first.shout }}-again"),
        parameters={"word": {"type": "String", "default": "hello"}},
        outputs=["second.shout", "first.length"],
    )
    execution_id = start(ssm, "Shout", content)
    done = wait_for(ssm, execution_id)
    assert done["AutomationExecutionStatus"] == "Success", done.get("FailureMessage")
    assert done["Outputs"] == {"second.shout": ["HELLO-AGAIN"], "first.length": ["5"]}
    first = steps(done)["first"]
    payload = json.loads(first["Outputs"]["OutputPayload"][0])["Payload"]
    assert payload["execution"] == execution_id
    assert done["Parameters"] == {"word": ["hello"]}


def test_on_failure_is_end_next_step_and_is_critical(ssm: Any) -> None:
    content = runbook(
        script_step("explode", "boom", onFailure="step:cleanup"),
        script_step("skipped", "never"),
        script_step("cleanup", "tidy", nextStep="last"),
        script_step("also_skipped", "never"),
        script_step("last", "done", isEnd=True),
        script_step("after_end", "never"),
    )
    done = wait_for(ssm, start(ssm, "Branches", content))
    # explode is critical (its onFailure is not Continue): the execution ends Failed.
    assert done["AutomationExecutionStatus"] == "Failed"
    assert "the script failed on purpose" in done["FailureMessage"]
    by_name = steps(done)
    assert {name: s["StepStatus"] for name, s in by_name.items()} == {
        "explode": "Failed",
        "skipped": "Pending",
        "cleanup": "Success",
        "also_skipped": "Pending",
        "last": "Success",
        "after_end": "Pending",
    }
    assert by_name["explode"]["ValidNextSteps"] == ["cleanup"]
    assert by_name["explode"]["IsCritical"] is True
    tolerant = runbook(
        script_step("explode", "boom", onFailure="Continue"),
        script_step("then", "fine"),
    )
    done = wait_for(ssm, start(ssm, "Tolerant", tolerant))
    assert done["AutomationExecutionStatus"] == "Success"
    assert [s["StepStatus"] for s in done["StepExecutions"]] == ["Failed", "Success"]


def test_failed_command_and_retries(ssm: Any) -> None:
    content = runbook(
        {
            "name": "fail",
            "action": "aws:runCommand",
            "maxAttempts": 2,
            "inputs": {
                "DocumentName": "AWS-RunShellScript",
                "Targets": [{"Key": "tag:Role", "Values": ["web"]}],
                "Parameters": {"commands": ["exit 4"], "executionTimeout": ["30"]},
            },
        }
    )
    done = wait_for(ssm, start(ssm, "Failing-Command", content))
    assert done["AutomationExecutionStatus"] == "Failed"
    [step] = done["StepExecutions"]
    assert step["StepStatus"] == "Failed" and step["MaxAttempts"] == 2
    assert step["Outputs"]["Status"] == ["Failed"] and step["Outputs"]["ResponseCode"] == ["4"]
    commands = ssm.list_commands()["Commands"]
    assert len(commands) == 2  # one per attempt
    bad = runbook(
        {
            "name": "bad",
            "action": "aws:runCommand",
            "inputs": {"DocumentName": "AWS-RunShellScript", "InstanceIds": ["i-nope"]},
        }
    )
    done = wait_for(ssm, start(ssm, "Bad-Command", bad))
    assert done["AutomationExecutionStatus"] == "Failed"
    assert "ValidationException" in done["StepExecutions"][0]["FailureMessage"]


def test_start_refusals_and_client_token(ssm: Any) -> None:
    content = runbook(
        {"name": "nap", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}},
        parameters={"n": {"type": "Integer", "default": 1}},
    )
    ssm.create_document(Name="Short-Nap", Content=content, DocumentType="Automation")
    start_execution = ssm.start_automation_execution
    assert refused(start_execution, DocumentName="Missing-Runbook")[0] == (
        "AutomationDefinitionNotFoundException"
    )
    assert refused(start_execution, DocumentName="AWS-RunShellScript")[0] == (
        "AutomationDefinitionNotFoundException"
    )
    assert refused(start_execution, DocumentName="Short-Nap", DocumentVersion="7")[0] == (
        "AutomationDefinitionVersionNotFoundException"
    )
    for parameters in ({"n": ["x"]}, {"other": ["1"]}):
        code, _ = refused(start_execution, DocumentName="Short-Nap", Parameters=parameters)
        assert code == "InvalidAutomationExecutionParametersException"
    code, message = refused(
        start_execution,
        DocumentName="Short-Nap",
        Targets=[{"Key": "tag:Role", "Values": ["web"]}],
        TargetParameterName="n",
    )
    assert code == "InvalidAutomationExecutionParametersException" and "Targets" in message
    assert refused(start_execution, DocumentName="Short-Nap", Mode="Interactive")[0] == (
        "InvalidAutomationExecutionParametersException"
    )
    token = "6a2b1c3d-0000-4000-8000-000000000001"
    first = start_execution(DocumentName="Short-Nap", ClientToken=token)
    again = start_execution(DocumentName="Short-Nap", ClientToken=token)
    assert first["AutomationExecutionId"] == again["AutomationExecutionId"]
    code, _ = refused(
        start_execution, DocumentName="Short-Nap", ClientToken=token, Parameters={"n": ["2"]}
    )
    assert code == "IdempotentParameterMismatch"


def test_describe_executions_filters_and_pages(ssm: Any) -> None:
    nap = runbook({"name": "nap", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}})
    ids = [start(ssm, f"Nap-{n}", nap) for n in range(3)]
    ids += [start(ssm, "Other-Nap", nap)]
    for execution_id in ids:
        wait_for(ssm, execution_id)
    pages = list(
        ssm.get_paginator("describe_automation_executions").paginate(
            PaginationConfig={"PageSize": 2}
        )
    )
    assert [len(p["AutomationExecutionMetadataList"]) for p in pages] == [2, 2]
    listed = [
        e["AutomationExecutionId"] for p in pages for e in p["AutomationExecutionMetadataList"]
    ]
    assert listed == ids[::-1]  # newest first
    by_prefix = ssm.describe_automation_executions(
        Filters=[
            {"Key": "DocumentNamePrefix", "Values": ["Nap-"]},
            {"Key": "ExecutionStatus", "Values": ["Success"]},
        ],
        MaxResults=1,
    )
    assert len(by_prefix["AutomationExecutionMetadataList"]) == 1 and "NextToken" in by_prefix
    rest = ssm.describe_automation_executions(
        Filters=[
            {"Key": "DocumentNamePrefix", "Values": ["Nap-"]},
            {"Key": "ExecutionStatus", "Values": ["Success"]},
        ],
        NextToken=by_prefix["NextToken"],
    )
    assert len(rest["AutomationExecutionMetadataList"]) == 2
    first = by_prefix["AutomationExecutionMetadataList"][0]
    assert (first["DocumentName"], first["AutomationType"], first["Mode"]) == (
        "Nap-2",
        "Local",
        "Auto",
    )
    after = ssm.describe_automation_executions(
        Filters=[{"Key": "StartTimeAfter", "Values": ["2999-01-01T00:00:00Z"]}]
    )
    assert after["AutomationExecutionMetadataList"] == []
    assert (
        refused(
            ssm.describe_automation_executions,
            Filters=[{"Key": "ExecutionStatus", "Values": ["Sleeping"]}],
        )[0]
        == "InvalidFilterValue"
    )
    assert (
        refused(
            ssm.describe_automation_executions,
            Filters=[{"Key": "Colour", "Values": ["x"]}],
        )[0]
        == "InvalidFilterKey"
    )
    assert refused(ssm.describe_automation_executions, NextToken="bogus")[0] == "InvalidNextToken"
    step_page = ssm.describe_automation_step_executions(
        AutomationExecutionId=ids[0], Filters=[{"Key": "StepName", "Values": ["nap"]}]
    )["StepExecutions"]
    assert [s["StepStatus"] for s in step_page] == ["Success"]


def test_approval_request_is_published(emu: EmulatorThread, ssm: Any) -> None:
    topic = "arn:aws:sns:us-east-1:123456789012:AutomationApprovals"
    content = runbook(
        {
            "name": "approve",
            "action": "aws:approve",
            "inputs": {"Approvers": ["alice"], "NotificationArn": topic, "Message": "Please"},
        }
    )
    execution_id = start(ssm, "Notify-Approvers", content)
    wait_for(ssm, execution_id, "Waiting")
    [notification] = [n for n in emu.emulator.notifications if n.topic_arn == topic]
    assert notification.message["AutomationExecutionId"] == execution_id
    assert notification.message["Message"] == "Please"
    ssm.stop_automation_execution(AutomationExecutionId=execution_id)
    wrong = runbook(
        {
            "name": "approve",
            "action": "aws:approve",
            "inputs": {
                "Approvers": ["alice"],
                "NotificationArn": "arn:aws:sns:us-east-1:123456789012:Ops",
            },
        }
    )
    done = wait_for(ssm, start(ssm, "Wrong-Topic", wrong))
    assert done["AutomationExecutionStatus"] == "Failed"


def test_stopping_a_command_step_cancels_the_command(ssm: Any) -> None:
    content = runbook(
        {
            "name": "slow",
            "action": "aws:runCommand",
            "inputs": {
                "DocumentName": "AWS-RunShellScript",
                "InstanceIds": [NODE1],
                "Parameters": {"commands": ["sleep 30"], "executionTimeout": ["6000"]},
            },
        }
    )
    execution_id = start(ssm, "Slow-Command", content)
    deadline = time.monotonic() + scaled(20)
    while not ssm.list_commands()["Commands"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    ssm.stop_automation_execution(AutomationExecutionId=execution_id)
    done = wait_for(ssm, execution_id)
    assert done["AutomationExecutionStatus"] == "Cancelled"
    assert done["StepExecutions"][0]["StepStatus"] == "Cancelled"
    deadline = time.monotonic() + scaled(20)
    while (command := ssm.list_commands()["Commands"][0])["Status"] != "Cancelled":
        assert time.monotonic() < deadline, command["Status"]
        time.sleep(0.02)
