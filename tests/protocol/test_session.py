"""ClientSession against an agent-side script (DataChannel(Role.AGENT) + payload objects)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssmsh.exceptions import LocalProtocolError
from ssmsh.protocol.constants import Flag, MessageType, PayloadType
from ssmsh.protocol.crypto import Encrypter
from ssmsh.protocol.datachannel import ChannelConfig, DataChannel, Role
from ssmsh.protocol.events import PayloadReceived
from ssmsh.protocol.message import ClientMessage
from ssmsh.protocol.payloads import (
    Acknowledge,
    ChannelClosedPayload,
    EncChallenge,
    HandshakeComplete,
    HandshakeRequest,
    HandshakeResponse,
    encode_exit_code,
    encode_flag,
)
from ssmsh.protocol.session import (
    MAX_RESEND_AFTER_SKIP,
    ChannelClosedByRemote,
    ClientSession,
    ExitCodeReceived,
    FlagReceived,
    KmsKeyRequested,
    OutputReceived,
    Paused,
    ProtocolEvent,
    Resumed,
    SessionEstablished,
    SessionFailed,
    SessionState,
    StderrReceived,
)

TRACE = (
    Path(__file__).resolve().parents[2]
    / "protocol"
    / "traces"
    / "port-forward-mux-2-http-gets-ctrl-c.jsonl"
)
DATA_KEY = bytes(range(64))
BLOB = b"kms-ciphertext-blob"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/k"
T0 = 1_000.0


class Agent:
    """The agent's end: a DataChannel in the agent role plus what it received."""

    def __init__(self) -> None:
        self.channel = DataChannel(Role.AGENT)
        self.payloads: list[PayloadReceived] = []
        self.frames: list[ClientMessage] = []  # every client frame, decoded

    def send(self, payload_type: int, payload: bytes, now: float = T0) -> None:
        self.channel.send_data(payload_type, payload, now)

    def of_type(self, payload_type: int) -> list[bytes]:
        return [p.payload for p in self.payloads if p.payload_type == payload_type]


class Link:
    """Carries frames both ways until both sides are quiet; records client events."""

    def __init__(self, client: ClientSession | None = None) -> None:
        self.client = client or ClientSession(client_version="1.2.677.0")
        self.agent = Agent()
        self.events: list[ProtocolEvent] = []
        self.drop_to_client: Callable[[ClientMessage], bool] = lambda m: False

    def pump(self, now: float = T0) -> list[ProtocolEvent]:
        start = len(self.events)
        for _ in range(1000):
            moved = False
            for frame in self.client.data_to_send():
                moved = True
                self.agent.frames.append(ClientMessage.decode(frame))
                self.agent.channel.receive_data(frame, now)
            for event in self.agent.channel.events_received():
                if isinstance(event, PayloadReceived):
                    self.agent.payloads.append(event)
            for frame in self.agent.channel.data_to_send():
                moved = True
                if not self.drop_to_client(ClientMessage.decode(frame)):
                    self.client.receive_data(frame, now)
            self.events.extend(self.client.events_received())
            if not moved:
                return self.events[start:]
        raise AssertionError("the link never went quiet")


def is_writable(client: ClientSession) -> bool:
    """``client.writable`` read anew: mypy keeps the attribute narrowed by an earlier
    assert across the calls that change it."""
    return client.writable


def of(events: list[ProtocolEvent], kind: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def port_request(agent_version: str = "3.3.1142.0", kms: bool = False) -> bytes:
    props = {"localPortNumber": "9999", "portNumber": "8765", "type": "LocalPortForwarding"}
    return HandshakeRequest.for_session(
        agent_version, "Port", props, KEY_ARN if kms else None
    ).encode()


def complete(message: str = "") -> bytes:
    return HandshakeComplete(203127071, message).encode()


def kms_handshake(link: Link, data_key: bytes = DATA_KEY) -> Encrypter:
    """Run the agent's side of a KMS handshake up to the challenge; returns its encrypter."""
    link.agent.send(PayloadType.HANDSHAKE_REQUEST, port_request(kms=True))
    events = link.pump()
    assert events == [KmsKeyRequested(KEY_ARN)]
    assert link.agent.of_type(PayloadType.HANDSHAKE_RESPONSE) == []  # waits for the key
    link.client.provide_data_key(data_key, BLOB, T0)
    link.pump()
    (raw,) = link.agent.of_type(PayloadType.HANDSHAKE_RESPONSE)
    response = HandshakeResponse.decode(raw)
    kms = response.processed_actions[0]
    assert kms.action_status == 1
    assert base64.b64decode(kms.action_result["KMSCipherTextKey"]) == BLOB
    agent_key = Encrypter.for_agent(DATA_KEY)
    link.agent.channel.cipher = agent_key
    return agent_key


# ------------------------------------------------------------------ no handshake


def test_shell_without_handshake() -> None:
    link = Link()
    link.client.send_input(b"early", T0)  # held: nothing may precede the agent's lead
    link.client.send_size(120, 40, T0)
    assert link.pump() == []
    assert link.agent.payloads == []

    link.agent.send(PayloadType.OUTPUT, b"sh-5.2$ ")
    events = link.pump()
    assert events == [
        SessionEstablished("Standard_Stream", None, "", "", False),
        OutputReceived(b"sh-5.2$ "),
    ]
    assert link.client.established and link.client.session_type == "Standard_Stream"
    assert link.client.agent_version == "" and not link.client.encrypted
    # The held messages went out in order once established, as seq 0 and 1.
    assert [(p.payload_type, p.payload) for p in link.agent.payloads] == [
        (PayloadType.OUTPUT, b"early"),
        (PayloadType.SIZE, b'{"cols":120,"rows":40}'),
    ]
    assert [p.sequence_number for p in link.agent.payloads] == [0, 1]

    link.client.send_input(b"echo hi\r", T0)
    link.agent.send(PayloadType.ERROR, b"warn")
    link.agent.send(PayloadType.STDERR, b"err")
    link.agent.send(PayloadType.EXIT_CODE, encode_exit_code(3))
    link.agent.send(PayloadType.FLAG, encode_flag(Flag.CONNECT_TO_PORT_ERROR))
    assert link.pump() == [
        OutputReceived(b"warn"),
        StderrReceived(b"err"),
        ExitCodeReceived(3),
        FlagReceived(3),
    ]
    assert link.agent.of_type(PayloadType.OUTPUT) == [b"early", b"echo hi\r"]
    assert link.agent.channel.unacked == 0 and link.client.channel.unacked == 0


def test_skip_handshake_for_an_agent_that_says_nothing() -> None:
    # `exec -t -- cat`: the agent skips the handshake and the program prints nothing
    # until it gets input, so no first Output will ever tell the client to go ahead.
    link = Link()
    link.client.send_input(b"hi\n", T0)
    assert link.pump() == [] and link.agent.payloads == []
    assert link.client.skip_handshake(T0)
    events = link.pump()
    assert events == [SessionEstablished("Standard_Stream", None, "", "", False)]
    assert link.agent.of_type(PayloadType.OUTPUT) == [b"hi\n"]  # held input went out
    assert link.client.writable
    assert not link.client.skip_handshake(T0)  # once only
    link.agent.send(PayloadType.OUTPUT, b"hi\r\n")
    assert link.pump() == [OutputReceived(b"hi\r\n")]


def test_skip_handshake_is_refused_once_the_agent_spoke() -> None:
    link = Link()
    link.agent.send(PayloadType.HANDSHAKE_REQUEST, port_request())
    link.pump()
    assert not link.client.skip_handshake(T0)
    assert link.client.state is SessionState.RESPONDED
    link2 = Link()
    link2.agent.send(PayloadType.OUTPUT, b"$ ")
    link2.pump()
    assert not link2.client.skip_handshake(T0)


def shell_request(kms: bool = False) -> bytes:
    return HandshakeRequest.for_session(
        "3.3.1142.0", "Standard_Stream", None, KEY_ARN if kms else None
    ).encode()


def test_a_handshake_after_skipping_it_is_answered_and_input_sent_again() -> None:
    # A slow agent, not one without handshake: it drops stream data until its
    # handshake is complete, so what went out during the skip goes out again.
    link = Link()
    link.client.send_input(b"typed early\r", T0)
    assert link.client.skip_handshake(T0)
    link.client.send_size(120, 40, T0)
    link.pump()
    assert link.agent.of_type(PayloadType.OUTPUT) == [b"typed early\r"]
    link.agent.payloads.clear()  # what the real agent ignores

    link.agent.send(PayloadType.HANDSHAKE_REQUEST, shell_request())
    assert link.pump() == []
    assert link.client.state is SessionState.RESPONDED and not link.client.writable
    link.client.send_input(b"while responding", T0)  # held, not sent
    (response,) = link.agent.payloads
    assert response.payload_type == PayloadType.HANDSHAKE_RESPONSE
    assert response.sequence_number == 2  # after the two ignored messages

    link.agent.send(PayloadType.HANDSHAKE_COMPLETE, complete("late"))
    assert link.pump() == [SessionEstablished("Standard_Stream", None, "3.3.1142.0", "late", False)]
    assert [(p.payload_type, p.payload) for p in link.agent.payloads[1:]] == [
        (PayloadType.OUTPUT, b"typed early\r"),
        (PayloadType.SIZE, b'{"cols":120,"rows":40}'),
        (PayloadType.OUTPUT, b"while responding"),
    ]
    assert is_writable(link.client)
    link.agent.send(PayloadType.OUTPUT, b"$ ")
    assert link.pump() == [OutputReceived(b"$ ")]


def test_a_late_kms_handshake_sends_the_early_input_again_encrypted() -> None:
    link = Link()
    assert link.client.skip_handshake(T0)
    link.client.send_input(b"secret", T0)
    link.pump()
    link.agent.payloads.clear()
    link.agent.send(PayloadType.HANDSHAKE_REQUEST, shell_request(kms=True))
    assert link.pump() == [KmsKeyRequested(KEY_ARN)]
    link.client.provide_data_key(DATA_KEY, BLOB, T0)
    link.pump()
    link.agent.channel.cipher = agent_key = Encrypter.for_agent(DATA_KEY)
    link.agent.send(PayloadType.HANDSHAKE_COMPLETE, complete())
    (established,) = of(link.pump(), SessionEstablished)
    assert established.encrypted
    resent = [m for m in link.agent.frames if m.payload_type == PayloadType.OUTPUT][-1]
    assert b"secret" not in resent.payload
    assert agent_key.decrypt(resent.payload) == b"secret"


def test_a_handshake_after_the_agent_spoke_without_one_fails_clearly() -> None:
    # The agent showed it does not handshake (its output came); a HandshakeRequest
    # now is a protocol breach, and the session ends with a reason.
    link = Link()
    link.client.skip_handshake(T0)
    link.client.send_input(b"data", T0)
    link.agent.send(PayloadType.OUTPUT, b"data")
    link.pump()
    link.agent.send(PayloadType.HANDSHAKE_REQUEST, port_request())
    (failed,) = of(link.pump(), SessionFailed)
    assert failed.kind == "handshake"
    assert "handshake" in failed.reason
    assert link.client.failed


def test_a_late_handshake_for_another_session_type_fails() -> None:
    link = Link()
    link.client.skip_handshake(T0)
    link.pump()
    link.agent.send(PayloadType.HANDSHAKE_REQUEST, port_request())
    link.pump()
    link.agent.send(PayloadType.HANDSHAKE_COMPLETE, complete())
    (failed,) = of(link.pump(), SessionFailed)
    assert failed.kind == "handshake" and "Port session" in failed.reason


def test_too_much_input_after_a_skip_is_not_kept_for_a_late_handshake() -> None:
    link = Link()
    link.client.skip_handshake(T0)
    chunk = b"x" * 1024
    for _ in range(MAX_RESEND_AFTER_SKIP // len(chunk) + 1):
        link.client.send_input(chunk, T0)
        link.pump()
    link.agent.send(PayloadType.HANDSHAKE_REQUEST, shell_request())
    (failed,) = of(link.pump(), SessionFailed)
    assert failed.kind == "handshake"


def test_first_non_output_payload_waits_for_output() -> None:
    link = Link()
    link.agent.send(PayloadType.ERROR, b"first")
    assert link.pump() == []  # buffered, not lost
    link.agent.send(PayloadType.OUTPUT, b"second")
    assert link.pump() == [
        SessionEstablished("Standard_Stream", None, "", "", False),
        OutputReceived(b"first"),
        OutputReceived(b"second"),
    ]


def test_bad_exit_code_and_flag_are_ignored() -> None:
    link = Link()
    link.agent.send(PayloadType.OUTPUT, b"x")
    link.pump()
    link.agent.send(PayloadType.EXIT_CODE, b"EXIT_CODE: lots")
    link.agent.send(PayloadType.FLAG, b"\x01")
    link.agent.send(PayloadType.SIZE, b"{}")
    link.agent.send(PayloadType.EXIT_CODE, b"EXIT_CODE: 0")
    assert link.pump() == [ExitCodeReceived(0)]
    assert not link.client.failed


# ------------------------------------------------------------------ port handshake


def trace_client_frames() -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in TRACE.read_text().splitlines()]
    return [r for r in rows if r["dir"] == "cli>age"]


def test_port_handshake_like_the_trace() -> None:
    rows = [json.loads(line) for line in TRACE.read_text().splitlines()]
    request = next(r for r in rows if r["dir"] == "age>cli" and r["payload_type"] == 5)
    request_payload = base64.b64decode(request["payload_b64"])

    link = Link()
    link.agent.send(PayloadType.HANDSHAKE_REQUEST, request_payload)
    assert link.pump() == []
    link.agent.send(PayloadType.HANDSHAKE_COMPLETE, complete())
    events = link.pump()
    assert events == [
        SessionEstablished(
            "Port",
            {"localPortNumber": "9999", "portNumber": "8765", "type": "LocalPortForwarding"},
            "3.3.1142.0",
            "",
            False,
        )
    ]
    # The smux bytes of the trace, then Ctrl-C.
    sent = [base64.b64decode(r["payload_b64"]) for r in trace_client_frames()]
    for row, payload in zip(trace_client_frames(), sent, strict=True):
        if row["message_type"] == "input_stream_data" and row["payload_type"] == 1:
            link.client.send_input(payload, T0)
    link.client.send_flag(Flag.TERMINATE_SESSION, T0)
    link.pump()

    # Compare our client frames with the official plugin's, field by field. Acks of the
    # agent's later data are interleaved differently, so compare the two streams apart.
    ours = link.agent.frames
    theirs = trace_client_frames()

    def shape(m: ClientMessage) -> tuple[object, ...]:
        return (m.message_type, m.sequence_number, m.flags, m.payload_type, m.schema_version)

    def trace_shape(r: dict[str, Any]) -> tuple[object, ...]:
        return (
            r["message_type"],
            r["sequence_number"],
            r["flags"],
            r["payload_type"],
            r["schema_version"],
        )

    ours_data = [m for m in ours if m.message_type == MessageType.INPUT_STREAM_DATA]
    theirs_data = [r for r in theirs if r["message_type"] == "input_stream_data"]
    assert [shape(m) for m in ours_data] == [trace_shape(r) for r in theirs_data]
    assert [m.payload for m in ours_data] == [
        base64.b64decode(r["payload_b64"]) for r in theirs_data
    ]
    # The first two client frames are exactly: ack of the request, then the response.
    assert [shape(m) for m in ours[:2]] == [trace_shape(r) for r in theirs[:2]]
    ack = Acknowledge.decode(ours[0].payload)
    assert (ack.message_type, ack.sequence_number) == ("output_stream_data", 0)
    assert ours[0].payload.startswith(b'{"AcknowledgedMessageType":"output_stream_data"')
    # Every agent message was acked exactly once (flags 3, seq 0).
    acks = [m for m in ours if m.message_type == MessageType.ACKNOWLEDGE]
    assert all(m.flags == 3 and m.sequence_number == 0 for m in acks)
    assert sorted(Acknowledge.decode(m.payload).sequence_number for m in acks) == [0, 1]


def test_customer_message_and_our_version() -> None:
    link = Link(ClientSession())
    link.agent.send(PayloadType.HANDSHAKE_REQUEST, port_request())
    link.agent.send(PayloadType.HANDSHAKE_COMPLETE, complete("Hello from the agent"))
    (established,) = of(link.pump(), SessionEstablished)
    assert established.customer_message == "Hello from the agent"
    (raw,) = link.agent.of_type(PayloadType.HANDSHAKE_RESPONSE)
    assert HandshakeResponse.decode(raw).client_version == link.client.client_version


def test_data_before_handshake_complete_is_buffered() -> None:
    link = Link()
    link.agent.send(PayloadType.HANDSHAKE_REQUEST, port_request())
    link.pump()
    # Out of order: seq 2 (data) reaches the client before seq 1 (complete).
    link.agent.send(PayloadType.HANDSHAKE_COMPLETE, complete())
    link.agent.send(PayloadType.OUTPUT, b"smux-bytes")
    frames = link.agent.channel.data_to_send()
    for frame in reversed(frames):
        link.client.receive_data(frame, T0)
    events = link.client.events_received()
    assert [type(e) for e in events] == [SessionEstablished, OutputReceived]

    # And data delivered in order but before HandshakeComplete (a misbehaving agent).
    link2 = Link()
    link2.agent.send(PayloadType.HANDSHAKE_REQUEST, port_request())
    link2.agent.send(PayloadType.OUTPUT, b"too early")
    assert link2.pump() == []
    link2.agent.send(PayloadType.HANDSHAKE_COMPLETE, complete())
    assert [type(e) for e in link2.pump()] == [SessionEstablished, OutputReceived]


def test_input_before_establishment_follows_the_response() -> None:
    link = Link()
    link.client.send_input(b"GET /", T0)
    link.agent.send(PayloadType.HANDSHAKE_REQUEST, port_request())
    link.pump()
    assert [p.payload_type for p in link.agent.payloads] == [PayloadType.HANDSHAKE_RESPONSE]
    assert not link.client.writable
    link.agent.send(PayloadType.HANDSHAKE_COMPLETE, complete())
    link.pump()
    assert [p.payload_type for p in link.agent.payloads] == [6, 1]
    assert link.client.writable


# ------------------------------------------------------------------ KMS


def test_kms_handshake_challenge_and_encrypted_data() -> None:
    link = Link()
    agent_key = kms_handshake(link)
    assert link.client.encrypted and link.client.channel.cipher is not None
    # The response itself went out in clear (its JSON was decoded above).

    secret = bytes(range(64, 128))
    link.agent.send(
        PayloadType.ENC_CHALLENGE_REQUEST, EncChallenge(agent_key.encrypt(secret)).encode()
    )
    link.pump()
    (raw,) = link.agent.of_type(PayloadType.ENC_CHALLENGE_RESPONSE)
    assert agent_key.decrypt(EncChallenge.decode(raw).challenge) == secret

    link.agent.send(
        PayloadType.HANDSHAKE_COMPLETE, complete("This session is encrypted using AWS KMS.")
    )
    (established,) = of(link.pump(), SessionEstablished)
    assert established.encrypted

    # Agent -> client: Output, StdErr and ExitCode encrypted; Error in clear.
    link.agent.send(PayloadType.OUTPUT, b"hello")
    link.agent.send(PayloadType.STDERR, b"oops")
    link.agent.send(PayloadType.EXIT_CODE, encode_exit_code(7))
    link.agent.send(PayloadType.ERROR, b"plain")
    assert link.pump() == [
        OutputReceived(b"hello"),
        StderrReceived(b"oops"),
        ExitCodeReceived(7),
        OutputReceived(b"plain"),
    ]
    # Client -> agent: Output encrypted on the wire, size and flag in clear.
    link.client.send_input(b"ls\r", T0)
    link.client.send_size(80, 24, T0)
    link.client.send_flag(Flag.TERMINATE_SESSION, T0)
    link.pump()
    wire = {m.payload_type: m.payload for m in link.agent.frames if m.sequence_number >= 2}
    assert len(wire[PayloadType.OUTPUT]) == 3 + 28 and b"ls" not in wire[PayloadType.OUTPUT]
    assert agent_key.decrypt(wire[PayloadType.OUTPUT]) == b"ls\r"
    assert wire[PayloadType.SIZE] == b'{"cols":80,"rows":24}'
    assert wire[PayloadType.FLAG] == b"\x00\x00\x00\x02"
    assert link.agent.of_type(PayloadType.OUTPUT) == [b"ls\r"]  # the agent channel decrypted
    # Sequence: response 0, challenge response 1, then data.
    seqs = [(p.payload_type, p.sequence_number) for p in link.agent.payloads]
    assert seqs == [(6, 0), (9, 1), (1, 2), (3, 3), (10, 4)]


def test_wrong_data_key_fails_with_encryption() -> None:
    link = Link()
    link.agent.send(PayloadType.HANDSHAKE_REQUEST, port_request(kms=True))
    link.pump()
    link.client.provide_data_key(bytes(64), BLOB, T0)  # not the key the agent will use
    link.pump()
    agent_key = Encrypter.for_agent(DATA_KEY)
    link.agent.channel.cipher = agent_key
    link.agent.send(
        PayloadType.ENC_CHALLENGE_REQUEST, EncChallenge(agent_key.encrypt(b"c" * 64)).encode()
    )
    (failed,) = link.pump()
    assert isinstance(failed, SessionFailed) and failed.kind == "encryption"
    assert link.client.failed and not link.client.established


def test_undecryptable_data_fails_with_encryption() -> None:
    link = Link()
    kms_handshake(link)
    link.agent.channel.cipher = Encrypter.for_agent(bytes(64))  # the agent has the wrong key
    link.agent.send(PayloadType.OUTPUT, b"secret")
    events = link.pump()
    assert [(type(e), getattr(e, "kind", None)) for e in events] == [(SessionFailed, "encryption")]


def test_kms_failure_is_reported_and_fails() -> None:
    link = Link()
    link.agent.send(PayloadType.HANDSHAKE_REQUEST, port_request(kms=True))
    link.pump()
    link.client.fail_data_key("AccessDeniedException: no", T0)
    events = link.pump()
    assert events == [
        SessionFailed("KMS encryption failed: AccessDeniedException: no", "encryption")
    ]
    (raw,) = link.agent.of_type(PayloadType.HANDSHAKE_RESPONSE)
    body = json.loads(raw)
    assert body["Errors"] == ["AccessDeniedException: no"]
    assert body["ProcessedClientActions"][0]["ActionStatus"] == 2
    assert not link.client.encrypted


def test_data_key_answers_out_of_turn() -> None:
    session = ClientSession()
    with pytest.raises(LocalProtocolError):
        session.provide_data_key(DATA_KEY, BLOB, T0)
    with pytest.raises(LocalProtocolError):
        session.fail_data_key("x", T0)


def test_challenge_without_kms() -> None:
    link = Link()
    link.agent.send(PayloadType.HANDSHAKE_REQUEST, port_request())
    link.agent.send(PayloadType.ENC_CHALLENGE_REQUEST, b'{"Challenge":"AAAA"}')
    (failed,) = link.pump()
    assert isinstance(failed, SessionFailed) and failed.kind == "handshake"


# ------------------------------------------------------------------ failures


def test_unknown_session_type() -> None:
    link = Link()
    request = HandshakeRequest.for_session("3.3.1142.0", "Telnet", None).encode()
    link.agent.send(PayloadType.HANDSHAKE_REQUEST, request)
    assert link.pump() == [SessionFailed("Unknown session type Telnet", "handshake")]
    (raw,) = link.agent.of_type(PayloadType.HANDSHAKE_RESPONSE)
    assert json.loads(raw)["ProcessedClientActions"][0]["Error"] == (
        "Failed to process action SessionType: Unknown session type Telnet"
    )
    # Later payloads are ignored, with no exception and no second failure.
    link.agent.send(PayloadType.HANDSHAKE_COMPLETE, complete())
    link.agent.send(PayloadType.OUTPUT, b"x")
    assert link.pump() == []
    # Sends after a failure go nowhere (and do not pile up).
    link.client.send_input(b"ignored", T0)
    link.client.send_flag(Flag.TERMINATE_SESSION, T0)
    link.pump()
    assert [p.payload_type for p in link.agent.payloads] == [PayloadType.HANDSHAKE_RESPONSE]
    assert not link.client.writable


@pytest.mark.parametrize(
    "payload",
    [b"{", b"not json", b"[]", b'{"AgentVersion":5}', b'{"RequestedClientActions":[7]}'],
)
def test_garbage_handshake_request(payload: bytes) -> None:
    link = Link()
    link.agent.send(PayloadType.HANDSHAKE_REQUEST, payload)
    (failed,) = link.pump()
    assert isinstance(failed, SessionFailed) and failed.kind == "protocol"
    assert link.agent.of_type(PayloadType.HANDSHAKE_RESPONSE) == []
    assert link.agent.channel.unacked == 0  # it was still acknowledged


def test_garbage_handshake_complete() -> None:
    link = Link()
    link.agent.send(PayloadType.HANDSHAKE_REQUEST, port_request())
    link.agent.send(PayloadType.HANDSHAKE_COMPLETE, b"\xff\xfe")
    (failed,) = link.pump()
    assert isinstance(failed, SessionFailed) and failed.kind == "protocol"


def test_complete_without_request() -> None:
    link = Link()
    link.agent.send(PayloadType.HANDSHAKE_COMPLETE, complete())
    assert link.pump() == [SessionFailed("unable to determine SessionType", "handshake")]


def test_complete_while_kms_pending() -> None:
    link = Link()
    link.agent.send(PayloadType.HANDSHAKE_REQUEST, port_request(kms=True))
    link.agent.send(PayloadType.HANDSHAKE_COMPLETE, complete())
    events = link.pump()
    assert [type(e) for e in events] == [KmsKeyRequested, SessionFailed]
    assert link.client.state is SessionState.FAILED
    link.client.provide_data_key(DATA_KEY, BLOB, T0)  # late answer: ignored
    assert link.pump() == []


def test_garbage_frames_never_raise() -> None:
    session = ClientSession()
    for junk in (b"", b"\x00" * 10, b"\x00\x00\x00\x74" + b"x" * 200):
        session.receive_data(junk, T0)
    assert session.events_received() == []
    assert session.state is SessionState.AWAITING


def test_retransmission_timeout() -> None:
    config = ChannelConfig(max_retransmissions=3)
    link = Link(ClientSession(config))
    link.agent.send(PayloadType.OUTPUT, b"$ ")
    link.pump()
    link.client.send_input(b"lost", T0)
    link.client.data_to_send()  # never delivered
    now = T0
    events: list[ProtocolEvent] = []
    for _ in range(20):
        timer = link.client.get_timer()
        if timer is None:
            break
        now = max(now, timer)
        link.client.handle_timer(now)
        link.client.data_to_send()
        events += link.client.events_received()
    assert [type(e) for e in events] == [SessionFailed]
    assert isinstance(events[0], SessionFailed) and events[0].kind == "timeout"


# ------------------------------------------------------------------ channel-level events


def test_channel_closed_pause_resume() -> None:
    link = Link()
    link.agent.send(PayloadType.OUTPUT, b"$ ")
    link.pump()
    for mtype in (MessageType.PAUSE_PUBLICATION, MessageType.START_PUBLICATION):
        frame = ClientMessage(mtype, 1, 1, 0, 3, uuid.uuid4(), 0, b"").encode()
        link.client.receive_data(frame, T0)
    closed = ChannelClosedPayload("m", "d", "i-1", "sess-1", "Exited with code 0").encode()
    frame = ClientMessage(MessageType.CHANNEL_CLOSED, 1, 1, 0, 0, uuid.uuid4(), 0, closed).encode()
    link.client.receive_data(frame, T0)
    assert link.client.events_received() == [
        Paused(),
        Resumed(),
        ChannelClosedByRemote("Exited with code 0", "sess-1"),
    ]


def test_input_is_split_by_max_payload_size() -> None:
    link = Link(ClientSession(ChannelConfig(max_payload_size=1024)))
    link.agent.send(PayloadType.OUTPUT, b"$ ")
    link.pump()
    data = bytes(range(256)) * 10  # 2560 bytes
    link.client.send_input(data, T0)
    link.pump()
    chunks = link.agent.of_type(PayloadType.OUTPUT)
    assert [len(c) for c in chunks] == [1024, 1024, 512]
    assert b"".join(chunks) == data


def test_send_validation() -> None:
    session = ClientSession()
    session.send_input(b"", T0)  # nothing to send, no error
    with pytest.raises(LocalProtocolError):
        session.send_size(-1, 24, T0)
    with pytest.raises(LocalProtocolError):
        session.send_flag(2**32, T0)


def test_reconnect_keeps_the_handshake_state() -> None:
    link = Link()
    link.agent.send(PayloadType.HANDSHAKE_REQUEST, port_request())
    link.client.connection_lost()
    link.pump()  # the request arrives, the response is held while disconnected
    assert link.agent.of_type(PayloadType.HANDSHAKE_RESPONSE) == []
    link.client.connection_made(T0 + 1)
    link.pump(T0 + 1)
    assert len(link.agent.of_type(PayloadType.HANDSHAKE_RESPONSE)) == 1


_JSONISH = st.one_of(
    st.binary(max_size=60),
    st.just(port_request()),
    st.just(port_request(kms=True)),
    st.just(complete("hi")),
    st.just(b'{"Challenge":"AAAA"}'),
    st.builds(
        lambda t: json.dumps(
            {"AgentVersion": t, "RequestedClientActions": [{"ActionType": t}]}
        ).encode(),
        st.text(max_size=10),
    ),
)


@given(
    st.lists(st.tuples(st.integers(0, 13), _JSONISH), max_size=12),
    st.sampled_from(["none", "key", "fail"]),
)
@settings(max_examples=300, deadline=None)
def test_fuzz_agent_payloads_never_raise(script: list[tuple[int, bytes]], kms_answer: str) -> None:
    link = Link()
    for ptype, payload in script:
        if payload:
            link.agent.send(ptype, payload)
        link.pump()
        if link.client.state is SessionState.KMS_PENDING and kms_answer != "none":
            if kms_answer == "key":
                link.client.provide_data_key(DATA_KEY, BLOB, T0)
            else:
                link.client.fail_data_key("denied", T0)
    link.pump()
    failures = of(link.events, SessionFailed)
    assert len(failures) <= 1
    assert all(f.kind in {"handshake", "encryption", "protocol", "timeout"} for f in failures)
    assert len(of(link.events, SessionEstablished)) <= 1
    if failures:
        assert link.client.failed
