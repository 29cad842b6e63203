"""Round-trip time estimation and retransmission timeout (Jacobson/Karels, RFC 6298)."""

from __future__ import annotations

import dataclasses

__all__ = ["RttConfig", "RttEstimator"]


@dataclasses.dataclass(frozen=True, slots=True)
class RttConfig:
    """Constants from the official implementation (protocol notes §6.2)."""

    #: RTO before the first sample (DefaultTransmissionTimeout).
    initial_rto: float = 0.2
    #: SRTT before the first sample (DefaultRoundTripTime).
    initial_srtt: float = 0.1
    #: RTTVAR before the first sample.
    initial_rttvar: float = 0.0
    #: Gain of the smoothed RTT (RTTConstant).
    alpha: float = 1 / 8
    #: Gain of the RTT variation (RTTVConstant).
    beta: float = 1 / 4
    #: Clock granularity G: the floor of the variance term.
    granularity: float = 0.01
    #: Upper bound of the RTO (MaxTransmissionTimeout).
    max_rto: float = 1.0
    #: Lower bound of the RTO (the official code has none beyond G).
    min_rto: float = 0.0


class RttEstimator:
    """Smoothed RTT and RTO. Backoff doubles the RTO on timeouts until a new sample."""

    def __init__(self, config: RttConfig | None = None) -> None:
        self.config = config or RttConfig()
        self.srtt = self.config.initial_srtt
        self.rttvar = self.config.initial_rttvar
        self.samples = 0
        self._base_rto = self.config.initial_rto
        self._backoff = 1

    @property
    def rto(self) -> float:
        """The current retransmission timeout in seconds, backoff included."""
        return min(self._base_rto * self._backoff, self.config.max_rto)

    def update(self, sample: float) -> None:
        """Fold in one RTT sample (seconds) from a message that was sent exactly once."""
        cfg = self.config
        sample = max(sample, 0.0)
        self.rttvar = (1 - cfg.beta) * self.rttvar + cfg.beta * abs(self.srtt - sample)
        self.srtt = (1 - cfg.alpha) * self.srtt + cfg.alpha * sample
        rto = self.srtt + max(cfg.granularity, 4 * self.rttvar)
        self._base_rto = max(cfg.min_rto, min(rto, cfg.max_rto))
        self._backoff = 1
        self.samples += 1

    def back_off(self) -> None:
        """A retransmission timer fired: double the RTO (capped at max_rto)."""
        if self._base_rto * self._backoff < self.config.max_rto:
            self._backoff *= 2
