"""The asyncio driver of a Session Manager data channel.

:class:`SessionConnection` keeps one :class:`~ssmsh.protocol.session.ClientSession`
connected to the message gateway across WebSocket links, reconnecting with
ResumeSession when a link is lost. The AWS side is injected as a
:class:`SessionService` (``ssmsh.aws.SsmSessions`` in production).
"""

from __future__ import annotations

from .config import ConnectionConfig, backoff_delays
from .connection import CLIENT_ID, SessionConnection
from .events import (
    ChannelClosedByRemote,
    ExitCodeReceived,
    FlagReceived,
    OutputReceived,
    SessionEstablished,
    SessionEvent,
    StderrReceived,
)
from .types import (
    ConnectionState,
    DataKey,
    SessionInfo,
    SessionService,
    StateChange,
    StreamCredentials,
)

__all__ = [
    "CLIENT_ID",
    "ChannelClosedByRemote",
    "ConnectionConfig",
    "ConnectionState",
    "DataKey",
    "ExitCodeReceived",
    "FlagReceived",
    "OutputReceived",
    "SessionConnection",
    "SessionEstablished",
    "SessionEvent",
    "SessionInfo",
    "SessionService",
    "StateChange",
    "StderrReceived",
    "StreamCredentials",
    "backoff_delays",
]
