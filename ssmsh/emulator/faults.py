"""Fault injection for the message gateway: what to break, and a seeded decision maker.

:class:`FaultConfig` holds the settings (the ``ssmsh emulator`` options map onto it
one to one); :class:`FaultInjector` makes the per-frame decisions and counts what it
did, so that tests can assert on ``injector.counters``. The gateway applies the
decisions to real WebSocket traffic; this module does no I/O.

Per-frame faults apply to *data* messages (``input_stream_data`` /
``output_stream_data``) in the configured directions:

``drop``       the frame is never delivered (the sender's retransmission repairs it);
``duplicate``  the frame is delivered twice;
``reorder``    the frame is held back and delivered right after the next frame
               going the same way (or after ``reorder_hold`` seconds);
``delay_ms``   the frame and everything behind it wait that long (added latency).

Connection-level faults are carried out by the gateway on a timer or on request:
close every N seconds with ``1000 "Bye"`` (as the real service does hourly), reset
the TCP connection every N seconds, stop acknowledging (the agent's acks are
withheld), go silent (nothing delivered either way, no pongs), pause/resume
publication, and refuse ResumeSession.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import math
import random

__all__ = ["DATA_MESSAGE_TYPES", "Delivery", "Direction", "FaultConfig", "FaultInjector"]


class Direction(enum.StrEnum):
    """Which way a frame travels through the gateway."""

    TO_AGENT = "to-agent"  # client -> agent (input_stream_data, client acks)
    TO_CLIENT = "to-client"  # agent -> client (output_stream_data, agent acks)


BOTH_DIRECTIONS = frozenset({Direction.TO_AGENT, Direction.TO_CLIENT})

#: Message types the per-frame faults apply to (as they appear in the 32-byte field).
DATA_MESSAGE_TYPES = frozenset({b"input_stream_data", b"output_stream_data"})
_ACKNOWLEDGE = b"acknowledge"


def _message_type(frame: bytes) -> bytes:
    """The MessageType field of a frame, without padding (empty if the frame is too short)."""
    return bytes(frame[4:36]).strip(b" \x00")


def _check_rate(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a fraction between 0 and 1, not {value!r}")


def _check_period(name: str, value: float | None) -> None:
    if value is not None and not (
        isinstance(value, int | float) and math.isfinite(value) and value > 0
    ):
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")


@dataclasses.dataclass(slots=True)
class FaultConfig:
    """What the gateway should break. The defaults break nothing."""

    #: Close each client WebSocket this many seconds after it opened (code 1000 "Bye").
    close_every: float | None = None
    #: Abort each client TCP connection (no close frame) this many seconds after it opened.
    reset_every: float | None = None
    #: Fraction of data messages dropped.
    drop: float = 0.0
    #: Fraction of data messages delivered twice.
    duplicate: float = 0.0
    #: Fraction of data messages held back and delivered after the next one.
    reorder: float = 0.0
    #: Latency added to data messages, in milliseconds.
    delay_ms: float = 0.0
    #: Seed of the random decisions (None: unpredictable).
    seed: int | None = None
    #: Directions the per-frame faults apply to.
    directions: frozenset[Direction] = BOTH_DIRECTIONS
    #: Withhold the agent's acknowledgements from the client.
    stop_acking: bool = False
    #: Deliver nothing in either direction and answer no pings.
    silent: bool = False
    #: Refuse ResumeSession calls (the API answers AccessDeniedException).
    refuse_resume: bool = False
    #: Longest time a reordered frame is held when no other frame follows it (seconds).
    reorder_hold: float = 0.05

    def __post_init__(self) -> None:
        for name in ("drop", "duplicate", "reorder"):
            _check_rate(name, getattr(self, name))
        _check_period("close_every", self.close_every)
        _check_period("reset_every", self.reset_every)
        _check_period("reorder_hold", self.reorder_hold)
        if not (
            isinstance(self.delay_ms, int | float)
            and math.isfinite(self.delay_ms)
            and self.delay_ms >= 0
        ):
            raise ValueError(f"delay_ms must be a non-negative number, not {self.delay_ms!r}")
        try:
            self.directions = frozenset(Direction(d) for d in self.directions)
        except ValueError:
            wanted = ", ".join(d.value for d in Direction)
            raise ValueError(f"directions must be among: {wanted}") from None

    @property
    def affects_frames(self) -> bool:
        """True if any per-frame fault is configured."""
        return bool(self.drop or self.duplicate or self.reorder or self.delay_ms)


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    """A frame to deliver ``delay`` seconds from now."""

    frame: bytes
    delay: float = 0.0


class FaultInjector:
    """Seeded per-frame decisions plus the switches the gateway consults.

    ``counters`` counts what was injected: ``dropped``, ``duplicated``,
    ``reordered``, ``delayed``, ``acks_withheld``, ``silenced`` (frames swallowed
    while silent), and the gateway's ``closed``, ``reset``, ``paused``, ``resumed``,
    ``resume_refused``.
    """

    def __init__(self, config: FaultConfig | None = None) -> None:
        self.config = config if config is not None else FaultConfig()
        self.rng = random.Random(self.config.seed)
        self.counters: collections.Counter[str] = collections.Counter()
        #: Runtime switches, initialised from the config and changeable at any time.
        self.stop_acking = self.config.stop_acking
        self.silent = self.config.silent
        self.refuse_resume = self.config.refuse_resume
        #: Frames held back for reordering, per (link, direction): a frame is only ever
        #: released into the connection it came from.
        self._held: dict[tuple[object, Direction], bytes] = {}

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def _hit(self, rate: float) -> bool:
        return rate > 0.0 and self.rng.random() < rate

    def process(self, direction: Direction, frame: bytes, link: object = None) -> list[Delivery]:
        """Decide the fate of one frame: the deliveries to make, in order (maybe none).

        ``link`` identifies the connection the frame travels on (any hashable object):
        a frame held back for reordering is released only with a later frame of the
        same link and direction.
        """
        mtype = _message_type(frame)
        if self.silent:
            self.count("silenced")
            return []
        if direction is Direction.TO_CLIENT and self.stop_acking and mtype == _ACKNOWLEDGE:
            self.count("acks_withheld")
            return []
        cfg = self.config
        released = self._held.pop((link, direction), None)
        if mtype not in DATA_MESSAGE_TYPES or direction not in cfg.directions:
            out = [frame]
        elif self._hit(cfg.drop):
            self.count("dropped")
            out = []
        elif released is None and self._hit(cfg.reorder):
            self.count("reordered")
            self._held[(link, direction)] = frame
            out = []
        elif self._hit(cfg.duplicate):
            self.count("duplicated")
            out = [frame, frame]
        else:
            out = [frame]
        if released is not None:
            out.append(released)
        delay = 0.0
        if cfg.delay_ms and direction in cfg.directions and mtype in DATA_MESSAGE_TYPES and out:
            delay = cfg.delay_ms / 1000.0
            self.count("delayed", len(out))
        return [Delivery(f, delay) for f in out]

    def held(self, direction: Direction, link: object = None) -> bool:
        """True while a reordered frame of ``link`` waits for a successor in this direction."""
        return (link, direction) in self._held

    def release_held(self, direction: Direction, link: object = None) -> bytes | None:
        """Give up waiting: the held frame of ``link`` and direction (if any), to deliver now."""
        return self._held.pop((link, direction), None)

    def forget_held(self, link: object = None) -> None:
        """Drop the held frames of ``link`` (its connection is gone; retransmission
        covers them); with no link, every held frame."""
        if link is None:
            self._held.clear()
            return
        for direction in Direction:
            self._held.pop((link, direction), None)
