"""How fast the emulated agent reads its inputs and sends messages.

The real agent reads at most 1024 bytes (``StreamDataPayloadSize``) from a pty,
a command pipe or a TCP connection, sends that as one message, then sleeps 1 ms
before reading again (protocol notes §6.5). ``Pacing.real()`` reproduces that
for realistic demos and benchmarks; ``Pacing.fast()`` (the default) skips the
sleep and lets port sessions move up to 32 KiB per message so tests run fast.
Shell and command output stays in chunks of at most 1024 bytes either way, as
the real agent's does.
"""

from __future__ import annotations

import asyncio
import dataclasses

__all__ = ["AGENT_CHUNK", "Pacing"]

#: The real agent's read size (``StreamDataPayloadSize``).
AGENT_CHUNK = 1024
#: The official agent's outgoing buffer in bytes: 10,000 messages of 1 KiB.
AGENT_WINDOW_BYTES = 10_000 * AGENT_CHUNK


@dataclasses.dataclass(frozen=True, slots=True)
class Pacing:
    """Read sizes and the pause after each message."""

    #: Largest read from a pty or a command's pipes (bytes per message).
    stream_chunk: int = AGENT_CHUNK
    #: Largest read from a forwarded TCP connection or the smux output (bytes per message).
    port_chunk: int = 32 * 1024
    #: Pause after each message sent (seconds).
    delay: float = 0.0

    @property
    def window(self) -> int:
        """Most unacknowledged messages in flight (``ChannelConfig.max_in_flight``).

        The official agent holds 10,000 outgoing messages of at most 1 KiB
        (``OutgoingMessageBufferCapacity``, ``StreamDataPayloadSize``): about 10 MiB.
        Unpaced, messages are up to 32 KiB, so the same bytes are fewer messages; a
        window of 10,000 of those (320 MB) would overflow the gateway's queue for a
        client that stops reading, which then drops them (see ``link.py``).
        """
        return max(16, AGENT_WINDOW_BYTES // max(self.stream_chunk, self.port_chunk))

    @classmethod
    def real(cls) -> Pacing:
        """The official agent's pattern: 1 KiB reads, 1 ms pause per message."""
        return cls(stream_chunk=AGENT_CHUNK, port_chunk=AGENT_CHUNK, delay=0.001)

    @classmethod
    def fast(cls) -> Pacing:
        """No pauses; big port reads. Shell output still comes in 1 KiB chunks."""
        return cls()

    @classmethod
    def for_config(cls, agent_pacing: bool) -> Pacing:
        return cls.real() if agent_pacing else cls.fast()

    async def pause(self) -> None:
        """The pause after one message (nothing when unpaced)."""
        if self.delay > 0:
            await asyncio.sleep(self.delay)
