"""``ssmsh socks`` (and ``forward -D``) through the emulator: a SOCKS5 client written
here (raw socket handshake, RFC 1928) and curl, to loopback destinations."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import shutil
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from ssmsh.cli import socks as socks_cli
from ssmsh.cli.socks import target_and_listen
from ssmsh.emulator import EmulatorConfig
from ssmsh.exceptions import UsageError
from ssmsh.tunnel.socks import Reply, parse_listen
from ssmsh.tunnel.spec import DOCUMENT_PORT, DOCUMENT_REMOTE_HOST
from tests.conftest import scaled

from .conftest import RunningForward, emulator, parse_cli
from .helpers import echo_server, free_port, pattern, script_server

TARGET = "i-0123456789abcdef0"


class RunningSocks(RunningForward):
    """``ssmsh socks`` running in-process; its stderr lines collected in ``lines``."""

    async def __aenter__(self) -> RunningSocks:
        self.task = asyncio.create_task(
            socks_cli.run_socks(self.args, self.reporter.terminal, self.reporter)
        )
        return self


# ------------------------------------------------------------- a SOCKS5 client


async def socks_open(
    proxy: int,
    host: str,
    port: int,
    *,
    command: int = 1,
    methods: bytes = b"\x00",
    address_type: int | None = None,
    proxy_host: str = "127.0.0.1",
) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter]:
    """Greeting and request; (reply code, reader, writer). 0xFF: the method was refused."""
    reader, writer = await asyncio.open_connection(proxy_host, proxy)
    writer.write(bytes([5, len(methods)]) + methods)
    version, method = await reader.readexactly(2)
    assert version == 5
    if method == 0xFF:
        return 0xFF, reader, writer
    assert method == 0
    if address_type is None:
        try:
            address_type = 1 if ipaddress.ip_address(host).version == 4 else 4
        except ValueError:
            address_type = 3
    if address_type == 1:
        address = ipaddress.IPv4Address(host).packed
    elif address_type == 4:
        address = ipaddress.IPv6Address(host).packed
    elif address_type == 3:
        address = bytes([len(host)]) + host.encode()
    else:
        address = b"\x00\x00\x00\x00"
    writer.write(bytes([5, command, 0, address_type]) + address + struct.pack(">H", port))
    head = await reader.readexactly(4)
    assert head[0] == 5
    size = {1: 4, 4: 16}[head[3]] if head[3] != 3 else (await reader.readexactly(1))[0]
    await reader.readexactly(size + 2)
    return head[1], reader, writer


async def socks_exchange(proxy: int, host: str, port: int, payload: bytes) -> bytes:
    code, reader, writer = await socks_open(proxy, host, port)
    try:
        assert code == Reply.SUCCEEDED, f"reply {code:#04x} for {host}:{port}"
        writer.write(payload)
        return await reader.readexactly(len(payload))
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def echo_server_v6() -> AsyncIterator[int]:
    """An echo server on ::1 only."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "::1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def _ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _ipv6(), reason="no IPv6 loopback")


async def proxy_port(proxy: RunningForward) -> int:
    (port,) = await proxy.ports()
    return port


# ---------------------------------------------------------------------- tests


@needs_ipv6
async def test_several_destinations_at_once_ipv4_ipv6_and_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    payloads = [pattern(20_000 + i, 40 + i) for i in range(9)]
    async with (
        emulator() as emu,
        echo_server() as v4,
        echo_server() as named,
        echo_server_v6() as v6,
    ):
        args = parse_cli(emu, "socks", TARGET, "0", "-v")
        async with RunningSocks(args, monkeypatch) as proxy:
            port = await proxy_port(proxy)
            destinations = [("127.0.0.1", v4), ("localhost", named), ("::1", v6)] * 3
            async with asyncio.timeout(scaled(30)):
                results = await asyncio.gather(
                    *(
                        socks_exchange(port, host, dport, payload)
                        for (host, dport), payload in zip(destinations, payloads, strict=True)
                    )
                )
            assert results == payloads
            sessions = list(emu.state.sessions.values())
            # One session per destination, each carrying its three connections.
            assert len(sessions) == 3
            by_port = {s.parameters["portNumber"][0]: s for s in sessions}
            assert by_port[str(named)].document_name == DOCUMENT_PORT
            assert "host" not in by_port[str(named)].parameters
            assert by_port[str(v4)].document_name == DOCUMENT_REMOTE_HOST
            assert by_port[str(v4)].parameters["host"] == ["127.0.0.1"]
            assert by_port[str(v6)].parameters["host"] == ["::1"]
            # Reused while alive: another connection starts no session.
            async with asyncio.timeout(scaled(10)):
                assert await socks_exchange(port, "localhost", named, b"again") == b"again"
            assert len(emu.state.sessions) == 3
        assert all(s.ended for s in emu.state.sessions.values())  # Ctrl-C ended them


async def test_error_replies(monkeypatch: pytest.MonkeyPatch) -> None:
    dead = free_port()
    async with emulator() as emu, echo_server() as live:
        args = parse_cli(emu, "socks", TARGET, "0")
        async with RunningSocks(args, monkeypatch) as proxy:
            port = await proxy_port(proxy)
            async with asyncio.timeout(scaled(20)):
                code, _, writer = await socks_open(port, "127.0.0.1", dead)
                assert code == Reply.CONNECTION_REFUSED
                writer.close()
                code, _, writer = await socks_open(port, "localhost", dead)
                assert code == Reply.CONNECTION_REFUSED
                writer.close()
                # BIND and UDP ASSOCIATE are not served.
                for command in (2, 3):
                    code, _, writer = await socks_open(port, "127.0.0.1", live, command=command)
                    assert code == Reply.COMMAND_NOT_SUPPORTED
                    writer.close()
                code, _, writer = await socks_open(port, "127.0.0.1", live, address_type=9)
                assert code == Reply.ADDRESS_TYPE_NOT_SUPPORTED
                writer.close()
                # Only "no authentication" is offered.
                code, _, writer = await socks_open(port, "127.0.0.1", live, methods=b"\x02")
                assert code == 0xFF
                writer.close()
                # The document's host pattern refuses a two-letter name: not allowed.
                code, _, writer = await socks_open(port, "ab", live)
                assert code == Reply.NOT_ALLOWED
                writer.close()
                # The refused destination's session is still there and serves nothing
                # else; a good destination still works.
                assert await socks_exchange(port, "127.0.0.1", live, b"fine") == b"fine"
            assert proxy.task is not None and not proxy.task.done()
        refused = [line for line in proxy.lines if "could not connect" in line]
        assert len(refused) == 2


async def test_destination_that_speaks_first_and_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 hello\r\n")
        await writer.drain()
        writer.close()

    async with emulator() as emu, script_server(banner) as dest:
        args = parse_cli(emu, "forward", TARGET, "-D", "0")  # ssh's spelling
        async with RunningForward(args, monkeypatch) as proxy:
            port = await proxy_port(proxy)
            async with asyncio.timeout(scaled(10)):
                code, reader, writer = await socks_open(port, "127.0.0.1", dest)
                assert code == Reply.SUCCEEDED
                assert await reader.read() == b"220 hello\r\n"
                writer.close()


async def test_idle_sessions_are_closed_and_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    async with emulator() as emu, echo_server() as dest:
        args = parse_cli(emu, "socks", TARGET, "0", "--idle-timeout", "0.4", "-v")
        async with RunningSocks(args, monkeypatch) as proxy:
            port = await proxy_port(proxy)
            async with asyncio.timeout(scaled(10)):
                assert await socks_exchange(port, "127.0.0.1", dest, b"one") == b"one"
            await proxy.wait_line(r"closing its session \(idle for 0.4 s\)")
            async with asyncio.timeout(scaled(10)):
                while not all(s.ended for s in emu.state.sessions.values()):
                    await asyncio.sleep(0.05)
                assert await socks_exchange(port, "127.0.0.1", dest, b"two") == b"two"
            first, second = emu.state.sessions.values()
            assert first.ended and not second.ended


async def test_session_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    async with emulator() as emu, echo_server() as one, echo_server() as two:
        args = parse_cli(emu, "socks", TARGET, "0", "--max-sessions", "1")
        async with RunningSocks(args, monkeypatch) as proxy:
            port = await proxy_port(proxy)
            async with asyncio.timeout(scaled(15)):
                code, reader, held = await socks_open(port, "127.0.0.1", one)
                assert code == Reply.SUCCEEDED
                # The only session is busy: another destination gets a general failure.
                code, _, writer = await socks_open(port, "127.0.0.1", two)
                assert code == Reply.GENERAL_FAILURE
                writer.close()
                await proxy.wait_line("session limit")
                held.close()
                await reader.read()
                await asyncio.sleep(0.1)
                # Now the first destination is idle: its session makes room.
                assert await socks_exchange(port, "127.0.0.1", two, b"room") == b"room"
                first, second = emu.state.sessions.values()
                assert second.parameters["portNumber"] == [str(two)]
                while not first.ended:  # closed to make room
                    await asyncio.sleep(0.05)


async def test_sessions_per_destination(monkeypatch: pytest.MonkeyPatch) -> None:
    async with emulator() as emu, echo_server() as dest:
        args = parse_cli(emu, "socks", TARGET, "0", "--sessions", "2")
        async with RunningSocks(args, monkeypatch) as proxy:
            port = await proxy_port(proxy)
            async with asyncio.timeout(scaled(15)):
                opened = [await socks_open(port, "127.0.0.1", dest) for _ in range(4)]
                for code, reader, writer in opened:
                    assert code == Reply.SUCCEEDED
                    writer.write(b"x")
                    assert await reader.readexactly(1) == b"x"
                    writer.close()
            assert len(emu.state.sessions) == 2


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_socks5_hostname_to_several_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    bodies = [pattern(50_000 + i, 90 + i) for i in range(3)]

    def http(body: bytes) -> contextlib.AbstractAsyncContextManager[int]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                + body
            )
            await writer.drain()
            writer.close()

        return script_server(serve)

    async with (
        emulator(EmulatorConfig(agent_fin="half-close")) as emu,
        http(bodies[0]) as a,
        http(bodies[1]) as b,
        http(bodies[2]) as c,
    ):
        args = parse_cli(emu, "socks", TARGET, "0")
        async with RunningSocks(args, monkeypatch) as proxy:
            port = await proxy_port(proxy)
            urls = [f"http://localhost:{a}/", f"http://127.0.0.1:{b}/", f"http://localhost:{c}/x"]

            async def curl(url: str) -> bytes:
                process = await asyncio.create_subprocess_exec(
                    "curl",
                    "-sS",
                    "--max-time",
                    str(int(scaled(20))),
                    "--socks5-hostname",
                    f"127.0.0.1:{port}",
                    url,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                out, err = await process.communicate()
                assert process.returncode == 0, err
                return out

            async with asyncio.timeout(scaled(30)):
                assert await asyncio.gather(*(curl(u) for u in urls)) == bodies
            # curl names the destination; the agent resolves it (localhost: the port document).
            documents = sorted(s.document_name for s in emu.state.sessions.values())
            assert documents == [DOCUMENT_PORT, DOCUMENT_PORT, DOCUMENT_REMOTE_HOST]
            refused = await asyncio.create_subprocess_exec(
                "curl",
                "-sS",
                "--socks5-hostname",
                f"127.0.0.1:{port}",
                f"http://localhost:{free_port()}/",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await refused.communicate()
            assert refused.returncode != 0 and b"(5)" in err  # SOCKS reply 5: refused


@needs_ipv6
async def test_listens_on_ipv6_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    async with emulator() as emu, echo_server() as dest:
        args = parse_cli(emu, "socks", TARGET, "[::1]:0")
        async with RunningSocks(args, monkeypatch) as proxy:
            (address,) = await proxy.addresses()
            assert address.startswith("[::1]:")
            port = int(address.rsplit(":", 1)[1])
            async with asyncio.timeout(scaled(10)):
                code, reader, writer = await socks_open(port, "127.0.0.1", dest, proxy_host="::1")
                assert code == Reply.SUCCEEDED
                writer.write(b"six")
                assert await reader.readexactly(3) == b"six"
                writer.close()


# ---------------------------------------------------------- parsing, no emulator


def _parse(*argv: str) -> argparse.Namespace:
    from ssmsh.cli.main import build_parser

    return build_parser().parse_args(list(argv))


def test_listen_address_forms() -> None:
    assert (parse_listen("1080").bind, parse_listen("1080").local_port) == ("127.0.0.1", 1080)
    assert parse_listen("*:1080").bind == "0.0.0.0"
    assert parse_listen("[::1]:0").bind == "::1"
    assert parse_listen("localhost:1080").bind_explicit
    for bad in ("", "x", ":1080", "::1:1080", "[::1]1080", "1080:", "70000", " 1"):
        with pytest.raises(UsageError):
            parse_listen(bad)


def test_target_and_port_in_either_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSMSH_TARGET", raising=False)
    target, spec = target_and_listen(_parse("socks", "web-1", "1080"))
    assert (target, spec.local_port) == ("web-1", 1080)
    target, spec = target_and_listen(_parse("socks", "1080", "web-1"))
    assert (target, spec.local_port) == ("web-1", 1080)
    with pytest.raises(UsageError, match="no target"):
        target_and_listen(_parse("socks", "1080"))


async def test_not_socks5_clients_are_turned_away(monkeypatch: pytest.MonkeyPatch) -> None:
    async with emulator() as emu:
        args = parse_cli(emu, "socks", TARGET, "0", "-v")
        async with RunningSocks(args, monkeypatch) as proxy:
            port = await proxy_port(proxy)
            async with asyncio.timeout(scaled(10)):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET / HTTP/1.1\r\n\r\n")
                assert await reader.read() == b""
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"\x04\x01\x00\x50\x7f\x00\x00\x01user\x00")  # SOCKS4 CONNECT
                assert await reader.read() == b"\x00\x5b" + bytes(6)
                writer.close()
            await proxy.wait_line("SOCKS4 is not supported")
            assert emu.state.sessions == {}  # nothing was started for them


async def test_forward_dynamic_does_not_take_specs(monkeypatch: pytest.MonkeyPatch) -> None:
    from ssmsh.cli import forward as forward_cli

    args = _parse("forward", TARGET, "8080:80", "-D", "1080")
    fwd = RunningForward(args, monkeypatch)
    with pytest.raises(UsageError, match="-D does not combine with SPECs"):
        await forward_cli.forward(args, fwd.reporter)


def test_reply_codes_for_start_failures() -> None:
    from ssmsh.exceptions import AwsError, HandshakeError
    from ssmsh.tunnel.socks import reply_for

    assert reply_for(AwsError("no", "AccessDeniedException")) == Reply.NOT_ALLOWED
    assert reply_for(AwsError("bad host", "InvalidParameters")) == Reply.NOT_ALLOWED
    assert reply_for(AwsError("offline", "TargetNotConnected")) == Reply.NETWORK_UNREACHABLE
    assert reply_for(AwsError("slow down", "ThrottlingException")) == Reply.GENERAL_FAILURE
    assert reply_for(HandshakeError("mute agent")) == Reply.GENERAL_FAILURE
