"""Issue #17: piped stdin, silent commands, sessions others end, the size, Ctrl-C.

The real CLI against the emulator with its official-agent defaults (the pty's first
read 1 s after start, no handshake for pty sessions, no stdin for non-interactive
commands), with real pipes or under a pty, as a user runs it.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ssmsh.emulator import DEFAULT_TARGET, Emulator, EmulatorConfig, TargetRecord
from tests.conftest import scaled

from .harness import PtyProcess, cli_env, run_cli
from .scripted import ScriptedAws
from .test_early_signals import MuteAgent

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def bash_emulator() -> AsyncIterator[Emulator]:
    """Sessions run bash, whose line editor switches terminal modes: where a Ctrl-D
    sent at the end of piped input was lost (issue #17 item 1)."""
    config = EmulatorConfig(shell="/bin/bash", targets=[TargetRecord(DEFAULT_TARGET, name="web-1")])
    async with Emulator(config) as emu:
        yield emu


def clean(out: bytes) -> None:
    assert b"\r" not in out and b"\x1b" not in out, out  # no CR, prompt colours, ?2004h
    assert b"$ " not in out and b"# " not in out, out  # no prompt


# ------------------------------------------------------------------ item 1


async def test_a_script_piped_into_shell_runs_like_ssh_host_script(
    bash_emulator: Emulator,
) -> None:
    """`printf ... | ssmsh -q shell web-1 > report.txt`: ends, output clean, script's status."""
    args = ["-q", "shell", "web-1", "--endpoint-url", bash_emulator.endpoint_url]
    script = b"echo one\nsleep 0.3\nuname -s\necho two >&2\nexit 3\n"
    for _ in range(3):  # hung 7 times in 8 before; 50 in 50 by hand (the figures)
        code, out, err = await run_cli(args, stdin=script, timeout=20)
        assert (code, out, err) == (3, b"one\nLinux\ntwo\n", b"")
    # Without a final newline, the last line still runs (the shell reads to the end).
    code, out, err = await run_cli(args, stdin=b"echo a; sleep 0.2\necho last", timeout=20)
    assert (code, out) == (0, b"a\nlast\n"), err


async def test_a_script_piped_into_exec_t_bash_ends(bash_emulator: Emulator) -> None:
    args = ["exec", "-t", "web-1", "--endpoint-url", bash_emulator.endpoint_url, "--", "bash"]
    for _ in range(3):
        code, out, err = await run_cli(args, stdin=b"uname -s\nsleep 0.3\necho done\n", timeout=20)
        assert (code, out, err) == (0, b"Linux\ndone\n", b"")
        clean(out)


# ------------------------------------------------------------------ item 2


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["exec", "-t", "--", "true"], 0),
        (["exec", "-t", "--", "exit 5"], 5),
        # No wrapper, so no output at all: the session still ends normally.
        (["shell", "--document", "AWS-StartInteractiveCommand", "--parameter", "command=true"], 0),
    ],
)
async def test_a_pty_command_that_prints_nothing_ends_normally(
    emulator: Emulator, args: list[str], status: int
) -> None:
    command, *rest = args
    proc = PtyProcess([command, DEFAULT_TARGET, "--endpoint-url", emulator.endpoint_url, *rest])
    try:
        assert await proc.wait(timeout=20) == status, proc.text
        assert "before it was established" not in proc.text
        assert proc.slave_attrs() == proc.initial_attrs
    finally:
        proc.close()


async def test_no_shell_with_no_output_says_the_status_is_unknown(emulator: Emulator) -> None:
    args = ["exec", "-t", "--no-shell", DEFAULT_TARGET, "--endpoint-url", emulator.endpoint_url]
    code, out, err = await run_cli([*args, "--", "true"], stdin=None)
    assert (code, out) == (255, b"")
    assert b"the remote exit status is unknown" in err, err
    assert b"before it was established" not in err


# ------------------------------------------------------------------ item 3


async def _session_started(emulator: Emulator) -> str:
    async with asyncio.timeout(scaled(20)):
        while not emulator.state.sessions:
            await asyncio.sleep(0.02)
    session_id = next(iter(emulator.state.sessions))
    await asyncio.sleep(scaled(1.5))  # the command is running (the pty's first read is at 1 s)
    return session_id


@pytest.mark.parametrize("tty", [False, True])
async def test_exec_terminated_elsewhere_is_a_failure(emulator: Emulator, tty: bool) -> None:
    args = ["exec", DEFAULT_TARGET, "--endpoint-url", emulator.endpoint_url]
    running = asyncio.ensure_future(
        run_cli([*args, *(["-t"] if tty else []), "--", "sleep 20; echo late"], stdin=None)
    )
    session_id = await _session_started(emulator)
    await emulator.state.terminate_session(session_id, "Session terminated by TerminateSession.")
    code, out, err = await running
    assert (code, out) == (255, b""), err
    assert err.decode().splitlines() == [
        "ssmsh: the session ended before the command did (terminated elsewhere, or the agent "
        "stopped); its exit status is unknown"
    ]


async def test_a_shell_ended_by_the_idle_timeout_is_a_failure() -> None:
    config = EmulatorConfig(shell="/bin/sh", idle_timeout=scaled(2.0))
    async with Emulator(config) as emu:
        proc = PtyProcess(["shell", DEFAULT_TARGET, "--endpoint-url", emu.endpoint_url])
        try:
            assert await proc.wait(timeout=30) == 255, proc.text
            await proc.expect(
                "ssmsh: the session was ended by the service: Your session timed out due to "
                "inactivity and has been terminated."
            )
            assert proc.slave_attrs() == proc.initial_attrs
        finally:
            proc.close()


async def test_a_piped_script_cut_short_is_a_failure(emulator: Emulator) -> None:
    args = ["-q", "shell", DEFAULT_TARGET, "--endpoint-url", emulator.endpoint_url]
    running = asyncio.ensure_future(run_cli(args, stdin=b"echo started\nsleep 20\n"))
    session_id = await _session_started(emulator)
    await emulator.state.terminate_session(session_id)
    code, out, err = await running
    assert (code, out) == (255, b"started\n")
    assert b"ssmsh: the session ended before the command did" in err


# ------------------------------------------------------------------ item 5


SIZES = "stty size; sleep 1; stty size"


async def test_exec_t_starts_the_command_at_the_terminal_size(emulator: Emulator) -> None:
    proc = PtyProcess(
        ["exec", "-t", DEFAULT_TARGET, "--endpoint-url", emulator.endpoint_url, "--", SIZES],
        cols=120,
        rows=40,
    )
    try:
        assert await proc.wait(timeout=20) == 0, proc.text
        assert proc.text == "40 120\r\n40 120\r\n"  # and nothing else: exec is quiet
    finally:
        proc.close()


READ = "read x; echo got-$x"


async def test_keys_typed_ahead_in_exec_t_reach_the_command_once(emulator: Emulator) -> None:
    proc = PtyProcess(
        ["exec", "-t", DEFAULT_TARGET, "--endpoint-url", emulator.endpoint_url, "--", READ]
    )
    try:
        proc.send("abc\r")  # at once, long before the command starts
        assert await proc.wait(timeout=20) == 0, proc.text
        assert proc.text.endswith("abc\r\ngot-abc\r\n"), proc.text  # the remote echo, read
    finally:
        proc.close()


# ------------------------------------------------------------------ item 6


async def test_ctrl_c_during_a_slow_handshake_interrupts_the_shell() -> None:
    agent = MuteAgent()  # the link opens and the agent never says a word
    async with agent, ScriptedAws(agent) as aws:
        shell = PtyProcess(["shell", DEFAULT_TARGET, "--endpoint-url", aws.endpoint_url])
        try:
            async with asyncio.timeout(scaled(20)):
                await agent.linked.wait()
            async with asyncio.timeout(scaled(10)):  # the bridge has the terminal
                while shell.slave_attrs() == shell.initial_attrs:
                    await asyncio.sleep(0.01)
            shell.send(b"\x03")
            assert await shell.wait() == 130, shell.text
            assert "ssmsh: interrupted" in shell.text
            assert shell.slave_attrs() == shell.initial_attrs
        finally:
            shell.close()
        assert aws.calls == ["StartSession", "TerminateSession"]


# ------------------------------------------------------------------ item 7


async def test_piped_stdin_reaches_an_exec_command(emulator: Emulator) -> None:
    args = ["exec", DEFAULT_TARGET, "--endpoint-url", emulator.endpoint_url, "--"]
    code, out, err = await run_cli([*args, "cat; echo done"], stdin=b"hello\n")
    assert (code, out, err) == (0, b"hello\ndone\n", b"")
    data = random.Random(3).randbytes(300_000)  # every byte value, through the agent's pty
    code, out, err = await run_cli([*args, "sha256sum; exit 2"], stdin=data, timeout=60)
    assert (code, out) == (2, hashlib.sha256(data).hexdigest().encode() + b"  -\n"), err
    # -n, as ssh's: no stdin (and the agent's own document).
    code, out, err = await run_cli(["exec", "-n", *args[1:], "cat; echo none"], stdin=b"no\n")
    assert (code, out) == (0, b"none\n"), err


async def test_tar_through_exec_as_over_ssh(emulator: Emulator, tmp_path: Path) -> None:
    """`tar c . | ssmsh exec h -- tar x -C /dst`, with real pipes."""
    source, target = tmp_path / "src", tmp_path / "dst"
    (source / "sub").mkdir(parents=True)
    target.mkdir()
    (source / "sub" / "blob").write_bytes(random.Random(9).randbytes(100_000))
    (source / "text").write_text("line\r\n" * 1000)
    cmd = (
        f"tar c -C {source} . | {sys.executable} -m ssmsh exec {DEFAULT_TARGET} "
        f"--endpoint-url {emulator.endpoint_url} -- 'tar x -C {target} && echo unpacked'"
    )
    proc = await asyncio.create_subprocess_shell(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env()
    )
    out, err = await asyncio.wait_for(proc.communicate(), scaled(60))
    assert (proc.returncode, out, err) == (0, b"unpacked\n", b"")
    for name in ("sub/blob", "text"):
        assert (target / name).read_bytes() == (source / name).read_bytes()


async def test_a_command_that_reads_nothing_does_not_wait_for_stdin(emulator: Emulator) -> None:
    # As with ssh: the command's end ends the session, whatever is left on stdin (here
    # a pipe that stays open).
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ssmsh",
        "exec",
        DEFAULT_TARGET,
        "--endpoint-url",
        emulator.endpoint_url,
        "--",
        "exit 7",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )
    assert proc.stdin is not None
    proc.stdin.write(b"x\n")
    try:
        out, err = await asyncio.wait_for(proc.communicate(), scaled(15))
        assert (proc.returncode, out, err) == (7, b"", b"")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# ------------------------------------------------------------------ item 11


async def test_exec_is_quiet_unless_asked(emulator: Emulator, tmp_path: Path) -> None:
    args = ["exec", DEFAULT_TARGET, "--endpoint-url", emulator.endpoint_url]
    code, out, err = await run_cli([*args, "--", "echo hi"], stdin=None)
    assert (code, out, err) == (0, b"hi\n", b"")
    log = tmp_path / "log"
    code, out, err = await run_cli(
        [*args, "-v", "--log-file", str(log), "--", "echo hi"], stdin=None
    )
    assert (code, out) == (0, b"hi\n")
    assert b"Starting session with SessionId" in err and b"Exiting session" in err
    # On a terminal too, as ssh.
    proc = PtyProcess([*args, "-t", "--", "echo tty-hi"])
    try:
        assert await proc.wait(timeout=20) == 0
        assert proc.text == "tty-hi\r\n"
    finally:
        proc.close()
