"""The conformance tier: every recorded session, replayed against the emulator's agent.

The traces in ``protocol/traces`` are the official plugin (1.2.677.0) with the
official agent's session code (3.3.1142.0); see ``protocol/traces/README.md`` for
what each shows. Our agent runs with the emulator's defaults (``EmulatorConfig()``,
only the shell pinned to ``/bin/sh`` so that output is reproducible), which must be
the official agent's behaviour, message for message. The first set of traces is
replayed in ``test_first_traces.py``; :data:`SCENARIOS` covers the second, and
:func:`test_every_trace_has_a_scenario` keeps it that way.

The last tests change one default at a time, to a known divergence, and check that
the comparison then fails: a tier that cannot fail proves nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from ssmsh.emulator.config import EmulatorConfig
from ssmsh.emulator.gateway import Gateway
from ssmsh.protocol.constants import PayloadType
from ssmsh.protocol.smux import Cmd, Frame
from tests.conformance.replay import TRACES, Recording, compare, load, replay
from tests.emulator.dcclient import DCClient, gateway_for, make_session

_PROMPT = re.compile(rb"(^|\n)[#$] ")


def same_prompts(data: bytes) -> bytes:
    """Our sh runs as root here (``# ``); the recording's as a user (``$ ``)."""
    return _PROMPT.sub(rb"\1$ ", data)


def official_config(**changes: Any) -> EmulatorConfig:
    """The emulator's defaults (the official agent), with a reproducible shell."""
    return EmulatorConfig(shell="/bin/sh", **changes)


@contextlib.asynccontextmanager
async def official(**changes: Any) -> AsyncIterator[Gateway]:
    async with gateway_for(official_config(**changes)) as gateway:
        yield gateway


# ------------------------------------------------------------------ local peers


@contextlib.asynccontextmanager
async def tcp_server(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def smux_frames(stream: bytes) -> list[tuple[int, int, bytes]]:
    """(cmd, stream, data) of a smux byte stream, PSH frames of one stream merged."""
    frames: list[tuple[int, int, bytes]] = []
    offset = 0
    while offset < len(stream):
        frame, offset = Frame.parse(stream, offset)
        assert frame is not None, "truncated smux stream"
        if frames and frame.cmd == Cmd.PSH and frames[-1][:2] == (Cmd.PSH, frame.stream_id):
            frames[-1] = (Cmd.PSH, frame.stream_id, frames[-1][2] + frame.data)
        else:
            frames.append((int(frame.cmd), frame.stream_id, frame.data))
    return frames


@contextlib.asynccontextmanager
async def port_client(gateway: Gateway, recording: Recording, port: int) -> AsyncIterator[DCClient]:
    """A client for a Port session like the recorded one, to ``port`` on loopback."""
    properties = recorded_port_properties(recording, port)
    session = make_session(gateway.state, "Port", properties=properties, gateway=gateway)
    client = DCClient(session, auto_handshake=False)
    try:
        yield client
    finally:
        await client.close()


def recorded_port_properties(recording: Recording, port: int) -> dict[str, str]:
    request = recording.first(PayloadType.HANDSHAKE_REQUEST)
    import json

    action = json.loads(request.payload)["RequestedClientActions"][0]
    properties = dict(action["ActionParameters"]["Properties"])
    properties["portNumber"] = str(port)
    return properties


# -------------------------------------------------------------------- scenarios

COMMAND_5 = "sh -c 'echo out; echo err >&2; exit 5'"


@dataclasses.dataclass(frozen=True)
class Scenario:
    """How to set up one recorded session: the session type and what the agent runs."""

    session_type: str
    command: str | None = None
    #: The session document's properties (``separateOutputStream``...).
    document: dict[str, Any] | None = None
    #: Compare the output bytes (after the prompt normalisation).
    output: bool = True
    #: Client sequence numbers our agent may acknowledge that the recording's did not
    #: (a message that reached the official agent while it was already ending).
    acked_may_add: frozenset[int] = frozenset()
    #: A shell or InteractiveCommands session: the first output waits ~1 s.
    pty: bool = False


SCENARIOS: dict[str, Scenario] = {
    "shell-exit-3": Scenario("Standard_Stream", pty=True),
    "shell-resize": Scenario("Standard_Stream", pty=True),
    "interactive-command-exit-5": Scenario(
        "InteractiveCommands", COMMAND_5, pty=True, acked_may_add=frozenset({0})
    ),
    "noninteractive-default-exit-5": Scenario("NonInteractiveCommands", COMMAND_5),
    "noninteractive-separate-exit-5": Scenario(
        "NonInteractiveCommands", COMMAND_5, {"linux": {"separateOutputStream": "true"}}
    ),
    "noninteractive-stdin": Scenario("NonInteractiveCommands", "head -c 12"),
    "noninteractive-stdin-delayed": Scenario(
        "NonInteractiveCommands", """sh -c 'sleep 3; head -c 12; echo " head-rc=$?"'"""
    ),
}

#: Traces replayed by the port tests below, and by ``test_first_traces.py``.
OTHER_REPLAYS = {
    "port-mux-download-96k",
    "port-mux-upload-96k",
    "port-mux-refused",
    "port-stdio-echo",
    "shell-client-sigkill-resume",
    "shell-client-sigkill-resume-nopub",
    "shell-echo-hello-exit",
    "shell-over-wss",
    "shell-client-drop-resume",
    "shell-terminate-session-api",
    "port-forward-mux-2-http-gets-ctrl-c",
}


def test_every_trace_has_a_scenario() -> None:
    names = {path.stem for path in TRACES.glob("*.jsonl")}
    assert names == set(SCENARIOS) | OTHER_REPLAYS


async def run_scenario(
    name: str, gateway: Gateway, scenario: Scenario | None = None
) -> tuple[Any, Recording]:
    scenario = scenario or SCENARIOS[name]
    recording = load(name)
    session = make_session(
        gateway.state,
        scenario.session_type,
        command=scenario.command,
        properties=dict(scenario.document or {}),
        gateway=gateway,
    )
    if scenario.document is not None and hasattr(session, "document_properties"):
        session.document_properties = dict(scenario.document)
    client = DCClient(session, auto_handshake=False)
    try:
        ours = await replay(gateway, recording, client)
    finally:
        await client.close()
    compare(
        ours,
        recording,
        normalize_output=same_prompts,
        compare_output=scenario.output,
        acked_may_add=scenario.acked_may_add,
    )
    if scenario.pty:
        # The official agent reads the pty 1 s after it started the program.
        first = ours.first_output_after
        assert first is not None and first >= 0.9, f"[{name}] first output after {first} s"
    return ours, recording


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_trace_scenario(name: str) -> None:
    async with official() as gateway:
        await run_scenario(name, gateway)


# ---------------------------------------------------------------- port sessions


def _psh_data(recording: Recording) -> bytes:
    return b"".join(data for cmd, _, data in smux_frames(recording.output) if cmd == Cmd.PSH)


async def test_port_mux_download() -> None:
    """96 KiB from the destination: 1024-byte messages cut across smux frames, then FIN."""
    recording = load("port-mux-download-96k")
    body = _psh_data(recording)
    assert len(body) == 96 * 1024

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(body)
        await writer.drain()
        writer.close()

    async with (
        official() as gateway,
        tcp_server(serve) as port,
        port_client(gateway, recording, port) as client,
    ):
        ours = await replay(gateway, recording, client)
    compare(ours, recording, exact_chunks=True)
    assert smux_frames(bytes(ours.client.output)) == smux_frames(recording.output)


async def test_port_mux_upload() -> None:
    """96 KiB to a sink that closes once it has read them: all of it arrives, then FIN."""
    recording = load("port-mux-upload-96k")
    received = bytearray()
    sent = b"".join(
        data
        for step in recording.steps
        if step.payload_type == PayloadType.OUTPUT
        for data in [step.payload]
    )
    expected = b"".join(d for c, _, d in smux_frames(sent) if c == Cmd.PSH)

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(65536):
            received.extend(chunk)
        writer.close()

    async with (
        official() as gateway,
        tcp_server(sink) as port,
        port_client(gateway, recording, port) as client,
    ):
        ours = await replay(gateway, recording, client)
        await client.wait_for(lambda: bytes(received) == expected)
    compare(ours, recording)


async def test_port_mux_refused() -> None:
    """A closed destination port: Flag ConnectToPortError, then a FIN for the stream."""
    recording = load("port-mux-refused")
    async with official() as gateway, port_client(gateway, recording, closed_port()) as client:
        ours = await replay(gateway, recording, client)
    compare(ours, recording)
    flag = next(m for m in ours.agent if m.payload_type == PayloadType.FLAG)
    assert flag.payload == b"\x00\x00\x00\x03"


async def test_port_stdio_echo() -> None:
    """No smux (no ``type`` property): raw bytes each way, one message per line."""
    recording = load("port-stdio-echo")
    closed = asyncio.Event()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
        closed.set()
        writer.close()

    assert set(recorded_port_properties(recording, 1)) == {"portNumber"}
    async with (
        official() as gateway,
        tcp_server(echo) as port,
        port_client(gateway, recording, port) as client,
    ):
        ours = await replay(gateway, recording, client, until_closed=False)
        await client.wait_for(lambda: len(ours.agent) == len(recording.agent))
        # stdin's end: the plugin only closes its WebSocket, and sends nothing.
        await client.disconnect()
        await asyncio.sleep(0.5)
        # The agent keeps its connection to the destination open meanwhile.
        assert not closed.is_set()
    compare(ours, recording)


# ------------------------------------------------------------ a new client process


@pytest.mark.parametrize(
    "name", ["shell-client-sigkill-resume", "shell-client-sigkill-resume-nopub"]
)
async def test_unacked_output_reaches_a_new_client(name: str) -> None:
    """The client dies; output made meanwhile is held and sent to the next connection.

    As recorded: the first connection types three lines and dies 0.5 s after the last
    (``sleep 2; echo late-1; sleep 0.5; echo late-2``); a new process connects 4 s later
    with a new ClientId and sequence state of its own. Acknowledged output is not sent
    again; every message made while nobody listened is.
    """
    recording = load(name)
    async with official() as gateway:
        session = make_session(gateway.state, gateway=gateway)
        first = DCClient(session, auto_handshake=False)
        try:
            await replay(gateway, recording, first, until_closed=False)
            await first.wait_for(lambda: first.channel.unacked == 0)
            await asyncio.sleep(0.5)
            acked_before = {m.sequence_number for m in first.agent_data_frames()}
            await first.disconnect(abrupt=True)
            await asyncio.sleep(4.0)
        finally:
            await first.close()
        second = DCClient(session)
        try:
            await second.connect(token=gateway.state.issue_token(session))
            await second.wait_for(
                lambda: b"late-2" in b"".join(m.payload for m in second.agent_data_frames())
            )
        finally:
            await second.close()
    again = {m.sequence_number: m.payload for m in second.agent_data_frames()}
    assert again and not (set(again) & acked_before)
    assert min(again) == max(acked_before) + 1
    held = b"".join(again[seq] for seq in sorted(again))
    recorded = {
        _payload_of(e)
        for e in recording.events
        if e["dir"] == "age>cli"
        and e.get("message_type") == "output_stream_data"
        and e["sequence_number"] >= 3
    }
    assert recorded == {b"late-1\r\n", b"late-2\r\n$ "}
    assert same_prompts(held) == b"late-1\r\nlate-2\r\n$ "


def _payload_of(event: dict[str, Any]) -> bytes:
    import base64

    return base64.b64decode(event.get("payload_b64") or "")


# ----------------------------------------------------------- the tier can fail


@pytest.mark.parametrize(
    ("name", "divergence"),
    [
        ("shell-exit-3", {"shell_exit_status": True}),
        ("interactive-command-exit-5", {"shell_exit_status": True}),
        ("shell-exit-3", {"pty_start_delay": 0.0}),
    ],
)
async def test_a_divergence_fails_the_tier(name: str, divergence: dict[str, Any]) -> None:
    async with official(**divergence) as gateway:
        # A comparison's failure names the trace; a replay that hangs would not.
        with pytest.raises(AssertionError, match=re.escape(f"[{name}]")):
            await run_scenario(name, gateway)


async def test_separate_streams_where_not_asked_fail_the_tier() -> None:
    diverging = dataclasses.replace(
        SCENARIOS["noninteractive-default-exit-5"],
        document={"linux": {"separateOutputStream": "true"}},
    )
    async with official() as gateway:
        with pytest.raises(AssertionError, match=re.escape("[noninteractive-default-exit-5]")):
            await run_scenario("noninteractive-default-exit-5", gateway, diverging)
