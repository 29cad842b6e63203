"""Every failure ends with one clear line on stderr and exit status 255, never a traceback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest

from ssmsh.emulator import DEFAULT_TARGET, Emulator, EmulatorConfig, TargetRecord
from tests.channel.fakeagent import FakeAgent

from .harness import run_cli
from .scripted import ScriptedAws

pytestmark = pytest.mark.timeout(60)


def last_line(err: bytes) -> str:
    text = err.decode()
    assert "Traceback" not in text, text
    lines = text.strip().splitlines()
    assert lines, "nothing on stderr"
    return lines[-1]


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    config = EmulatorConfig(targets=[TargetRecord(DEFAULT_TARGET, name="web-1")])
    async with Emulator(config) as emu:
        yield emu


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedAws]:
    async with FakeAgent() as agent, ScriptedAws(agent) as aws:
        yield aws


async def fails(args: list[str], expected: str, env: dict[str, str] | None = None) -> str:
    code, out, err = await run_cli(args, env=env)
    line = last_line(err)
    assert code == 255, (code, err)
    assert out == b""
    assert line.startswith("ssmsh: "), line
    assert expected in line, line
    assert "\n" not in line
    return line


async def test_unknown_instance_id(emulator: Emulator) -> None:
    await fails(
        ["shell", "i-0000000000000dead", "--endpoint-url", emulator.endpoint_url],
        "i-0000000000000dead is not connected",
    )


async def test_unknown_name(emulator: Emulator) -> None:
    await fails(
        ["shell", "no-such-box", "--endpoint-url", emulator.endpoint_url],
        "no managed instance named 'no-such-box'",
    )


async def test_target_not_connected(emulator: Emulator) -> None:
    emulator.disconnect_instance(DEFAULT_TARGET)
    await fails(
        ["shell", "web-1", "--endpoint-url", emulator.endpoint_url],
        "the target is not connected to Session Manager",
    )


async def test_access_denied(scripted: ScriptedAws) -> None:
    scripted.errors["StartSession"] = (
        400,
        "AccessDeniedException",
        "User: arn:aws:iam::1:user/x is not authorized to perform: ssm:StartSession",
    )
    await fails(
        ["shell", DEFAULT_TARGET, "--endpoint-url", scripted.endpoint_url],
        "access denied by AWS for StartSession: User: arn:aws:iam::1:user/x is not authorized",
    )


async def test_expired_token(scripted: ScriptedAws) -> None:
    scripted.errors["StartSession"] = (
        400,
        "ExpiredTokenException",
        "The security token included in the request is expired",
    )
    await fails(
        ["shell", DEFAULT_TARGET, "--endpoint-url", scripted.endpoint_url],
        "the AWS credentials have expired",
    )


async def test_bad_signature() -> None:
    config = EmulatorConfig(credentials=("AKIDTESTTESTTESTTEST", "the-real-secret"))
    async with Emulator(config) as emu:
        await fails(
            ["shell", DEFAULT_TARGET, "--endpoint-url", emu.endpoint_url],
            "signature was rejected",
        )


async def test_no_credentials(emulator: Emulator) -> None:
    env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    await fails(
        ["shell", DEFAULT_TARGET, "--endpoint-url", emulator.endpoint_url],
        "no AWS credentials found",
        env=env,
    )


async def test_no_region(emulator: Emulator) -> None:
    await fails(
        ["shell", DEFAULT_TARGET, "--endpoint-url", emulator.endpoint_url],
        "no AWS region configured",
        env={"AWS_DEFAULT_REGION": ""},
    )


async def test_endpoint_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    await fails(
        ["shell", DEFAULT_TARGET, "--endpoint-url", f"http://127.0.0.1:{port}"],
        f"cannot reach the AWS endpoint http://127.0.0.1:{port}",
    )


async def test_unknown_profile() -> None:
    await fails(["shell", DEFAULT_TARGET, "--profile", "nope"], "AWS profile 'nope' not found")


async def test_handshake_failure(scripted: ScriptedAws) -> None:
    scripted.agent.session_type = "Teleport"
    await fails(
        ["shell", DEFAULT_TARGET, "--endpoint-url", scripted.endpoint_url],
        "session handshake failed: Unknown session type Teleport",
    )
    assert "TerminateSession" in scripted.calls


async def test_protocol_error(scripted: ScriptedAws) -> None:
    scripted.agent.handshake_payload = b"{not json"
    await fails(
        ["shell", DEFAULT_TARGET, "--endpoint-url", scripted.endpoint_url],
        "protocol error: invalid HandshakeRequest",
    )


async def test_encryption_failure_wrong_key(scripted: ScriptedAws) -> None:
    scripted.agent.kms_key = "alias/k"
    scripted.agent.known_keys = {"alias/k"}
    scripted.agent.agent_key = bytes(64)  # the agent holds a different key than KMS gave us
    await fails(
        ["shell", DEFAULT_TARGET, "--endpoint-url", scripted.endpoint_url],
        "encryption failed: encryption challenge failed",
    )


async def test_gateway_unreachable(scripted: ScriptedAws) -> None:
    assert scripted.agent.server is not None
    scripted.agent.server.close()
    await scripted.agent.server.wait_closed()
    line = await fails(
        [
            "shell",
            DEFAULT_TARGET,
            "--endpoint-url",
            scripted.endpoint_url,
            "--reconnect-timeout",
            "1",
        ],
        "connection failed: cannot connect to 127.0.0.1:",
    )
    assert "TerminateSession" in scripted.calls, line


async def test_usage_errors(emulator: Emulator) -> None:
    await fails(
        ["shell", "--endpoint-url", emulator.endpoint_url, "-e", "xy"], "bad escape character"
    )
    await fails(
        ["exec", DEFAULT_TARGET, "--endpoint-url", emulator.endpoint_url], "needs a command"
    )
    await fails(
        ["shell", "--parameter", "novalue", "--endpoint-url", emulator.endpoint_url],
        "--parameter expects KEY=VALUE",
    )
    url = ["--endpoint-url", emulator.endpoint_url]
    await fails(["shell", "--parameters", "{nope", *url], "--parameters is not JSON")
    await fails(["shell", "--parameters", '["top"]', *url], "--parameters expects a JSON object")
    await fails(["shell", "--parameters", '{"n": [1]}', *url], "'n' must be a string or a list")
    await fails(["shell"], "no target given")
    await fails(["exec", "--", "true"], "no target given")
    await fails(["exec", "--local"], "needs a command")


async def test_debug_shows_a_traceback(scripted: ScriptedAws) -> None:
    scripted.errors["StartSession"] = (400, "AccessDeniedException", "no")
    code, _, err = await run_cli(
        ["shell", DEFAULT_TARGET, "--endpoint-url", scripted.endpoint_url, "--debug"]
    )
    assert code == 255
    assert b"Traceback" in err
