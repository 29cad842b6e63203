"""``ssmsh forward`` through the emulator: real WebSockets, real agent code, real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import stat
from pathlib import Path

import pytest

from ssmsh.cli.errors import EXIT_FAILURE
from ssmsh.emulator import EmulatorConfig
from ssmsh.emulator.config import AgentFin
from ssmsh.protocol.constants import Flag
from ssmsh.tunnel.spec import DOCUMENT_PORT, DOCUMENT_REMOTE_HOST
from tests.conftest import bulk_config, scaled

from .conftest import RunningForward, emulator, parse_cli
from .helpers import (
    echo_server,
    exchange,
    free_port,
    pattern,
    script_server,
    send_all_and_read,
)

TARGET = "i-0123456789abcdef0"

#: The data tests run with both ends of data an agent may implement: the
#: emulator's default half-close, and the real agent's close (EmulatorConfig.agent_fin).
#: Their clients read everything back before closing, so both must pass.
both_fin_modes = pytest.mark.parametrize("agent_fin", ["half-close", "close"])


@both_fin_modes
async def test_64_mib_each_way_on_one_connection(
    monkeypatch: pytest.MonkeyPatch, agent_fin: AgentFin
) -> None:
    payload = pattern(64 * 1024 * 1024, 64)
    async with emulator(bulk_config(agent_fin=agent_fin)) as emu, echo_server() as dest:
        args = parse_cli(emu, "forward", TARGET, f"0:{dest}")
        async with RunningForward(args, monkeypatch) as fwd:
            (port,) = await fwd.ports()
            async with asyncio.timeout(scaled(40)):
                echoed = await exchange("127.0.0.1", port, payload, chunk=1 << 18)
    assert len(echoed) == len(payload)
    assert hashlib.sha256(echoed).hexdigest() == hashlib.sha256(payload).hexdigest()


@both_fin_modes
async def test_200_concurrent_connections_all_intact(
    monkeypatch: pytest.MonkeyPatch, agent_fin: AgentFin
) -> None:
    payloads = [pattern(2000 + 131 * i, 1000 + i) for i in range(200)]
    async with emulator(bulk_config(agent_fin=agent_fin)) as emu, echo_server() as dest:
        args = parse_cli(emu, "forward", TARGET, f"0:{dest}")
        async with RunningForward(args, monkeypatch) as fwd:
            (port,) = await fwd.ports()
            async with asyncio.timeout(scaled(30)):
                results = await asyncio.gather(
                    *(exchange("127.0.0.1", port, p, chunk=8192) for p in payloads)
                )
            sessions = emu.state.active_sessions()
    assert results == payloads
    assert len(sessions) == 1  # one session, 200 smux streams


async def test_refused_port_fails_one_connection_listener_stays_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dead = free_port()
    async with emulator() as emu, echo_server() as dest:
        args = parse_cli(emu, "forward", TARGET, f"0:{dead}", f"0:{dest}", "-v")
        async with RunningForward(args, monkeypatch) as fwd:
            refused_port, good_port = await fwd.ports(2)
            await fwd.ready(2)
            for attempt in range(2):  # the listener survives the first refusal
                reader, writer = await asyncio.open_connection("127.0.0.1", refused_port)
                writer.write(b"hello?")
                async with asyncio.timeout(scaled(5)):
                    with contextlib.suppress(ConnectionResetError):
                        assert await reader.read() == b""
                writer.close()
                await fwd.wait_line(f"#{attempt + 1}: the agent could not connect to localhost:")
            # The other forward, in its own session, was never disturbed.
            async with asyncio.timeout(scaled(5)):
                assert await exchange("127.0.0.1", good_port, b"fine") == b"fine"
            assert fwd.task is not None and not fwd.task.done()


async def test_half_close_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.readexactly(1)
        if first == b"Q":  # request until EOF, then the answer
            request = await reader.read()
            writer.write(b"len=%d" % len(request))
            writer.close()
        else:  # banner, EOF, then keep listening
            writer.write(b"bye")
            writer.write_eof()
            rest = await reader.read()
            assert rest == b"late"
            writer.close()

    # Half-close is a divergence from the official agent (which closes the connection).
    config = EmulatorConfig(agent_fin="half-close")
    async with emulator(config) as emu, script_server(server) as dest:
        args = parse_cli(emu, "forward", TARGET, f"0:{dest}")
        async with RunningForward(args, monkeypatch) as fwd:
            (port,) = await fwd.ports()
            async with asyncio.timeout(scaled(10)):
                assert await send_all_and_read("127.0.0.1", port, b"Q" + b"z" * 50_000) == (
                    b"len=50000"
                )
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"B")
                assert await reader.read() == b"bye"  # the server's EOF came through...
                writer.write(b"late")  # ...and our direction is still open
                writer.write_eof()
                await asyncio.sleep(0.1)
                writer.close()


@both_fin_modes
async def test_stalled_local_reader_loses_nothing(
    monkeypatch: pytest.MonkeyPatch, agent_fin: AgentFin
) -> None:
    big = pattern(24 * 1024 * 1024, 5)

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.readexactly(1)
        if first == b"S":
            writer.write(big)
            await writer.drain()
        else:
            writer.write(first)
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async with emulator(bulk_config(agent_fin=agent_fin)) as emu, script_server(server) as dest:
        args = parse_cli(emu, "forward", TARGET, f"0:{dest}")
        async with RunningForward(args, monkeypatch) as fwd:
            (port,) = await fwd.ports()
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            slow_reader, slow_writer = await asyncio.open_connection(sock=sock, limit=1024)
            slow_writer.write(b"S")
            await asyncio.sleep(1.0)  # not reading: buffers fill, the session holds back
            async with asyncio.timeout(scaled(20)):
                received = bytearray()
                while data := await slow_reader.read(1 << 18):
                    received += data
            assert hashlib.sha256(received).digest() == hashlib.sha256(big).digest()
            slow_writer.close()
            async with asyncio.timeout(scaled(5)):
                assert await exchange("127.0.0.1", port, b"Eok") == b"Eok"


async def test_localport_zero_is_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    async with emulator() as emu, echo_server() as dest:
        args = parse_cli(emu, "forward", TARGET, f"0:{dest}")
        async with RunningForward(args, monkeypatch) as fwd:
            (address,) = await fwd.addresses()
            host, port = address.rsplit(":", 1)
            assert host == "127.0.0.1" and int(port) > 0
            assert await exchange(host, int(port), b"zero") == b"zero"
        assert fwd.lines[0] == f"listening on 127.0.0.1:{port} for localhost:{dest}"


async def test_unix_socket_0600_and_removed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = str(tmp_path / "tunnel.sock")
    async with emulator() as emu, echo_server() as dest:
        args = parse_cli(emu, "forward", TARGET, f"{path}:{dest}")
        async with RunningForward(args, monkeypatch) as fwd:
            await fwd.addresses()
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            assert await exchange(None, path, b"unix") == b"unix"
            assert await fwd.stop() is None
        assert not os.path.exists(path)
        session = next(iter(emu.state.sessions.values()))
        assert session.document_name == DOCUMENT_PORT
        assert session.ended


async def test_remote_host_document(monkeypatch: pytest.MonkeyPatch) -> None:
    async with emulator() as emu, echo_server() as dest:
        args = parse_cli(emu, "forward", TARGET, f"0:127.0.0.1:{dest}")
        async with RunningForward(args, monkeypatch) as fwd:
            (port,) = await fwd.ports()
            assert await exchange("127.0.0.1", port, b"via host") == b"via host"
        (session,) = emu.state.sessions.values()
        assert session.document_name == DOCUMENT_REMOTE_HOST
        assert session.parameters["host"] == ["127.0.0.1"]
        assert session.parameters["portNumber"] == [str(dest)]
        assert session.parameters["localPortNumber"] == [str(port)]


async def test_non_loopback_bind_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    async with emulator() as emu, echo_server() as dest:
        args = parse_cli(emu, "forward", TARGET, f"0.0.0.0:0:{dest}")
        async with RunningForward(args, monkeypatch) as fwd:
            (port,) = await fwd.ports()
            await fwd.wait_line(f"warning: 0.0.0.0:{port} accepts connections from other")


async def test_basic_mode_for_old_agents(monkeypatch: pytest.MonkeyPatch) -> None:
    from ssmsh.emulator.agent import port as port_plugin

    # An agent this old has no smux at all (the emulator picks by client version only).
    monkeypatch.setattr(port_plugin, "client_supports_smux", lambda version: False)
    payload = pattern(2 * 1024 * 1024, 11)
    async with emulator(EmulatorConfig(agent_version="3.0.196.0")) as emu, echo_server() as dest:
        args = parse_cli(emu, "forward", TARGET, f"0:{dest}", "-v")
        async with RunningForward(args, monkeypatch) as fwd:
            (port,) = await fwd.ports()
            await fwd.wait_line(r"ready \(basic, agent 3\.0\.196\.0\)")
            for _ in range(2):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(payload)
                async with asyncio.timeout(scaled(15)):
                    assert await reader.readexactly(len(payload)) == payload
                writer.close()
                await fwd.wait_line("closed after")


async def test_stop_sends_terminate_session_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    from ssmsh.emulator.agent import port_common, port_mux
    from ssmsh.emulator.agent.plugin import PluginHost

    flags: list[int | None] = []
    # port_mux calls port_common.handle_flag under its own name: the patch goes on port_mux.
    original = port_common.handle_flag

    def record(host: PluginHost, payload: bytes) -> int | None:
        flags.append(int.from_bytes(payload, "big"))
        return original(host, payload)

    monkeypatch.setattr(port_mux, "handle_flag", record)
    async with emulator() as emu, echo_server() as dest:
        args = parse_cli(emu, "forward", TARGET, f"0:{dest}", "-v")
        async with RunningForward(args, monkeypatch) as fwd:
            await fwd.ready()
            await fwd.stop()
        assert flags == [Flag.TERMINATE_SESSION]
        (session,) = emu.state.sessions.values()
        assert session.ended


@pytest.mark.parametrize("persist", [[], ["--persist"]], ids=["", "persist"])
async def test_dead_agent_is_detected_and_reported(
    monkeypatch: pytest.MonkeyPatch, persist: list[str]
) -> None:
    # --persist replaces only sessions that the remote end closed, not a dead agent's.
    async with emulator() as emu, echo_server() as dest:
        argv = [f"0:{dest}", "--agent-timeout", "1", "-v", *persist]
        args = parse_cli(emu, "forward", TARGET, *argv)
        async with RunningForward(args, monkeypatch) as fwd:
            (port,) = await fwd.ports()
            await fwd.ready()
            emu.faults.stop_acking = True  # the agent goes quiet; the link stays up
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"anyone?")
            await fwd.wait_line("the agent stopped responding", timeout=15)
            assert fwd.task is not None
            assert await asyncio.wait_for(fwd.task, scaled(10)) == EXIT_FAILURE
            writer.close()


async def test_session_closed_remotely_ends_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    async with emulator() as emu, echo_server() as dest:
        args = parse_cli(emu, "forward", TARGET, f"0:{dest}", "-v")
        async with RunningForward(args, monkeypatch) as fwd:
            await fwd.ready()
            (session,) = emu.state.sessions.values()
            await emu.state.terminate_session(session.session_id, "terminated by an admin")
            await fwd.wait_line(f"session {session.session_id} ended")
            assert fwd.task is not None
            assert await asyncio.wait_for(fwd.task, scaled(10)) == EXIT_FAILURE


@both_fin_modes
async def test_transfer_survives_websocket_reconnects(
    monkeypatch: pytest.MonkeyPatch, agent_fin: AgentFin
) -> None:
    from ssmsh.emulator.faults import FaultConfig

    payload = pattern(24 * 1024 * 1024, 77)
    config = bulk_config(faults=FaultConfig(close_every=0.15), agent_fin=agent_fin)
    async with emulator(config) as emu, echo_server() as dest:
        args = parse_cli(emu, "forward", TARGET, f"0:{dest}")
        async with RunningForward(args, monkeypatch) as fwd:
            (port,) = await fwd.ports()
            async with asyncio.timeout(scaled(40)):
                # 1 MiB every 40 ms: the transfer outlasts several 150 ms links on any machine.
                echoed = await exchange("127.0.0.1", port, payload, chunk=1 << 20, pause=0.04)
            assert emu.faults.counters["closed"] >= 3
    assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()


async def test_persist_starts_a_new_session_after_an_idle_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = EmulatorConfig(idle_timeout=0.5)
    async with emulator(config) as emu, echo_server() as dest:
        args = parse_cli(emu, "forward", TARGET, f"0:{dest}", "--persist")
        async with RunningForward(args, monkeypatch) as fwd:
            (port,) = await fwd.ports()
            async with asyncio.timeout(scaled(10)):
                assert await exchange("127.0.0.1", port, b"first") == b"first"
            await fwd.wait_line("the next connection starts a new one")  # idle: ended
            first, *others = emu.state.sessions.values()
            assert first.ended and others == []  # no session until someone connects
            async with asyncio.timeout(scaled(10)):
                assert await exchange("127.0.0.1", port, b"second") == b"second"
            await fwd.wait_line("new session ")
            assert fwd.task is not None and not fwd.task.done()
            first, second = emu.state.sessions.values()
            assert first.session_id in "\n".join(fwd.lines)
            assert f"new session {second.session_id}" in fwd.lines[-1]
