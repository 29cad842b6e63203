"""``ssmsh attach``: a shell whose ssmsh was SIGKILLed, taken over by a new process.

The real CLI in ptys, the emulator on loopback (its agent re-sends unacknowledged
output to a new connection, as ``protocol/traces/shell-client-sigkill-resume.jsonl``
shows the official one doing).
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
from pathlib import Path
from typing import Any

import pytest

from ssmsh.cli.resumable import COUNTERS_SIZE
from ssmsh.emulator import DEFAULT_TARGET, Emulator

from .harness import PROMPT_RE, PtyProcess, run_cli

pytestmark = pytest.mark.timeout(60)


def record_of(state: Path, session_id: str) -> Path:
    return state / "ssmsh" / "sessions" / f"{session_id}.rec"


async def start_shell(emulator: Emulator, env: dict[str, str]) -> tuple[PtyProcess, str]:
    proc = PtyProcess(["shell", DEFAULT_TARGET, "--endpoint-url", emulator.endpoint_url], env=env)
    await proc.expect(PROMPT_RE)
    match = re.search(r"SessionId: (\S+)", proc.text)
    assert match is not None
    return proc, match.group(1)


def kill(proc: PtyProcess) -> None:
    os.kill(proc.proc.pid, signal.SIGKILL)
    proc.proc.wait()


async def test_attach_takes_over_the_shell_after_sigkill(
    emulator: Emulator, tmp_path: Path
) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path)}
    first, sid = await start_shell(emulator, env)
    try:
        first.send("echo pid=$$\r")
        shell_pid = (await first.expect(r"pid=(\d+)\r\n")).group(1)
        record = record_of(tmp_path, sid)
        assert stat.S_IMODE(record.stat().st_mode) == 0o600
        # Printed a second after ssmsh is gone: only the agent holds it then.
        first.send("sleep 1; echo late-$((6*7)); echo done-$((5*5))\r")
        await first.expect(r"done-\$\(\(5\*5\)\)\r\n")  # the echo of the typed line
        kill(first)
    finally:
        first.close()
    assert "late-42" not in first.text

    status, out, err = await run_cli(["attach"], env=env)
    assert status == 0, err
    (line,) = [row for row in out.decode().splitlines() if row.startswith(sid)]
    assert DEFAULT_TARGET in line and "attachable" in line

    second = PtyProcess(["attach", sid], env=env)
    try:
        await second.expect(r"done-25\r\n")
        await second.expect(PROMPT_RE)
        second.send("echo pid=$$\r")
        assert (await second.expect(r"pid=(\d+)\r\n")).group(1) == shell_pid
        second.send("stty size\r")
        await second.expect(r"\r\n30 100\r\n")
        # Nothing lost, nothing twice.
        assert second.text.count("late-42\r\n") == 1
        assert second.text.index("late-42") < second.text.index("done-25")
        header = json.loads(record.read_bytes()[COUNTERS_SIZE:])
        assert header["pid"] == second.proc.pid
        # The escapes work as in shell: ~. leaves, and ends the session.
        second.send("\r~.")
        assert await second.wait() == 255
        assert f"Connection to session {sid} closed." in second.text
    finally:
        second.close()
    assert not record.exists()
    assert emulator.state.sessions[sid].ended


async def test_a_session_the_service_ended_is_one_line_and_its_record_goes(
    emulator: Emulator, tmp_path: Path
) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path)}
    first, sid = await start_shell(emulator, env)
    try:
        kill(first)
    finally:
        first.close()
    emulator.state.end_session(sid, "")  # TerminateSession from elsewhere, an idle timeout
    second = PtyProcess(["attach", sid], env=env)
    try:
        assert await second.wait() == 255
    finally:
        second.close()
    lines = [line for line in second.text.splitlines() if line.strip()]
    assert lines == [
        f"ssmsh: session {sid} has ended (terminated, or timed out while no "
        "client was attached); its record is removed"
    ]
    assert not record_of(tmp_path, sid).exists()


async def test_a_shell_cut_off_from_the_network_can_be_attached_once_it_is_back(
    emulator: Emulator, tmp_path: Path
) -> None:
    """The reconnect budget runs out (no link gets through): ssmsh exits 255 without
    TerminateSession, keeps the record and says so; attach carries the shell on."""
    env = {"XDG_STATE_HOME": str(tmp_path)}
    proc = PtyProcess(
        [
            "shell",
            DEFAULT_TARGET,
            "--endpoint-url",
            emulator.endpoint_url,
            "--reconnect-timeout",
            "1",
        ],
        env=env,
    )
    try:
        await proc.expect(PROMPT_RE)
        sid = re.search(r"SessionId: (\S+)", proc.text).group(1)  # type: ignore[union-attr]
        proc.send("echo pid=$$\r")
        shell_pid = (await proc.expect(r"pid=(\d+)\r\n")).group(1)
        ttl = emulator.state.token_ttl
        emulator.state.token_ttl = -1.0  # every new link is refused: the network is "down"
        gateway: Any = emulator.gateway  # the emulator's own, with its test hooks
        gateway.close_connections(sid, abrupt=True)
        assert await proc.wait() == 255
    finally:
        proc.close()
    lines = [line for line in proc.text.splitlines() if line.startswith("ssmsh:")]
    assert any(
        "could not reconnect within 1 s" in line and f"ssmsh attach {sid} takes it over" in line
        for line in lines
    ), proc.text
    assert not emulator.state.sessions[sid].ended  # no TerminateSession
    assert record_of(tmp_path, sid).exists()

    emulator.state.token_ttl = ttl  # the network is back
    second = PtyProcess(["attach", sid], env=env)
    try:
        await second.expect("Attaching to session")  # (the prompt was shown before)
        second.send("echo pid=$$\r")
        assert (await second.expect(r"pid=(\d+)\r\n")).group(1) == shell_pid
        second.send("exit\r")
        assert await second.wait() == 0
    finally:
        second.close()
    assert not record_of(tmp_path, sid).exists()
