"""Events emitted by the Sans-I/O data channel."""

from __future__ import annotations

import dataclasses

from .payloads import ChannelClosedPayload

__all__ = [
    "ChannelClosedReceived",
    "Event",
    "MessageDropped",
    "PayloadReceived",
    "PublicationPaused",
    "PublicationStarted",
    "RetransmissionTimeout",
]


@dataclasses.dataclass(frozen=True, slots=True)
class PayloadReceived:
    """A stream payload, delivered exactly once and in sequence order (decrypted if needed)."""

    payload_type: int
    payload: bytes
    sequence_number: int


@dataclasses.dataclass(frozen=True, slots=True)
class ChannelClosedReceived:
    """The service or agent closed the channel."""

    payload: ChannelClosedPayload


@dataclasses.dataclass(frozen=True, slots=True)
class PublicationPaused:
    """The gateway says the other side is gone for now; new sends are held."""


@dataclasses.dataclass(frozen=True, slots=True)
class PublicationStarted:
    """The other side is back; held sends are released."""


@dataclasses.dataclass(frozen=True, slots=True)
class MessageDropped:
    """An incoming frame was rejected (bad frame, bad digest, decrypt failure, full buffer).

    ``fatal`` is true when the session cannot go on (a payload failed authentication).
    """

    reason: str
    fatal: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class RetransmissionTimeout:
    """A message went unacknowledged past the retransmission limit: the peer is gone."""

    sequence_number: int
    attempts: int


Event = (
    PayloadReceived
    | ChannelClosedReceived
    | PublicationPaused
    | PublicationStarted
    | MessageDropped
    | RetransmissionTimeout
)
