"""ssmsh: a client (and local emulator) for AWS Systems Manager Session Manager."""

from __future__ import annotations

from .exceptions import (
    AwsError,
    ChannelClosed,
    EncryptionError,
    HandshakeError,
    InvalidMessage,
    LocalProtocolError,
    ProtocolError,
    ReconnectFailed,
    RemoteProtocolError,
    SsmshError,
    TunnelError,
    UsageError,
)

__version__ = "0.1.0"

__all__ = [
    "AwsError",
    "ChannelClosed",
    "EncryptionError",
    "HandshakeError",
    "InvalidMessage",
    "LocalProtocolError",
    "ProtocolError",
    "ReconnectFailed",
    "RemoteProtocolError",
    "SsmshError",
    "TunnelError",
    "UsageError",
    "__version__",
]
