"""Port documents given to ``shell`` are refused with a hint, and a shell whose
handshake turns out to be a port session ends with one line instead of hanging."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ssmsh.emulator import DEFAULT_TARGET
from tests.channel.fakeagent import FakeAgent

from .scripted import ScriptedAws
from .test_failures import fails

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedAws]:
    async with FakeAgent() as agent, ScriptedAws(agent) as aws:
        yield aws


@pytest.mark.parametrize(
    ("document", "hint"),
    [
        ("AWS-StartPortForwardingSession", "use ssmsh forward"),
        ("AWS-StartPortForwardingSessionToRemoteHost", "use ssmsh forward"),
        ("arn:aws:ssm:us-east-1::document/AWS-StartPortForwardingSession", "use ssmsh forward"),
        ("AWS-StartSSHSession", "use ssmsh proxy"),
    ],
)
async def test_port_documents_are_refused(document: str, hint: str) -> None:
    line = await fails(
        ["shell", "--local", "--document", document, "--parameter", "portNumber=17000"],
        "opens a port session, not a shell",
    )
    assert hint in line, line


async def test_a_port_handshake_in_a_shell_ends_with_one_line(scripted: ScriptedAws) -> None:
    scripted.agent.session_type = "Port"
    await fails(
        ["shell", DEFAULT_TARGET, "--endpoint-url", scripted.endpoint_url],
        "the agent started a port session, not a shell",
    )
    assert "TerminateSession" in scripted.calls
