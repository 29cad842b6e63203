"""Port sessions end to end: basic, multiplexed (smux) and stdio, against real TCP servers."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

from ssmsh.emulator.agent.port import BasicPortPlugin
from ssmsh.emulator.agent.port_mux import MuxPortPlugin
from ssmsh.emulator.config import EmulatorConfig
from ssmsh.emulator.gateway import Gateway
from ssmsh.emulator.state import DEFAULT_TARGET, SessionStatus
from ssmsh.protocol.constants import Flag, PayloadType
from ssmsh.protocol.payloads import encode_flag
from ssmsh.protocol.smux import SmuxSession, StreamData, StreamFinished
from tests.emulator.dcclient import DCClient, gateway, gateway_for, make_session

__all__ = ["gateway"]


class EchoServer:
    """A TCP echo server on 127.0.0.1 that counts connections.

    With ``until_eof`` it reads everything first and answers after the client's EOF
    (so it only works if half-close reaches it), then closes.
    """

    def __init__(self, until_eof: bool = False) -> None:
        self.until_eof = until_eof
        self.connections = 0
        self.closed = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            if self.until_eof:
                data = await reader.read()
                writer.write(data)
                await writer.drain()
            else:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            self.closed += 1
            writer.close()

    async def __aenter__(self) -> EchoServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def port_properties(port: int, kind: str | None = "LocalPortForwarding") -> dict[str, Any]:
    props: dict[str, Any] = {"portNumber": str(port), "localPortNumber": "0", "host": "127.0.0.1"}
    if kind is not None:
        props["type"] = kind
    return props


class MuxClient:
    """The client end of smux over a DCClient."""

    def __init__(self, client: DCClient) -> None:
        self.client = client
        self.smux = SmuxSession(client=True)
        self.data: dict[int, bytearray] = {}
        self.finished: set[int] = set()
        self.flags: list[int] = []
        self._seen = 0

    def _poll(self) -> None:
        for event in self.client.payloads[self._seen :]:
            if event.payload_type == PayloadType.OUTPUT:
                self.smux.receive_data(event.payload, 0.0)
            elif event.payload_type == PayloadType.FLAG:
                self.flags.append(int.from_bytes(event.payload, "big"))
        self._seen = len(self.client.payloads)
        for smux_event in self.smux.events_received():
            if isinstance(smux_event, StreamData):
                self.data.setdefault(smux_event.stream_id, bytearray()).extend(smux_event.data)
            elif isinstance(smux_event, StreamFinished):
                self.finished.add(smux_event.stream_id)

    def _flush(self) -> None:
        out = self.smux.data_to_send()
        for start in range(0, len(out), 1024):  # the official client's message size
            self.client.send(PayloadType.OUTPUT, out[start : start + 1024])

    def open(self) -> int:
        stream_id = self.smux.open_stream()
        self._flush()
        return stream_id

    def send(self, stream_id: int, data: bytes) -> None:
        self.smux.send(stream_id, data)
        self._flush()

    def close(self, stream_id: int) -> None:
        self.smux.close_stream(stream_id)
        self._flush()

    async def wait(self, predicate: Any, timeout: float = 10.0) -> None:
        def check() -> bool:
            self._poll()
            return bool(predicate())

        await self.client.wait_for(check, timeout)


@contextlib.asynccontextmanager
async def port_client(
    gateway: Gateway, properties: dict[str, Any], client_version: str | None = None
) -> AsyncIterator[DCClient]:
    session = make_session(gateway.state, "Port", properties=properties, gateway=gateway)
    client = (
        DCClient(session)
        if client_version is None
        else DCClient(session, client_version=client_version)
    )
    await client.connect()
    await client.wait_ready()
    try:
        yield client
    finally:
        await client.close()


# ------------------------------------------------------------------------- mux


async def test_mux_streams_echo_concurrently(gateway: Gateway) -> None:
    async with EchoServer() as server, port_client(gateway, port_properties(server.port)) as client:
        agent = gateway.agent(client.session.session_id)
        assert agent is not None and isinstance(agent.plugin, MuxPortPlugin)
        assert not agent.plugin.keepalive  # ClientVersion > 1.2.331.0
        mux = MuxClient(client)
        blobs = {mux.open(): os.urandom(200_000) for _ in range(3)}
        for stream_id, blob in blobs.items():
            mux.send(stream_id, blob)
        await mux.wait(lambda: all(len(mux.data.get(s, b"")) == len(b) for s, b in blobs.items()))
        for stream_id, blob in blobs.items():
            assert hashlib.sha256(mux.data[stream_id]).digest() == hashlib.sha256(blob).digest()
        assert server.connections == 3
        # Closing a stream closes its TCP connection; the echo server closes back.
        for stream_id in blobs:
            mux.close(stream_id)
        await mux.wait(lambda: mux.finished >= set(blobs))
        assert [s for s in blobs] == [3, 5, 7]


async def test_mux_half_close_reaches_the_destination() -> None:
    # Half-close is the emulator's divergence from the official agent, asked for here.
    async with (
        gateway_for(EmulatorConfig(agent_fin="half-close")) as half_closing,
        EchoServer(until_eof=True) as server,
        port_client(half_closing, port_properties(server.port)) as client,
    ):
        mux = MuxClient(client)
        stream_id = mux.open()
        mux.send(stream_id, b"request body")
        mux.close(stream_id)  # FIN: the server only answers after EOF
        await mux.wait(lambda: stream_id in mux.finished)
        assert bytes(mux.data[stream_id]) == b"request body"


async def test_mux_refused_port_sends_connect_to_port_error(gateway: Gateway) -> None:
    async with port_client(gateway, port_properties(closed_port())) as client:
        mux = MuxClient(client)
        stream_id = mux.open()
        await mux.wait(lambda: mux.flags and stream_id in mux.finished)
        assert mux.flags == [Flag.CONNECT_TO_PORT_ERROR]
        flag_frames = [m for m in client.agent_data_frames() if m.payload_type == PayloadType.FLAG]
        assert [m.payload for m in flag_frames] == [b"\x00\x00\x00\x03"]
        # The session is still alive: a later stream still gets its own answer.
        assert client.channel_closed is None


async def test_old_client_gets_smux_keepalive(gateway: Gateway) -> None:
    async with (
        EchoServer() as server,
        port_client(gateway, port_properties(server.port), client_version="1.2.0.0") as client,
    ):
        agent = gateway.agent(client.session.session_id)
        assert agent is not None and isinstance(agent.plugin, MuxPortPlugin)
        assert agent.plugin.keepalive


async def test_agent_too_old_for_smux_runs_basic(gateway: Gateway) -> None:
    # The official plugin only multiplexes with agents newer than 3.0.196.0, so an
    # emulated agent that reports such a version must run basic forwarding too.
    gateway.state.targets[DEFAULT_TARGET].agent_version = "3.0.161.0"
    async with EchoServer() as server, port_client(gateway, port_properties(server.port)) as client:
        (request,) = client.handshake_requests
        assert request.agent_version == "3.0.161.0"
        agent = gateway.agent(client.session.session_id)
        assert agent is not None and isinstance(agent.plugin, BasicPortPlugin)
        # Not smux: raw bytes go to the destination and come back as they are.
        client.send(PayloadType.OUTPUT, b"plain bytes")
        await client.wait_output(b"plain bytes")
        assert client.channel_closed is None


async def test_terminate_session_flag_ends_the_session(gateway: Gateway) -> None:
    async with EchoServer() as server, port_client(gateway, port_properties(server.port)) as client:
        client.send(PayloadType.FLAG, encode_flag(Flag.TERMINATE_SESSION))
        closed = await client.wait_closed()
        assert closed.output == ""
        assert client.session.status == SessionStatus.TERMINATED


async def test_port_handshake_has_no_kms_and_sorted_properties(gateway: Gateway) -> None:
    props = port_properties(closed_port())
    session = make_session(
        gateway.state, "Port", properties=props, kms_key_id="alias/port-key", gateway=gateway
    )
    client = DCClient(session)
    await client.connect()
    await client.wait_ready()
    (request,) = client.handshake_requests
    assert [a.action_type for a in request.requested_actions] == ["SessionType"]
    params = request.requested_actions[0].action_parameters
    assert params["SessionType"] == "Port"
    assert list(params["Properties"]) == sorted(props)
    assert client.handshake_complete is not None
    assert client.handshake_complete.customer_message == ""
    await client.close()


# ----------------------------------------------------------------------- basic


async def test_basic_mode_for_old_clients_and_disconnect_to_port(gateway: Gateway) -> None:
    async with (
        EchoServer() as server,
        port_client(gateway, port_properties(server.port), client_version="1.1.0") as client,
    ):
        agent = gateway.agent(client.session.session_id)
        assert agent is not None and isinstance(agent.plugin, BasicPortPlugin)
        client.send(PayloadType.OUTPUT, b"first connection")
        await client.wait_output(b"first connection")
        assert server.connections == 1
        client.send(PayloadType.FLAG, encode_flag(Flag.DISCONNECT_TO_PORT))
        await client.wait_for(lambda: server.closed == 1)
        client.send(PayloadType.OUTPUT, b"+second")
        await client.wait_output(b"first connection+second")
        assert server.connections == 2
        assert client.channel_closed is None


async def test_basic_mode_reconnects_after_the_destination_closes(gateway: Gateway) -> None:
    async with (
        EchoServer(until_eof=True) as server,
        port_client(gateway, port_properties(server.port), client_version="1.1.0") as client,
    ):
        agent = gateway.agent(client.session.session_id)
        assert agent is not None and isinstance(agent.plugin, BasicPortPlugin)
        # This server never answers before EOF: closing the connection from the
        # agent side (DisconnectToPort) is what makes it echo and close.
        client.send(PayloadType.OUTPUT, b"ping")
        client.send(PayloadType.FLAG, encode_flag(Flag.DISCONNECT_TO_PORT))
        await client.wait_for(lambda: server.closed == 1)
        client.send(PayloadType.OUTPUT, b"again")
        await client.wait_for(lambda: server.connections == 2)
        assert agent.plugin.connections == 2


async def test_basic_refused_port_ends_the_session(gateway: Gateway) -> None:
    session = make_session(
        gateway.state,
        "Port",
        properties=port_properties(closed_port()),
        gateway=gateway,
    )
    client = DCClient(session, client_version="1.1.0")
    await client.connect()
    closed = await client.wait_closed()
    assert closed.output.startswith("Unable to connect to specified port: ")
    await client.close()


# ----------------------------------------------------------------------- stdio


async def test_stdio_forwarding_ends_with_the_connection(gateway: Gateway) -> None:
    blob = os.urandom(300_000)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readexactly(len(blob))
        writer.write(request[::-1])
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        session = make_session(
            gateway.state, "Port", properties={"portNumber": str(port)}, gateway=gateway
        )
        client = DCClient(session)
        await client.connect()
        await client.wait_ready()
        agent = gateway.agent(session.session_id)
        assert agent is not None and isinstance(agent.plugin, BasicPortPlugin)
        assert not agent.plugin.reconnect
        for start in range(0, len(blob), 1024):
            client.send(PayloadType.OUTPUT, blob[start : start + 1024])
        # The destination answers and closes: a stdio session ends with it.
        closed = await client.wait_closed(timeout=20)
        assert bytes(client.output) == blob[::-1]
        assert closed.output == ""
        assert session.status == SessionStatus.TERMINATED
        await client.close()
    finally:
        server.close()
