"""What a :class:`~ssmsh.channel.SessionConnection` hands to its consumer.

The events themselves come from :mod:`ssmsh.protocol.session`; the driver
handles the rest (KMS requests, establishment, pause/resume, failures) itself.
"""

from __future__ import annotations

from ..exceptions import (
    AgentUnresponsive,
    EncryptionError,
    HandshakeError,
    RemoteProtocolError,
    SsmshError,
)
from ..protocol.session import (
    ChannelClosedByRemote,
    ExitCodeReceived,
    FlagReceived,
    OutputReceived,
    SessionEstablished,
    SessionFailed,
    StderrReceived,
)

__all__ = [
    "ChannelClosedByRemote",
    "ExitCodeReceived",
    "FlagReceived",
    "OutputReceived",
    "SessionEstablished",
    "SessionEvent",
    "StderrReceived",
    "failure_exception",
]

#: Events yielded by ``SessionConnection.receive()`` / ``async for``.
#: ChannelClosedByRemote, when it comes, is the last one. SessionEstablished
#: comes only for a handshake that followed ``skip_handshake()`` (the first one
#: is :meth:`SessionConnection.wait_established`'s result).
SessionEvent = (
    OutputReceived
    | StderrReceived
    | ExitCodeReceived
    | FlagReceived
    | ChannelClosedByRemote
    | SessionEstablished
)

_KINDS: dict[str, type[SsmshError]] = {
    "handshake": HandshakeError,
    "encryption": EncryptionError,
    "protocol": RemoteProtocolError,
    "timeout": AgentUnresponsive,
}


def failure_exception(event: SessionFailed) -> SsmshError:
    """The exception that a protocol-level :class:`SessionFailed` ends the session with."""
    cls = _KINDS.get(event.kind, RemoteProtocolError)
    if event.kind == "timeout":
        return cls(f"the agent stopped acknowledging data ({event.reason})")
    return cls(event.reason)
