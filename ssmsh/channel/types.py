"""Plain data and seams shared by the channel driver and the layers around it.

* :class:`SessionInfo` — what StartSession returned (and the target it was for).
* :class:`StreamCredentials` — what ResumeSession returns.
* :class:`DataKey` — a KMS data key (from :mod:`ssmsh.protocol.handshake`).
* :class:`SessionService` — the AWS operations the driver needs, as a
  :class:`typing.Protocol`. ``ssmsh.aws.SsmSessions`` implements it with botocore;
  tests may implement it against a local server.
* :class:`ConnectionState` and :class:`StateChange` — what observers of a
  :class:`~ssmsh.channel.SessionConnection` see.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Protocol

from ..protocol.handshake import DataKey

__all__ = [
    "ConnectionState",
    "DataKey",
    "SessionInfo",
    "SessionService",
    "StateChange",
    "StreamCredentials",
]


@dataclasses.dataclass(frozen=True, slots=True)
class StreamCredentials:
    """Where and how to open the data channel: a StreamUrl and its token."""

    stream_url: str
    token_value: str = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True, slots=True)
class SessionInfo:
    """A started session: its id, the target, and the first stream credentials."""

    session_id: str
    target_id: str
    stream: StreamCredentials


class SessionService(Protocol):
    """The AWS operations a connection needs. All methods are coroutines.

    Implementations map their own failures to :class:`~ssmsh.exceptions.AwsError`
    (with the AWS error code in ``code``) and must resolve credentials afresh on
    every :meth:`resume_session` call, because a reconnect may happen hours
    after the session started.
    """

    async def resume_session(self, session_id: str) -> StreamCredentials | None:
        """ResumeSession. ``None`` when the service has no token for the session
        any more (it timed out or was terminated)."""
        ...

    async def terminate_session(self, session_id: str) -> None:
        """TerminateSession. Errors are raised; callers decide whether they matter."""
        ...

    async def generate_data_key(self, key_id: str, session_id: str, target_id: str) -> DataKey:
        """kms:GenerateDataKey, 64 bytes, with the session's encryption context."""
        ...

    async def sign_stream_url(self, url: str) -> Mapping[str, str]:
        """HTTP headers that authenticate the WebSocket upgrade to ``url``.

        Empty when ``url`` is presigned or signing is not possible; the
        connection then goes ahead unsigned (the token still authenticates it).
        """
        ...


class ConnectionState(enum.Enum):
    """Life cycle of a :class:`~ssmsh.channel.SessionConnection`.

    ::

        CONNECTING ──> CONNECTED <──> RECONNECTING
             │             │               │
             └─────────────┴───────────────┴──> CLOSED
    """

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


@dataclasses.dataclass(frozen=True, slots=True)
class StateChange:
    """One transition of :class:`ConnectionState`.

    ``reason`` says why (the close code of a lost WebSocket, the error of a failed
    attempt...). ``outage`` is set on RECONNECTING -> CONNECTED: seconds from the
    loss of the link to the new link being usable. ``attempt`` counts attempts of
    the current reconnect (1 for the first).
    """

    old: ConnectionState
    new: ConnectionState
    reason: str = ""
    outage: float | None = None
    attempt: int = 0
