"""The client side of one Session Manager session, Sans-I/O.

:class:`ClientSession` composes the reliable :class:`~.datachannel.DataChannel`
with the handshake (``handshake.py``) and payload encryption (``crypto.py``).
Feed it WebSocket frames with :meth:`~ClientSession.receive_data`, give it input
with the ``send_*`` methods, and collect :meth:`~ClientSession.data_to_send`
(binary frames) and :meth:`~ClientSession.events_received` (the events below).
Time is an argument everywhere; arm one timer at :meth:`~ClientSession.get_timer`.

The session goes through these states::

    AWAITING ─HandshakeRequest─▶ [KMS_PENDING ─data key─▶] RESPONDED ─Complete─▶ ESTABLISHED
    AWAITING ─first Output payload (an agent that skips the handshake)─────▶ ESTABLISHED
    AWAITING ─skip_handshake() (the caller gave up waiting)────────────────▶ ESTABLISHED
    ESTABLISHED (skipped, nothing heard yet) ─HandshakeRequest─▶ [KMS_PENDING ▶] RESPONDED ▶ …
    any state ──fatal problem──▶ FAILED

Rules, following protocol notes §7 and §8:

* Handshake payloads are acknowledged by the data channel on delivery, before
  they are processed.
* The HandshakeResponse is the first sequenced client message. Input, size and
  flag messages given earlier are held and sent, in order, once the session is
  established (the official client does not read input before that either).
* A KMSEncryption action emits :class:`KmsKeyRequested`; the caller answers with
  :meth:`~ClientSession.provide_data_key` or :meth:`~ClientSession.fail_data_key`.
  Encryption is switched on before the response goes out; the response itself is
  never encrypted (the channel only encrypts Output).
* Stream payloads that arrive before the session is established are buffered
  and released right after :class:`SessionEstablished`.
* A handshake that comes after :meth:`~ClientSession.skip_handshake` (a slow
  agent, not one without handshake) is answered late: the agent ignored what was
  sent in the meantime (it takes no stream data before its handshake is
  complete), so that is sent again after the HandshakeComplete, encrypted if
  KMS is on, and :class:`SessionEstablished` comes a second time.
* Bad remote input never raises: it is logged and ignored, or it ends the session
  with one :class:`SessionFailed`. After that, stream payloads from the agent and
  ``send_*`` calls are ignored; channel-level events (closed, paused) still come.

Why one module of ~560 lines, above the ~450 the code base aims for: the paths
above (handshake, KMS, skip and late handshake, held and resent input) are one
state machine over shared state, read best as one table of transitions; the
event classes it emits (~90 lines) are imported from here across the package.
Moving those events to a module of their own is the split to make if it grows.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from typing import Any

from ..exceptions import EncryptionError, LocalProtocolError, RemoteProtocolError
from .constants import CLIENT_VERSION, Flag, PayloadType, SessionType
from .crypto import Encrypter, NonceSource
from .datachannel import ChannelConfig, DataChannel, Role, SequenceState
from .events import (
    ChannelClosedReceived,
    Event,
    MessageDropped,
    PayloadReceived,
    PublicationPaused,
    PublicationStarted,
    RetransmissionTimeout,
)
from .handshake import (
    DataKey,
    answer_encryption_challenge,
    implied_session_type,
    parse_handshake_complete,
    parse_handshake_request,
    process_handshake_request,
    requested_kms_key_id,
)
from .message import MessageIdSource
from .payloads import HandshakeRequest, TerminalSize, decode_exit_code, decode_flag, encode_flag
from .versions import agent_acks_duplicates

__all__ = [
    "ChannelClosedByRemote",
    "ClientSession",
    "ExitCodeReceived",
    "FlagReceived",
    "KmsKeyRequested",
    "OutputReceived",
    "Paused",
    "ProtocolEvent",
    "Resumed",
    "SessionEstablished",
    "SessionFailed",
    "SessionState",
    "StderrReceived",
]

logger = logging.getLogger(__name__)

#: Most stream payloads held while the handshake is still running...
MAX_EARLY_PAYLOADS = 10_000
#: ... and most bytes of them; more ends the session (they were acked already).
MAX_EARLY_BYTES = 4 * 1024 * 1024
#: Most bytes kept, after skip_handshake(), to send again if a handshake comes late.
MAX_RESEND_AFTER_SKIP = 1 << 20
#: The lost-ack probe of a port session: a Size, which the port plugin ignores.
PORT_PROBE = TerminalSize(80, 24).encode()
_U32_MAX = 0xFFFFFFFF


# ---------------------------------------------------------------------- events


@dataclasses.dataclass(frozen=True, slots=True)
class KmsKeyRequested:
    """The agent wants KMS encryption: generate a 64-byte data key for ``key_id``."""

    key_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class SessionEstablished:
    """The handshake is over (or was skipped); stream data may flow both ways.

    ``session_type`` is ``Standard_Stream`` (shell handling) or ``Port``;
    ``agent_version`` is empty for agents that do not handshake.
    """

    session_type: str
    properties: Any
    agent_version: str
    customer_message: str
    encrypted: bool


@dataclasses.dataclass(frozen=True, slots=True)
class OutputReceived:
    """Output (PayloadType 1) or Error (2) bytes from the agent, decrypted."""

    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class StderrReceived:
    """StdErr (PayloadType 11) bytes from the agent, decrypted."""

    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class ExitCodeReceived:
    """The remote command's exit status (PayloadType 12)."""

    code: int


@dataclasses.dataclass(frozen=True, slots=True)
class FlagReceived:
    """A Flag payload (PayloadType 10) from the agent, e.g. ConnectToPortError (3)."""

    flag: int


@dataclasses.dataclass(frozen=True, slots=True)
class ChannelClosedByRemote:
    """The service or agent closed the channel; ``output`` is its message, if any."""

    output: str
    session_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class Paused:
    """The gateway paused publication: the agent is away, sends are held."""


@dataclasses.dataclass(frozen=True, slots=True)
class Resumed:
    """The gateway resumed publication: held sends go out again."""


@dataclasses.dataclass(frozen=True, slots=True)
class SessionFailed:
    """The session cannot go on. Emitted at most once.

    ``kind`` is one of ``handshake``, ``encryption``, ``protocol`` or ``timeout``.
    """

    reason: str
    kind: str


#: Everything :class:`ClientSession` emits. A :class:`~ssmsh.channel.SessionConnection`
#: handles the rest itself and passes its consumer only :data:`ssmsh.channel.SessionEvent`.
ProtocolEvent = (
    KmsKeyRequested
    | SessionEstablished
    | OutputReceived
    | StderrReceived
    | ExitCodeReceived
    | FlagReceived
    | ChannelClosedByRemote
    | Paused
    | Resumed
    | SessionFailed
)


class SessionState(enum.Enum):
    AWAITING = "awaiting"  # nothing from the agent yet
    KMS_PENDING = "kms_pending"  # HandshakeRequest received, waiting for the data key
    RESPONDED = "responded"  # HandshakeResponse sent, waiting for HandshakeComplete
    ESTABLISHED = "established"
    FAILED = "failed"


# ---------------------------------------------------------------------- session


class ClientSession:
    """One client session: handshake, encryption and stream payloads over a DataChannel."""

    def __init__(
        self,
        config: ChannelConfig | None = None,
        client_version: str = CLIENT_VERSION,
        nonce_source: NonceSource | None = None,
        message_ids: MessageIdSource | None = None,
    ) -> None:
        self.channel = DataChannel(Role.CLIENT, config, message_ids)
        self.client_version = client_version
        self.state = SessionState.AWAITING
        self.session_type: str | None = None
        self.session_properties: Any = None
        self.agent_version = ""
        self.customer_message = ""
        self.encrypted = False
        self._nonce_source = nonce_source
        self._request: HandshakeRequest | None = None
        self._encrypter: Encrypter | None = None
        self._early: list[PayloadReceived] = []
        self._early_bytes = 0
        self._held: list[tuple[int, bytes]] = []
        self._events: list[ProtocolEvent] = []
        self._skipped_handshake = False
        #: While a skipped handshake is unconfirmed (no stream data from the agent
        #: yet): what was sent, to send again should the agent handshake after all.
        self._sent_unconfirmed: list[tuple[int, bytes]] | None = None
        self._sent_unconfirmed_bytes = 0
        self._late_handshake = False

    # ------------------------------------------------------------ properties

    @property
    def established(self) -> bool:
        return self.state is SessionState.ESTABLISHED

    @property
    def failed(self) -> bool:
        return self.state is SessionState.FAILED

    @property
    def writable(self) -> bool:
        """True when input may be sent now: established and the channel is not saturated."""
        return self.established and self.channel.writable

    # ------------------------------------------------------------ outputs

    def data_to_send(self) -> list[bytes]:
        """Binary WebSocket frames to write, in order. Empties the queue."""
        return self.channel.data_to_send()

    def events_received(self) -> list[ProtocolEvent]:
        """Session events since the last call. Empties the queue."""
        events, self._events = self._events, []
        return events

    # ------------------------------------------------------------ I/O layer hooks

    def receive_data(self, data: bytes, now: float) -> None:
        """Process one received WebSocket frame. Never raises on bad input."""
        self.channel.receive_data(data, now)
        self._process_channel_events(now)

    def get_timer(self) -> float | None:
        return self.channel.get_timer()

    def handle_timer(self, now: float) -> None:
        self.channel.handle_timer(now)
        self._process_channel_events(now)

    def connection_lost(self) -> None:
        self.channel.connection_lost()

    def connection_made(self, now: float) -> None:
        self.channel.connection_made(now)
        self._process_channel_events(now)

    # ------------------------------------------------------------ sending

    def send_input(self, data: bytes, now: float) -> None:
        """Send bytes as Output (encrypted when KMS is on), split per ``max_payload_size``."""
        if data:
            self._send(PayloadType.OUTPUT, bytes(data), now)

    def send_size(self, cols: int, rows: int, now: float) -> None:
        """Send the terminal size (PayloadType 3, never encrypted)."""
        if not (0 <= cols <= _U32_MAX and 0 <= rows <= _U32_MAX):
            raise LocalProtocolError(f"terminal size out of range: {cols}x{rows}")
        size = TerminalSize(cols, rows).encode()
        self._send(PayloadType.SIZE, size, now)
        # The same size again is what the lost-ack probe sends (no effect on a pty).
        self.channel.probe = (PayloadType.SIZE, size)

    def send_flag(self, flag: Flag | int, now: float) -> None:
        """Send a Flag (PayloadType 10), e.g. ``Flag.TERMINATE_SESSION``."""
        if not 0 <= int(flag) <= _U32_MAX:
            raise LocalProtocolError(f"flag out of range: {flag}")
        self._send(PayloadType.FLAG, encode_flag(int(flag)), now)

    def _send(self, payload_type: int, payload: bytes, now: float) -> None:
        if self.channel.closed:
            raise LocalProtocolError("the data channel is closed")
        if self.failed:
            logger.debug("not sending payload type %d: the session has failed", payload_type)
        elif self.established:
            if self._sent_unconfirmed is not None:
                self._keep_for_resend(payload_type, payload)
            self.channel.send_data(payload_type, payload, now)
        else:
            # Nothing may precede the HandshakeResponse; hold until established.
            self._held.append((payload_type, payload))

    def skip_handshake(self, now: float) -> bool:
        """Go ahead as with an agent that does not handshake, before it has said so.

        Such an agent (a shell or InteractiveCommands session without KMS) is
        recognised by its first Output; a program that prints nothing until it
        has read its input (``cat``, ``wc``) never gives one. A caller that knows
        the session is a terminal session may stop waiting: the session is then
        established as ``Standard_Stream``, held sends go out and stream data
        that came early is delivered. Does nothing and returns False once a
        handshake has begun or the session is established or failed.

        If a HandshakeRequest arrives before any stream data, the agent was only
        slow: it is answered, and what was sent meanwhile (which such an agent
        ignores) is sent again once the handshake is complete. A HandshakeRequest
        after the agent's output, or after more than ``MAX_RESEND_AFTER_SKIP``
        bytes were sent, ends the session (kind ``handshake``).
        """
        if self.state is not SessionState.AWAITING:
            return False
        self.session_type = implied_session_type(PayloadType.OUTPUT)
        self._skipped_handshake = True
        self._sent_unconfirmed = []
        for payload_type, payload in self._held:
            self._keep_for_resend(payload_type, payload)
        self._establish(now)
        return True

    def _keep_for_resend(self, payload_type: int, payload: bytes) -> None:
        kept = self._sent_unconfirmed
        if kept is None:
            return
        self._sent_unconfirmed_bytes += len(payload)
        if self._sent_unconfirmed_bytes > MAX_RESEND_AFTER_SKIP:
            # A silent program fed a lot: too much to keep. A late handshake now fails.
            self._sent_unconfirmed = None
        else:
            kept.append((payload_type, payload))

    def restore(
        self,
        *,
        session_type: str,
        agent_version: str,
        sequence: SequenceState,
        size: tuple[int, int],
        now: float,
    ) -> None:
        """Take over a session another process established (``ssmsh attach``).

        The session is established at once (:class:`SessionEstablished` comes first)
        and the channel carries on from ``sequence``; the terminal ``size`` is the
        filler for the input numbers the agent may or may not have had (see
        :meth:`DataChannel.restore`). Not for KMS sessions: their keys are gone.
        """
        if self.state is not SessionState.AWAITING:
            raise LocalProtocolError(f"restore() in state {self.state.value}")
        filler = TerminalSize(*size).encode()
        self.channel.restore(sequence, PayloadType.SIZE, filler, now)
        self.channel.probe = (PayloadType.SIZE, filler)
        self.session_type = session_type
        self.agent_version = agent_version
        self._establish(now)

    # ------------------------------------------------------------ KMS answers

    def provide_data_key(self, plaintext: bytes, ciphertext_blob: bytes, now: float) -> None:
        """Answer :class:`KmsKeyRequested` with the GenerateDataKey result."""
        self._answer_kms(DataKey(bytes(plaintext), bytes(ciphertext_blob)), now)

    def fail_data_key(self, error: str, now: float) -> None:
        """Answer :class:`KmsKeyRequested` with the reason the data key is unavailable."""
        self._answer_kms(error or "the KMS data key request failed", now)

    def _answer_kms(self, data_key: DataKey | str, now: float) -> None:
        if self.state is not SessionState.KMS_PENDING:
            if self.failed:
                return  # the session ended while KMS was being asked; nothing to do
            raise LocalProtocolError("no KMS data key was requested")
        self._respond(data_key, now)

    # ------------------------------------------------------------ event processing

    def _process_channel_events(self, now: float) -> None:
        for event in self.channel.events_received():
            self._on_channel_event(event, now)

    def _on_channel_event(self, event: Event, now: float) -> None:
        if isinstance(event, PayloadReceived):
            self._on_payload(event, now)
        elif isinstance(event, ChannelClosedReceived):
            payload = event.payload
            self._events.append(ChannelClosedByRemote(payload.output, payload.session_id))
        elif isinstance(event, PublicationPaused):
            self._events.append(Paused())
        elif isinstance(event, PublicationStarted):
            self._events.append(Resumed())
        elif isinstance(event, MessageDropped):
            if event.fatal:
                self._fail(f"cannot decrypt agent data: {event.reason}", "encryption")
            else:
                logger.debug("message dropped: %s", event.reason)
        elif isinstance(event, RetransmissionTimeout):
            self._fail(
                f"message {event.sequence_number} unacknowledged after "
                f"{event.attempts} retransmissions",
                "timeout",
            )

    def _on_payload(self, event: PayloadReceived, now: float) -> None:
        if self.failed:
            logger.debug("ignoring payload type %d after failure", event.payload_type)
            return
        ptype = event.payload_type
        if ptype == PayloadType.HANDSHAKE_REQUEST:
            self._on_handshake_request(event.payload, now)
        elif ptype == PayloadType.ENC_CHALLENGE_REQUEST:
            self._on_challenge(event.payload, now)
        elif ptype == PayloadType.HANDSHAKE_COMPLETE:
            self._on_handshake_complete(event.payload, now)
        elif self.established:
            self._sent_unconfirmed = None  # the agent took the skip: it talks without handshake
            self._deliver(event)
        elif self.state is SessionState.AWAITING and implied_session_type(ptype) is not None:
            # An agent that does not handshake: its first Output means a shell.
            self.session_type = implied_session_type(ptype)
            self._early.append(event)
            self._establish(now)
        elif (
            len(self._early) < MAX_EARLY_PAYLOADS
            and self._early_bytes + len(event.payload) <= MAX_EARLY_BYTES
        ):
            self._early.append(event)
            self._early_bytes += len(event.payload)
        else:
            self._fail("too much stream data before the handshake completed", "protocol")

    def _on_handshake_request(self, payload: bytes, now: float) -> None:
        if self._skipped_handshake:
            resend = self._sent_unconfirmed
            if resend is None:
                self._fail(
                    "the agent began a handshake after its output had started",
                    "handshake",
                )
                return
            # A slow agent after all: it ignored everything sent so far. Handshake
            # now; that goes out again once the handshake is complete.
            logger.debug(
                "the agent began a handshake after the client had stopped waiting; "
                "answering it and sending %d earlier messages again",
                len(resend),
            )
            self._skipped_handshake = False
            self._late_handshake = True
            self._sent_unconfirmed = None
            self.session_type = None
            self._held = [*resend, *self._held]
            self.state = SessionState.AWAITING
        if self.state is not SessionState.AWAITING:
            logger.debug("ignoring a HandshakeRequest in state %s", self.state.value)
            return
        try:
            request = parse_handshake_request(payload)
        except RemoteProtocolError as exc:
            self._fail(f"invalid HandshakeRequest: {exc}", "protocol")
            return
        self._request = request
        self.agent_version = request.agent_version
        key_id = requested_kms_key_id(request)
        if key_id is not None:
            self.state = SessionState.KMS_PENDING
            self._events.append(KmsKeyRequested(key_id))
        else:
            self._respond(None, now)

    def _respond(self, data_key: DataKey | str | None, now: float) -> None:
        """Answer the stored HandshakeRequest (PayloadType 6), encryption first."""
        request = self._request
        assert request is not None
        result = process_handshake_request(
            request, data_key, self.client_version, self._nonce_source
        )
        if result.encrypter is not None:
            self._encrypter = result.encrypter
            self.channel.cipher = result.encrypter
            self.encrypted = True
        self.session_type = result.session_type
        self.session_properties = result.session_properties
        self.state = SessionState.RESPONDED
        self.channel.send_data(PayloadType.HANDSHAKE_RESPONSE, result.response.encode(), now)
        if result.session_type_error is not None:
            self._fail(result.session_type_error, "handshake")
        elif result.kms_error is not None:
            self._fail(f"KMS encryption failed: {result.kms_error}", "encryption")

    def _on_challenge(self, payload: bytes, now: float) -> None:
        cipher = self._encrypter
        if self.state is not SessionState.RESPONDED or cipher is None:
            self._fail("encryption challenge without KMS encryption", "handshake")
            return
        try:
            answer = answer_encryption_challenge(cipher, payload)
        except RemoteProtocolError as exc:
            self._fail(f"invalid EncChallengeRequest: {exc}", "protocol")
        except EncryptionError as exc:
            self._fail(f"encryption challenge failed: {exc}", "encryption")
        else:
            self.channel.send_data(PayloadType.ENC_CHALLENGE_RESPONSE, answer, now)

    def _on_handshake_complete(self, payload: bytes, now: float) -> None:
        if self.established:
            logger.debug("ignoring a HandshakeComplete after establishment")
            return
        if self.state is SessionState.KMS_PENDING:
            self._fail("HandshakeComplete arrived before the HandshakeResponse", "protocol")
            return
        try:
            complete = parse_handshake_complete(payload)
        except RemoteProtocolError as exc:
            self._fail(f"invalid HandshakeComplete: {exc}", "protocol")
            return
        if self.session_type is None:
            self._fail("unable to determine SessionType", "handshake")
            return
        shell = implied_session_type(PayloadType.OUTPUT)
        if self._late_handshake and self.session_type != shell:
            self._fail(
                f"the agent started a {self.session_type} session after the client "
                f"had gone ahead with a {shell} one",
                "handshake",
            )
            return
        self.customer_message = complete.customer_message
        self._establish(now)

    def _establish(self, now: float) -> None:
        assert self.session_type is not None
        self.state = SessionState.ESTABLISHED
        # Lost acks with an agent that drops duplicates unacked (DataChannel docstring);
        # an agent known to ack them again needs nothing.
        self.channel.presume_lost_acks = not agent_acks_duplicates(self.agent_version)
        if self.session_type == SessionType.PORT:
            # The port plugin ignores payload types other than Output and Flag
            # (amazon-ssm-agent port_mux.go / port_basic.go, HandleStreamMessage).
            self.channel.probe = (PayloadType.SIZE, PORT_PROBE)
        self._events.append(
            SessionEstablished(
                session_type=self.session_type,
                properties=self.session_properties,
                agent_version=self.agent_version,
                customer_message=self.customer_message,
                encrypted=self.encrypted,
            )
        )
        early, self._early = self._early, []
        self._early_bytes = 0
        for event in early:
            self._deliver(event)
        held, self._held = self._held, []
        for payload_type, payload in held:
            self.channel.send_data(payload_type, payload, now)

    def _deliver(self, event: PayloadReceived) -> None:
        ptype, data = event.payload_type, event.payload
        if ptype in (PayloadType.OUTPUT, PayloadType.ERROR):
            self._events.append(OutputReceived(data))
        elif ptype == PayloadType.STDERR:
            self._events.append(StderrReceived(data))
        elif ptype == PayloadType.EXIT_CODE:
            try:
                self._events.append(ExitCodeReceived(decode_exit_code(data)))
            except RemoteProtocolError as exc:
                logger.warning("ignoring an exit code payload: %s", exc)
        elif ptype == PayloadType.FLAG:
            try:
                self._events.append(FlagReceived(decode_flag(data)))
            except RemoteProtocolError as exc:
                logger.warning("ignoring a flag payload: %s", exc)
        else:
            logger.debug("ignoring payload type %d from the agent", ptype)

    def _fail(self, reason: str, kind: str) -> None:
        if self.failed:
            return
        logger.debug("session failed (%s): %s", kind, reason)
        self.state = SessionState.FAILED
        self._early.clear()
        self._held.clear()
        self._events.append(SessionFailed(reason, kind))
