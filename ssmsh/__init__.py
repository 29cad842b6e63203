"""ssmsh: a client (and local emulator) for AWS Systems Manager Session Manager.

The public API, importable from here (heavier parts are imported on first use,
so ``import ssmsh`` stays cheap):

* :class:`SessionConnection`, :class:`ConnectionConfig`, :class:`SessionInfo` (built
  from a SessionId and :class:`StreamCredentials`), :class:`ConnectionState`: the
  asyncio session driver (``ssmsh.channel``), and the events it yields
  (:data:`SessionEvent`: :class:`OutputReceived`, :class:`StderrReceived`,
  :class:`ExitCodeReceived`, :class:`FlagReceived`, :class:`SessionEstablished`,
  :class:`ChannelClosedByRemote`);
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
    AgentUnresponsive,
    AwsError,
    ChannelClosed,
    EncryptionError,
    HandshakeError,
    InternalError,
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
    from .channel import (
        ChannelClosedByRemote,
        ConnectionConfig,
        ConnectionState,
        ExitCodeReceived,
        FlagReceived,
        OutputReceived,
        SessionConnection,
        SessionEstablished,
        SessionEvent,
        SessionInfo,
        StderrReceived,
        StreamCredentials,
    )
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
    "StreamCredentials": "ssmsh.channel",
    "SessionEvent": "ssmsh.channel",
    "OutputReceived": "ssmsh.channel",
    "StderrReceived": "ssmsh.channel",
    "ExitCodeReceived": "ssmsh.channel",
    "FlagReceived": "ssmsh.channel",
    "SessionEstablished": "ssmsh.channel",
    "ChannelClosedByRemote": "ssmsh.channel",
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
    "AgentUnresponsive",
    "AwsError",
    "AwsSettings",
    "ChannelClosed",
    "ChannelClosedByRemote",
    "ClientMessage",
    "ClientSession",
    "ConnectionConfig",
    "ConnectionState",
    "DataChannel",
    "Emulator",
    "EmulatorConfig",
    "EncryptionError",
    "ExitCodeReceived",
    "FlagReceived",
    "HandshakeError",
    "InternalError",
    "InvalidMessage",
    "LocalProtocolError",
    "OutputReceived",
    "ProtocolError",
    "ReconnectFailed",
    "RemoteProtocolError",
    "SessionConnection",
    "SessionEstablished",
    "SessionEvent",
    "SessionInfo",
    "SsmSessions",
    "SsmshError",
    "StderrReceived",
    "StreamCredentials",
    "TunnelError",
    "UsageError",
    "__version__",
]
