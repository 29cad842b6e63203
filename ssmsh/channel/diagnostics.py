"""The debug lines a session leaves behind: how it started, and its counters at the end.

``-v`` and the debug log show two lines per session (``docs/usage.md``, "The debug log"):
one when it is established (session type, agent and client versions, KMS,
which handshake, how long the link and the handshake took) and one when it
ends (links, reconnects, outages, the data channel's counters, receive holds,
bytes each way, SRTT and RTO). The connection gathers the figures; this module
words them. Never a token or a key.

They, and the session's other lines, go to :data:`session_logger`, named
``ssmsh.channel.connection`` as when all of the driver lived in that module:
``docs/usage.md`` shows them under that name, and filters may use it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ..protocol.datachannel import DataChannel
from ..protocol.session import SessionEstablished

__all__ = ["STAT_NAMES", "handshake_kind", "log_ended", "log_established", "session_logger"]

#: The logger of a session's own lines (the driver's, the connection's).
session_logger = logging.getLogger("ssmsh.channel.connection")

#: The data channel's counters, in the order the end-of-session debug line shows them.
STAT_NAMES = (
    "sent",
    "retransmitted",
    "acked",
    "stale_acks",
    "delivered",
    "duplicates",
    "reordered",
    "dropped",
    "ignored",
)


def handshake_kind(event: SessionEstablished, skipped: bool) -> str:
    """How the session was established: ``full``, ``skipped`` or ``none``."""
    if event.agent_version:
        return "full"
    if skipped:
        return "skipped"  # the client stopped waiting (see skip_handshake)
    return "none"  # an agent without handshake: its first output started it


def log_established(
    session_id: str,
    event: SessionEstablished,
    *,
    client_version: str,
    handshake: str,
    handshake_time: float,
    connect_time: float,
) -> None:
    """One line on how the session started (times in seconds); INFO: ``-v`` shows it."""
    session_logger.info(
        "session %s established: type=%s agent=%s client=%s kms=%s handshake=%s "
        "handshake_time=%.1fms connect_time=%.1fms",
        session_id,
        event.session_type,
        event.agent_version or "-",
        client_version,
        "on" if event.encrypted else "off",
        handshake,
        handshake_time * 1000,
        connect_time * 1000,
    )


def log_ended(
    session_id: str,
    channel: DataChannel,
    *,
    duration: float,
    links: int,
    reconnects: int,
    outages: Iterable[float],
    receive_holds: int,
    bytes_in: int,
    bytes_out: int,
) -> None:
    """One line with the data channel's counters at the end of the session (INFO)."""
    stats = channel.stats
    names = [*STAT_NAMES, *sorted(set(stats) - set(STAT_NAMES))]
    counters = " ".join(f"{name}={stats[name]}" for name in names)
    rtt = channel.rtt
    srtt = f"{rtt.srtt * 1000:.1f}ms" if rtt.samples else "-"
    session_logger.info(
        "session %s ended: duration=%.2fs links=%d reconnects=%d outages=%.2fs %s "
        "unacked=%d receive_holds=%d bytes_in=%d bytes_out=%d srtt=%s rto=%.1fms "
        "rtt_samples=%d",
        session_id,
        duration,
        links,
        reconnects,
        sum(outages),
        counters,
        channel.unacked,
        receive_holds,
        bytes_in,
        bytes_out,
        srtt,
        rtt.rto * 1000,
        rtt.samples,
    )
