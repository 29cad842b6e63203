"""``ssmsh forward`` and ``ssmsh proxy`` as real processes against the emulator."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import asyncssh
import pytest

from ssmsh.emulator import Emulator, SessionStatus
from tests.conftest import scaled

from .conftest import emulator
from .helpers import echo_server, exchange, pattern, script_server

TARGET = "i-0123456789abcdef0"


def ssmsh(emu: Emulator, *argv: str) -> list[str]:
    return [sys.executable, "-m", "ssmsh", "--endpoint-url", emu.endpoint_url, *argv]


async def read_lines_until(
    stream: asyncio.StreamReader, needle: str, count: int, seen: list[str]
) -> None:
    async with asyncio.timeout(scaled(20)):
        while sum(needle in line for line in seen) < count:
            line = await stream.readline()
            if not line:
                raise AssertionError(f"stderr ended before {needle!r}: {seen}")
            seen.append(line.decode().rstrip("\n"))


async def test_ctrl_c_ends_cleanly(tmp_path: Path) -> None:
    sock_path = str(tmp_path / "fwd.sock")
    async with emulator() as emu, echo_server() as dest:
        proc = await asyncio.create_subprocess_exec(
            *ssmsh(emu, "forward", "-v", TARGET, f"0:{dest}", f"{sock_path}:{dest}"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None and proc.stdout is not None
        lines: list[str] = []
        try:
            await read_lines_until(proc.stderr, "ready (multiplexed", 2, lines)
            listening = next(ln for ln in lines if "listening on 127" in ln)
            port = int(re.search(r"127\.0\.0\.1:(\d+)", listening).group(1))  # type: ignore[union-attr]
            assert await exchange("127.0.0.1", port, b"tcp") == b"tcp"
            assert await exchange(None, sock_path, b"unix") == b"unix"
            # An open, idle connection at the time of Ctrl-C.
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            proc.send_signal(signal.SIGINT)
            async with asyncio.timeout(scaled(15)):
                status = await proc.wait()
                rest = (await proc.stderr.read()).decode()
                stdout = await proc.stdout.read()
            writer.close()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert status == 0, (lines, rest)
        assert stdout == b""
        assert "Traceback" not in rest, rest
        assert not os.path.exists(sock_path)
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
        sessions = list(emu.state.sessions.values())
        assert len(sessions) == 2
        assert all(s.status is SessionStatus.TERMINATED for s in sessions)


async def run_proxy(emu: Emulator, port: int, data: bytes) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *ssmsh(emu, "proxy", TARGET, str(port)),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(scaled(30)):
            stdout, stderr = await proc.communicate(data)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, stdout, stderr


async def test_proxy_stdout_carries_only_tunnel_bytes() -> None:
    data = pattern(3 * 1024 * 1024, 21)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The proxy cannot pass stdin's EOF on (the protocol has no half-close for it),
        # so, like an HTTP/1.0 server, this one knows when the request is complete.
        request = await reader.readexactly(len(data))
        writer.write(request[::-1])
        await writer.drain()
        writer.close()

    async with emulator() as emu, script_server(answer) as dest:
        status, stdout, stderr = await run_proxy(emu, dest, data)
        (session,) = emu.state.sessions.values()
    assert status == 0, stderr
    assert stdout == data[::-1]  # no banner, no status text: exactly the tunnel's bytes
    assert session.document_name == "AWS-StartSSHSession"


async def test_proxy_sighup_ends_the_session() -> None:
    """ssh sends SIGHUP to its ProxyCommand when it is done."""
    async with emulator() as emu, echo_server() as dest:
        proc = await asyncio.create_subprocess_exec(
            *ssmsh(emu, "proxy", TARGET, str(dest)),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        try:
            proc.stdin.write(b"ping")
            async with asyncio.timeout(scaled(15)):
                assert await proc.stdout.readexactly(4) == b"ping"
                proc.send_signal(signal.SIGHUP)
                assert await proc.wait() == 0
                assert await proc.stdout.read() == b""
                assert b"Traceback" not in await proc.stderr.read()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        (session,) = emu.state.sessions.values()
        assert session.status is SessionStatus.TERMINATED


async def test_proxy_bad_port_is_one_line_error() -> None:
    async with emulator() as emu:
        status, stdout, stderr = await run_proxy(emu, 0, b"")
    assert status == 255
    assert stdout == b""
    assert stderr.decode().strip().count("\n") == 0 and "port" in stderr.decode()


class _NoAuth(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return False  # anyone may log in: this server only runs on loopback in a test


async def _run_command(process: asyncssh.SSHServerProcess[str]) -> None:
    command = process.command or ""
    if command.startswith("sum "):
        total = sum(int(n) for n in command.split()[1:])
        process.stdout.write(f"total={total}\n")
        process.exit(0)
    else:
        process.stderr.write(f"unknown command: {command}\n")
        process.exit(3)


async def test_ssh_over_proxy_runs_a_command() -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    sshd = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[key],
        server_factory=_NoAuth,
        process_factory=_run_command,
    )
    try:
        port = sshd.sockets[0].getsockname()[1]
        async with emulator() as emu:
            # What ssh runs for ProxyCommand='ssmsh proxy %h %p' (asyncssh does not expand).
            proxy: Sequence[str] = ssmsh(emu, "proxy", TARGET, str(port))
            async with asyncio.timeout(scaled(30)):
                async with asyncssh.connect(
                    TARGET,
                    port=port,
                    username="tester",
                    known_hosts=None,
                    proxy_command=list(proxy),
                    client_keys=None,
                ) as conn:
                    result = await conn.run("sum 20 22", check=False)
                    big = await conn.run("sum " + " ".join(["1"] * 20000), check=False)
            (session,) = emu.state.sessions.values()
            assert session.parameters["portNumber"] == [str(port)]
    finally:
        sshd.close()
    assert result.exit_status == 0
    assert result.stdout == "total=42\n"
    assert big.stdout == "total=20000\n"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_proxy_refused_port_says_why_and_exits_255() -> None:
    async with emulator() as emu:
        status, stdout, stderr = await run_proxy(emu, _free_port(), b"")
    text = stderr.decode()
    assert status == 255, text
    assert stdout == b""
    assert "connect" in text.lower() and "Traceback" not in text


async def test_proxy_with_stdin_from_dev_null() -> None:
    """/dev/null is a character device the event loop cannot poll: no traceback, no hang."""
    async with emulator() as emu, echo_server() as dest:
        with open(os.devnull, "rb") as null:
            proc = await asyncio.create_subprocess_exec(
                *ssmsh(emu, "--debug", "proxy", TARGET, str(dest)),
                stdin=null,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        seen: list[str] = []
        try:
            assert proc.stderr is not None
            # Up and forwarding (however long the start took), then stdin is at EOF at
            # once; the tunnel stays up.
            await read_lines_until(proc.stderr, " established: ", 1, seen)
            await asyncio.sleep(scaled(0.5))
            running = proc.returncode is None  # (not narrowed by mypy, unlike an assert)
            assert running, seen
            proc.send_signal(signal.SIGHUP)
            async with asyncio.timeout(scaled(15)):
                stdout, stderr = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, (seen, stderr)
    assert b"Traceback" not in stderr and b"PermissionError" not in stderr
    assert stdout == b""
