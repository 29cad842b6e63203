"""Small things a user meets (issue #17, item 12), each as the user meets it.

The escape help where ``~^Z`` cannot work (under the AWS CLI, which ignores SIGTSTP) and
with a control character as the escape; the plugin's port forwarding lines that scripts
wait for; what ``--help`` says; a clear line on a system the client does not support.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from typing import Any

import boto3
import pytest

from ssmsh.cli import entry
from ssmsh.emulator import DEFAULT_TARGET, Emulator, SessionStatus
from ssmsh.terminal.escape import EscapeAction, EscapeFilter, escape_help
from tests.conftest import scaled
from tests.tunnel.helpers import echo_server, exchange

from .harness import PROMPT_RE, PtyProcess, cli_env, run_cli

pytestmark = pytest.mark.timeout(60)

#: What the AWS CLI does to its plugin: SIGINT, SIGQUIT and SIGTSTP ignored (inherited).
UNDER_THE_AWS_CLI = ["sh", "-c", 'trap "" INT QUIT TSTP; exec "$@"', "sh"]


def help_entries(text: str) -> list[str]:
    """The escape lines of a ``~?`` help, as shown."""
    lines = text.replace("\r\n", "\n").split("\n")
    start = next(i for i, line in enumerate(lines) if "Supported escape sequences:" in line)
    entries: list[str] = []
    for line in lines[start + 1 :]:
        if line.startswith("(Note"):
            return entries
        entries.append(line)
    raise AssertionError(text)


def assert_aligned(entries: list[str]) -> None:
    columns = {line.index("- ") for line in entries}
    assert len(columns) == 1, entries


# ------------------------------------------------------------------ escape help


def test_escape_help_is_aligned_for_every_escape_character() -> None:
    for char in (ord("~"), 0x02, 0x1D, ord("%")):
        for suspend in (True, False):
            assert_aligned(help_entries(escape_help(char, suspend=suspend)))
    assert [e.split()[0] for e in help_entries(escape_help(0x02, suspend=True))] == [
        "^B.",
        "^B^Z",
        "^B?",
        "^B^B",
    ]


def test_without_suspend_there_is_no_suspend_escape() -> None:
    assert "^Z" not in escape_help(ord("~"), suspend=False)
    f = EscapeFilter(ord("~"), suspend=False)
    assert f.feed(b"~\x1a") == [b"~\x1a"]
    assert EscapeFilter(ord("~"), suspend=True).feed(b"~\x1a") == [EscapeAction.SUSPEND]


async def test_control_character_escape_help_lines_up_in_a_shell(emulator: Emulator) -> None:
    proc = PtyProcess(
        ["shell", DEFAULT_TARGET, "--endpoint-url", emulator.endpoint_url, "-e", "^B"]
    )
    try:
        await proc.expect(PROMPT_RE)
        start = len(proc.output)
        proc.send(b"\r\x02?")
        await proc.expect(r"\(Note that escapes", start=start)
        entries = help_entries(proc.text[start:])
        assert [e.split()[0] for e in entries] == ["^B.", "^B^Z", "^B?", "^B^B"]
        assert_aligned(entries)
    finally:
        proc.close()


async def start_session(emu: Emulator, **request: Any) -> tuple[str, list[str]]:
    """StartSession as the AWS CLI does: (session id, the plugin's arguments)."""
    request.setdefault("Target", DEFAULT_TARGET)

    def call() -> dict[str, Any]:
        client = boto3.client(
            "ssm",
            region_name="us-east-1",
            endpoint_url=emu.endpoint_url,
            aws_access_key_id="AKIDTESTTESTTESTTEST",
            aws_secret_access_key="test-secret",
        )
        return dict(client.start_session(**request))

    response = await asyncio.to_thread(call)
    document = json.dumps({k: response[k] for k in ("SessionId", "TokenValue", "StreamUrl")})
    args = [document, "us-east-1", "StartSession", "", json.dumps(request), emu.endpoint_url]
    return str(response["SessionId"]), args


async def test_under_the_aws_cli_the_help_has_no_suspend(emulator: Emulator) -> None:
    _, args = await start_session(emulator)
    proc = PtyProcess(
        ["plugin", *args], command=[*UNDER_THE_AWS_CLI, sys.executable, "-m", "ssmsh"]
    )
    try:
        await proc.expect(PROMPT_RE)
        start = len(proc.output)
        proc.send(b"\r~?")
        await proc.expect(r"\(Note that escapes", start=start)
        entries = help_entries(proc.text[start:])
        assert [e.split()[0] for e in entries] == ["~.", "~?", "~~"]
        assert_aligned(entries)
        # ~^Z is no escape here: it reaches the remote side as typed, and ssmsh goes on
        proc.send(b"\r~\x1a")
        proc.send(b"\recho still-$((2+3))\r")
        await proc.expect(r"still-5\r\n", start=start)
        assert proc.proc.poll() is None
    finally:
        proc.close()


# ------------------------------------------------------------------ plugin port forwarding


async def test_plugin_port_forwarding_prints_the_official_lines_on_stdout(
    emulator: Emulator,
) -> None:
    async with echo_server() as dest:
        session_id, args = await start_session(
            emulator,
            DocumentName="AWS-StartPortForwardingSession",
            Parameters={"portNumber": [str(dest)], "localPortNumber": ["0"]},
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ssmsh",
            "plugin",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=cli_env(),
        )
        assert proc.stdout is not None and proc.stderr is not None
        try:
            async with asyncio.timeout(scaled(20)):
                first = (await proc.stdout.readline()).decode()
                second = (await proc.stdout.readline()).decode()
            match = re.fullmatch(rf"Port (\d+) opened for sessionId {session_id}\.\n", first)
            assert match, first
            assert second == "Waiting for connections...\n"
            port = int(match.group(1))
            assert await exchange("127.0.0.1", port, b"script") == b"script"
        finally:
            proc.send_signal(signal.SIGINT)
            async with asyncio.timeout(scaled(15)):
                rest = await proc.stdout.read()
                err = (await proc.stderr.read()).decode()
                status = await proc.wait()
        assert status == 0, err
        assert rest == b""  # nothing else on stdout
        assert f"ssmsh: listening on 127.0.0.1:{port}" in err
        assert emulator.state.sessions[session_id].status in (
            SessionStatus.TERMINATED,
            SessionStatus.TERMINATING,
        )


# ------------------------------------------------------------------ help texts


async def test_plugin_help_is_complete_without_docs() -> None:
    status, out, _ = await run_cli(["plugin", "--help"])
    text = out.decode()
    assert status == 0
    assert "docs/" not in text  # the wheel installs no docs
    assert "ln -s" in text and "session-manager-plugin" in text
    for variable in ("SSMSH_DEBUG", "SSMSH_LOG_FILE", "SSMSH_QUIET", "SSMSH_ESCAPE"):
        assert variable in text


async def test_shell_help_names_ssmsh_target_and_suspend() -> None:
    status, out, _ = await run_cli(["shell", "--help"])
    text = " ".join(out.decode().split())
    assert status == 0
    assert "SSMSH_TARGET" in text
    assert "~^Z suspend" in text


async def test_keepalive_zero_names_one_option() -> None:
    status, _, err = await run_cli(["shell", "--local", "--keepalive", "0"])
    assert status == 255
    assert err.decode() == "ssmsh: --keepalive must be positive\n"


# ------------------------------------------------------------------ platforms


def test_a_system_that_is_not_posix_gets_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "name", "nt")
    status = entry.main(["shell", "--local"])
    monkeypatch.undo()
    assert status == 255
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("ssmsh: this system is not supported: the ssmsh client needs a POSIX")
