"""ssmsh: a client (and local emulator) for AWS Systems Manager Session Manager.

The public API, importable from here (heavier parts are imported on first use,
so ``import ssmsh`` stays cheap):

* :class:`SessionConnection`, :class:`ConnectionConfig`, :class:`SessionInfo`,
  :class:`ConnectionState`: the asyncio session driver (``ssmsh.channel``);
* :class:`SsmSessions`, :class:`AwsSettings`: StartSession/ResumeSession/KMS through
  boto3 (``ssmsh.aws``);
* :class:`Emulator`, :class:`EmulatorConfig`: the local Session Manager emulator
  (``ssmsh.emulator``);
* :class:`ClientMessage`, :class:`ClientSession`, :class:`DataChannel`: the Sans-I/O
  protocol (``ssmsh.protocol``);
* the exceptions, rooted at :class:`SsmshError`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
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

if TYPE_CHECKING:
    from .aws import AwsSettings, SsmSessions
    from .channel import ConnectionConfig, ConnectionState, SessionConnection, SessionInfo
    from .emulator import Emulator, EmulatorConfig
    from .protocol import ClientMessage, DataChannel
    from .protocol.session import ClientSession


_LAZY = {
    "AwsSettings": "ssmsh.aws",
    "SsmSessions": "ssmsh.aws",
    "ConnectionConfig": "ssmsh.channel",
    "ConnectionState": "ssmsh.channel",
    "SessionConnection": "ssmsh.channel",
    "SessionInfo": "ssmsh.channel",
    "Emulator": "ssmsh.emulator",
    "EmulatorConfig": "ssmsh.emulator",
    "ClientMessage": "ssmsh.protocol",
    "DataChannel": "ssmsh.protocol",
    "ClientSession": "ssmsh.protocol.session",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ssmsh' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AwsError",
    "AwsSettings",
    "ChannelClosed",
    "ClientMessage",
    "ClientSession",
    "ConnectionConfig",
    "ConnectionState",
    "DataChannel",
    "Emulator",
    "EmulatorConfig",
    "EncryptionError",
    "HandshakeError",
    "InvalidMessage",
    "LocalProtocolError",
    "ProtocolError",
    "ReconnectFailed",
    "RemoteProtocolError",
    "SessionConnection",
    "SessionInfo",
    "SsmSessions",
    "SsmshError",
    "TunnelError",
    "UsageError",
    "__version__",
]
