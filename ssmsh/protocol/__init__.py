"""Sans-I/O implementation of the Session Manager data-channel protocol.

Bytes and ``now`` go in; events and bytes come out. Nothing here does I/O,
reads a clock or imports asyncio.
"""

from __future__ import annotations

from ..exceptions import InvalidMessage
from .constants import (
    CLIENT_VERSION,
    ActionStatus,
    ActionType,
    Flag,
    MessageType,
    PayloadType,
    SessionType,
)
from .datachannel import ChannelConfig, DataChannel, Role
from .events import (
    ChannelClosedReceived,
    Event,
    MessageDropped,
    PayloadReceived,
    PublicationPaused,
    PublicationStarted,
    RetransmissionTimeout,
)
from .message import ClientMessage
from .rtt import RttConfig, RttEstimator
from .smux import SmuxSession

__all__ = [
    "CLIENT_VERSION",
    "ActionStatus",
    "ActionType",
    "ChannelClosedReceived",
    "ChannelConfig",
    "ClientMessage",
    "DataChannel",
    "Event",
    "Flag",
    "InvalidMessage",
    "MessageDropped",
    "MessageType",
    "PayloadReceived",
    "PayloadType",
    "PublicationPaused",
    "PublicationStarted",
    "RetransmissionTimeout",
    "Role",
    "RttConfig",
    "RttEstimator",
    "SessionType",
    "SmuxSession",
]
