"""A session that expires or is terminated while the client is away.

The link is lost, and by the time the client calls ResumeSession the service
has no token for the session any more. The client must stop at once (no
retrying for minutes) with a clear message; the CLI exits 255 with the
terminal restored.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from ssmsh.channel import ConnectionState, SessionConnection
from ssmsh.emulator.agent.agent import IDLE_TIMEOUT_REASON
from ssmsh.emulator.faults import FaultConfig
from ssmsh.exceptions import ReconnectFailed
from tests.cli.harness import PtyProcess
from tests.conftest import scaled

from .harness import FAST, PROMPT, Rig, StateLog, read_output, rig

pytestmark = pytest.mark.timeout(60)

PROMPT_RE = re.escape(PROMPT)


async def _end_while_away(r: Rig, session_id: str, how: str) -> None:
    """Take the client's link away, then end the session on the service side."""
    if how == "terminated":
        # A reset, and TerminateSession before the client can come back.
        assert r.cut(session_id, abrupt=True) == 1
        await r.emulator.state.terminate_session(session_id)
    else:
        # Silence: the client notices (no pongs) and keeps failing to get a live
        # link; meanwhile the agent's idle timeout ends the session.
        r.gateway.set_silent(True)
        async with asyncio.timeout(scaled(10)):
            while not r.emulator.api.calls.get("AmazonSSM.ResumeSession"):
                await asyncio.sleep(0.02)  # until the client noticed and resumed
        agent = r.gateway.agent(session_id)
        assert agent is not None
        agent.finish(IDLE_TIMEOUT_REASON)
        await agent.wait_ended()
    assert r.emulator.state.sessions[session_id].ended


@pytest.mark.parametrize("how", ["expired", "terminated"])
async def test_connection_fails_fast_with_a_clear_error(how: str) -> None:
    async with rig(FaultConfig(seed=9), shell="/bin/sh") as r:
        log = StateLog()
        info = await r.start()
        conn: SessionConnection = await r.connect(info, FAST, log)
        await read_output(conn, PROMPT_RE)
        await _end_while_away(r, info.session_id, how)
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(ReconnectFailed, match="timed out or was terminated") as failure:
            async with asyncio.timeout(scaled(10)):
                await conn.wait_closed()
        assert info.session_id in str(failure.value)
        # The next ResumeSession says so: no retrying for the rest of the budget.
        deadline = FAST.ping_interval + FAST.ping_timeout + 1.0  # type: ignore[operator]
        assert loop.time() - start < scaled(deadline)
        assert conn.state is ConnectionState.CLOSED
        assert log.changes[-1].new is ConnectionState.CLOSED
        with pytest.raises(ReconnectFailed):
            await conn.send_input(b"too late\r")
        before = r.emulator.api.calls.get("AmazonSSM.TerminateSession", 0)
        await conn.close()
        # TerminateSession is still attempted, so nothing is left behind.
        assert r.emulator.api.calls.get("AmazonSSM.TerminateSession", 0) == before + 1


@pytest.mark.parametrize("how", ["expired", "terminated"])
async def test_cli_exits_255_with_a_clear_message_and_the_terminal_restored(how: str) -> None:
    async with rig(FaultConfig(seed=10), shell="/bin/sh") as r:
        proc = PtyProcess(
            [
                "shell",
                "--endpoint-url",
                r.emulator.endpoint_url,
                "--keepalive",
                "0.3",
                "--reconnect-timeout",
                "60",
                "i-0123456789abcdef0",
            ]
        )
        try:
            await proc.expect(PROMPT_RE, timeout=20)
            (session_id,) = list(r.emulator.state.sessions)
            await _end_while_away(r, session_id, how)
            assert await proc.wait(timeout=20) == 255
            assert proc.slave_attrs() == proc.initial_attrs
        finally:
            proc.close()
    text = proc.text
    assert "Traceback" not in text
    last = text.strip().splitlines()[-1]
    message = f"ssmsh: connection failed: session {session_id} timed out or was terminated"
    assert last.endswith(message), text
