"""Replaying a recorded session against the emulator's agent, and comparing.

A trace (``protocol/traces/*.jsonl``) holds every frame between the official plugin
and the official agent. :func:`replay` plays the plugin's side again, payload for
payload, through our gateway to our agent: each client payload is sent once our
agent has produced as much Output as the official agent had at that point in the
recording, and no earlier than its recorded time after the connection (so typing
delays, resize polls and "the user types at 2 s" are kept). :func:`compare` then
holds our agent's messages against the recorded ones: message types, flags,
sequence numbers, payload types in order, every non-output payload (handshake
JSON with ids and numbers blanked, flags, StdErr, ExitCode), the output bytes,
and which client messages were acknowledged. Ids, timestamps and timing differ
by nature and are not compared (but for the lower bounds a scenario asks for).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ssmsh.emulator.gateway import Gateway
from ssmsh.protocol.constants import PayloadType
from ssmsh.protocol.message import ClientMessage
from tests.emulator.dcclient import DCClient

__all__ = [
    "TRACES",
    "Recording",
    "Replayed",
    "compare",
    "load",
    "message_of",
    "replay",
    "template",
]

TRACES = Path(__file__).resolve().parents[2] / "protocol" / "traces"
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NUMBER = re.compile(rb":-?\d+")
_PORT = re.compile(rb'"(portNumber|localPortNumber)":"\d+"')

#: Payload types whose bytes are compared exactly (after templating for JSON ones).
_EXACT = {
    PayloadType.STDERR,
    PayloadType.EXIT_CODE,
    PayloadType.FLAG,
}
_TEMPLATED = {
    PayloadType.HANDSHAKE_REQUEST,
    PayloadType.HANDSHAKE_COMPLETE,
}


def template(payload: bytes) -> bytes:
    """A JSON payload with ids, numbers and port numbers blanked: its shape remains."""
    return _NUMBER.sub(b":N", _UUID.sub(b"ID", _PORT.sub(rb'"\1":"P"', payload)))


def _payload(event: dict[str, Any]) -> bytes:
    return base64.b64decode(event.get("payload_b64") or "")


def message_of(event: dict[str, Any]) -> ClientMessage:
    """The recorded frame as a ClientMessage."""
    return ClientMessage(
        event["message_type"],
        event["schema_version"],
        event["created_date"],
        event["sequence_number"],
        event["flags"],
        uuid.UUID(event["message_id"]),
        event["payload_type"],
        _payload(event),
    )


@dataclasses.dataclass
class Step:
    """One client payload of the recording, with what preceded it."""

    payload_type: int
    payload: bytes
    #: Seconds after the client's connection at which it was sent.
    at: float
    #: Output bytes the official agent had sent to the client by then.
    output_before: int


@dataclasses.dataclass
class Recording:
    """The parts of one trace a replay needs."""

    name: str
    events: list[dict[str, Any]]
    #: The official agent's stream messages to the client, first copies only.
    agent: list[ClientMessage]
    #: The official plugin's stream payloads, in order, with their timing.
    steps: list[Step]
    #: Sequence numbers of the client's messages the official agent acknowledged.
    acked: list[int]

    @property
    def output(self) -> bytes:
        return b"".join(m.payload for m in self.agent if m.payload_type == PayloadType.OUTPUT)

    def first(self, payload_type: int) -> ClientMessage:
        return next(m for m in self.agent if m.payload_type == payload_type)


def load(name: str) -> Recording:
    """Read ``protocol/traces/<name>.jsonl`` (the first client connection only)."""
    with (TRACES / f"{name}.jsonl").open() as handle:
        events = [json.loads(line) for line in handle if line.strip()]
    opened = [e for e in events if e["dir"] == "in?" and "ClientVersion" in e.get("text", "")]
    start = opened[0].get("t", 0.0)
    agent: list[ClientMessage] = []
    seen: set[int] = set()
    steps: list[Step] = []
    acked: list[int] = []
    output = 0
    for event in events:
        if event["dir"] == "in?" and event is not opened[0] and "ClientVersion" in event["text"]:
            break  # a second client connection: scenarios with reconnects handle it
        if "message_type" not in event:
            continue
        kind = event["message_type"]
        if event["dir"] == "age>cli" and kind == "output_stream_data":
            if event["sequence_number"] in seen:
                continue  # a retransmission
            seen.add(event["sequence_number"])
            message = message_of(event)
            agent.append(message)
            if message.payload_type == PayloadType.OUTPUT:
                output += len(message.payload)
        elif event["dir"] == "age>cli" and kind == "acknowledge":
            acked.append(json.loads(_payload(event))["AcknowledgedMessageSequenceNumber"])
        elif event["dir"] == "cli>age" and kind == "input_stream_data":
            steps.append(
                Step(event["payload_type"], _payload(event), event.get("t", start) - start, output)
            )
    return Recording(name, events, agent, steps, acked)


@dataclasses.dataclass
class Replayed:
    """What our agent did in a replay."""

    client: DCClient
    #: Seconds from the client's connection to our agent's first Output (None: none).
    first_output_after: float | None
    closed: bool

    @property
    def agent(self) -> list[ClientMessage]:
        """Our agent's stream messages, first copies only."""
        out: list[ClientMessage] = []
        seen: set[int] = set()
        for message in self.client.received:
            if message is None or message.message_type != "output_stream_data":
                continue
            if message.sequence_number in seen:
                continue
            seen.add(message.sequence_number)
            out.append(message)
        return out

    @property
    def acked(self) -> list[int]:
        return [
            json.loads(m.payload)["AcknowledgedMessageSequenceNumber"]
            for m in self.client.received
            if m is not None and m.message_type == "acknowledge"
        ]


async def replay(
    gateway: Gateway,
    recording: Recording,
    client: DCClient,
    *,
    output_of: Callable[[DCClient], int] | None = None,
    until_closed: bool = True,
    close_timeout: float = 10.0,
) -> Replayed:
    """Play the recorded client against our agent (see the module docstring)."""
    loop = asyncio.get_running_loop()
    measure = output_of or (lambda c: len(c.output))
    await client.connect()
    started = loop.time()
    first_output: list[float] = []

    def note_first_output() -> bool:
        if not first_output and any(
            m is not None
            and m.message_type == "output_stream_data"
            and m.payload_type == PayloadType.OUTPUT
            for m in client.received
        ):
            first_output.append(loop.time() - started)
        return True

    for step in recording.steps:
        await client.wait_for(
            lambda s=step: note_first_output() and measure(client) >= s.output_before,  # type: ignore[misc]
            timeout=10.0,
        )
        if step.payload_type in (PayloadType.HANDSHAKE_RESPONSE,):
            await client.wait_for(lambda: bool(client.handshake_requests))
        delay = step.at - (loop.time() - started)
        if delay > 0:
            await asyncio.sleep(delay)
        note_first_output()
        client.send(step.payload_type, step.payload)
    closed = False
    if until_closed:
        await client.wait_for(
            lambda: note_first_output() and client.channel_closed is not None, timeout=close_timeout
        )
        closed = True
    note_first_output()
    return Replayed(client, first_output[0] if first_output else None, closed)


def payload_type_runs(messages: list[ClientMessage]) -> list[int]:
    """Payload types in order, runs of Output collapsed (how output is cut may differ)."""
    runs: list[int] = []
    for message in messages:
        ptype = message.payload_type
        if not (runs and runs[-1] == ptype == PayloadType.OUTPUT):
            runs.append(ptype)
    return runs


def compare(
    ours: Replayed,
    theirs: Recording,
    *,
    normalize_output: Callable[[bytes], bytes] = lambda data: data,
    compare_output: bool = True,
    exact_chunks: bool = False,
    acked_may_add: frozenset[int] = frozenset(),
) -> None:
    """Assert that our agent's messages are the recorded agent's (see the module docstring)."""
    our_messages, their_messages = ours.agent, theirs.agent
    where = f"[{theirs.name}]"
    assert payload_type_runs(our_messages) == payload_type_runs(their_messages), where
    assert [m.sequence_number for m in our_messages] == list(range(len(our_messages))), where
    for message in our_messages:
        assert message.schema_version == 1, where
        assert message.flags == (1 if message.sequence_number == 0 else 0), where
    ours_other = [m for m in our_messages if m.payload_type != PayloadType.OUTPUT]
    theirs_other = [m for m in their_messages if m.payload_type != PayloadType.OUTPUT]
    for mine, recorded in zip(ours_other, theirs_other, strict=True):
        if mine.payload_type in _EXACT:
            assert mine.payload == recorded.payload, where
        elif mine.payload_type in _TEMPLATED:
            assert template(mine.payload) == template(recorded.payload), where
    if compare_output:
        our_output = b"".join(
            m.payload for m in our_messages if m.payload_type == PayloadType.OUTPUT
        )
        assert normalize_output(our_output) == normalize_output(theirs.output), where
    if exact_chunks:

        def sizes(messages: list[ClientMessage]) -> list[int]:
            return [len(m.payload) for m in messages if m.payload_type == PayloadType.OUTPUT]

        assert sizes(our_messages) == sizes(their_messages), where
    their_acks = theirs.acked
    our_acks = [seq for seq in ours.acked if not (seq in acked_may_add and seq not in their_acks)]
    assert our_acks == their_acks, where
    # Acknowledgements: flags 3, sequence 0, the official JSON shape.
    # (A recording whose agent acknowledged nothing shows the shape in the client's.)
    recorded_ack = next(
        message_of(e)
        for e in sorted(theirs.events, key=lambda e: e["dir"] != "age>cli")
        if e["dir"] in ("age>cli", "cli>age") and e.get("message_type") == "acknowledge"
    )
    for received in ours.client.received:
        if received is not None and received.message_type == "acknowledge":
            assert (received.flags, received.sequence_number) == (3, 0), where
            # The agent acknowledges input_stream_data; a recorded client ack (the shape's
            # only example when the agent acked nothing before the end) names the other.
            shape = template(recorded_ack.payload).replace(
                b"output_stream_data", b"input_stream_data"
            )
            assert template(received.payload) == shape, (where, received.payload)
