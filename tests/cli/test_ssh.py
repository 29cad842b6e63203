"""``ssmsh ssh`` and ``ssmsh ssh-config``: OpenSSH through ``ssmsh proxy``, and one-time keys
pushed with EC2 Instance Connect (SendSSHPublicKey) to an SSH server that accepts nothing
else.

The SSH server (asyncssh, on loopback) plays the instance's sshd with EC2 Instance
Connect's AuthorizedKeysCommand: it accepts a user's key only while the emulator holds it
as pushed for that user (60 s). The real ``ssh`` client connects through the emulator's
AWS-StartSSHSession session, as it would to an instance.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator

import asyncssh
import boto3
import pytest
from botocore.exceptions import ClientError

from ssmsh.emulator import Emulator, EmulatorConfig
from ssmsh.emulator.instance_connect import KEY_LIFETIME, PushedKeys
from tests.conftest import scaled

from .harness import cli_env

TARGET = "i-0123456789abcdef0"

pytestmark = pytest.mark.skipif(shutil.which("ssh") is None, reason="OpenSSH's ssh is needed")


class InstanceConnectSshd(asyncssh.SSHServer):
    """Public keys only, and only those pushed to the emulated instance for the user."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        pushed = self.emulator.state.ssh_keys.valid(TARGET, username)
        return any(blob == key.public_data for _, blob in pushed)


async def handle(process: asyncssh.SSHServerProcess) -> None:  # type: ignore[type-arg]
    process.stdout.write(f"hello {process.get_extra_info('username')}: {process.command}\n")
    process.exit(0)


@pytest.fixture
async def sshd_and_emulator() -> AsyncIterator[tuple[Emulator, int]]:
    async with Emulator(EmulatorConfig()) as emulator:
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        server = await asyncssh.create_server(
            lambda: InstanceConnectSshd(emulator),
            "127.0.0.1",
            0,
            server_host_keys=[host_key],
            process_factory=handle,
        )
        try:
            yield emulator, server.sockets[0].getsockname()[1]
        finally:
            server.close()
            await server.wait_closed()


def ssh_options(port: int) -> list[str]:
    return [
        "-p",
        str(port),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        "-F",
        "/dev/null",
    ]


async def ssmsh_ssh(emulator: Emulator, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ssmsh",
        "--endpoint-url",
        emulator.endpoint_url,
        "ssh",
        *args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )
    async with asyncio.timeout(scaled(60)):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_a_pushed_key_logs_in_through_session_manager(
    sshd_and_emulator: tuple[Emulator, int],
) -> None:
    emulator, port = sshd_and_emulator
    status, out, err = await ssmsh_ssh(
        emulator, "--push-key", f"alice@{TARGET}", *ssh_options(port), "uname -a"
    )
    assert status == 0, err
    assert out == "hello alice: uname -a\n"
    assert "Traceback" not in err
    assert len(emulator.state.ssh_keys.valid(TARGET, "alice")) == 1
    # The session was AWS-StartSSHSession to the port ssh asked for, and it is over.
    (session,) = emulator.state.sessions.values()
    assert session.document_name == "AWS-StartSSHSession"


async def test_without_a_pushed_key_the_server_refuses(
    sshd_and_emulator: tuple[Emulator, int],
) -> None:
    emulator, port = sshd_and_emulator
    status, out, err = await ssmsh_ssh(emulator, f"alice@{TARGET}", *ssh_options(port), "true")
    assert status == 255  # ssh's own status: authentication failed
    assert out == ""
    assert "Permission denied" in err
    assert "Traceback" not in err


async def test_a_key_is_for_one_user_only(sshd_and_emulator: tuple[Emulator, int]) -> None:
    emulator, port = sshd_and_emulator
    status, _, _ = await ssmsh_ssh(
        emulator, "--push-key", f"alice@{TARGET}", *ssh_options(port), "true"
    )
    assert status == 0
    assert emulator.state.ssh_keys.valid(TARGET, "bob") == []


async def test_an_unknown_target_is_one_line(sshd_and_emulator: tuple[Emulator, int]) -> None:
    emulator, _ = sshd_and_emulator
    status, _, err = await ssmsh_ssh(emulator, "--push-key", "alice@no-such-host", "true")
    assert status == 255
    assert err.strip().count("\n") == 0 and err.startswith("ssmsh: "), err


def test_pushed_keys_expire_after_60_seconds() -> None:
    now = [1000.0]
    keys = PushedKeys(lambda: now[0])
    key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    keys.push(TARGET, "alice", key)
    assert len(keys.valid(TARGET, "alice")) == 1
    now[0] += KEY_LIFETIME - 1
    assert len(keys.valid(TARGET, "alice")) == 1
    now[0] += 2
    assert keys.valid(TARGET, "alice") == []


async def test_send_ssh_public_key_with_boto3(sshd_and_emulator: tuple[Emulator, int]) -> None:
    emulator, _ = sshd_and_emulator
    client = boto3.client(
        "ec2-instance-connect",
        endpoint_url=emulator.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="secret",
    )
    key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()

    def send(**kwargs: str) -> dict[str, object]:
        return client.send_ssh_public_key(**kwargs)  # type: ignore[no-any-return]

    answer = await asyncio.to_thread(
        send, InstanceId=TARGET, InstanceOSUser="ec2-user", SSHPublicKey=key
    )
    assert answer["Success"] is True
    for kwargs, code in [
        ({"InstanceId": "i-00000000000000fff"}, "EC2InstanceNotFoundException"),
        ({"SSHPublicKey": "ssh-ed25519 " + "A" * 80}, "InvalidArgsException"),
    ]:
        request = {"InstanceId": TARGET, "InstanceOSUser": "ec2-user", "SSHPublicKey": key}
        request.update(kwargs)
        with pytest.raises(ClientError) as info:
            await asyncio.to_thread(send, **request)
        assert info.value.response["Error"]["Code"] == code


async def test_ssh_config_block() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ssmsh",
        "ssh-config",
        "--profile",
        "prod",
        "--region",
        "eu-west-1",
        stdout=subprocess.PIPE,
        env=cli_env(),
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    lines = out.decode().splitlines()
    assert "Host i-* mi-*" in lines
    assert "    ProxyCommand ssmsh --profile prod --region eu-west-1 proxy %h %p" in lines
