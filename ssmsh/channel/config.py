"""Tunables of the channel driver, and the reconnect backoff schedule."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator

__all__ = ["ConnectionConfig", "backoff_delays"]


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionConfig:
    """How a :class:`~ssmsh.channel.SessionConnection` talks to the gateway.

    The official plugin pings every 5 minutes, ignores pongs and gives up a
    reconnect after 6 tries in 3-6 s (protocol notes §10). These defaults notice
    a dead link within ~20 s and keep trying for 5 minutes.
    """

    #: Seconds between WebSocket pings on an idle-or-not link (None: no pings).
    ping_interval: float | None = 10.0
    #: Seconds to wait for the pong before the link is declared dead.
    ping_timeout: float = 10.0
    #: Timeout of one WebSocket opening handshake (TCP + TLS + HTTP upgrade).
    open_timeout: float = 20.0
    #: Seconds to wait for a clean WebSocket close before dropping the socket.
    close_timeout: float = 2.0
    #: Total time allowed to get a lost link back before giving up (ReconnectFailed).
    reconnect_budget: float = 300.0
    #: Time allowed for the very first link (before anything was ever received).
    connect_budget: float = 30.0
    #: First reconnect delay; later ones grow by ``backoff_factor`` up to ``backoff_max``.
    backoff_initial: float = 0.1
    backoff_factor: float = 2.0
    backoff_max: float = 10.0
    #: Each delay is drawn uniformly from [delay * (1 - jitter), delay].
    backoff_jitter: float = 0.5
    #: Largest payload of one input message; larger sends are split.
    max_payload_size: int = 1024
    #: Received payload bytes the consumer may leave unread before the driver
    #: stops reading the WebSocket (backpressure towards the gateway).
    max_receive_buffer: int = 4 * 1024 * 1024
    #: Write buffer of the WebSocket transport, in bytes.
    write_limit: int = 256 * 1024
    #: Receive coalescing: the longest hold, in seconds (0: off). While frames stream
    #: in as a run of small batches, the driver stops reading the WebSocket after each
    #: batch, for 2 ms at first and 2 ms longer with each batch up to this, so that
    #: the next batch is taken in one wakeup, acknowledged in one write and delivered
    #: as one event. An agent that sends 1 KiB per millisecond otherwise costs a
    #: wakeup, an ack write and a local write per KiB. The first frame after a quiet
    #: spell and fast streams are handled at once; a short burst is delayed by a few
    #: milliseconds. Acks held this long raise the agent's round-trip estimate and
    #: with it its RTO (SRTT + 4 RTTVAR, at least 10 ms: protocol notes 6.2), so held
    #: acks do not make it retransmit in a steady stream.
    receive_coalesce: float = 0.03
    #: Time allowed for TerminateSession when closing.
    terminate_timeout: float = 5.0
    #: Seconds from the first link to the agent's handshake (or, for an agent that does
    #: not handshake, its first output or ``skip_handshake()``); past it the session
    #: ends with HandshakeError. None: wait for ever. An agent that answers nothing is
    #: otherwise indistinguishable from a slow one while pings keep the link alive.
    handshake_timeout: float | None = 30.0
    #: Largest WebSocket message accepted, fragments included (the agent's are about
    #: 1 KiB); a larger one closes the link (code 1009) instead of being buffered.
    max_message_size: int = 1024 * 1024

    def __post_init__(self) -> None:
        if self.ping_interval is not None and self.ping_interval <= 0:
            raise ValueError("ping_interval must be positive or None")
        for name in ("ping_timeout", "open_timeout", "backoff_initial", "backoff_max"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.reconnect_budget < 0 or self.connect_budget < 0:
            raise ValueError("budgets must not be negative")
        if self.backoff_factor < 1:
            raise ValueError("backoff_factor must be at least 1")
        if not 0 <= self.backoff_jitter <= 1:
            raise ValueError("backoff_jitter must be within [0, 1]")
        if not 0 <= self.receive_coalesce <= 0.1:
            raise ValueError("receive_coalesce must be within [0, 0.1] seconds")
        if self.max_payload_size < 1:
            raise ValueError("max_payload_size must be positive")
        if self.handshake_timeout is not None and self.handshake_timeout <= 0:
            raise ValueError("handshake_timeout must be positive or None")
        if self.max_message_size < 1024:
            raise ValueError("max_message_size must be at least 1024")


def backoff_delays(config: ConnectionConfig, rng: random.Random | None = None) -> Iterator[float]:
    """Jittered exponential delays: the first is ~``backoff_initial``, capped at ``backoff_max``.

    Infinite; the caller stops when its budget runs out.
    """
    rng = rng or random.Random()
    delay = config.backoff_initial
    while True:
        low = delay * (1 - config.backoff_jitter)
        yield rng.uniform(low, delay)
        delay = min(delay * config.backoff_factor, config.backoff_max)
