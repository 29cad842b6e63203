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
from .crypto import Encrypter
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
from .handshake import DataKey
from .message import ClientMessage
from .rtt import RttConfig, RttEstimator
from .session import (
    ChannelClosedByRemote,
    ClientSession,
    ExitCodeReceived,
    FlagReceived,
    KmsKeyRequested,
    OutputReceived,
    Paused,
    ProtocolEvent,
    Resumed,
    SessionEstablished,
    SessionFailed,
    StderrReceived,
)
from .smux import SmuxSession

__all__ = [
    "CLIENT_VERSION",
    "ActionStatus",
    "ActionType",
    "ChannelClosedByRemote",
    "ChannelClosedReceived",
    "ChannelConfig",
    "ClientMessage",
    "ClientSession",
    "DataChannel",
    "DataKey",
    "Encrypter",
    "Event",
    "ExitCodeReceived",
    "Flag",
    "FlagReceived",
    "InvalidMessage",
    "KmsKeyRequested",
    "MessageDropped",
    "MessageType",
    "OutputReceived",
    "Paused",
    "PayloadReceived",
    "PayloadType",
    "ProtocolEvent",
    "PublicationPaused",
    "PublicationStarted",
    "Resumed",
    "RetransmissionTimeout",
    "Role",
    "RttConfig",
    "RttEstimator",
    "SessionEstablished",
    "SessionFailed",
    "SessionType",
    "SmuxSession",
    "StderrReceived",
]
