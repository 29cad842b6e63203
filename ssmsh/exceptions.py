"""Exceptions raised by ssmsh.

The tree::

    SsmshError
    ├── InvalidMessage            a byte string is not a valid ClientMessage
    ├── ProtocolError
    │   ├── LocalProtocolError    we were asked to do something the protocol forbids
    │   └── RemoteProtocolError   the peer sent something we cannot accept
    ├── HandshakeError            the session handshake failed
    ├── EncryptionError           KMS / AES-GCM failure (bad key, tampered data)
    ├── ChannelClosed             the data channel ended (carries reason and exit code)
    ├── ReconnectFailed           the reconnect budget ran out or resume was refused
    ├── AgentUnresponsive         the agent stopped acknowledging what we sent
    ├── InternalError             a bug in ssmsh's own driver (the cause is logged)
    ├── TunnelError               a port-forwarding problem
    ├── AwsError                  an AWS API call failed (carries the AWS error code)
    └── UsageError                bad command-line arguments

This module has no dependencies so that every layer, including the Sans-I/O
protocol, may import it.
"""

from __future__ import annotations

__all__ = [
    "AgentUnresponsive",
    "AwsError",
    "ChannelClosed",
    "EncryptionError",
    "HandshakeError",
    "InternalError",
    "InvalidMessage",
    "LocalProtocolError",
    "ProtocolError",
    "ReconnectFailed",
    "RemoteProtocolError",
    "SsmshError",
    "TunnelError",
    "UsageError",
]


class SsmshError(Exception):
    """Root of every exception ssmsh raises on purpose."""


class InvalidMessage(SsmshError, ValueError):
    """A byte string could not be decoded as a ClientMessage; ``str()`` says why."""


class ProtocolError(SsmshError):
    """A violation of the data-channel protocol."""


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol does not allow (a bug in the caller)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something we cannot accept."""


class HandshakeError(SsmshError):
    """The session handshake failed."""


class EncryptionError(SsmshError):
    """Encryption setup or AES-GCM authentication failed."""


class ChannelClosed(SsmshError):
    """The data channel ended.

    ``reason`` is the human-readable text; ``exit_code`` is what the process
    should exit with (the remote command's status when known).
    """

    def __init__(self, reason: str = "", exit_code: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code


class ReconnectFailed(SsmshError):
    """The connection was lost and could not be resumed.

    ``session_may_live``: the service was not reached to say otherwise (the reconnect
    budget ran out), so the session may still be there until its idle timeout.
    """

    def __init__(self, reason: str, session_may_live: bool = False) -> None:
        super().__init__(reason)
        self.session_may_live = session_may_live


class AgentUnresponsive(SsmshError):
    """The agent stopped acknowledging: a message went unacknowledged through every
    retransmission (about five minutes), though the link itself stayed up."""


class InternalError(SsmshError):
    """A bug in ssmsh: the session was ended cleanly, and the cause logged."""


class TunnelError(SsmshError):
    """A port-forwarding failure."""


class AwsError(SsmshError):
    """An AWS API call failed; ``code`` is the AWS error code when there is one."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class UsageError(SsmshError):
    """The command line was wrong."""
