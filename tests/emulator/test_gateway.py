"""The message gateway: OpenDataChannel, tokens, SigV4, bad frames, reconnects."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
import uuid

import pytest
import websockets
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from websockets.asyncio.client import connect

from ssmsh.emulator import DEFAULT_TARGET, Emulator
from ssmsh.emulator.agent.shell import ShellPlugin
from ssmsh.emulator.config import EmulatorConfig
from ssmsh.emulator.gateway import CLOSE_AUTH_FAILED, Gateway
from ssmsh.emulator.state import SessionStatus
from ssmsh.protocol.constants import CLIENT_VERSION, PayloadType
from ssmsh.protocol.message import ClientMessage
from ssmsh.protocol.payloads import OpenDataChannel
from tests.conftest import scaled
from tests.emulator.conftest import make_client
from tests.emulator.dcclient import DCClient, gateway, gateway_for, make_session

__all__ = ["gateway"]


def open_frame(token: str) -> str:
    return OpenDataChannel(str(uuid.uuid4()), token, str(uuid.uuid4()), CLIENT_VERSION).encode()


async def closed_with(url: str, first: str | bytes) -> tuple[int | None, str | None]:
    """Connect, send one frame, and report how the gateway closed the socket."""
    async with connect(url, ping_interval=None) as ws:
        await ws.send(first)
        async with asyncio.timeout(scaled(5)):
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await ws.recv()
        return ws.close_code, ws.close_reason


# ------------------------------------------------------------------ OpenDataChannel


async def test_bad_token_is_refused(gateway: Gateway) -> None:
    session = make_session(gateway.state, gateway=gateway)
    code, reason = await closed_with(session.stream_url, open_frame("not-the-token"))
    assert code == CLOSE_AUTH_FAILED
    assert reason == "Authentication failed: invalid token"
    assert gateway.agent(session.session_id) is None
    assert session.status == SessionStatus.CONNECTING


async def test_expired_token_is_refused(gateway: Gateway) -> None:
    session = make_session(gateway.state, gateway=gateway)
    token = gateway.state.issue_token(session, now=time.time() - 3600)
    code, reason = await closed_with(session.stream_url, open_frame(token))
    assert (code, reason) == (CLOSE_AUTH_FAILED, "Authentication failed: token expired")


async def test_token_of_another_session_is_refused(gateway: Gateway) -> None:
    one = make_session(gateway.state, gateway=gateway)
    other = make_session(gateway.state, gateway=gateway)
    assert other.token is not None
    code, _ = await closed_with(one.stream_url, open_frame(other.token))
    assert code == CLOSE_AUTH_FAILED


async def test_unknown_session_is_refused(gateway: Gateway) -> None:
    url = f"{gateway.url}/v1/data-channel/nobody-0123456789"
    code, reason = await closed_with(url, open_frame("x"))
    assert code == CLOSE_AUTH_FAILED
    assert reason is not None and "not found" in reason


async def test_first_frame_must_be_open_data_channel(gateway: Gateway) -> None:
    session = make_session(gateway.state, gateway=gateway)
    code, reason = await closed_with(session.stream_url, b"\x00\x01garbage")
    assert (code, reason) == (CLOSE_AUTH_FAILED, "Invalid OpenDataChannel message")
    code, _ = await closed_with(session.stream_url, '{"TokenValue": 42}')
    assert code == CLOSE_AUTH_FAILED


async def test_wrong_path_is_404(gateway: Gateway) -> None:
    with pytest.raises(websockets.InvalidStatus) as exc_info:
        async with connect(f"{gateway.url}/v1/control-channel/x"):
            pass
    assert exc_info.value.response.status_code == 404


# ------------------------------------------------------------------------ SigV4


def signed_headers(url: str, key: str, secret: str) -> dict[str, str]:
    request = AWSRequest(method="GET", url=url.replace("ws://", "http://", 1))
    SigV4Auth(Credentials(key, secret), "ssmmessages", "us-east-1").add_auth(request)
    return {k: v for k, v in request.headers.items() if k.lower() != "host"}


async def test_sigv4_signed_upgrade_is_verified() -> None:
    config = EmulatorConfig(shell="/bin/sh", credentials=("AKIDGATEWAY", "gateway-secret"))
    async with gateway_for(config) as gw:
        session = make_session(gw.state, gateway=gw)
        good = signed_headers(session.stream_url, "AKIDGATEWAY", "gateway-secret")
        client = DCClient(session)
        await client.connect(headers=good)
        client.send(PayloadType.OUTPUT, b"echo sig''ned\n")
        await client.wait_output(b"signed")
        await client.close()

        bad = signed_headers(session.stream_url, "AKIDGATEWAY", "wrong-secret")
        with pytest.raises(websockets.InvalidStatus) as exc_info:
            async with connect(session.stream_url, additional_headers=bad):
                pass
        assert exc_info.value.response.status_code == 403
        assert exc_info.value.response.headers["x-amzn-ErrorType"] == "InvalidSignatureException"

        unknown = signed_headers(session.stream_url, "AKIDOTHER", "gateway-secret")
        with pytest.raises(websockets.InvalidStatus) as exc_info:
            async with connect(session.stream_url, additional_headers=unknown):
                pass
        assert exc_info.value.response.status_code == 403


async def test_unsigned_upgrade_is_accepted_with_a_valid_token() -> None:
    config = EmulatorConfig(shell="/bin/sh", credentials=("AKIDGATEWAY", "gateway-secret"))
    async with gateway_for(config) as gw:
        session = make_session(gw.state, gateway=gw)
        client = DCClient(session)
        await client.connect()
        client.send(PayloadType.OUTPUT, b"echo un''signed\n")
        await client.wait_output(b"unsigned")
        await client.close()


# ------------------------------------------------------------------- bad frames


def corrupt_digest(frame: bytes) -> bytes:
    return frame[:-1] + bytes([frame[-1] ^ 0xFF])


async def test_garbage_and_bad_digests_are_dropped_and_the_session_goes_on(
    gateway: Gateway,
) -> None:
    session = make_session(gateway.state, gateway=gateway)
    client = DCClient(session)
    await client.connect()
    client.send(PayloadType.OUTPUT, b"echo fir''st\n")
    await client.wait_output(b"first")
    agent = gateway.agent(session.session_id)
    assert agent is not None

    client.send_raw(b"garbage that is not a message")
    client.send_raw(b"\x00" * 200)
    # A well-formed frame whose payload does not match its digest.
    forged = ClientMessage(
        "input_stream_data", 1, int(time.time() * 1000), 99, 0, uuid.uuid4(), 1, b"echo evil\n"
    ).encode()
    client.send_raw(corrupt_digest(forged))
    assert client.ws is not None
    await client.ws.send("a text frame after OpenDataChannel")
    client.send(PayloadType.OUTPUT, b"echo sec''ond\n")
    await client.wait_output(b"second")
    assert b"evil" not in client.output
    assert agent.channel.stats["dropped"] == 3
    assert gateway.agent(session.session_id) is agent
    await client.close()


# -------------------------------------------------------------------- reconnect


async def test_reconnect_with_a_resumed_token_keeps_the_agent_and_sequences(
    gateway: Gateway,
) -> None:
    state = gateway.state
    session = make_session(state, gateway=gateway)
    client = DCClient(session)
    await client.connect()
    client.send(PayloadType.OUTPUT, b"echo befo''re\n")
    await client.wait_output(b"before")
    agent = gateway.agent(session.session_id)
    last_seq = client.agent_data_frames()[-1].sequence_number

    # Output produced while nobody is connected must not be lost.
    client.send(PayloadType.OUTPUT, b"sleep 0.2; echo dur''ing-gap\n")
    await client.wait_for(lambda: client.channel.unacked == 0)
    await client.disconnect(abrupt=True)
    # The gateway notices the reset when its reader gets to it, not at once.
    await client.wait_for(lambda: not gateway.connected(session.session_id))
    assert session.status == SessionStatus.DISCONNECTED
    # Input typed while disconnected is queued by the client and retransmitted.
    client.send(PayloadType.OUTPUT, b"echo aft''er\n")
    await asyncio.sleep(scaled(0.4))

    old_token = session.token
    new_token = state.issue_token(session)
    assert old_token is not None
    code, _ = await closed_with(session.stream_url, open_frame(old_token))
    assert code == CLOSE_AUTH_FAILED

    await client.connect(token=new_token)
    await client.wait_output(b"during-gap")
    await client.wait_output(b"after")
    assert gateway.agent(session.session_id) is agent
    assert str(session.status) == SessionStatus.CONNECTED
    seqs = [m.sequence_number for m in client.agent_data_frames()]
    assert min(s for s in seqs if s > last_seq) == last_seq + 1
    assert client.handshake_requests == []
    await client.close()


async def test_a_new_connection_replaces_the_old_one(gateway: Gateway) -> None:
    session = make_session(gateway.state, gateway=gateway)
    assert session.token is not None
    client = DCClient(session)
    await client.connect()
    client.send(PayloadType.OUTPUT, b"echo one\n")
    await client.wait_output(b"one")
    agent = gateway.agent(session.session_id)
    async with connect(session.stream_url, ping_interval=None) as intruder:
        await intruder.send(open_frame(session.token))
        greeting = ClientMessage.decode(await intruder.recv())  # type: ignore[arg-type]
        assert greeting.message_type == "start_publication"
        await client.wait_disconnected()
        assert client.close_code == 1000
        assert gateway.connected(session.session_id)
        # ... and the original client takes the session back in turn.
        await client.connect()
        async with asyncio.timeout(scaled(5)):
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await intruder.recv()
        assert intruder.close_code == 1000
    client.send(PayloadType.OUTPUT, b"echo rep''laced\n")
    await client.wait_output(b"replaced")
    assert gateway.agent(session.session_id) is agent
    await client.close()


async def test_start_publication_greets_each_connection(gateway: Gateway) -> None:
    session = make_session(gateway.state, gateway=gateway)
    client = DCClient(session)
    await client.connect()
    await client.wait_for(lambda: bool(client.received))
    first = client.received[0]
    assert first is not None
    assert dataclasses.astuple(first)[:5] == ("start_publication", 1, first.created_date, 0, 3)
    await client.close()


# ------------------------------------------------- end to end with the SSM API


async def test_boto3_to_websocket_to_pty_and_back() -> None:
    async with Emulator(EmulatorConfig(shell="/bin/sh")) as emu:
        ssm = make_client("ssm", emu.endpoint_url)
        started = await asyncio.to_thread(ssm.start_session, Target=DEFAULT_TARGET)
        session_id = started["SessionId"]
        session = emu.state.sessions[session_id]
        client = DCClient(session)
        await client.connect(token=started["TokenValue"], url=started["StreamUrl"])
        client.send(PayloadType.OUTPUT, b"echo via''-boto3\n")
        await client.wait_output(b"via-boto3")
        assert session.status == SessionStatus.CONNECTED

        await client.disconnect(abrupt=True)
        await client.wait_for(lambda: session.status == SessionStatus.DISCONNECTED)
        resumed = await asyncio.to_thread(ssm.resume_session, SessionId=session_id)
        await client.connect(token=resumed["TokenValue"], url=resumed["StreamUrl"])
        client.send(PayloadType.OUTPUT, b"echo res''umed\n")
        await client.wait_output(b"resumed")

        await asyncio.to_thread(ssm.terminate_session, SessionId=session_id)
        closed = await client.wait_closed()
        assert closed.output == ""
        history = await asyncio.to_thread(ssm.describe_sessions, State="History")
        assert [s["SessionId"] for s in history["Sessions"]] == [session_id]
        after = await asyncio.to_thread(ssm.resume_session, SessionId=session_id)
        assert not after.get("TokenValue")
        await client.close()


async def test_boto3_port_forwarding_session() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with Emulator(EmulatorConfig()) as emu:
            ssm = make_client("ssm", emu.endpoint_url)
            started = await asyncio.to_thread(
                ssm.start_session,
                Target=DEFAULT_TARGET,
                DocumentName="AWS-StartPortForwardingSessionToRemoteHost",
                Parameters={"host": ["127.0.0.1"], "portNumber": [str(port)]},
            )
            session = emu.state.sessions[started["SessionId"]]
            client = DCClient(session, client_version="1.1.0")  # basic mode: raw bytes
            await client.connect(token=started["TokenValue"], url=started["StreamUrl"])
            await client.wait_ready()
            (request,) = client.handshake_requests
            props = request.requested_actions[0].action_parameters["Properties"]
            assert props == {
                "host": "127.0.0.1",
                "localPortNumber": "0",
                "portNumber": str(port),
                "type": "LocalPortForwarding",
            }
            client.send(PayloadType.OUTPUT, b"through the tunnel")
            await client.wait_output(b"through the tunnel")
            await client.close()
    finally:
        server.close()


async def test_a_session_ended_by_the_state_releases_its_agent(gateway: Gateway) -> None:
    session = make_session(gateway.state, gateway=gateway)
    client = DCClient(session)
    await client.connect()
    client.send(PayloadType.OUTPUT, b"echo al''ive\n")
    await client.wait_output(b"alive")
    agent = gateway.agent(session.session_id)
    assert agent is not None and isinstance(agent.plugin, ShellPlugin)
    pid = agent.plugin.pid
    gateway.state.end_session(session.session_id, "Session timed out.")  # e.g. an expiry
    closed = await client.wait_closed(timeout=5)
    assert closed.output == "Session timed out."
    assert gateway.agent(session.session_id) is None and agent.ended
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the shell is gone too
    await client.close()
