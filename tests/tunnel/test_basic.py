"""Basic (single-connection) forwarding over an in-memory channel to a basic agent."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import pytest

from ssmsh.protocol.constants import Flag
from ssmsh.tunnel.basic import BasicTunnel
from ssmsh.tunnel.forwarder import ConnectionLog
from tests.conftest import scaled

from .helpers import BasicAgent, MemoryLink, echo_server, pattern, script_server


class BasicRig:
    def __init__(self, dest: int) -> None:
        self.link = MemoryLink()
        self.agent = BasicAgent(self.link.agent, dest)
        self.lines: list[str] = []
        self.tunnel = BasicTunnel(self.link.client, ConnectionLog("basic", self.lines.append, True))
        self.port = 0

    async def __aenter__(self) -> BasicRig:
        self.tasks = [asyncio.create_task(self.agent.run()), asyncio.create_task(self.tunnel.run())]
        self.server = await asyncio.start_server(self.tunnel.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        self.tunnel.abort_all()
        self.link.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture
async def banner_dest() -> AsyncIterator[int]:
    async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-test\r\n")
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async with script_server(banner) as port:
        yield port


async def exchange(port: int, payload: bytes, expect: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    data = b""
    while len(data) < expect:
        chunk = await reader.read(65536)
        if not chunk:
            break
        data += chunk
    writer.close()
    return data


async def test_banner_before_first_connection_is_kept(banner_dest: int) -> None:
    async with BasicRig(banner_dest) as rig:
        await asyncio.sleep(0.05)  # the banner arrives before anyone connects
        async with asyncio.timeout(scaled(5)):
            data = await exchange(rig.port, b"ping", 18)
    assert data == b"SSH-2.0-test\r\nping"


async def test_connections_are_served_one_after_another() -> None:
    async with echo_server() as dest, BasicRig(dest) as rig:
        first_r, first_w = await asyncio.open_connection("127.0.0.1", rig.port)
        first_w.write(b"one")
        assert await asyncio.wait_for(first_r.readexactly(3), scaled(5)) == b"one"
        second = asyncio.create_task(exchange(rig.port, b"two", 3))
        await asyncio.sleep(0.1)
        assert not second.done()  # waits for the first connection
        assert any("waiting; basic mode" in line for line in rig.lines)
        first_w.close()
        assert await asyncio.wait_for(second, scaled(5)) == b"two"
        await asyncio.sleep(0.05)
        assert rig.agent.flags == [Flag.DISCONNECT_TO_PORT, Flag.DISCONNECT_TO_PORT]
        assert rig.agent.dials == 2


async def test_large_transfer_intact() -> None:
    payload = pattern(4 << 20, 9)
    async with echo_server() as dest, BasicRig(dest) as rig:
        async with asyncio.timeout(scaled(15)):
            reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
            writer.write(payload)
            data = await reader.readexactly(len(payload))
            writer.close()
    assert hashlib.sha256(data).digest() == hashlib.sha256(payload).digest()
