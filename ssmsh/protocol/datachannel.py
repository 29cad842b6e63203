"""The data-channel state machine: sequencing, acks, retransmission, reordering.

Sans-I/O in the style of websockets and aioquic: feed received WebSocket frames
to :meth:`DataChannel.receive_data`, queue payloads with :meth:`send_data`,
then collect :meth:`data_to_send` (frames for the WebSocket) and
:meth:`events_received`. Time is always an argument; arm one timer at
:meth:`get_timer` and call :meth:`handle_timer` when it fires.

One class serves both ends: ``Role.CLIENT`` sends ``input_stream_data`` and
receives ``output_stream_data``; ``Role.AGENT`` the reverse.

The module is over the house's ~450 lines on purpose: it is one state machine whose
sending, receiving and timer halves share the in-flight window and the sequence state;
split, each half would reach into the other's.

Improvements over the official implementation (protocol notes §6):

* each message is retransmitted once per RTO (with exponential backoff), not on
  every 100 ms tick, and every expired message is retransmitted, not only the head;
* but only after an RTO without any ack (as TCP restarts its timer when an ack brings
  news, RFC 6298 5.3): while acks come, what is unacked waits in the agent's queue
  behind a slow consumer (a pty that a copy's helper drains at disk speed), and sending
  it again would only double the traffic. Within a link nothing is lost (WebSocket
  runs on TCP), so this costs no recovery time there; at a new link everything
  unacked goes again at once anyway;
* RTT samples come only from messages sent once (Karn), never from retransmissions;
* when the in-flight window is full, new messages wait in a queue (``writable``
  turns false so the I/O layer can stop reading its input) instead of the oldest
  unacked message being silently discarded;
* duplicates are dropped *and re-acknowledged*, so a lost ack is repaired at once;
* nothing is transmitted while disconnected or while publication is paused;
  everything unacked is retransmitted on :meth:`connection_made` / start_publication.

How the official agent receives (amazon-ssm-agent ``agent/session/datachannel/
datachannel.go``, ``handleStreamDataMessage``): the expected message is processed and
then acked; one ahead of it is acked and buffered (while its 10 000-message buffer has
room); one it has processed already is acked again since 3.2.1041.0 (commit b0e8d778,
May 2023; 3.3.1142.0, the traces' agent, does) and dropped *without* an ack before
(3.2.923.0 and older). A message whose handler is not ready yet (pty or TCP connection
not up, ``ErrHandlerNotReady``) is dropped unacked, to come again.

Lost acks against an agent that drops duplicates unacked: if a link dies after such an
agent processed our message N but before its ack reached us, N is retransmitted on the
new link and dropped in silence each time; without more, the session would fail with
:class:`RetransmissionTimeout` minutes later. With ``presume_lost_acks`` (the client
turns it on unless the handshake names an agent that re-acks) a message first sent
before the current epoch (a link, or a publication period: both begin with everything
unacked sent again) is tested on each of its retransmissions. The link is ordered both
ways, and the agent acks every message it has not processed yet when it arrives. So if a
message first sent in this epoch *after* N's latest transmission is acked and N's ack
has not come by N's next timeout, that transmission of N reached an agent that had
processed N already: a *strike*. After ``presume_after`` strikes (4: about 3.4 s with
the default backoff) N is taken as delivered and forgotten. When there was nothing
later to test with, a *probe* (:attr:`DataChannel.probe`, a payload the agent ignores
harmlessly: the terminal size last sent, or for a port session a size that its plugin
ignores) follows the retransmissions; at most ``presume_after`` per epoch and
``max_probes`` in all. What could fool the rule, and why it is accepted:

* a handler that stays not ready for all those seconds while later messages are
  buffered (the agent readies it once, at the session's start; here N must also have
  outlived a link);
* a full 10 000-message buffer at the agent (our window is 2 000);
* frames dropped inside one link, which WebSocket over TCP does not do (the emulator's
  ``--drop`` does, 5 % each: 4 strikes in a row is 6 in a million per suspect message).

Against an agent that re-acks, a processed message is acked again and never strikes;
the rule only ever fires on the rare cases above, so the client keeps it off when the
agent's version (from the handshake) is 3.2.1041.0 or newer. A message that was really
lost is acked when its retransmission arrives and never strikes.

Carrying a session over to another process (``ssmsh attach``):
:meth:`DataChannel.sequence_state` is what must outlive the process and
:meth:`DataChannel.restore` starts a new channel from it. The official agent acks a
message only when it is the expected one or ahead of it, or (3.2.1041.0 and newer) one
it has processed already; it never re-sends what was acked. So:

* incoming, the expected number is exact (the state is taken after every call,
  before the acks it made go out) and the messages acked ahead of it (held in the
  reorder buffer, gone with the process) are skipped when their turn comes: the
  agent will not send them again, and waiting for them would stall the output;
* outgoing, the agent expects some number between the oldest unacked message and
  the next number (``out_acked`` .. ``out_next``) and which one is unknown. Each
  number in between is sent again as a *filler*, a payload that does no harm
  whether the agent processes it or drops it (the caller's, e.g. the terminal
  size), so that its input stream never waits for a number that will not come;
  the first real message follows at ``out_next``. An agent before 3.2.1041.0 drops
  the fillers it had already without an ack (a newer one acks them again); once a
  message from ``out_next`` on is acked, they all went through (each link carries
  them before it), and the unacked ones are forgotten instead of being retransmitted
  for ever.

``ChannelConfig(resend="oldest")`` switches the first and last points back to the
official agent's behaviour, for the emulator's agent: a scheduler that looks every
100 ms at the oldest unacknowledged message only and sends it again once its RTO has
passed (no backoff), and nothing re-sent at once on a new connection; messages never
sent go out as usual (``protocol/traces/shell-client-sigkill-resume*.jsonl``).
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import json
import logging
from typing import Protocol

from ..exceptions import EncryptionError, InvalidMessage, LocalProtocolError, RemoteProtocolError
from .constants import HANDSHAKE_PAYLOAD_TYPES, MessageType, PayloadType
from .events import (
    ChannelClosedReceived,
    Event,
    MessageDropped,
    PayloadReceived,
    PublicationPaused,
    PublicationStarted,
    RetransmissionTimeout,
)
from .message import (
    ClientMessage,
    MessageIdSource,
    format_wire_id,
    new_wire_id,
    pack_frame,
    parse_frame,
    type_field,
)
from .payloads import Acknowledge, ChannelClosedPayload
from .rtt import RttConfig, RttEstimator

__all__ = ["ACKED_AHEAD_WINDOW", "ChannelConfig", "Cipher", "DataChannel", "Role", "SequenceState"]

logger = logging.getLogger(__name__)


class Role(enum.Enum):
    CLIENT = "client"
    AGENT = "agent"


class Cipher(Protocol):
    """What the channel needs from an encryption object (see ``crypto.py``)."""

    def encrypt(self, plaintext: bytes) -> bytes: ...

    def decrypt(self, ciphertext: bytes) -> bytes: ...


@dataclasses.dataclass(frozen=True, slots=True)
class ChannelConfig:
    """Tunables of the data channel, with the official values where one exists."""

    rtt: RttConfig = dataclasses.field(default_factory=RttConfig)
    #: Most unacknowledged messages in flight; beyond it new messages are queued.
    max_in_flight: int = 2000
    #: ``writable`` turns false when in-flight + queued messages reach this.
    high_water: int = 4000
    #: Out-of-order messages held for reordering (official: 10 000); beyond it they are
    #: dropped without an ack so that the peer retransmits them later.
    reorder_capacity: int = 10_000
    #: ... and at most this many payload bytes of them (10 000 of the agent's 1 KiB
    #: messages fit; 10 000 messages of 100 KB would not).
    reorder_capacity_bytes: int = 16 * 1024 * 1024
    #: Retransmissions of one message before :class:`RetransmissionTimeout` is raised.
    #: With the RTO capped at 1 s this is about five minutes, like the official limit.
    max_retransmissions: int = 300
    #: Added to ``now`` to get the wall-clock CreatedDate (seconds). The I/O layer sets
    #: it to ``time.time() - time.monotonic()`` so ``now`` may be monotonic.
    epoch_offset: float = 0.0
    #: Split OUTPUT payloads larger than this into several messages (0: never split).
    max_payload_size: int = 0
    #: Retransmission: ``"selective"`` (every expired message once per RTO, with backoff;
    #: all unacked at once on a new connection) or ``"oldest"`` (the official agent's:
    #: only the oldest, checked on a 100 ms tick, no backoff; see the module docstring).
    resend: str = "selective"
    #: Ack a message received again after it was delivered. False is what agents
    #: before 3.2.1041.0 do (the emulator's agent, when it plays one).
    ack_duplicates: bool = True
    #: With :attr:`DataChannel.presume_lost_acks`: a message is taken as delivered after
    #: this many unanswered retransmissions that each had a later message acked.
    presume_after: int = 4
    #: At most this many probes (:attr:`DataChannel.probe`) in a channel's life.
    max_probes: int = 64

    def __post_init__(self) -> None:
        if self.resend not in ("selective", "oldest"):
            raise ValueError(f"resend must be 'selective' or 'oldest', not {self.resend!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class SequenceState:
    """Where a channel's two streams stand (see the module docstring)."""

    #: The next incoming sequence number to deliver.
    next_in: int
    #: Incoming numbers above ``next_in`` acked already (held for reordering).
    acked_ahead: frozenset[int]
    #: Every outgoing number below this one was acked.
    out_acked: int
    #: The next outgoing sequence number.
    out_next: int


#: The official agent's resend scheduler tick (``ResendSleepInterval``), seconds.
RESEND_TICK = 0.1

_NONE: frozenset[int] = frozenset()
#: How far past the next expected number :meth:`DataChannel.sequence_state` reports the
#: numbers acked ahead (what a session record keeps: ``ssmsh.cli.resumable``).
ACKED_AHEAD_WINDOW = 64


@dataclasses.dataclass(slots=True)
class _Outgoing:
    sequence_number: int
    payload_type: int
    #: The payload until the message is framed; then b"" (``frame`` holds it).
    payload: bytes
    frame: bytes = b""
    first_sent: float = 0.0
    last_sent: float = 0.0
    transmissions: int = 0
    #: The channel's transmission count at this message's latest transmission.
    mark: int = 0
    #: The epoch (link or publication period) of its latest and of its first transmission.
    epoch: int = -1
    born: int = -1
    #: ``mark`` of its first transmission in ``epoch``.
    epoch_first: int = 0
    #: Retransmissions in this epoch that went unanswered while a later one was acked.
    strikes: int = 0


_ENCRYPTED_OUT = {
    Role.CLIENT: frozenset({PayloadType.OUTPUT}),
    Role.AGENT: frozenset({PayloadType.OUTPUT, PayloadType.STDERR, PayloadType.EXIT_CODE}),
}
_DECRYPTED_IN = {
    Role.CLIENT: frozenset({PayloadType.OUTPUT, PayloadType.STDERR, PayloadType.EXIT_CODE}),
    Role.AGENT: frozenset({PayloadType.OUTPUT}),
}


class DataChannel:
    """Reliable, ordered delivery of stream payloads over the data channel."""

    def __init__(
        self,
        role: Role = Role.CLIENT,
        config: ChannelConfig | None = None,
        message_ids: MessageIdSource | None = None,
    ) -> None:
        self.role = role
        self.config = config or ChannelConfig()
        #: Returns the 16-byte MessageId field of each new message (:func:`new_wire_id`,
        #: random, unless a test injects its own as it can inject crypto nonces).
        self._new_id: MessageIdSource = message_ids or new_wire_id
        if role is Role.CLIENT:
            self.local_type, self.remote_type = (
                MessageType.INPUT_STREAM_DATA,
                MessageType.OUTPUT_STREAM_DATA,
            )
        else:
            self.local_type, self.remote_type = (
                MessageType.OUTPUT_STREAM_DATA,
                MessageType.INPUT_STREAM_DATA,
            )
        self._local_field = type_field(self.local_type)
        self._ack_field = type_field(MessageType.ACKNOWLEDGE)
        # Acknowledge payloads differ only in the id and the sequence number; the JSON
        # is what payloads.Acknowledge(...).encode() writes, built from fixed parts.
        self._ack_head = b'{"AcknowledgedMessageType":%s,"AcknowledgedMessageId":"' % (
            json.dumps(str(self.remote_type)).encode()
        )
        self.rtt = RttEstimator(self.config.rtt)
        self.cipher: Cipher | None = None
        self.connected = True
        self.paused = False
        self.closed = False

        # Outgoing
        self.next_sequence_number = 0
        self._in_flight: collections.OrderedDict[int, _Outgoing] = collections.OrderedDict()
        self._queued: collections.deque[_Outgoing] = collections.deque()
        self._gave_up = False
        #: Outgoing numbers below this one are acked (advanced lazily, sequence_state()).
        self._out_acked = 0
        #: After restore(): the fillers are the numbers below this one (0: none).
        self._fillers_until = 0
        #: The latest ``now`` seen (resend="oldest" ticks from it, never in the past).
        self._now = 0.0
        #: When an ack last took a message out of flight: retransmission waits for an RTO
        #: without any (module docstring).
        self._progress = float("-inf")
        #: Lost-ack recovery against agents that drop duplicates unacked (module docstring).
        #: Off by default; ``ClientSession`` turns it on unless the agent is known to re-ack.
        self.presume_lost_acks = False
        #: (payload type, payload) of a message the agent ignores harmlessly, sent when a
        #: suspect message has nothing later in flight to test it with (None: never).
        self.probe: tuple[int, bytes] | None = None
        #: Links and publication periods: a new one on connection_made / start_publication.
        self._epoch = 0
        self._marks = 0
        #: The highest ``epoch_first`` of a message acked in this epoch.
        self._acked_mark = 0
        self._probes_in_epoch = 0

        # Incoming
        self.expected_sequence_number = 0
        self._reorder: dict[int, ClientMessage] = {}
        self._reorder_bytes = 0
        #: After restore(): acked ahead by the previous process, never to come again.
        self._skip: set[int] = set()

        self._frames: list[bytes] = []
        self._events: list[Event] = []

        # Counters, for tests, logs and benchmarks.
        self.stats: collections.Counter[str] = collections.Counter()

    # ---------------------------------------------------------------- outputs

    def data_to_send(self) -> list[bytes]:
        """Frames to write to the WebSocket (binary), in order. Empties the queue."""
        frames, self._frames = self._frames, []
        return frames

    def events_received(self) -> list[Event]:
        """Events produced since the last call. Empties the queue."""
        events, self._events = self._events, []
        return events

    @property
    def writable(self) -> bool:
        """False when enough is in flight or queued that the producer should wait."""
        return len(self._in_flight) + len(self._queued) < self.config.high_water

    @property
    def unacked(self) -> int:
        """Messages sent or queued and not yet acknowledged."""
        return len(self._in_flight) + len(self._queued)

    def sequence_state(self) -> SequenceState:
        """Where both streams stand; cheap enough to take after every call. Of the numbers
        acked ahead, those within :data:`ACKED_AHEAD_WINDOW` of the next expected one."""
        acked = self._out_acked
        queued = self._queued
        while (
            acked < self.next_sequence_number
            and acked not in self._in_flight
            and not (queued and acked >= queued[0].sequence_number)
        ):
            acked += 1
        self._out_acked = acked
        ahead = _NONE
        if self._reorder or self._skip:  # only a window of them: its cost does not grow
            base = self.expected_sequence_number + 1
            ahead = frozenset(
                seq
                for seq in range(base, base + ACKED_AHEAD_WINDOW)
                if seq in self._reorder or seq in self._skip
            )
        return SequenceState(self.expected_sequence_number, ahead, acked, self.next_sequence_number)

    def restore(self, state: SequenceState, filler_type: int, filler: bytes, now: float) -> None:
        """Carry on from ``state``, another process's channel (module docstring).

        Call before anything else; ``filler`` (of ``filler_type``, never encrypted) is
        sent for every outgoing number the agent may or may not have. Nothing goes out
        before :meth:`connection_made`.
        """
        if self.next_sequence_number or self.expected_sequence_number or self._in_flight:
            raise LocalProtocolError("restore() on a channel that was used")
        if not state.out_acked <= state.out_next or min(state.next_in, state.out_acked) < 0:
            raise LocalProtocolError(f"inconsistent sequence state {state}")
        if not filler:
            raise LocalProtocolError("cannot send an empty filler")
        self.connected = False  # no link yet: the first one sends the fillers
        self.expected_sequence_number = state.next_in
        self._skip = {seq for seq in state.acked_ahead if seq > state.next_in}
        self.next_sequence_number = self._out_acked = state.out_acked
        for _ in range(state.out_acked, state.out_next):
            self._queued.append(_Outgoing(self.next_sequence_number, filler_type, filler))
            self.next_sequence_number += 1
        self._fillers_until = state.out_next if state.out_acked < state.out_next else 0
        self._now = max(self._now, now)

    def _forget_fillers(self) -> None:
        """A message after the fillers was acked: they all reached the agent."""
        for seq in range(self._out_acked, self._fillers_until):
            if self._in_flight.pop(seq, None) is not None:
                self.stats["fillers_dropped"] += 1
        self._fillers_until = 0

    # ---------------------------------------------------------------- sending

    def send_data(self, payload_type: int, payload: bytes, now: float) -> int:
        """Queue one stream payload (several if split); returns the last sequence number.

        The payload is encrypted first when a cipher is set and the type calls for it.
        """
        if self.closed:
            raise LocalProtocolError("the data channel is closed")
        if not payload:
            raise LocalProtocolError("cannot send an empty payload")
        limit = self.config.max_payload_size
        if limit and payload_type == PayloadType.OUTPUT and len(payload) > limit:
            seq = -1
            for start in range(0, len(payload), limit):
                seq = self._send_one(payload_type, payload[start : start + limit], now)
            return seq
        return self._send_one(payload_type, payload, now)

    def _send_one(self, payload_type: int, payload: bytes, now: float) -> int:
        if self.cipher is not None and payload_type in _ENCRYPTED_OUT[self.role]:
            payload = self.cipher.encrypt(payload)
        entry = _Outgoing(self.next_sequence_number, payload_type, payload)
        self.next_sequence_number += 1
        self._queued.append(entry)
        self._pump(now)
        return entry.sequence_number

    def _pump(self, now: float) -> None:
        """Move queued messages into flight while the window and the link allow."""
        self._now = max(self._now, now)
        if not self.connected or self.paused:
            return
        while self._queued and len(self._in_flight) < self.config.max_in_flight:
            entry = self._queued.popleft()
            entry.frame = self._frame(entry, now)
            entry.payload = b""  # the frame holds it; keep one copy per unacked message
            entry.first_sent = now
            self._in_flight[entry.sequence_number] = entry
            self._transmit(entry, now)

    def _frame(self, entry: _Outgoing, now: float) -> bytes:
        if not 0 <= entry.payload_type <= 0xFFFFFFFF:
            raise LocalProtocolError(f"payload type {entry.payload_type} out of range")
        return pack_frame(
            self._local_field,
            self._created_date(now),
            entry.sequence_number,
            1 if (self.role is Role.AGENT and entry.sequence_number == 0) else 0,
            self._new_id(),
            entry.payload_type,
            entry.payload,
        )

    def _transmit(self, entry: _Outgoing, now: float) -> None:
        entry.last_sent = now
        entry.transmissions += 1
        self._marks += 1
        entry.mark = self._marks
        if entry.epoch != self._epoch:
            entry.epoch, entry.epoch_first = self._epoch, self._marks
            if entry.born < 0:
                entry.born = self._epoch
        self._frames.append(entry.frame)
        self.stats["sent"] += 1
        if entry.transmissions > 1:
            self.stats["retransmitted"] += 1

    def _created_date(self, now: float) -> int:
        return max(1, int((now + self.config.epoch_offset) * 1000))

    def send_raw(self, message: ClientMessage) -> None:
        """Send an unsequenced message as-is (used by the emulator for gateway messages)."""
        self._frames.append(message.encode())

    # -------------------------------------------------------------- connection

    def connection_lost(self) -> None:
        """The transport is gone: hold everything until :meth:`connection_made`."""
        self.connected = False

    def connection_made(self, now: float) -> None:
        """A (new) transport is up: retransmit every unacked message, then the queue."""
        self.connected = True
        self._new_epoch()
        self._retransmit_all(now)

    def _new_epoch(self) -> None:
        """Acks sent before now may have been lost: a new period of evidence begins."""
        self._epoch += 1
        self._acked_mark = 0
        self._probes_in_epoch = 0

    def _resend_oldest(self, now: float) -> None:
        """The official agent's tick: the oldest unacked message, if its RTO passed."""
        oldest = next(iter(self._in_flight.values()), None)
        if oldest is None or oldest.last_sent + self.rtt.rto > now + 1e-9:
            return
        if oldest.transmissions > self.config.max_retransmissions:
            self._out_of_retries(oldest)
            return
        self._transmit(oldest, now)  # it stays first: in-flight order is sequence order

    def _out_of_retries(self, entry: _Outgoing) -> bool:
        """``entry`` was sent too often: a filler is forgotten (the agent dropped it);
        anything else ends the channel (True)."""
        if entry.sequence_number < self._fillers_until:
            del self._in_flight[entry.sequence_number]
            return False
        self._gave_up = True
        self._events.append(RetransmissionTimeout(entry.sequence_number, entry.transmissions - 1))
        return True

    def _retransmit_all(self, now: float) -> None:
        if not self.connected or self.paused:
            return
        if self.config.resend == "oldest":
            self._pump(now)  # the tick re-sends the unacked ones, oldest first
            return
        # In sequence order, as first sent (a timer's retransmissions reorder the
        # window): the receiver delivers in that order, and restore()'s fillers rely on
        # every link carrying them before anything newer.
        for seq in sorted(self._in_flight):
            self._transmit(self._in_flight[seq], now)
            self._in_flight.move_to_end(seq)
        self._pump(now)

    def close(self) -> None:
        """Stop sending; later calls to send_data raise LocalProtocolError."""
        self.closed = True

    # ------------------------------------------------------------------ timers

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next run, or None."""
        if not self._in_flight or not self.connected or self.paused or self._gave_up:
            return None
        oldest = next(iter(self._in_flight.values()))
        if self.config.resend == "oldest":
            # The next tick once the oldest is due, and never a tick already past: an
            # overdue message (after an ack, after start_publication) waits for a tick.
            due = max(oldest.last_sent + self.rtt.rto, self._now)
            return (int(due / RESEND_TICK) + 1) * RESEND_TICK
        return max(oldest.last_sent, self._progress) + self.rtt.rto

    def handle_timer(self, now: float) -> None:
        """Retransmit every message whose RTO has expired (once each)."""
        self._now = max(self._now, now)
        if not self.connected or self.paused or self._gave_up:
            return
        if self.config.resend == "oldest":
            self._resend_oldest(now)
            return
        rto = self.rtt.rto
        if self._progress + rto > now + 1e-9:
            return  # acks are coming: what is unacked is queued at the agent, not lost
        expired = []
        for entry in self._in_flight.values():
            if entry.last_sent + rto > now + 1e-9:
                break
            expired.append(entry)
        if not expired:
            return
        untested = False
        for entry in expired:
            if entry.transmissions > self.config.max_retransmissions:
                if self._out_of_retries(entry):
                    return
                continue
            if self.presume_lost_acks and entry.born < self._epoch == entry.epoch:
                # Unacked since before this link: did the agent have it already?
                if self._acked_mark > entry.mark:
                    entry.strikes += 1
                    if entry.strikes >= self.config.presume_after:
                        self._presume_delivered(entry)
                        continue
                else:
                    untested = True
            self._transmit(entry, now)
            self._in_flight.move_to_end(entry.sequence_number)
        if untested:
            self._send_probe(now)
        self.rtt.back_off()

    def _presume_delivered(self, entry: _Outgoing) -> None:
        """Forget a message the agent has processed and will never ack (module docstring)."""
        del self._in_flight[entry.sequence_number]
        self.stats["presumed_delivered"] += 1
        logger.debug(
            "seq %d taken as delivered: %d retransmissions unanswered while later ones were acked",
            entry.sequence_number,
            entry.strikes,
        )

    def _send_probe(self, now: float) -> None:
        """Send the harmless probe after the retransmissions, within its bounds."""
        if (
            self.probe is None
            or self.closed
            or self._probes_in_epoch >= self.config.presume_after
            or self.stats["probes"] >= self.config.max_probes
        ):
            return
        self._probes_in_epoch += 1
        self.stats["probes"] += 1
        self._send_one(*self.probe, now)

    # --------------------------------------------------------------- receiving

    def receive_data(self, data: bytes, now: float) -> None:
        """Process one received WebSocket frame. Never raises on bad input."""
        self._now = max(self._now, now)
        try:
            fields = parse_frame(data)
        except InvalidMessage as exc:
            self._drop(f"invalid frame: {exc}")
            return
        seq = fields[3]
        if fields[0] == self.remote_type and seq == self.expected_sequence_number:
            # The common case, without building a ClientMessage: the next stream message.
            if self._deliver(fields[6], fields[7], seq, format_wire_id(fields[5]), now):
                self._deliver_reordered(now)
            return
        self.receive_message(ClientMessage.from_fields(fields), now)

    def receive_message(self, message: ClientMessage, now: float) -> None:
        """Process one decoded message."""
        mtype = message.message_type
        if mtype == MessageType.ACKNOWLEDGE:
            self._receive_ack(message, now)
        elif mtype == self.remote_type:
            self._receive_stream(message, now)
        elif mtype == MessageType.CHANNEL_CLOSED:
            try:
                payload = ChannelClosedPayload.decode(message.payload)
            except RemoteProtocolError:
                payload = ChannelClosedPayload("", "", "", "", "")
            self._events.append(ChannelClosedReceived(payload))
        elif mtype == MessageType.PAUSE_PUBLICATION:
            if not self.paused:
                self.paused = True
                self._events.append(PublicationPaused())
        elif mtype == MessageType.START_PUBLICATION:
            if self.paused:
                self.paused = False
                self._events.append(PublicationStarted())
                self._new_epoch()
                self._retransmit_all(now)
        else:
            self.stats["ignored"] += 1
            logger.debug("ignoring message of type %r", mtype)

    def _drop(self, reason: str, fatal: bool = False) -> None:
        self.stats["dropped"] += 1
        logger.debug("dropped: %s", reason)
        self._events.append(MessageDropped(reason, fatal))

    def _receive_ack(self, message: ClientMessage, now: float) -> None:
        try:
            ack = Acknowledge.decode(message.payload)
        except RemoteProtocolError as exc:
            self._drop(str(exc))
            return
        entry = self._in_flight.pop(ack.sequence_number, None)
        if entry is None:
            self.stats["stale_acks"] += 1
            return
        self.stats["acked"] += 1
        self._progress = now
        if entry.epoch == self._epoch and entry.epoch_first > self._acked_mark:
            self._acked_mark = entry.epoch_first
        if entry.transmissions == 1:
            self.rtt.update(now - entry.first_sent)
        if self._fillers_until and ack.sequence_number >= self._fillers_until:
            self._forget_fillers()
        self._pump(now)

    def _ack(self, message_id: str, sequence_number: int, now: float) -> None:
        """Queue the acknowledge message for a received stream message.

        Equivalent to encoding ``ClientMessage(ACKNOWLEDGE, flags=3, payload=
        Acknowledge(type, id, seq).encode())``, from precomputed parts: this runs
        once per received message.
        """
        if not self.connected:
            return
        payload = b'%s%s","AcknowledgedMessageSequenceNumber":%d,"IsSequentialMessage":true}' % (
            self._ack_head,
            message_id.encode(),
            sequence_number,
        )
        self._frames.append(
            pack_frame(self._ack_field, self._created_date(now), 0, 3, self._new_id(), 0, payload)
        )

    def _receive_stream(self, message: ClientMessage, now: float) -> None:
        seq = message.sequence_number
        expected = self.expected_sequence_number
        if seq < expected:
            self.stats["duplicates"] += 1
            if self.config.ack_duplicates:  # the earlier ack may have been lost
                self._ack(str(message.message_id), seq, now)
            return
        if seq > expected:
            if seq in self._reorder:
                self.stats["duplicates"] += 1
                self._ack(str(message.message_id), seq, now)
            elif (
                len(self._reorder) < self.config.reorder_capacity
                and self._reorder_bytes + len(message.payload) <= self.config.reorder_capacity_bytes
            ):
                self._reorder[seq] = message
                self._reorder_bytes += len(message.payload)
                self.stats["reordered"] += 1
                self._ack(str(message.message_id), seq, now)
            else:
                self._drop(f"reorder buffer full, seq {seq} not acked")
            return
        payload_type, payload = message.payload_type, message.payload
        if self._deliver(payload_type, payload, seq, str(message.message_id), now):
            self._deliver_reordered(now)

    def _deliver_reordered(self, now: float) -> None:
        """Deliver the messages that were waiting for the one just delivered (acked already)."""
        reorder = self._reorder
        while reorder or self._skip:
            expected = self.expected_sequence_number
            if expected in reorder:
                message = reorder.pop(expected)
                self._reorder_bytes -= len(message.payload)
                self._skip.discard(expected)
                self._deliver(message.payload_type, message.payload, expected, None, now)
            elif expected in self._skip:
                # Acked by the process before this one, lost with it: never sent again.
                self._skip.discard(expected)
                self.expected_sequence_number += 1
                self.stats["skipped"] += 1
            else:
                break

    def _deliver(
        self, ptype: int, payload: bytes, seq: int, ack_id: str | None, now: float
    ) -> bool:
        """Decrypt, ack (unless ``ack_id`` is None: acked on arrival), emit and advance.

        False if the message was rejected.
        """
        if self.cipher is not None and ptype in _DECRYPTED_IN[self.role]:
            try:
                payload = self.cipher.decrypt(payload)
            except EncryptionError as exc:
                # A wrong key or tampered data will not fix itself on retransmission.
                self._drop(f"seq {seq}: {exc}", fatal=True)
                return False
        if ack_id is not None:
            self._ack(ack_id, seq, now)
        self.expected_sequence_number += 1
        self.stats["delivered"] += 1
        self._events.append(PayloadReceived(ptype, payload, seq))
        return True

    # Handshake payloads need no special casing: they are acked before the
    # consumer sees the event, which is exactly "ack first, then process".
    HANDSHAKE_TYPES = HANDSHAKE_PAYLOAD_TYPES
