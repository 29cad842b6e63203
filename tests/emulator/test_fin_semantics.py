"""The emulated port agent's handling of the end of one direction (smux FIN).

``EmulatorConfig.agent_fin`` / ``ssmsh emulator --agent-fin``: "half-close" keeps
TCP semantics; "close" does what amazon-ssm-agent does (the first end of data
either way closes the whole destination connection). Everything runs through the
real client path: ``ssmsh forward`` in-process against an emulator, real sockets
on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ssmsh.cli.main import build_parser
from ssmsh.emulator import EmulatorConfig
from ssmsh.emulator.cli import build_config, configure_parser
from ssmsh.protocol.constants import PayloadType
from tests.conftest import scaled
from tests.emulator.dcclient import DCClient, gateway_for, make_session
from tests.emulator.test_cli import start
from tests.tunnel.conftest import RunningForward, aws_test_env, emulator, parse_cli
from tests.tunnel.helpers import Handler, pattern, script_server

TARGET = "i-0123456789abcdef0"
MODES = ("half-close", "close")
RESET = b"<reset>"

__all__ = ["aws_test_env"]  # autouse: signing credentials for the emulator


@contextlib.asynccontextmanager
async def forwarding(
    monkeypatch: pytest.MonkeyPatch, mode: str, handler: Handler
) -> AsyncIterator[int]:
    """An emulator with ``agent_fin=mode``, a destination server, ``ssmsh forward`` to it."""
    config = EmulatorConfig(agent_fin="close" if mode == "close" else "half-close")
    async with emulator(config) as emu, script_server(handler) as dest:
        args = parse_cli(emu, "forward", TARGET, f"0:{dest}")
        async with RunningForward(args, monkeypatch) as fwd:
            (port,) = await fwd.ports()
            async with asyncio.timeout(scaled(5)):
                yield port


async def read_to_end(reader: asyncio.StreamReader) -> bytes:
    """Everything until EOF; ``RESET`` appended if the connection was reset instead."""
    parts = []
    try:
        while data := await reader.read(1 << 16):
            parts.append(data)
    except ConnectionResetError:
        parts.append(RESET)
    return b"".join(parts)


# ------------------------------------------------------- (a) request/response

BODY = pattern(200_000, 7)
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("mode", MODES)
async def test_response_before_client_eof_works(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """Keep-alive HTTP: the answer comes on the request; the client closes once it has it."""
    after: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.readuntil(b"\r\n\r\n") == REQUEST
        writer.write(RESPONSE)
        await writer.drain()
        after.set_result(await read_to_end(reader))  # the client's EOF, nothing more
        writer.close()

    async with forwarding(monkeypatch, mode, server) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(REQUEST)
        assert await reader.readexactly(len(RESPONSE)) == RESPONSE
        writer.write_eof()
        assert await read_to_end(reader) == b""
        assert await after == b""
        writer.close()


@pytest.mark.parametrize("mode", MODES)
async def test_server_closing_after_its_answer_works(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """HTTP/1.0 style: the server answers and closes; the client reads to the end."""

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(RESPONSE)
        await writer.drain()
        writer.close()

    async with forwarding(monkeypatch, mode, server) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(REQUEST)
        assert await read_to_end(reader) == RESPONSE
        writer.close()


# ------------------------------------------------ (b) the client half-closes


async def half_close_exchange(port: int, request: bytes) -> bytes:
    """Send ``request``, shut down writing, read the answer until EOF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    writer.write_eof()
    answer = await read_to_end(reader)
    writer.close()
    return answer


def answer_after_eof(received: asyncio.Future[int]) -> Handler:
    """A server that reads the request until EOF and only then answers ``len=N``."""

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.read()
        received.set_result(len(request))
        writer.write(b"len=%d" % len(request))
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    return server


@pytest.mark.parametrize("mode", MODES)
async def test_answer_after_client_eof(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    received: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    async with forwarding(monkeypatch, mode, answer_after_eof(received)) as port:
        answer = await half_close_exchange(port, b"q" * 50_000)
        # The whole request reached the server, followed by the end of data, either way.
        assert await received == 50_000
    if mode == "half-close":
        assert answer == b"len=50000"
    else:
        # The real agent closed the destination connection on the client's FIN, so the
        # answer written afterwards went nowhere: the client sees a clean EOF, no data.
        assert answer == b""


# ------------------------------------------- the destination half-closes first


@pytest.mark.parametrize("mode", MODES)
async def test_client_data_after_server_eof(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    rest: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"bye")
        writer.write_eof()  # done talking, still listening
        rest.set_result(await read_to_end(reader))
        writer.close()

    async with forwarding(monkeypatch, mode, server) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await read_to_end(reader) == b"bye"
        writer.write(b"late")
        writer.write_eof()
        # half-close: our direction was still open; close: the agent closed the
        # destination connection when the server's data ended, "late" was dropped.
        assert await rest == (b"late" if mode == "half-close" else b"")
        writer.close()


# ------------------------------------------------ basic and stdio: no half-close


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("variant", ["basic", "stdio"])
async def test_basic_and_stdio_close_when_the_destination_ends(mode: str, variant: str) -> None:
    """As in the real agent, whatever ``agent_fin`` says: the destination's end of data
    closes the whole connection (basic: the next data dials again; stdio: the session
    ends), so nothing the client sends later reaches the old connection."""
    rests: list[asyncio.Future[bytes]] = []

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rest: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        rests.append(rest)
        writer.write(b"bye")
        writer.write_eof()  # done talking, still listening
        rest.set_result(await read_to_end(reader))
        writer.close()

    config = EmulatorConfig(agent_fin="close" if mode == "close" else "half-close")
    async with gateway_for(config) as gateway, script_server(server) as dest:
        properties: dict[str, Any] = {"portNumber": str(dest), "host": "127.0.0.1"}
        if variant == "basic":
            properties["type"] = "LocalPortForwarding"
        session = make_session(gateway.state, "Port", properties=properties, gateway=gateway)
        # An old ClientVersion gets basic mode; stdio ignores it.
        client = DCClient(session, client_version="1.1.0")
        await client.connect()
        try:
            await client.wait_output(b"bye")
            async with asyncio.timeout(scaled(5)):
                assert await rests[0] == b""  # closed by the agent, not half-closed
            if variant == "stdio":
                assert (await client.wait_closed()).output == ""
            else:
                client.send(PayloadType.OUTPUT, b"late")
                await client.wait_for(lambda: len(rests) == 2)  # a new connection
                assert client.channel_closed is None
        finally:
            await client.close()


# ------------------------------------------------------------------ (c) CLI


def test_cli_flag_parses_into_the_config() -> None:
    def config(*argv: str) -> EmulatorConfig:
        return build_config(configure_parser(argparse.ArgumentParser()).parse_args(argv))

    assert config().agent_fin == "close"  # the official agent's behaviour
    assert config("--agent-fin", "close").agent_fin == "close"
    assert config("--agent-fin", "half-close").agent_fin == "half-close"
    with pytest.raises(SystemExit) as exc_info:
        config("--agent-fin", "sometimes")
    assert exc_info.value.code == 2
    with pytest.raises(ValueError, match="agent_fin must be one of half-close, close"):
        EmulatorConfig(agent_fin="sometimes")  # type: ignore[arg-type]


async def test_cli_flag_reaches_the_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    """``python -m ssmsh.emulator.cli --agent-fin close`` behaves like the real agent."""
    received: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    running = await asyncio.to_thread(start, "--agent-fin", "close")
    try:
        async with script_server(answer_after_eof(received)) as dest:
            argv = ["--endpoint-url", running.url, "forward", TARGET, f"0:{dest}"]
            async with RunningForward(build_parser().parse_args(argv), monkeypatch) as fwd:
                (port,) = await fwd.ports()
                async with asyncio.timeout(scaled(5)):
                    assert await half_close_exchange(port, b"hello") == b""
                    assert await received == 5
    finally:
        code, err = await asyncio.to_thread(running.stop, signal.SIGTERM)
    assert code == 0
    assert "Traceback" not in err
