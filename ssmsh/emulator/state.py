"""In-memory state of the emulator: targets, documents, sessions and tokens.

Shared by the API (``api/``) and the message gateway (``gateway.py``).
This module does no I/O. Service-level refusals raise
:class:`~ssmsh.emulator.errors.ServiceError` with the code the real service uses.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from .clock import EmulatorClock
from .documents import (
    DEFAULT_DOCUMENT,
    DOCUMENTS,
    DocumentStore,
    ResolvedDocument,
    document_name,
    missing_document,
    resolve_session,
)
from .errors import ServiceError
from .instance_connect import PushedKeys
from .kms import ACCOUNT_ID, KmsService

__all__ = [
    "ACTIVE_STATUSES",
    "DEFAULT_TARGET",
    "EmulatorState",
    "SessionRecord",
    "SessionStatus",
    "TargetRecord",
    "TokenError",
]

DEFAULT_TARGET = "i-0123456789abcdef0"

#: PingStatus values of a managed instance.
ONLINE = "Online"
CONNECTION_LOST = "ConnectionLost"


class SessionStatus(enum.StrEnum):
    CONNECTED = "Connected"
    CONNECTING = "Connecting"
    DISCONNECTED = "Disconnected"
    TERMINATED = "Terminated"
    TERMINATING = "Terminating"
    FAILED = "Failed"


#: Statuses DescribeSessions lists under State "Active" (the rest are "History").
ACTIVE_STATUSES = frozenset(
    {
        SessionStatus.CONNECTED,
        SessionStatus.CONNECTING,
        SessionStatus.DISCONNECTED,
        SessionStatus.TERMINATING,
    }
)


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
    #: Tags besides Name (which is ``name``), for DescribeInstanceInformation filters.
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    #: Last time the instance was heard from (epoch seconds).
    last_ping: float = dataclasses.field(default_factory=time.time)
    #: Seconds its agent takes to pick up a Run Command invocation (a slow agent).
    pickup_delay: float = 0.0

    @property
    def all_tags(self) -> dict[str, str]:
        return {"Name": self.name, **self.tags} if self.name else dict(self.tags)

    @property
    def platform_type(self) -> str:
        lowered = self.platform_name.lower()
        if "windows" in lowered:
            return "Windows"
        if "mac" in lowered:
            return "MacOS"
        return "Linux"


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
    #: The document's whole ``properties`` with ``{{ parameter }}`` placeholders filled in
    #: (command documents: ``{"linux": {"commands": ..., "runAsElevated": ...}, ...}``,
    #: possibly with ``separateOutputStream``; Port documents: the same as ``properties``).
    document_properties: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: The session's effective preferences (idleSessionTimeout, maxSessionDuration,
    #: runAsEnabled, runAsDefaultUser, shellProfile, kmsKeyId, s3..., cloudWatch...): the
    #: account's SSM-SessionManagerRunShell inputs, overridden by the document's own.
    inputs: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def ended(self) -> bool:
        return self.status in (SessionStatus.TERMINATED, SessionStatus.FAILED)


class TokenError(Exception):
    """OpenDataChannel presented a token that is unknown, expired or for another session."""


_TARGET_SYNTAX = re.compile(r"^[A-Za-z0-9:_.\-]{1,400}$")


class EmulatorState:
    """Targets, documents and sessions. Not thread-safe: use from one event loop."""

    def __init__(
        self,
        token_ttl: float = 60.0,
        *,
        targets: Iterable[TargetRecord] | None = None,
        region: str = "us-east-1",
        kms_keys: Iterable[str] = (),
        max_session_duration: float | None = None,
    ) -> None:
        self.token_ttl = token_ttl
        self.region = region
        #: The clock schedules, Automation and Run Command go by (tests advance it).
        self.clock = EmulatorClock()
        self.max_session_duration = max_session_duration
        #: KMS keys: the configured ones and every target's forced key.
        self.kms = KmsService(region, kms_keys)
        #: SSM documents: the AWS-owned ones and the account's.
        self.documents = DocumentStore(ACCOUNT_ID, region)
        self.targets: dict[str, TargetRecord] = {}
        for target in targets if targets is not None else [TargetRecord(DEFAULT_TARGET)]:
            self.add_target(target)
        self.sessions: dict[str, SessionRecord] = {}
        #: SSH keys pushed with EC2 Instance Connect, valid for 60 s on the emulator's clock.
        self.ssh_keys = PushedKeys(self.clock.now)
        #: The gateway's base URL ("ws://127.0.0.1:PORT"); set by the server.
        self.stream_base_url = ""
        #: Set by the gateway: ends the live data channel of a session (TerminateSession).
        self.on_terminate: Callable[[SessionRecord], Awaitable[None]] | None = None
        #: Called after a target's ping status changed (disconnect/reconnect an instance).
        self.on_target_change: Callable[[TargetRecord], None] | None = None
        #: Fault injection: return False to refuse a ResumeSession call.
        self.resume_filter: Callable[[SessionRecord], bool] | None = None

    # -- targets ------------------------------------------------------------------

    def add_target(self, target: TargetRecord) -> TargetRecord:
        """Add (or replace) a managed instance; its KMS key becomes known to KMS."""
        self.targets[target.instance_id] = target
        if target.kms_key_id:
            self.kms.add_key(target.kms_key_id)
        return target

    def get_target(self, target_id: str) -> TargetRecord | None:
        return self.targets.get(target_id)

    def set_ping_status(self, target_id: str, ping_status: str, now: float | None = None) -> None:
        """Change an instance's PingStatus ("Online", "ConnectionLost", "Inactive")."""
        target = self.targets.get(target_id)
        if target is None:
            raise KeyError(f"unknown target {target_id}")
        changed = target.ping_status != ping_status
        target.ping_status = ping_status
        if ping_status == ONLINE:
            target.last_ping = time.time() if now is None else now
        if changed and self.on_target_change is not None:
            self.on_target_change(target)

    def disconnect_instance(self, target_id: str) -> None:
        """The instance's agent stops talking to the service (GetConnectionStatus: notconnected)."""
        self.set_ping_status(target_id, CONNECTION_LOST)

    def reconnect_instance(self, target_id: str) -> None:
        """The instance's agent is back online."""
        self.set_ping_status(target_id, ONLINE)

    def connection_status(self, target_id: str) -> str:
        """GetConnectionStatus's answer: "connected" or "notconnected"."""
        target = self.targets.get(target_id)
        online = target is not None and target.ping_status == ONLINE
        return "connected" if online else "notconnected"

    # -- sessions -----------------------------------------------------------------

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

    def stream_url_for(self, session_id: str, base_url: str | None = None) -> str:
        """The data-channel URL of a session on the gateway."""
        base = (base_url or self.stream_base_url).rstrip("/")
        if not base:
            raise ServiceError("InternalServerError", "The message gateway is not running.", 500)
        cell = secrets.token_hex(16)
        return f"{base}/v1/data-channel/{session_id}?role=publish_subscribe&cell-number={cell}"

    def start_session(
        self,
        target: str,
        document_name: str | None = None,
        parameters: Mapping[str, list[str]] | None = None,
        reason: str = "",
        *,
        owner_name: str = "emulated",
        base_url: str | None = None,
        now: float | None = None,
    ) -> SessionRecord:
        """StartSession: validate target and document, create the session, issue a token."""
        if not _TARGET_SYNTAX.match(target):
            raise ServiceError("InvalidTarget", f"Target {target!r} is not a valid target.")
        record = self.targets.get(target)
        if record is None or record.ping_status != ONLINE:
            raise ServiceError("TargetNotConnected", f"{target} is not connected.")
        document = self.session_document(document_name, parameters, record.platform_type)
        kms_key_id = record.kms_key_id or str(document.inputs.get("kmsKeyId") or "") or None
        if kms_key_id and kms_key_id != record.kms_key_id:
            try:
                self.kms.add_key(kms_key_id)  # the preferences' key is one KMS knows
            except ValueError:
                raise ServiceError(
                    "InvalidDocument",
                    f"Document {document.name} names KMS key {kms_key_id!r}, which is not a "
                    "key id, key ARN or alias.",
                ) from None
        when = time.time() if now is None else now
        session = SessionRecord(
            session_id=self.new_session_id(owner_name),
            target_id=target,
            document_name=document.name,
            session_type=document.session_type,
            properties=document.properties,
            parameters=document.parameters,
            command=document.command,
            kms_key_id=kms_key_id,
            reason=reason,
            owner=f"arn:aws:iam::{ACCOUNT_ID}:user/{owner_name}",
            start_date=when,
            document_properties=document.document_properties,
            inputs=document.inputs,
        )
        session.stream_url = self.stream_url_for(session.session_id, base_url)
        self.issue_token(session, when)
        self.sessions[session.session_id] = session
        return session

    def session_document(
        self,
        name: str | None,
        parameters: Mapping[str, list[str]] | None = None,
        platform: str = "Linux",
    ) -> ResolvedDocument:
        """The Session document StartSession names, applied to its Parameters.

        Sessions use a document's latest version: AWS's guide changes the account's
        preferences with UpdateDocument alone (its sample answer keeps DefaultVersion 1
        while LatestVersion becomes 2), so the service must read ``$LATEST``. Looks in the
        document store (AWS-owned and the account's documents, by name or
        ARN), then in the built-in short-form documents (``documents.DOCUMENTS``).
        Raises ``InvalidDocument`` for an unknown or non-Session document and
        ``InvalidParameters`` for bad parameters.
        """
        doc_name = document_name(name) if name else DEFAULT_DOCUMENT
        stored = self.documents.find(doc_name)
        if stored is not None:
            if stored.document_type != "Session":
                raise ServiceError(
                    "InvalidDocument",
                    f"Document {stored.name} is a {stored.document_type} document; "
                    "StartSession needs a Session document.",
                )
            data: Mapping[str, Any] = stored.version("$LATEST").data
        elif doc_name in DOCUMENTS:
            data = DOCUMENTS[doc_name].content()
        else:
            raise missing_document(doc_name)
        preferences = None if doc_name == DEFAULT_DOCUMENT else self.preferences()
        return resolve_session(
            doc_name, data, parameters, preferences=preferences, platform=platform
        )

    def preferences(self) -> dict[str, Any] | None:
        """The account's Session Manager preferences (SSM-SessionManagerRunShell's inputs).

        None (the built-in defaults) while that document does not exist.
        """
        stored = self.documents.find(DEFAULT_DOCUMENT)
        if stored is None:
            return None
        try:
            return resolve_session(DEFAULT_DOCUMENT, stored.version("$LATEST").data).inputs
        except ServiceError:  # a parameter without a default: nothing to fill it with
            return None

    def resume_session(
        self, session_id: str, *, base_url: str | None = None, now: float | None = None
    ) -> SessionRecord:
        """ResumeSession: a new token and StreamUrl; an ended session gets neither.

        The returned record has ``token`` None when the session is over (terminated,
        failed or timed out); the API then answers with no TokenValue, as AWS does.
        """
        session = self.sessions.get(session_id)
        if session is None:
            raise ServiceError(
                "DoesNotExistException", f"Session with id {session_id} does not exist."
            )
        if session.ended:
            return session
        if self.resume_filter is not None and not self.resume_filter(session):
            raise ServiceError(
                "AccessDeniedException", f"ResumeSession refused for session {session_id}."
            )
        session.stream_url = self.stream_url_for(session.session_id, base_url)
        self.issue_token(session, now)
        return session

    def end_session(
        self,
        session_id: str,
        reason: str = "",
        status: SessionStatus = SessionStatus.TERMINATED,
        now: float | None = None,
    ) -> SessionRecord | None:
        """Mark a session over (no new tokens, History in DescribeSessions). Idempotent."""
        session = self.sessions.get(session_id)
        if session is None:
            return None
        if not session.ended:
            session.status = status
            session.end_date = time.time() if now is None else now
            session.end_reason = reason or session.end_reason
        session.token = None
        session.token_expires = 0.0
        return session

    async def terminate_session(
        self, session_id: str, reason: str = "", now: float | None = None
    ) -> SessionRecord | None:
        """TerminateSession: end the session and close its live data channel."""
        session = self.sessions.get(session_id)
        if session is None or session.ended:
            return session
        session.status = SessionStatus.TERMINATING
        self.end_session(session_id, reason, SessionStatus.TERMINATED, now)
        if self.on_terminate is not None:
            await self.on_terminate(session)
        return session

    def set_status(self, session_id: str, status: SessionStatus) -> None:
        """Gateway hook: Connected / Disconnected as the client comes and goes."""
        session = self.sessions.get(session_id)
        if session is not None and not session.ended:
            session.status = status

    def active_sessions(self) -> list[SessionRecord]:
        return [s for s in self.sessions.values() if s.status in ACTIVE_STATUSES]
