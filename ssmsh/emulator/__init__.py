"""A local stand-in for AWS Systems Manager Session Manager.

:class:`Emulator` runs the SSM/KMS API over HTTP, the WebSocket message gateway and an
agent, for tests, demos and ``ssmsh --local``. See ``docs/emulator.md``.
"""

from __future__ import annotations

from .config import EmulatorConfig
from .errors import ServiceError
from .server import Emulator
from .state import DEFAULT_TARGET, EmulatorState, SessionRecord, SessionStatus, TargetRecord

__all__ = [
    "DEFAULT_TARGET",
    "Emulator",
    "EmulatorConfig",
    "EmulatorState",
    "ServiceError",
    "SessionRecord",
    "SessionStatus",
    "TargetRecord",
]
