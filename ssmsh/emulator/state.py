"""In-memory state of the emulator: targets, documents, sessions and tokens.

Shared by the API server (``api.py``) and the message gateway (``gateway.py``).
This module does no I/O.
"""

from __future__ import annotations

import dataclasses
import enum
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = [
    "DEFAULT_TARGET",
    "EmulatorState",
    "SessionRecord",
    "SessionStatus",
    "TargetRecord",
    "TokenError",
]

DEFAULT_TARGET = "i-0123456789abcdef0"


class SessionStatus(enum.StrEnum):
    CONNECTED = "Connected"
    CONNECTING = "Connecting"
    DISCONNECTED = "Disconnected"
    TERMINATED = "Terminated"
    TERMINATING = "Terminating"
    FAILED = "Failed"


@dataclasses.dataclass(slots=True)
class TargetRecord:
    """A managed instance the emulator pretends to host."""

    instance_id: str
    name: str = "emulated"
    #: "Online" or "ConnectionLost" (GetConnectionStatus: connected / notconnected).
    ping_status: str = "Online"
    #: When set, every session to this target is KMS-encrypted with this key.
    kms_key_id: str | None = None
    #: Shell program for Standard_Stream sessions (None: the user's $SHELL or /bin/sh).
    shell: str | None = None
    agent_version: str = "3.3.1142.0"
    platform_name: str = "Linux"


@dataclasses.dataclass(slots=True)
class SessionRecord:
    """One session, from StartSession to its end."""

    session_id: str
    target_id: str
    document_name: str
    #: Standard_Stream, InteractiveCommands, NonInteractiveCommands or Port.
    session_type: str
    #: The SessionType action's Properties sent in the handshake (port settings, ...).
    properties: dict[str, Any]
    #: Parameters as given to StartSession (name -> list of strings).
    parameters: dict[str, list[str]]
    #: Command line for (Non)InteractiveCommands sessions.
    command: str | None = None
    kms_key_id: str | None = None
    reason: str = ""
    owner: str = "arn:aws:iam::123456789012:user/emulated"
    status: SessionStatus = SessionStatus.CONNECTING
    start_date: float = dataclasses.field(default_factory=time.time)
    end_date: float | None = None
    #: The one token currently accepted for OpenDataChannel (None once terminated).
    token: str | None = None
    token_expires: float = 0.0
    stream_url: str = ""
    #: Why the session ended, shown to the client in channel_closed.
    end_reason: str = ""


class TokenError(Exception):
    """OpenDataChannel presented a token that is unknown, expired or for another session."""


class EmulatorState:
    """Targets, documents and sessions. Not thread-safe: use from one event loop."""

    def __init__(self, token_ttl: float = 60.0) -> None:
        self.token_ttl = token_ttl
        self.targets: dict[str, TargetRecord] = {DEFAULT_TARGET: TargetRecord(DEFAULT_TARGET)}
        self.sessions: dict[str, SessionRecord] = {}
        #: Set by the gateway: ends the live data channel of a session (TerminateSession).
        self.on_terminate: Callable[[SessionRecord], Awaitable[None]] | None = None

    def new_session_id(self, owner_name: str = "emulated") -> str:
        return f"{owner_name}-{uuid.uuid4().hex[:17]}"

    def issue_token(self, session: SessionRecord, now: float | None = None) -> str:
        """A fresh token for OpenDataChannel; any previous token stops working."""
        session.token = "emu-" + secrets.token_urlsafe(32)
        session.token_expires = (time.time() if now is None else now) + self.token_ttl
        return session.token

    def check_token(self, session_id: str, token: str, now: float | None = None) -> SessionRecord:
        """The session a token opens, or TokenError with the reason."""
        session = self.sessions.get(session_id)
        if session is None or session.token is None:
            raise TokenError("session not found or terminated")
        if not secrets.compare_digest(session.token, token):
            raise TokenError("invalid token")
        if (time.time() if now is None else now) > session.token_expires:
            raise TokenError("token expired")
        return session
