"""ssmsh as ``session-manager-plugin``: the AWS CLI's argv contract against the emulator.

Each test calls StartSession on the in-process emulator with boto3, as the AWS
CLI does, and runs the plugin with what the AWS CLI would pass
(``RESPONSE REGION StartSession PROFILE REQUEST ENDPOINT``) as a real process.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncssh
import boto3
import pytest

from ssmsh.aws import AwsSettings
from ssmsh.cli import plugin, plugin_args
from ssmsh.emulator import DEFAULT_TARGET, Emulator, EmulatorConfig, SessionStatus
from ssmsh.emulator.documents import DOCUMENTS, Parameter, SessionDocument
from ssmsh.exceptions import TunnelError, UsageError
from ssmsh.protocol import CLIENT_VERSION
from tests.conftest import scaled
from tests.tunnel.helpers import echo_server, exchange, free_port, script_server

from .conftest import KMS_KEY, KMS_TARGET, interrupt_with_ctrl_c
from .harness import PROMPT_RE, PtyProcess, cli_env, run_cli

pytestmark = pytest.mark.timeout(60)

ENV_NAME = plugin_args.RESPONSE_ENV_PREFIX


async def start_session(emu: Emulator, **request: Any) -> tuple[dict[str, Any], list[str]]:
    """StartSession as the AWS CLI does; returns (request, the plugin's arguments)."""
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
    keys = ("SessionId", "TokenValue", "StreamUrl")
    document = json.dumps({key: response[key] for key in keys})
    args = [document, "us-east-1", "StartSession", "", json.dumps(request), emu.endpoint_url]
    return response, args


def env_form(args: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The environment-variable form the AWS CLI uses with plugins newer than 1.2.497.0."""
    return [ENV_NAME, *args[1:]], {ENV_NAME: args[0]}


def session_status(emu: Emulator, session_id: str) -> SessionStatus:
    return emu.state.sessions[session_id].status


def plugin_launcher(tmp_path: Path) -> Path:
    """A ``session-manager-plugin`` symlink to the ``ssmsh`` program."""
    program = Path(sys.executable).parent / "ssmsh"
    if not program.exists():  # not installed as a console script: an equivalent launcher
        program = tmp_path / "ssmsh"
        program.write_text(
            f"#!{sys.executable}\nimport sys\nfrom ssmsh.cli.entry import main\nsys.exit(main())\n"
        )
        program.chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    link = bin_dir / plugin_args.PLUGIN_NAME
    link.symlink_to(program)
    return link


async def wait_status(emu: Emulator, session_id: str, status: SessionStatus) -> None:
    async with asyncio.timeout(scaled(5)):
        while session_status(emu, session_id) is not status:
            await asyncio.sleep(0.02)


# --------------------------------------------------------------------- shells


async def shell_round_trip(proc: PtyProcess, emu: Emulator, session_id: str) -> None:
    """Echo through the shell, then leave with ``exit 3``: session over, status 0 (the
    official agent reports no status for shells, protocol/traces/shell-exit-3)."""
    try:
        await proc.expect(PROMPT_RE)
        assert f"Starting session with SessionId: {session_id}" in proc.text
        proc.send("echo plug-$((40+2))-in\r")
        await proc.expect(r"plug-42-in\r\n")
        proc.send("exit 3\r")
        assert await proc.wait() == 0
        assert proc.slave_attrs() == proc.initial_attrs  # terminal restored
    finally:
        proc.close()
    assert "Traceback" not in proc.text
    await wait_status(emu, session_id, SessionStatus.TERMINATED)


async def test_shell_inline_response(emulator: Emulator) -> None:
    response, args = await start_session(emulator)
    proc = PtyProcess(["plugin", *args])
    await shell_round_trip(proc, emulator, response["SessionId"])


async def test_shell_env_var_response(emulator: Emulator) -> None:
    response, args = await start_session(emulator)
    argv, env = env_form(args)
    proc = PtyProcess(["plugin", *argv], env=env)
    await shell_round_trip(proc, emulator, response["SessionId"])


async def test_shell_through_a_symlink_named_session_manager_plugin(
    emulator: Emulator, tmp_path: Path
) -> None:
    link = plugin_launcher(tmp_path)
    response, args = await start_session(emulator)
    argv, env = env_form(args)
    proc = PtyProcess(argv, env=env, command=[str(link)])
    await shell_round_trip(proc, emulator, response["SessionId"])


async def test_shell_size_and_resize(emulator: Emulator) -> None:
    _, args = await start_session(emulator)
    proc = PtyProcess(["plugin", *args], cols=90, rows=20)
    try:
        await proc.expect(PROMPT_RE)
        proc.send("stty size\r")
        await proc.expect(r"\r\n20 90\r\n")
        proc.resize(110, 33)
        await asyncio.sleep(0.3)
        mark = len(proc.text)
        proc.send("stty size\r")
        await proc.expect(r"\r\n33 110\r\n", start=mark)
        proc.send("exit\r")
        assert await proc.wait() == 0
    finally:
        proc.close()


async def test_kms_shell_follows_a_non_aws_ssm_endpoint(emulator: Emulator) -> None:
    """No KMS endpoint configured: KMS goes to the (emulated) SSM endpoint of argv[6]."""
    response, args = await start_session(emulator, Target=KMS_TARGET)
    proc = PtyProcess(["plugin", *args], env={"AWS_ENDPOINT_URL": ""})
    try:
        await proc.expect(PROMPT_RE)
        proc.send("echo secret-$((6*7))\r")
        await proc.expect(r"secret-42\r\n")
        proc.send("exit\r")
        assert await proc.wait() == 0
    finally:
        proc.close()
    assert emulator.state.sessions[response["SessionId"]].kms_key_id == KMS_KEY


async def test_kms_endpoint_from_the_environment_wins(emulator: Emulator) -> None:
    """AWS_ENDPOINT_URL_KMS is honoured: here it points at a closed port, so KMS fails."""
    _, args = await start_session(emulator, Target=KMS_TARGET)
    env = {"AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_KMS": "http://127.0.0.1:9"}
    status, out, err = await run_cli(["plugin", *args], env=env)
    lines = err.decode().strip().splitlines()
    assert status == 255
    assert out == b""
    assert len(lines) == 1 and "KMS" in lines[0] and "127.0.0.1:9" in lines[0], lines


async def test_legacy_four_arguments(emulator: Emulator) -> None:
    """RESPONSE REGION StartSession: a plain shell works; KMS cannot (no target)."""
    response, args = await start_session(emulator)
    proc = PtyProcess(["plugin", *args[:3]], env={"AWS_ENDPOINT_URL": emulator.endpoint_url})
    await shell_round_trip(proc, emulator, response["SessionId"])

    _, args = await start_session(emulator, Target=KMS_TARGET)
    status, _, err = await run_cli(
        ["plugin", *args[:3]], env={"AWS_ENDPOINT_URL": emulator.endpoint_url}
    )
    assert status == 255
    assert err.decode().count("\n") == 1 and "legacy" in err.decode(), err


def ssm_client(emu: Emulator) -> Any:
    return boto3.client(
        "ssm",
        region_name="us-east-1",
        endpoint_url=emu.endpoint_url,
        aws_access_key_id="AKIDTESTTESTTESTTEST",
        aws_secret_access_key="test-secret",
    )


#: A NonInteractiveCommands document that asks the agent for separate streams and a status.
SEPARATE_DOCUMENT = {
    "schemaVersion": "1.0",
    "description": "One command, stdout and stderr apart, with its exit status.",
    "sessionType": "NonInteractiveCommands",
    "parameters": {"command": {"type": "String", "description": "The command line."}},
    "properties": {
        "linux": {"commands": "{{ command }}", "runAsElevated": False, "separateOutputStream": True}
    },
}


async def test_non_interactive_command_keeps_streams_and_status(emulator: Emulator) -> None:
    """With a document that sets separateOutputStream, the agent reports both."""

    def create() -> None:
        ssm_client(emulator).create_document(
            Name="Test-SeparateStreams",
            DocumentType="Session",
            Content=json.dumps(SEPARATE_DOCUMENT),
        )

    await asyncio.to_thread(create)
    _, args = await start_session(
        emulator,
        DocumentName="Test-SeparateStreams",
        Parameters={"command": ["sh -c 'echo out; echo err >&2; exit 4'"]},
    )
    status, out, err = await run_cli(["plugin", *args], stdin=None)
    assert status == 4
    assert out == b"out\n"
    assert b"err\n" in err and b"Starting session" in err


async def test_aws_non_interactive_document_merges_streams_and_reports_no_status(
    emulator: Emulator,
) -> None:
    """AWS-StartNonInteractiveCommand, as the official agent runs it: one merged stream and
    no status (protocol/traces/noninteractive-default-exit-5). In plugin mode ssmsh did not
    choose the command, so it cannot add a status of its own: it exits 0, as the official
    plugin does."""
    _, args = await start_session(
        emulator,
        DocumentName="AWS-StartNonInteractiveCommand",
        Parameters={"command": ["sh -c 'echo out; echo err >&2; exit 4'"]},
    )
    status, out, err = await run_cli(["plugin", *args], stdin=None)
    assert (status, out) == (0, b"out\nerr\n")
    assert b"err" not in err


async def test_ctrl_c_interrupts_a_command_although_the_aws_cli_ignores_sigint(
    emulator: Emulator,
) -> None:
    """A non-interactive command keeps the terminal cooked: Ctrl-C is SIGINT for us."""
    response, args = await start_session(
        emulator,
        DocumentName="AWS-StartNonInteractiveCommand",
        Parameters={"command": ["sleep 30"]},
    )
    ignore = 'trap "" INT QUIT TSTP; exec "$@"'
    proc = PtyProcess(
        ["plugin", *args], command=["sh", "-c", ignore, "sh", sys.executable, "-m", "ssmsh"]
    )
    await interrupt_with_ctrl_c(proc)
    assert "Traceback" not in proc.text
    await wait_status(emulator, response["SessionId"], SessionStatus.TERMINATED)


# --------------------------------------------------------------------- port sessions


async def port_round_trip(proc: PtyProcess, emu: Emulator, session_id: str) -> int:
    """Find the printed port, echo through it, Ctrl-C; returns the port."""
    try:
        match = await proc.expect(rf"Port (\d+) opened for sessionId {re.escape(session_id)}")
        port = int(match.group(1))
        assert port > 0
        for size in (5, 300_000):
            data = os.urandom(size)
            assert await echo_once(port, data) == data
        proc.send(b"\x03")  # the tty sends SIGINT
        assert await proc.wait() == 0
    finally:
        proc.close()
    assert "Traceback" not in proc.text
    await wait_status(emu, session_id, SessionStatus.TERMINATED)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    return port


async def echo_once(port: int, data: bytes) -> bytes:
    """Send, read as much back, close (no half-close: basic mode cannot pass it on)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        async with asyncio.timeout(scaled(15)):
            return await reader.readexactly(len(data))
    finally:
        writer.close()


async def test_port_forwarding_on_a_port_chosen_by_the_system(emulator: Emulator) -> None:
    async with echo_server() as dest:
        response, args = await start_session(
            emulator,
            DocumentName="AWS-StartPortForwardingSession",
            Parameters={"portNumber": [str(dest)], "localPortNumber": ["0"]},
        )
        argv, env = env_form(args)
        proc = PtyProcess(["plugin", *argv], env=env)
        await port_round_trip(proc, emulator, response["SessionId"])


async def test_ctrl_c_ends_forwarding_even_with_sigint_ignored_as_under_the_aws_cli(
    emulator: Emulator,
) -> None:
    """The AWS CLI runs its plugin with SIGINT, SIGQUIT and SIGTSTP ignored (inherited)."""
    ignore = 'trap "" INT QUIT TSTP; exec "$@"'
    async with echo_server() as dest:
        response, args = await start_session(
            emulator,
            DocumentName="AWS-StartPortForwardingSession",
            Parameters={"portNumber": [str(dest)], "localPortNumber": ["0"]},
        )
        proc = PtyProcess(
            ["plugin", *args], command=["sh", "-c", ignore, "sh", sys.executable, "-m", "ssmsh"]
        )
        await port_round_trip(proc, emulator, response["SessionId"])


async def test_port_forwarding_on_the_requested_port(emulator: Emulator) -> None:
    wanted = free_port()
    async with echo_server() as dest:
        response, args = await start_session(
            emulator,
            DocumentName="AWS-StartPortForwardingSessionToRemoteHost",
            Parameters={
                "host": ["127.0.0.1"],
                "portNumber": [str(dest)],
                "localPortNumber": [str(wanted)],
            },
        )
        proc = PtyProcess(["plugin", *args])
        assert await port_round_trip(proc, emulator, response["SessionId"]) == wanted


async def test_busy_local_port_is_one_line_and_the_session_is_terminated(
    emulator: Emulator,
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        response, args = await start_session(
            emulator,
            DocumentName="AWS-StartPortForwardingSession",
            Parameters={"portNumber": ["80"], "localPortNumber": [str(port)]},
        )
        status, out, err = await run_cli(["plugin", *args])
    assert status == 255 and out == b""
    text = err.decode()
    assert text.count("\n") == 1 and "address already in use" in text, text
    await wait_status(emulator, response["SessionId"], SessionStatus.TERMINATED)


async def test_port_forwarding_basic_mode_with_an_old_agent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ssmsh.emulator.agent import port

    # An agent this old has no smux (the emulated agent picks by client version only).
    monkeypatch.setattr(port, "client_supports_smux", lambda version: False)
    config = EmulatorConfig(agent_version="3.0.196.0")
    async with Emulator(config) as emu, echo_server() as dest:
        response, args = await start_session(
            emu,
            DocumentName="AWS-StartPortForwardingSession",
            Parameters={"portNumber": [str(dest)]},
        )
        proc = PtyProcess(["plugin", *args])
        await port_round_trip(proc, emu, response["SessionId"])


async def test_port_forwarding_to_a_unix_socket(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A document whose properties ask for localConnectionType unix (a custom document)."""
    document = SessionDocument(
        "Test-UnixSocketForwarding",
        "Port",
        (Parameter("portNumber"), Parameter("socketPath")),
        {
            "portNumber": "{{ portNumber }}",
            "type": "LocalPortForwarding",
            "localConnectionType": "unix",
            "localUnixSocket": "{{ socketPath }}",
        },
    )
    monkeypatch.setitem(DOCUMENTS, document.name, document)
    path = str(tmp_path / "fwd.sock")
    async with echo_server() as dest:
        response, args = await start_session(
            emulator,
            DocumentName=document.name,
            Parameters={"portNumber": [str(dest)], "socketPath": [path]},
        )
        proc = PtyProcess(["plugin", *args])
        try:
            await proc.expect(rf"Unix socket {re.escape(path)} opened for sessionId")
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            assert await exchange(None, path, b"through a socket") == b"through a socket"
            proc.send(b"\x03")
            assert await proc.wait() == 0
        finally:
            proc.close()
    assert not os.path.exists(path)
    await wait_status(emulator, response["SessionId"], SessionStatus.TERMINATED)


async def test_stdio_session_stdout_is_only_tunnel_bytes(emulator: Emulator) -> None:
    data = os.urandom(200_000)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readexactly(len(data))
        writer.write(request[::-1])
        await writer.drain()
        writer.close()

    async with script_server(answer) as dest:
        response, args = await start_session(
            emulator, DocumentName="AWS-StartSSHSession", Parameters={"portNumber": [str(dest)]}
        )
        argv, env = env_form(args)
        status, out, err = await run_cli(["plugin", *argv], stdin=data, env=env)
    assert status == 0, err
    assert out == data[::-1]  # no banner: exactly the tunnel's bytes
    assert b"Traceback" not in err
    await wait_status(emulator, response["SessionId"], SessionStatus.TERMINATED)


class _NoAuth(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return False  # anyone may log in: this server only runs on loopback in a test


async def _sum(process: asyncssh.SSHServerProcess[str]) -> None:
    words = (process.command or "").split()
    process.stdout.write(f"total={sum(int(n) for n in words[1:])}\n")
    process.exit(0)


async def test_ssh_through_the_plugin_as_proxy_command(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    sshd = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[asyncssh.generate_private_key("ssh-ed25519")],
        server_factory=_NoAuth,
        process_factory=_sum,
    )
    try:
        port = sshd.sockets[0].getsockname()[1]
        _, args = await start_session(
            emulator, DocumentName="AWS-StartSSHSession", Parameters={"portNumber": [str(port)]}
        )
        argv, env = env_form(args)
        for name, value in cli_env(env).items():  # asyncssh's ProxyCommand inherits ours
            monkeypatch.setenv(name, value)
        async with asyncio.timeout(scaled(30)):
            async with asyncssh.connect(
                DEFAULT_TARGET,
                port=port,
                username="tester",
                known_hosts=None,
                client_keys=None,
                proxy_command=[sys.executable, "-m", "ssmsh", "plugin", *argv],
            ) as conn:
                result = await conn.run("sum 20 22", check=False)
    finally:
        sshd.close()
    assert result.exit_status == 0
    assert result.stdout == "total=42\n"


# --------------------------------------------------------------------- the argv contract


async def test_version_is_bare_and_new_enough() -> None:
    status, out, err = await run_cli(["plugin", "--version"])
    assert status == 0 and err == b""
    assert out == f"{CLIENT_VERSION}\n".encode()
    assert re.fullmatch(r"\d+(\.\d+){0,3}", out.decode().strip())
    parts = [int(p) for p in out.decode().split(".")]
    assert parts > [1, 2, 497, 0]  # the AWS CLI then passes the response in the environment


def test_symlink_answers_version_and_no_arguments(tmp_path: Path) -> None:
    link = plugin_launcher(tmp_path)
    version = subprocess.run(
        [str(link), "--version"], capture_output=True, env=cli_env(), timeout=scaled(20)
    )
    assert version.returncode == 0
    assert version.stdout == f"{CLIENT_VERSION}\n".encode()
    bare = subprocess.run([str(link)], capture_output=True, env=cli_env(), timeout=scaled(20))
    assert bare.returncode == 0
    assert b"installed successfully" in bare.stdout


async def test_options_before_the_plugin_command() -> None:
    status, out, _ = await run_cli(["-v", "plugin", "--version"])
    assert (status, out) == (0, f"{CLIENT_VERSION}\n".encode())
    status, _, err = await run_cli(["--debug", "plugin", "{}", "us-east-1", "Nope"])
    assert status == 255 and b"Invalid Operation" in err


async def test_no_arguments() -> None:
    status, out, _ = await run_cli(["plugin"])
    assert status == 0
    assert b"The Session Manager plugin was installed successfully" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["{not json", "us-east-1", "StartSession"], "not JSON"),
        (["[1, 2]", "us-east-1", "StartSession"], "not a JSON object"),
        (['{"SessionId": "s", "StreamUrl": "wss://x"}', "us-east-1", "StartSession"], "TokenValue"),
        (["{}", "us-east-1", "Foo"], "Invalid Operation"),
        (["only-one"], "unknown operation"),
        (["a", "b"], "unknown operation"),
        ([ENV_NAME, "us-east-1", "StartSession"], "is not set"),
    ],
)
async def test_bad_arguments_give_one_line(argv: list[str], needle: str) -> None:
    status, out, err = await run_cli(["plugin", *argv])
    text = err.decode()
    assert status == 255
    assert out == b""
    assert text.count("\n") == 1 and text.startswith("ssmsh: ") and needle in text, text


@pytest.mark.parametrize("request_json", ['{"DocumentName": "x"}', '{"Target": 5}', "", "nope"])
async def test_missing_target_is_a_clean_error(request_json: str) -> None:
    response = json.dumps({"SessionId": "s-1", "TokenValue": "t0ken", "StreamUrl": "wss://x"})
    argv = [response, "us-east-1", "StartSession", "", request_json, "http://127.0.0.1:9"]
    status, out, err = await run_cli(["plugin", *argv])
    text = err.decode()
    assert status == 255 and out == b""
    assert text.count("\n") == 1 and "StartSession request (argument 5)" in text, text
    assert "Traceback" not in text


async def test_error_lines_never_show_the_token() -> None:
    response = json.dumps({"SessionId": "s-1", "TokenValue": "SECRET-T0KEN", "StreamUrl": "x"})
    for argv in ([response], [response, "us-east-1"], [response, "r", "Nope"]):
        status, out, err = await run_cli(["plugin", *argv])
        assert status == 255
        assert b"SECRET-T0KEN" not in out + err


def test_the_environment_variable_is_removed_once_read(monkeypatch: pytest.MonkeyPatch) -> None:
    response = {"SessionId": "s-1", "TokenValue": "t0ken", "StreamUrl": "wss://gw/s-1"}
    monkeypatch.setenv(ENV_NAME, json.dumps(response))
    request = plugin_args.parse_plugin_argv(
        [ENV_NAME, "eu-west-1", "StartSession", "dev", '{"Target": "i-1"}', "https://ssm.x"]
    )
    assert ENV_NAME not in os.environ
    child = subprocess.run(
        ["sh", "-c", f'echo "${{{ENV_NAME}-unset}}"'], capture_output=True, check=True
    )
    assert child.stdout == b"unset\n"  # not inherited by children either
    assert request.session.session_id == "s-1"
    assert request.session.stream.token_value == "t0ken"
    assert request.session.target_id == "i-1"
    assert (request.region, request.profile, request.endpoint_url) == (
        "eu-west-1",
        "dev",
        "https://ssm.x",
    )


def test_response_keys_match_case_insensitively() -> None:
    text = json.dumps({"sessionid": "s-2", "streamURL": "wss://gw", "tokenvalue": "t", "X": 1})
    request = plugin_args.parse_plugin_argv([text, "", "StartSession", ""])
    assert request.session.session_id == "s-2"
    assert (request.region, request.profile, request.legacy) == (None, None, False)
    assert request.session.target_id == ""


def test_invoked_as_plugin() -> None:
    assert plugin_args.invoked_as_plugin("/home/u/bin/session-manager-plugin")
    assert plugin_args.invoked_as_plugin("session-manager-plugin.exe")
    assert not plugin_args.invoked_as_plugin("/usr/bin/ssmsh")
    assert not plugin_args.invoked_as_plugin("/x/ssmsh/__main__.py")


# --------------------------------------------------------------------- endpoints, properties


@pytest.mark.parametrize(
    ("url", "aws"),
    [
        ("https://ssm.us-east-1.amazonaws.com", True),
        ("https://ssm.cn-north-1.amazonaws.com.cn", True),
        ("https://vpce-0a1b-x.ssm.eu-west-1.vpce.amazonaws.com", True),
        ("https://ssm-fips.us-gov-west-1.api.aws", True),
        ("http://127.0.0.1:4566", False),
        ("https://ssm.example.com", False),
        ("https://amazonaws.com.evil.example", False),
    ],
)
def test_is_aws_endpoint(url: str, aws: bool) -> None:
    assert plugin_args.is_aws_endpoint(url) is aws


def _isolate_aws_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))


def test_kms_endpoint_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _isolate_aws_config(monkeypatch, tmp_path)
    settings = AwsSettings(region="us-east-1", ssm_endpoint_url="http://127.0.0.1:4566")
    # AWS SSM endpoint (or none): KMS is left to boto3.
    assert plugin_args.kms_endpoint(settings, "https://ssm.us-east-1.amazonaws.com") is None
    assert plugin_args.kms_endpoint(settings, None) is None
    # A non-AWS SSM endpoint and nothing configured for KMS: KMS follows SSM.
    assert plugin_args.kms_endpoint(settings, "http://127.0.0.1:4566") == "http://127.0.0.1:4566"
    # Configured for KMS (environment or profile): boto3 decides.
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", "http://127.0.0.1:7777")
    assert plugin_args.kms_endpoint(settings, "http://127.0.0.1:4566") is None
    monkeypatch.delenv("AWS_ENDPOINT_URL_KMS")
    (tmp_path / "config").write_text(
        "[profile dev]\nservices = local\n[services local]\nkms =\n  endpoint_url = http://kms.corp\n"
    )
    dev = AwsSettings(region="us-east-1", profile="dev")
    assert plugin_args.kms_endpoint(dev, "http://127.0.0.1:4566") is None


def test_listen_spec_from_session_properties() -> None:
    spec = plugin.listen_spec({"portNumber": "80", "type": "LocalPortForwarding"})
    assert (spec.local_port, spec.bind, spec.remote_port) == (0, "localhost", 80)
    assert plugin.listen_spec({"localPortNumber": ""}).local_port == 0
    assert plugin.listen_spec({"localPortNumber": "8080"}).local_port == 8080
    unix = plugin.listen_spec({"localConnectionType": "unix", "localUnixSocket": "/tmp/s"})
    assert unix.local_socket == "/tmp/s"
    with pytest.raises(TunnelError):
        plugin.listen_spec({"localConnectionType": "unix"})
    for bad in ("http", "70000", "-1"):
        with pytest.raises(TunnelError):
            plugin.listen_spec({"localPortNumber": bad})


def test_parse_errors_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="no Target"):
        plugin_args.parse_plugin_argv(
            ['{"SessionId":"s","StreamUrl":"u","TokenValue":"t"}', "r", "StartSession", "", "{}"]
        )


# --------------------------------------------------------------------- the real AWS CLI


def _aws_cli() -> str | None:
    for candidate in (
        os.environ.get("SSMSH_AWS_CLI"),
        shutil.which("aws"),
        "/work/awscli-venv/bin/aws",
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def aws_env(link: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    path = f"{link.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {"PATH": path, "AWS_PAGER": "", **(extra or {})}


@pytest.mark.skipif(_aws_cli() is None, reason="the AWS CLI is not installed")
async def test_aws_cli_start_session_uses_the_symlinked_plugin(
    emulator: Emulator, tmp_path: Path
) -> None:
    aws = _aws_cli()
    assert aws is not None
    link = plugin_launcher(tmp_path)
    endpoint = ["--endpoint-url", emulator.endpoint_url, "--region", "us-east-1"]
    proc = PtyProcess(
        ["ssm", "start-session", "--target", DEFAULT_TARGET, *endpoint],
        env=aws_env(link),
        command=[aws],
    )
    try:
        await proc.expect(PROMPT_RE, timeout=30)
        proc.send("echo via-$((1+1))-aws\r")
        await proc.expect(r"via-2-aws\r\n")
        proc.send("exit\r")
        assert await proc.wait(timeout=30) == 0
    finally:
        proc.close()
    (session,) = emulator.state.sessions.values()
    await wait_status(emulator, session.session_id, SessionStatus.TERMINATED)

    # A port session through the AWS CLI.
    async with echo_server() as dest:
        proc = PtyProcess(
            [
                "ssm",
                "start-session",
                "--target",
                DEFAULT_TARGET,
                "--document-name",
                "AWS-StartPortForwardingSession",
                "--parameters",
                f"portNumber={dest},localPortNumber=0",
                *endpoint,
            ],
            env=aws_env(link),
            command=[aws],
        )
        try:
            match = await proc.expect(r"Port (\d+) opened", timeout=30)
            port = int(match.group(1))
            assert await exchange("127.0.0.1", port, b"aws-cli") == b"aws-cli"
            proc.send(b"\x03")
            assert await proc.wait(timeout=30) == 0
        finally:
            proc.close()
