"""Replays of the first set of real recordings (``protocol/traces``) against the emulator's agent.

Each trace is a session between the official plugin 1.2.677.0 and the official
agent 3.3.1142.0. The replay sends the recorded client payloads through the
gateway to our agent, in the recorded order, and checks that our agent answers
with the same message shapes in the same order: handshake or not, sequence
numbers and flags, acknowledgement fields, handshake JSON, smux framing.
(Shell output itself differs: it is a different shell on a different machine.)
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from ssmsh.emulator.gateway import Gateway
from ssmsh.protocol.constants import PayloadType
from ssmsh.protocol.message import ClientMessage
from ssmsh.protocol.smux import Cmd, Frame
from tests.conformance.replay import message_of
from tests.conftest import scaled
from tests.emulator.dcclient import DCClient, gateway, make_session

__all__ = ["gateway"]

TRACES = Path(__file__).resolve().parents[2] / "protocol" / "traces"
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NUMBER = re.compile(rb":-?\d+")


def load(name: str) -> list[dict[str, Any]]:
    with (TRACES / f"{name}.jsonl").open() as handle:
        return [json.loads(line) for line in handle if line.strip()]


def payload_of(event: dict[str, Any]) -> bytes:
    return base64.b64decode(event.get("payload_b64") or "")


def recorded(events: list[dict[str, Any]], direction: str) -> list[ClientMessage]:
    """The recorded messages one way, retransmissions of stream data left out."""
    out = []
    seen: set[tuple[str, int]] = set()
    for event in events:
        if event["dir"] == direction and "message_type" in event:
            key = (event["message_type"], event["sequence_number"])
            if event["message_type"].endswith("_stream_data"):
                if key in seen:
                    continue
                seen.add(key)
            out.append(message_of(event))
    return out


def template(payload: bytes) -> bytes:
    """A JSON payload with ids and numbers blanked: its shape and key order remain."""
    return _NUMBER.sub(b":N", _UUID.sub(b"ID", payload))


def header_shape(message: ClientMessage) -> tuple[str, int, int, int]:
    flags = message.flags
    return (message.message_type, message.schema_version, flags, message.payload_type)


def payload_type_runs(data: list[ClientMessage]) -> list[int]:
    """Payload types in order, runs of the same type collapsed (chunking may differ)."""
    runs: list[int] = []
    for message in data:
        if not runs or runs[-1] != message.payload_type:
            runs.append(message.payload_type)
    return runs


def first_copies(data: list[ClientMessage]) -> list[ClientMessage]:
    """Stream messages with retransmissions left out.

    A resend (the client's ack came late on a busy machine) is the same message
    again: same sequence number, message id and payload. A different message
    under a used sequence number stays in, and fails the checks.
    """
    out: list[ClientMessage] = []
    seen: dict[int, ClientMessage] = {}
    for message in data:
        first = seen.setdefault(message.sequence_number, message)
        if first is not message and (first.message_id, first.payload) == (
            message.message_id,
            message.payload,
        ):
            continue
        out.append(message)
    return out


def check_agent_messages(ours: list[ClientMessage], theirs: list[ClientMessage]) -> None:
    """The rules every recorded agent frame follows, checked on ours."""
    our_data = first_copies([m for m in ours if m.message_type == "output_stream_data"])
    their_data = [m for m in theirs if m.message_type == "output_stream_data"]
    assert header_shape(our_data[0]) == header_shape(their_data[0])
    assert payload_type_runs(our_data) == payload_type_runs(their_data)
    assert [m.sequence_number for m in our_data] == list(range(len(our_data)))
    for message in our_data:
        assert message.schema_version == 1
        assert message.flags == (1 if message.sequence_number == 0 else 0)
    our_acks = [m for m in ours if m.message_type == "acknowledge"]
    their_acks = [m for m in theirs if m.message_type == "acknowledge"]
    assert {header_shape(m) for m in our_acks} == {header_shape(m) for m in their_acks}
    assert {m.sequence_number for m in our_acks} == {0}
    assert {template(m.payload) for m in our_acks} == {template(m.payload) for m in their_acks}
    assert {m.message_type for m in ours} <= {m.message_type for m in theirs} | {
        "start_publication",
        "channel_closed",
    }


def acked_sequences(ours: list[ClientMessage]) -> list[int]:
    return [
        json.loads(m.payload)["AcknowledgedMessageSequenceNumber"]
        for m in ours
        if m.message_type == "acknowledge"
    ]


def messages(client: DCClient) -> list[ClientMessage]:
    return [m for m in client.received if m is not None]


# ----------------------------------------------------------------------- shells


def _echo_word(payload: bytes) -> bytes | None:
    match = re.match(rb"echo ([\w-]+)", payload)
    return match.group(1) if match else None


@pytest.mark.parametrize(
    "name",
    [
        "shell-echo-hello-exit",
        "shell-over-wss",
        "shell-client-drop-resume",
        "shell-terminate-session-api",
    ],
)
async def test_shell_trace_replay(gateway: Gateway, name: str) -> None:
    events = load(name)
    session = make_session(gateway.state, gateway=gateway)
    client = DCClient(session)
    connections = 0
    sent = 0
    for event in events:
        if event["dir"] == "in?" and "ClientVersion" in event.get("text", ""):
            if connections:  # the recorded client dropped and resumed
                await client.disconnect(abrupt=True)
                await client.connect(token=gateway.state.issue_token(session))
            else:
                await client.connect()
            connections += 1
        elif event["dir"] == "cli>age" and event["message_type"] == "input_stream_data":
            payload = payload_of(event)
            if event["payload_type"] == PayloadType.OUTPUT:
                # As recorded, the user types once the shell shows its prompt.
                await client.wait_for(lambda: client.output.endswith((b"$ ", b"# ")))
            client.send(event["payload_type"], payload)
            sent += 1
            word = _echo_word(payload)
            if word is not None:
                await client.wait_output(b"\r\n" + word + b"\r\n")
            elif event["payload_type"] == PayloadType.SIZE:
                await client.wait_for(lambda: client.channel.unacked == 0)
        elif event["dir"] == "mgs>cli" and event["message_type"] == "channel_closed":
            if b"exit" not in bytes(client.output):  # ended by the TerminateSession API
                await client.wait_for(lambda: client.channel.unacked == 0 and bool(client.output))
                await gateway.state.terminate_session(session.session_id)
            closed = await client.wait_closed()
            their_closed = json.loads(payload_of(event))
            ours = json.loads(client.received[-1].payload) if client.received[-1] else {}
            assert list(ours) == list(their_closed)
            assert closed.output == their_closed["Output"] == ""

    theirs = recorded(events, "age>cli")
    ours = messages(client)
    check_agent_messages(ours, theirs)
    # No handshake for a plain shell, in the recording and here.
    assert not any(m.payload_type in (5, 7) for m in ours)
    # Every client message was acknowledged once, in order.
    assert acked_sequences(ours) == list(range(sent))
    assert ours[-1].message_type == "channel_closed"
    await client.close()


# ---------------------------------------------------------------------- port mux


def raw_frames(stream: bytes) -> list[Frame]:
    frames = []
    offset = 0
    while offset < len(stream):
        frame, offset = Frame.parse(stream, offset)
        assert frame is not None, "truncated smux stream"
        frames.append(frame)
    return frames


def smux_frames(stream: bytes) -> list[tuple[Cmd, int, bytes]]:
    """Frames of a byte stream, consecutive PSH frames of one stream merged."""
    frames: list[tuple[Cmd, int, bytes]] = []
    for frame in raw_frames(stream):
        if frames and frame.cmd == Cmd.PSH and frames[-1][:2] == (Cmd.PSH, frame.stream_id):
            frames[-1] = (Cmd.PSH, frame.stream_id, frames[-1][2] + frame.data)
        else:
            frames.append((frame.cmd, frame.stream_id, frame.data))
    return frames


async def test_port_mux_trace_replay(gateway: Gateway) -> None:
    events = load("port-forward-mux-2-http-gets-ctrl-c")
    theirs = recorded(events, "age>cli")
    their_client = recorded(events, "cli>age")
    their_stream = b"".join(m.payload for m in theirs if m.payload_type == PayloadType.OUTPUT)
    # The recorded destination: an HTTP/1.0 server giving one header block and a body.
    header, body = [f.data for f in raw_frames(their_stream) if f.cmd == Cmd.PSH][:2]
    assert header.startswith(b"HTTP/1.0 200 OK\r\n") and body == b"hello-from-port-forward\n"

    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(header)
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    their_request = json.loads(theirs[0].payload)
    properties = dict(their_request["RequestedClientActions"][0]["ActionParameters"]["Properties"])
    recorded_port = properties["portNumber"]
    properties["portNumber"] = str(port)
    session = make_session(gateway.state, "Port", properties=properties, gateway=gateway)
    client = DCClient(session, auto_handshake=False)
    try:
        await client.connect()
        await client.wait_for(lambda: bool(client.handshake_requests))
        ours_so_far = messages(client)
        # The HandshakeRequest is byte for byte the official agent's (but for the port).
        hr = next(m for m in ours_so_far if m.payload_type == PayloadType.HANDSHAKE_REQUEST)
        assert hr.payload == theirs[0].payload.replace(
            f'"portNumber":"{recorded_port}"'.encode(), f'"portNumber":"{port}"'.encode()
        )
        finished: set[int] = set()
        for message in their_client:
            if message.message_type != "input_stream_data":
                continue
            client.send(message.payload_type, message.payload)
            if message.payload_type == PayloadType.HANDSHAKE_RESPONSE:
                await client.wait_ready()
            elif message.payload_type == PayloadType.OUTPUT and message.payload[1] == Cmd.PSH:
                stream_id = int.from_bytes(message.payload[4:8], "little")

                def stream_done(sid: int = stream_id) -> bool:
                    frames = smux_frames(bytes(client.output))
                    return (Cmd.FIN, sid, b"") in frames

                await client.wait_for(stream_done)
                finished.add(stream_id)
        closed = await client.wait_closed(timeout=scaled(5))
        assert closed.output == ""
    finally:
        server.close()
        await client.close()

    ours = messages(client)
    check_agent_messages(ours, theirs)
    our_data = [m for m in ours if m.message_type == "output_stream_data"]
    assert [m.payload_type for m in our_data[:2]] == [
        PayloadType.HANDSHAKE_REQUEST,
        PayloadType.HANDSHAKE_COMPLETE,
    ]
    their_data = [m for m in theirs if m.message_type == "output_stream_data"]
    assert template(our_data[1].payload) == template(their_data[1].payload)
    assert json.loads(our_data[1].payload)["CustomerMessage"] == ""
    our_stream = bytes(client.output)
    assert smux_frames(our_stream) == smux_frames(their_stream)
    assert finished == {3, 5}
    n_client = sum(1 for m in their_client if m.message_type == "input_stream_data")
    assert acked_sequences(ours) == list(range(n_client))
