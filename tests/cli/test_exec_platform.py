"""``ssmsh exec`` wraps the command line for ``sh`` only where the target has one.

On Windows the official agent runs the line under PowerShell (``powershell`` with the
line's words: amazon-ssm-agent, agent/session/shell/shell_windows.go), so ssmsh's status
wrapper (``sh -c …``) cannot run there: the line goes as it is, and with AWS's documents,
which report no status, the status is unknown (one line, 255), never a made-up 0.
The emulator tells the platform in DescribeInstanceInformation; its agent runs the line
with the local ``sh`` whatever the platform, which is enough to see what was sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ssmsh.aws import AwsSettings, SsmSessions, StaticCredentials
from ssmsh.emulator import Emulator, EmulatorConfig, TargetRecord

from .harness import run_cli

pytestmark = pytest.mark.timeout(60)

LINUX = "i-0123456789abcdef0"
WINDOWS = "i-0123456789abcdef2"


@pytest.fixture
async def fleet() -> AsyncIterator[Emulator]:
    config = EmulatorConfig(
        targets=[
            TargetRecord(LINUX, name="web-1"),
            TargetRecord(WINDOWS, name="win-1", platform_name="Microsoft Windows Server 2022"),
        ]
    )
    async with Emulator(config) as emu:
        yield emu


def sent_command(emu: Emulator, target: str) -> str:
    (session,) = [s for s in emu.state.sessions.values() if s.target_id == target]
    (line,) = session.parameters["command"]
    return line


@pytest.mark.parametrize("target", ["win-1", WINDOWS])
async def test_windows_targets_get_the_line_as_it_is(fleet: Emulator, target: str) -> None:
    status, out, err = await run_cli(
        ["exec", "--endpoint-url", fleet.endpoint_url, target, "echo", "hi"], stdin=None
    )
    assert sent_command(fleet, WINDOWS) == "echo hi"
    assert out == b"hi\n"
    assert status == 255
    last = err.decode().splitlines()[-1]
    assert last.startswith("ssmsh: the remote exit status is unknown: "), err
    assert "the target runs Windows" in last and "ssmsh setup" in last


async def test_linux_targets_get_the_status_wrapper(fleet: Emulator) -> None:
    status, out, err = await run_cli(
        ["exec", "--endpoint-url", fleet.endpoint_url, LINUX, "exit", "3"], stdin=None
    )
    assert status == 3, err
    assert out == b""
    assert sent_command(fleet, LINUX).startswith("sh -c ")


async def test_a_platform_that_cannot_be_asked_is_unknown(fleet: Emulator) -> None:
    # DescribeInstanceInformation failing (refused, unreachable): None, and exec uses sh
    settings = AwsSettings(
        region="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        credentials=StaticCredentials("AKIDTESTTESTTESTTEST", "secret"),
        isolated=True,
        max_attempts=1,
    )
    assert await SsmSessions(settings).platform_type(LINUX) is None
    emulated = SsmSessions(
        AwsSettings(
            region="us-east-1",
            endpoint_url=fleet.endpoint_url,
            credentials=StaticCredentials("AKIDTESTTESTTESTTEST", "secret"),
            isolated=True,
        )
    )
    assert await emulated.platform_type(WINDOWS) == "Windows"
    assert await emulated.platform_type("ecs:cluster_task_container") is None


async def test_piped_stdin_to_a_windows_target_is_refused_in_one_line(fleet: Emulator) -> None:
    # The piped-stdin wrapper is sh: PowerShell cannot run it.
    status, out, err = await run_cli(
        ["exec", "--endpoint-url", fleet.endpoint_url, "win-1", "more"], stdin=b"data\n"
    )
    assert status == 255 and out == b""
    (line,) = err.decode().splitlines()
    assert line.startswith("ssmsh: piped stdin needs sh on the target") and "-n" in line
