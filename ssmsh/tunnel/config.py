"""The tunables of port forwarding: :class:`TunnelConfig`, one frozen dataclass.

Its defaults keep 200 busy connections under ~60 MB; ``docs/tunnels.md``
explains the buffers and why smux v1 needs them.
"""

from __future__ import annotations

import dataclasses

__all__ = ["TunnelConfig"]


@dataclasses.dataclass(frozen=True, slots=True)
class TunnelConfig:
    """Tunables of port forwarding. The defaults keep 200 busy connections under ~60 MB."""

    #: Largest Output payload per data-channel message. The official plugin and agent
    #: send 1 KiB; the agent accepts any size (it writes each payload to a socket
    #: whole), so we send up to 16 KiB: 16x fewer messages, acks and digests.
    max_message_size: int = 16 * 1024
    #: Most Output bytes sent and not yet acknowledged by the agent (the send window).
    #: 2 MiB keeps ~20 MB/s at 100 ms round trips while bounding memory.
    send_window: int = 2 * 1024 * 1024
    #: Received payload bytes the channel driver may queue before it stops reading.
    channel_receive_buffer: int = 2 * 1024 * 1024
    #: Bytes read from a local socket at once.
    read_size: int = 64 * 1024
    #: Unsent bytes one stream may queue before its local reader is paused.
    stream_send_buffer: int = 64 * 1024
    #: Unsent bytes all streams together may queue; beyond it every stream that has
    #: something queued pauses its reader (memory stays bounded with many connections).
    session_send_buffer: int = 1024 * 1024
    #: Received bytes one stream may hold for a slow local reader before the whole
    #: session stops reading (smux v1 has no per-stream window; see docs/tunnels.md).
    stream_receive_buffer: int = 2 * 1024 * 1024
    #: Received bytes all streams together may hold before the session stops reading.
    session_receive_buffer: int = 8 * 1024 * 1024
    #: Most bytes taken from one stream per scheduling round (fairness between streams).
    send_quantum: int = 32 * 1024
    #: Most bytes handed to the data channel in one send.
    send_batch: int = 128 * 1024
    #: Bytes kept for the first local connection of a basic-mode session that arrive
    #: before it connects (a server that speaks first, such as sshd).
    basic_early_buffer: int = 1024 * 1024
    #: smux keepalive, only for agents that expect it (<= 3.1.1511.0): NOP interval.
    keepalive_interval: float = 10.0
    #: Seconds of silence from the agent after which the smux session is declared dead
    #: (smux's own rule; the official client uses 30). 0 disables it: the NOPs we send
    #: must be acknowledged, so :class:`~ssmsh.tunnel.watchdog.AgentWatchdog` notices a
    #: dead agent anyway, and an agent that stopped sending NOPs does not kill the tunnel.
    keepalive_timeout: float = 0.0
    #: Seconds with data unacknowledged and no acknowledgement at all (while the link to
    #: the gateway is up) before the agent is declared dead and the session ended.
    agent_timeout: float = 60.0

    @property
    def window_messages(self) -> int:
        """The send window in messages (the data channel counts messages, not bytes)."""
        return max(8, self.send_window // self.max_message_size)

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if field.name != "keepalive_timeout" and getattr(self, field.name) <= 0:
                raise ValueError(f"{field.name} must be positive")
        if self.keepalive_timeout < 0:
            raise ValueError("keepalive_timeout must not be negative")
        if self.keepalive_timeout and self.keepalive_interval > self.keepalive_timeout:
            raise ValueError("keepalive_interval must not exceed keepalive_timeout")
