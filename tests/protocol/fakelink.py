"""A fake, lossy link between two Sans-I/O data channels, driven by a hand-stepped clock.

``FakeLink`` joins a ``DataChannel(Role.CLIENT)`` and a ``DataChannel(Role.AGENT)``.
Frames each side emits go into a one-way ``Pipe`` that may drop, duplicate, delay and
reorder them (seeded, so every run is reproducible). Time only moves when the test
calls :meth:`FakeLink.step` / :meth:`FakeLink.run`: the link jumps straight to the next
frame arrival or the next protocol timer (``get_timer()``), whichever comes first.

Every frame put on the wire is recorded in ``link.wire`` with its send time and the
decoded message, so tests can count transmissions and check timings exactly.
"""

from __future__ import annotations

import dataclasses
import heapq
import random
from collections.abc import Callable

from ssmsh.protocol.datachannel import DataChannel
from ssmsh.protocol.events import Event, PayloadReceived
from ssmsh.protocol.message import ClientMessage

__all__ = ["Conditions", "FakeLink", "Pipe", "Sent"]

#: Decides the fate of one frame: return False to drop it (scripted loss).
FrameFilter = Callable[[ClientMessage, float], bool]


@dataclasses.dataclass(frozen=True)
class Conditions:
    """How one direction of the link misbehaves. Probabilities are per frame."""

    #: One-way latency, drawn uniformly from [delay, delay + jitter].
    delay: float = 0.01
    jitter: float = 0.0
    drop: float = 0.0
    duplicate: float = 0.0
    #: Probability that a frame is held back by ``reorder_delay`` extra seconds.
    reorder: float = 0.0
    reorder_delay: float = 0.05


@dataclasses.dataclass(frozen=True)
class Sent:
    """One frame as it went onto the wire (before any loss)."""

    time: float
    direction: str  # "c>a" or "a>c"
    message: ClientMessage
    delivered: bool


class Pipe:
    """One direction: a priority queue of frames in flight, ordered by arrival time."""

    def __init__(self, name: str, conditions: Conditions, rng: random.Random) -> None:
        self.name = name
        self.conditions = conditions
        self.rng = rng
        self.filter: FrameFilter | None = None
        self.up = True
        self._queue: list[tuple[float, int, bytes]] = []
        self._counter = 0

    def _latency(self) -> float:
        c = self.conditions
        latency = c.delay + (self.rng.random() * c.jitter if c.jitter else 0.0)
        if c.reorder and self.rng.random() < c.reorder:
            latency += c.reorder_delay
        return latency

    def send(self, frame: bytes, now: float) -> bool:
        """Put a frame on the wire; returns False if it was lost."""
        c = self.conditions
        if not self.up:
            return False
        if self.filter is not None and not self.filter(ClientMessage.decode(frame), now):
            return False
        if c.drop and self.rng.random() < c.drop:
            return False
        copies = 2 if c.duplicate and self.rng.random() < c.duplicate else 1
        for _ in range(copies):
            self._counter += 1
            heapq.heappush(self._queue, (now + self._latency(), self._counter, frame))
        return True

    def next_arrival(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def pop_due(self, now: float) -> list[bytes]:
        frames = []
        while self._queue and self._queue[0][0] <= now:
            frames.append(heapq.heappop(self._queue)[2])
        return frames

    def clear(self) -> None:
        self._queue.clear()

    def __len__(self) -> int:
        return len(self._queue)


class FakeLink:
    """Client and agent data channels joined by two lossy pipes and one manual clock."""

    def __init__(
        self,
        client: DataChannel,
        agent: DataChannel,
        *,
        seed: int = 0,
        c2a: Conditions | None = None,
        a2c: Conditions | None = None,
        now: float = 0.0,
    ) -> None:
        self.client = client
        self.agent = agent
        self.now = now
        rng = random.Random(seed)
        self.c2a = Pipe("c>a", c2a or Conditions(), random.Random(rng.random()))
        self.a2c = Pipe("a>c", a2c or Conditions(), random.Random(rng.random()))
        self.wire: list[Sent] = []
        self.events: dict[str, list[Event]] = {"client": [], "agent": []}
        self.steps = 0

    # ------------------------------------------------------------------ plumbing

    def _sides(self) -> tuple[tuple[str, DataChannel, Pipe], tuple[str, DataChannel, Pipe]]:
        return ("client", self.client, self.c2a), ("agent", self.agent, self.a2c)

    def flush(self) -> None:
        """Move what both sides want to send onto the wire and collect their events."""
        for name, channel, pipe in self._sides():
            for frame in channel.data_to_send():
                message = ClientMessage.decode(frame)
                delivered = pipe.send(frame, self.now)
                self.wire.append(Sent(self.now, pipe.name, message, delivered))
            self.events[name].extend(channel.events_received())

    def next_time(self) -> float | None:
        """When something happens next: a frame arrives or a timer fires."""
        candidates = [
            t
            for t in (
                self.c2a.next_arrival(),
                self.a2c.next_arrival(),
                self.client.get_timer(),
                self.agent.get_timer(),
            )
            if t is not None
        ]
        return min(candidates) if candidates else None

    def step(self, until: float | None = None) -> bool:
        """Advance to the next event (not past ``until``) and process it; False if idle."""
        self.flush()
        when = self.next_time()
        if when is None or (until is not None and when > until):
            if until is not None:
                self.now = max(self.now, until)
            return False
        self.now = max(self.now, when)
        self.steps += 1
        for frame in self.c2a.pop_due(self.now):
            self.agent.receive_data(frame, self.now)
        for frame in self.a2c.pop_due(self.now):
            self.client.receive_data(frame, self.now)
        for channel in (self.client, self.agent):
            timer = channel.get_timer()
            if timer is not None and timer <= self.now:
                channel.handle_timer(self.now)
                after = channel.get_timer()
                if after is not None and after <= self.now:
                    # handle_timer must move every due deadline into the future.
                    raise AssertionError(f"timer stuck at {after} (now {self.now})")
        self.flush()
        return True

    def run(self, until: float | None = None, max_steps: int = 1_000_000) -> None:
        """Step until nothing is pending (or until ``until``)."""
        for _ in range(max_steps):
            if not self.step(until):
                return
        raise AssertionError(f"link still busy after {max_steps} steps at t={self.now}")

    def advance(self, seconds: float) -> None:
        """Run for ``seconds`` of link time."""
        self.run(until=self.now + seconds)

    # ------------------------------------------------------------------ connectivity

    def go_down(self) -> None:
        """Both sides lose the transport; frames in flight are lost."""
        self.flush()
        for pipe in (self.c2a, self.a2c):
            pipe.up = False
            pipe.clear()
        self.client.connection_lost()
        self.agent.connection_lost()

    def come_up(self) -> None:
        for pipe in (self.c2a, self.a2c):
            pipe.up = True
        self.client.connection_made(self.now)
        self.agent.connection_made(self.now)
        self.flush()

    # ------------------------------------------------------------------ results

    def received(self, side: str) -> list[PayloadReceived]:
        self.flush()
        return [e for e in self.events[side] if isinstance(e, PayloadReceived)]

    def payloads(self, side: str) -> list[bytes]:
        return [e.payload for e in self.received(side)]

    def sent(self, direction: str, message_type: str | None = None) -> list[Sent]:
        """Frames put on the wire in one direction, optionally of one message type."""
        return [
            s
            for s in self.wire
            if s.direction == direction
            and (message_type is None or s.message.message_type == message_type)
        ]

    def transmissions(self, direction: str, sequence_number: int) -> list[float]:
        """Send times of every copy of one stream message."""
        stream = "input_stream_data" if direction == "c>a" else "output_stream_data"
        return [
            s.time
            for s in self.sent(direction, stream)
            if s.message.sequence_number == sequence_number
        ]

    def idle(self) -> bool:
        return (
            not self.client.unacked and not self.agent.unacked and not len(self.c2a) + len(self.a2c)
        )
