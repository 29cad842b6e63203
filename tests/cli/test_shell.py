"""`ssmsh shell` and `ssmsh exec` end to end: the real CLI in a pty, the emulator on loopback."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import termios
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ssmsh.emulator import DEFAULT_TARGET, Emulator, EmulatorConfig
from ssmsh.emulator.gateway import Gateway
from ssmsh.terminal.bridge import HANDSHAKE_GRACE
from tests.conftest import scaled

from .conftest import KMS_KEY, KMS_TARGET, interrupt_with_ctrl_c
from .harness import PROMPT, PROMPT_RE, PtyProcess, run_cli

pytestmark = pytest.mark.timeout(60)


def gateway(emulator: Emulator) -> Gateway:
    """The emulator's gateway with its fault injection (``Emulator.gateway`` is the protocol)."""
    gw = emulator.gateway
    assert isinstance(gw, Gateway)
    return gw


@pytest.fixture
async def shell(emulator: Emulator) -> AsyncIterator[PtyProcess]:
    proc = PtyProcess(["shell", DEFAULT_TARGET, "--endpoint-url", emulator.endpoint_url])
    try:
        await proc.expect(PROMPT_RE)
        yield proc
    finally:
        proc.close()


async def test_prompt_and_echo_round_trip(shell: PtyProcess) -> None:
    assert "Starting session with SessionId: " in shell.text
    shell.send("echo round-$((20+22))-trip\r")
    await shell.expect(r"round-42-trip\r\n")
    await shell.expect_screen(r"round-42-trip")


async def test_stty_size_at_start_and_after_resize(shell: PtyProcess) -> None:
    shell.send("stty size\r")
    await shell.expect(r"\r\n30 100\r\n")
    shell.resize(120, 40)
    # The resize travels as its own message; ask until the remote pty has it
    # rather than guessing how long that takes.
    async with asyncio.timeout(scaled(10)):
        while True:
            mark = len(shell.text)
            shell.send("stty size\r")
            match = await shell.expect(r"\r\n(\d+ \d+)\r\n", start=mark)
            if match.group(1) == "40 120":
                break
            await asyncio.sleep(0.05)


async def test_ctrl_c_interrupts_a_remote_sleep_and_the_session_lives_on(
    shell: PtyProcess,
) -> None:
    loop = asyncio.get_running_loop()
    shell.send("sleep 30; echo slept\r")
    await asyncio.sleep(0.5)
    start = loop.time()
    shell.send(b"\x03")
    mark = len(shell.text)
    await shell.expect(PROMPT_RE, start=mark)
    assert loop.time() - start < 5
    assert "\nslept" not in shell.text
    shell.send("echo still-here\r")
    await shell.expect(r"still-here\r\n")
    assert shell.proc.poll() is None


async def test_a_shell_ends_with_0_as_the_agent_reports_no_status(shell: PtyProcess) -> None:
    shell.send("exit 3\r")  # protocol/traces/shell-exit-3: the 3 appears nowhere
    assert await shell.wait() == 0
    assert "Exiting session with sessionId" in shell.text


async def test_normal_exit_is_zero_and_restores_the_terminal(shell: PtyProcess) -> None:
    shell.send("exit\r")
    assert await shell.wait() == 0
    assert shell.slave_attrs() == shell.initial_attrs


async def test_escape_dot_leaves_and_restores_the_terminal(
    shell: PtyProcess, emulator: Emulator
) -> None:
    lflag = shell.slave_attrs()[3]
    assert isinstance(lflag, int)
    assert not lflag & termios.ICANON  # raw mode while connected
    shell.send("\r~.")
    assert await shell.wait() == 255
    assert shell.slave_attrs() == shell.initial_attrs
    assert "closed." in shell.text
    await asyncio.sleep(0.2)
    statuses = {s.status.value for s in emulator.state.sessions.values()}
    assert statuses <= {"Terminated", "Terminating"}


async def test_escape_help_and_literal_tilde(shell: PtyProcess) -> None:
    shell.send("\r~?")
    await shell.expect("Supported escape sequences")
    shell.send("~~echo x\r")  # at line start: one literal ~
    await shell.expect(r"~echo: not found|~echo")
    shell.send("echo a~.b\r")  # not at line start: plain text
    await shell.expect(r"a~\.b\r\n")
    assert shell.proc.poll() is None


async def test_one_mebibyte_paste_arrives_intact(shell: PtyProcess) -> None:
    data = base64.encodebytes(random.Random(5).randbytes(800_000))  # lines of 77 bytes
    assert len(data) > 1 << 20
    shell.send("stty -echo; sha256sum; stty echo\r")
    await asyncio.sleep(0.5)
    await shell.send_async(data)
    shell.send(b"\x04")
    digest = hashlib.sha256(data).hexdigest()
    await shell.expect(digest, timeout=40)


async def test_piped_stdin_runs_and_ends(emulator: Emulator) -> None:
    script = b"echo piped-$((6*7))\necho done\n"
    code, out, err = await run_cli(
        ["shell", DEFAULT_TARGET, "--endpoint-url", emulator.endpoint_url], stdin=script
    )
    assert code == 0, err
    assert b"piped-42" in out
    assert b"Cannot perform start session" not in err
    assert b"Starting session with SessionId" in err
    assert b"Starting session" not in out


async def test_piped_input_to_exec_t_is_a_pipe_as_with_ssh_t(emulator: Emulator) -> None:
    # `echo ... | ssmsh exec -t TARGET -- cmd`, like `ssh -t host cmd < file`: with stdin
    # not a terminal there is no terminal: the program reads the pipe to its end, and
    # the output is what it printed, without echo or CR.
    args = ["exec", "-t", DEFAULT_TARGET, "--endpoint-url", emulator.endpoint_url, "--"]
    code, out, err = await run_cli([*args, "wc -c"], stdin=b"line one\nline two\n")
    assert (code, out.strip()) == (0, b"18"), err
    code, out, err = await run_cli([*args, "wc -c"], stdin=b"x" * 1234)  # no last newline
    assert (code, out.strip()) == (0, b"1234"), err
    code, out, err = await run_cli([*args, "cat; exit 3"], stdin=b"hi\n")
    assert (code, out, err) == (3, b"hi\n", b"")


async def test_exec_tt_types_piped_input_into_the_pty(emulator: Emulator) -> None:
    # -tt, as with ssh: a terminal anyway; stdin is typed into it, then Ctrl-D.
    args = ["exec", "-tt", DEFAULT_TARGET, "--endpoint-url", emulator.endpoint_url, "--"]
    code, out, err = await run_cli([*args, "cat"], stdin=b"hi\n")
    assert code == 0, err
    assert out.replace(b"\r\n", b"\n").count(b"hi\n") == 2, out  # the pty's echo and cat's


async def test_piped_stdin_exit_status_when_the_agent_reports_one() -> None:
    # A divergence, asked for: the official agent never reports a shell's status.
    config = EmulatorConfig(shell="/bin/sh", shell_exit_status=True)
    async with Emulator(config) as reporting:
        code, _, err = await run_cli(
            ["shell", DEFAULT_TARGET, "--endpoint-url", reporting.endpoint_url, "-q"],
            stdin=b"exit 7\n",
        )
    assert code == 7, err
    assert err == b""  # --quiet: no status lines


async def test_exec_returns_the_code_with_the_aws_document(emulator: Emulator) -> None:
    """AWS-StartNonInteractiveCommand reports no status and merges the streams (as the
    official agent does); the status still comes back, through ssmsh's own wrapper."""
    code, out, err = await run_cli(
        [
            "exec",
            DEFAULT_TARGET,
            "--endpoint-url",
            emulator.endpoint_url,
            "--",
            "echo out; echo err >&2; exit 5",
        ]
    )
    assert code == 5
    assert out == b"out\nerr\n"
    assert b"out" not in err and b"err\n" not in err and b"ssmsh-status" not in out


async def test_exec_target_is_optional_with_local_or_ssmsh_target(emulator: Emulator) -> None:
    # The first word after the options being "--" means: no target given.
    code, out, err = await run_cli(["exec", "--local", "--", "echo hi"])
    assert (code, out) == (0, b"hi\n"), err
    code, out, err = await run_cli(["exec", "--local", "-q", "--", "echo", "a", "b"])
    assert (code, out, err) == (0, b"a b\n", b"")
    code, out, err = await run_cli(
        ["exec", "--endpoint-url", emulator.endpoint_url, "--", "echo from-env"],
        env={"SSMSH_TARGET": "web-1"},
    )
    assert (code, out) == (0, b"from-env\n"), err
    # A word before "--" is still the target.
    code, out, err = await run_cli(
        ["exec", "web-1", "--endpoint-url", emulator.endpoint_url, "--", "echo named"]
    )
    assert (code, out) == (0, b"named\n"), err


async def test_exec_with_tty(emulator: Emulator) -> None:
    proc = PtyProcess(
        [
            "exec",
            "-t",
            DEFAULT_TARGET,
            "--endpoint-url",
            emulator.endpoint_url,
            "--",
            "echo ready; read x; echo got-$x",
        ]
    )
    try:
        await proc.expect(r"ready\r\n")
        proc.send("abc\r")
        await proc.expect(r"got-abc\r\n")
        assert await proc.wait() == 0
        assert proc.slave_attrs() == proc.initial_attrs
    finally:
        proc.close()


async def test_encrypted_session_works(emulator: Emulator) -> None:
    proc = PtyProcess(["shell", KMS_TARGET, "--endpoint-url", emulator.endpoint_url])
    try:
        await proc.expect(PROMPT_RE)
        proc.send("echo secret-$((1+1))\r")
        await proc.expect(r"secret-2\r\n")
        proc.send("exit\r")
        assert await proc.wait() == 0
    finally:
        proc.close()
    session = next(s for s in emulator.state.sessions.values() if s.target_id == KMS_TARGET)
    assert session.kms_key_id == KMS_KEY


async def test_keys_typed_ahead_reach_the_shell_after_the_terminal_size(
    emulator: Emulator,
) -> None:
    """Typed before the session opens (the agent's first output comes after ~1 s): the
    keys wait for the Size message, so the shell never runs them at 80x24."""
    proc = PtyProcess(
        ["shell", DEFAULT_TARGET, "--endpoint-url", emulator.endpoint_url], cols=123, rows=45
    )
    try:
        proc.send("stty size\r")  # at once, before anything came back
        await proc.expect(r"\r\n45 123\r\n")
        assert "24 80" not in proc.text
        proc.send("exit\r")
        assert await proc.wait() == 0
    finally:
        proc.close()


async def test_keys_typed_before_a_slow_kms_handshake_are_not_lost(
    emulator: Emulator, tmp_path: Path
) -> None:
    # The agent asks for its handshake only after ssmsh's 2 s grace: ssmsh has gone
    # ahead with what was typed, which the agent ignores until its handshake is
    # complete. ssmsh answers the late handshake and types it again, encrypted.
    emulator.config.handshake_delay = HANDSHAKE_GRACE + scaled(1.0)
    log = tmp_path / "debug.log"
    proc = PtyProcess(
        ["shell", KMS_TARGET, "--endpoint-url", emulator.endpoint_url, "-v", "--log-file", str(log)]
    )
    try:
        await proc.expect("Starting session")
        proc.send("echo typed-$((2+3))\r")
        await proc.expect(r"typed-5\r\n", timeout=emulator.config.handshake_delay + 10)
        assert "This session is encrypted using AWS KMS." in proc.text  # said late, but said
        proc.send("exit\r")
        assert await proc.wait() == 0
    finally:
        proc.close()
    debug = log.read_text()
    assert "sending 2 earlier messages again" in debug  # the line and the terminal size
    assert "kms=on handshake=full" in debug


async def test_kms_key_unknown_to_kms_fails_clearly(emulator: Emulator) -> None:
    # SSM goes to the emulator; KMS to another one that has never heard of the key.
    async with Emulator(EmulatorConfig()) as other:
        env = {
            "AWS_ENDPOINT_URL_SSM": emulator.endpoint_url,
            "AWS_ENDPOINT_URL_KMS": other.endpoint_url,
        }
        code, out, err = await run_cli(["shell", KMS_TARGET], env=env)
    assert code == 255
    lines = err.decode().strip().splitlines()
    assert lines[-1].startswith("ssmsh: encryption failed: ")
    assert "NotFoundException" in lines[-1]
    assert "Traceback" not in err.decode()
    assert out == b""


async def test_status_lines_stay_off_stdout(emulator: Emulator) -> None:
    args = ["exec", DEFAULT_TARGET, "--endpoint-url", emulator.endpoint_url]
    code, out, err = await run_cli([*args, "-v", "--", "printf x"], stdin=None)
    assert (code, out) == (0, b"x")
    assert b"SessionId" in err


def test_no_pending_terminal_state_leaks() -> None:
    # Sanity check on the harness: a fresh pty starts canonical with echo.
    master, slave = os.openpty()
    try:
        attrs = termios.tcgetattr(slave)
        assert attrs[3] & termios.ICANON and attrs[3] & termios.ECHO
    finally:
        os.close(master)
        os.close(slave)


async def test_closed_stdout_ends_the_session(emulator: Emulator) -> None:
    # `ssmsh exec ... | head -1`: once the reader is gone, stop (like SIGPIPE) and terminate.
    # With -t: without a terminal the official agent sends a command's output only once
    # the command has ended, and this one never ends.
    import subprocess
    import sys

    from .harness import cli_env

    loop = asyncio.get_running_loop()
    start = loop.time()
    cmd = (
        f"{sys.executable} -m ssmsh exec {DEFAULT_TARGET} --endpoint-url "
        f"{emulator.endpoint_url} -t -- 'while :; do echo 1; sleep 0.01; done' | head -1; "
        "echo status=${PIPESTATUS[0]}"
    )
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env()
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    await proc.wait()
    assert out == b"1\r\nstatus=141\n", err  # a pty's line end
    assert loop.time() - start < 20
    await asyncio.sleep(0.3)
    statuses = {s.status.value for s in emulator.state.sessions.values()}
    assert statuses <= {"Terminated", "Terminating"}


async def test_sigterm_restores_the_terminal_and_terminates(
    shell: PtyProcess, emulator: Emulator
) -> None:
    import signal

    shell.proc.send_signal(signal.SIGTERM)
    assert await shell.wait() == 255
    assert "killed by signal 15" in shell.text
    assert shell.slave_attrs() == shell.initial_attrs
    await asyncio.sleep(0.2)
    statuses = {s.status.value for s in emulator.state.sessions.values()}
    assert statuses <= {"Terminated", "Terminating"}


async def test_debug_log_has_no_secrets(emulator: Emulator, tmp_path: object) -> None:
    import pathlib

    log = pathlib.Path(str(tmp_path)) / "ssmsh.log"
    code, out, err = await run_cli(
        [
            "exec",
            DEFAULT_TARGET,
            "--endpoint-url",
            emulator.endpoint_url,
            "--debug",
            "--log-file",
            str(log),
            "--",
            "echo logged",
        ]
    )
    assert (code, out) == (0, b"logged\n"), err
    text = log.read_text()
    assert "DEBUG ssmsh." in text  # it did log
    for secret in ("emu-", "TokenValue", "test-secret", "Authorization", "Signature="):
        assert secret not in text, secret
    assert b"DEBUG" not in err  # the log went to the file


@pytest.mark.parametrize(
    ("args", "status", "stdout"),
    [
        # The four rows of issue 11: the official agent reports 0 for each; ssmsh the truth.
        (["--", "sh -c 'echo out; echo err >&2; exit 5'"], 5, b"out\nerr\n"),
        (["--", "false"], 1, b""),
        (["-t", "--", "sh -c 'exit 7'"], 7, b""),
        (["--", "printf 'no newline \\000\\377'; exit 3"], 3, b"no newline \x00\xff"),
        (["-t", "--", "printf 'tty\\n'; exit 0"], 0, b"tty\r\n"),
    ],
)
async def test_exec_status_against_the_emulators_defaults(
    emulator: Emulator, args: list[str], status: int, stdout: bytes
) -> None:
    code, out, err = await run_cli(
        ["exec", DEFAULT_TARGET, "--endpoint-url", emulator.endpoint_url, *args], stdin=None
    )
    assert (code, out) == (status, stdout), err
    assert b"ssmsh-status" not in out + err


async def test_exec_says_when_the_status_is_unknown(emulator: Emulator) -> None:
    """--no-shell: no wrapper, and AWS's document reports no status: never a made-up 0."""
    code, _, err = await run_cli(
        [
            "exec",
            DEFAULT_TARGET,
            "--endpoint-url",
            emulator.endpoint_url,
            "--no-shell",
            "--",
            "true",
        ],
        stdin=None,
    )
    assert code == 255
    assert b"the remote exit status is unknown" in err


async def test_shell_exit_status_option_gives_the_remote_shells_status(emulator: Emulator) -> None:
    """--exit-status: sh through AWS-StartInteractiveCommand, its status in the trailer."""
    code, out, err = await run_cli(
        ["shell", DEFAULT_TARGET, "--endpoint-url", emulator.endpoint_url, "-q", "--exit-status"],
        stdin=b"echo in-sh\nexit 3\n",
    )
    assert code == 3, err
    assert b"in-sh" in out and b"ssmsh-status" not in out
    (session,) = emulator.state.sessions.values()
    assert session.document_name == "AWS-StartInteractiveCommand"
    code, _, err = await run_cli(
        ["shell", "--local", "--exit-status", "--document", "SSM-SessionManagerRunShell"]
    )
    assert code == 255 and b"--exit-status chooses the document" in err


async def test_local_needs_no_aws_setup(tmp_path: object) -> None:
    import pathlib

    broken = pathlib.Path(str(tmp_path)) / "config"
    broken.write_text("[profile x\nbroken")
    env = {
        "AWS_PROFILE": "nonexistent",
        "AWS_CONFIG_FILE": str(broken),
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_DEFAULT_REGION": "",
    }
    code, out, err = await run_cli(
        ["exec", "--local", DEFAULT_TARGET, "--", "echo local-ok; exit 6"], env=env
    )
    assert (code, out) == (6, b"local-ok\n"), err
    # A script on stdin, as `ssh host < script`: its status.
    code, out, err = await run_cli(["shell", "--local", "-q"], stdin=b"exit 4\n", env=env)
    assert code == 4, err


async def test_ctrl_c_without_tty_interrupts_ssmsh_and_terminates(emulator: Emulator) -> None:
    # exec without -t keeps the terminal cooked: Ctrl-C is SIGINT for ssmsh itself.
    proc = PtyProcess(
        ["exec", DEFAULT_TARGET, "--endpoint-url", emulator.endpoint_url, "--", "sleep 30"]
    )
    await interrupt_with_ctrl_c(proc, started=lambda: bool(emulator.state.sessions))
    await asyncio.sleep(0.3)
    statuses = {s.status.value for s in emulator.state.sessions.values()}
    assert statuses <= {"Terminated", "Terminating"}


async def test_session_expired_during_an_outage(emulator: Emulator) -> None:
    proc = PtyProcess(
        [
            "shell",
            DEFAULT_TARGET,
            "--endpoint-url",
            emulator.endpoint_url,
            "--keepalive",
            "0.3",
        ]
    )
    try:
        await proc.expect(PROMPT_RE)
        session_id = next(iter(emulator.state.sessions))
        emulator.state.end_session(session_id, "Session timed out.")  # it expires...
        gateway(emulator).close_connections(session_id, abrupt=True)  # ...as the link drops
        assert await proc.wait() == 255
        assert proc.slave_attrs() == proc.initial_attrs
        await proc.expect(r"ssmsh: connection failed: session \S+ timed out or was terminated")
        assert "Traceback" not in proc.text
        # The prompt left the cursor mid-line: the error still gets a line of its own.
        assert_line_starts_with(proc, PROMPT.rstrip())
        assert_line_starts_with(proc, "ssmsh: connection failed: ")
    finally:
        proc.close()


def assert_line_starts_with(proc: PtyProcess, text: str) -> None:
    lines = proc.screen_text().splitlines()
    assert any(line.startswith(text) for line in lines), f"no line starts with {text!r}:\n" + (
        "\n".join(lines)
    )


async def test_status_lines_after_output_without_a_newline_start_a_line(
    emulator: Emulator,
) -> None:
    proc = PtyProcess(
        [
            "shell",
            DEFAULT_TARGET,
            "--endpoint-url",
            emulator.endpoint_url,
            "--document",
            "AWS-StartInteractiveCommand",
            "--parameter",
            "command=printf no-newline-at-the-end",
        ]
    )
    try:
        assert await proc.wait() == 0, proc.text
        await proc.expect(r"Exiting session with sessionId")
        assert_line_starts_with(proc, "no-newline-at-the-end")
        assert_line_starts_with(proc, "Exiting session with sessionId: ")
    finally:
        proc.close()


async def test_aws_cli_style_document_name_and_parameters(emulator: Emulator) -> None:
    # What `aws ssm start-session` users type works the same here.
    document = ["--document-name", "AWS-StartInteractiveCommand"]
    parameters = ["--parameters", '{"command": ["echo from-$((40+2))"]}']
    code, out, err = await run_cli(
        ["shell", DEFAULT_TARGET, "--endpoint-url", emulator.endpoint_url, *document, *parameters],
        stdin=b"",
    )
    assert code == 0, err
    assert b"from-42" in out
    (session,) = emulator.state.sessions.values()
    assert session.document_name == "AWS-StartInteractiveCommand"
    assert session.parameters == {"command": ["echo from-$((40+2))"]}


def test_parameters_json_and_key_value_options_merge() -> None:
    from ssmsh.cli.common import parse_parameters

    merged = parse_parameters(["b=3", "a=2"], '{"a": ["1"], "c": "x"}')
    assert merged == {"a": ["1", "2"], "c": ["x"], "b": ["3"]}
