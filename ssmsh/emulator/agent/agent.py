"""The emulated SSM agent of one session: data channel, handshake, plugin, lifetime.

One :class:`Agent` lives as long as its session, across client reconnects. The
gateway feeds it the client's frames (:meth:`Agent.receive_frame`) and gives it a
sink for its own frames while a client is attached. Framing, sequencing, acks,
retransmission and reordering are :class:`~ssmsh.protocol.datachannel.DataChannel`'s
(``Role.AGENT``); this module drives it with one timer and routes payloads:

* handshake payloads (6, 9) to :class:`~.handshake.AgentHandshake`;
* everything else, once the handshake is complete (or skipped), to the plugin.
  Like the real agent, client data that arrives mid-handshake is acked and ignored.

Client input it has processed already and receives again is acked again, as the
official agent does from 3.2.1041.0 on; with an older ``agent_version`` it is dropped
without an ack, as 3.2.923.0 and older do (amazon-ssm-agent
``agent/session/datachannel/datachannel.go``, ``handleStreamDataMessage``, changed by
commit b0e8d778, May 2023).

While no client is attached the channel is paused the way the real gateway pauses
an agent (``pause_publication``): output is held, and on re-attach
(``start_publication``) every unacknowledged message is sent again.

The session ends when the plugin finishes (shell exit, TerminateSession flag...),
on an idle timeout or the maximum session duration, on a handshake failure, or when
the gateway terminates it. ``on_end(agent, reason)`` then tells the gateway, which
sends ``channel_closed`` with ``reason`` as its Output.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from ...exceptions import HandshakeError
from ...protocol.constants import PayloadType, SessionType
from ...protocol.datachannel import ChannelConfig, DataChannel, Role
from ...protocol.events import (
    ChannelClosedReceived,
    Event,
    MessageDropped,
    PayloadReceived,
    RetransmissionTimeout,
)
from ...protocol.versions import agent_acks_duplicates
from ..config import EmulatorConfig
from ..state import SessionRecord, TargetRecord
from .commands import CommandPlugin, document_properties, separate_output_requested
from .driver import ChannelDriver
from .handshake import HANDSHAKE_TIMEOUT, AgentHandshake, KmsDecrypt, SendChallenge
from .pacing import Pacing
from .plugin import Plugin
from .port import make_port_plugin
from .shell import ShellPlugin

__all__ = ["IDLE_TIMEOUT_REASON", "MAX_DURATION_REASON", "Agent"]

logger = logging.getLogger(__name__)

IDLE_TIMEOUT_REASON = "Your session timed out due to inactivity and has been terminated."
MAX_DURATION_REASON = (
    "Your session has reached the maximum session duration and has been terminated."
)
#: How long a finishing session waits for the client to acknowledge its last output.
DRAIN_TIMEOUT = 2.0

#: Session types for which the real agent handshakes even without KMS.
_HANDSHAKE_REQUIRED: dict[str, bool] = {
    SessionType.STANDARD_STREAM: False,
    SessionType.INTERACTIVE_COMMANDS: False,
    SessionType.NON_INTERACTIVE_COMMANDS: True,
    SessionType.PORT: True,
}


class Agent:
    """The agent side of one session's data channel."""

    def __init__(
        self,
        session: SessionRecord,
        *,
        config: EmulatorConfig,
        target: TargetRecord | None = None,
        kms: KmsDecrypt | None = None,
        on_end: Callable[[Agent, str], None] | None = None,
    ) -> None:
        self._session = session
        self.config = config
        self.target = target
        self._kms = kms
        self._on_end = on_end
        self._pacing = Pacing.for_config(config.agent_pacing)
        self._loop = asyncio.get_running_loop()
        channel = DataChannel(
            Role.AGENT,
            ChannelConfig(
                epoch_offset=time.time() - self._loop.time(),
                # The real agent never gives up retransmitting: a client may discard
                # output (port sessions before the local stream exists) for a long time.
                max_retransmissions=sys.maxsize,
                resend=config.agent_resend,
                max_in_flight=self._pacing.window,
                high_water=2 * self._pacing.window,
                # Client input it processed already and gets again: acked again from
                # 3.2.1041.0 on, dropped without an ack before (amazon-ssm-agent
                # datachannel.go, handleStreamDataMessage; commit b0e8d778).
                ack_duplicates=agent_acks_duplicates(self._agent_version()),
            ),
        )
        self.driver = ChannelDriver(channel, self._handle_event)

        self.handshake: AgentHandshake | None = None
        self._handshake_waiter: asyncio.Future[None] | None = None
        self.plugin: Plugin | None = None
        self._started = False
        self._main: asyncio.Task[None] | None = None
        self._watchers: list[asyncio.Task[None]] = []
        self._max_timer: asyncio.TimerHandle | None = None

        self._last_activity = self._loop.time()
        self._ending = False
        self._end_task: asyncio.Task[None] | None = None
        self._done = asyncio.Event()
        #: True once the session is over; ``end_reason`` says why ("" for a normal end).
        self.ended = False
        self.end_reason = ""

    # ------------------------------------------------------------ PluginHost

    @property
    def session(self) -> SessionRecord:
        return self._session

    @property
    def pacing(self) -> Pacing:
        return self._pacing

    @property
    def client_version(self) -> str:
        return self.handshake.client_version if self.handshake is not None else ""

    @property
    def agent_version(self) -> str:
        return self._agent_version()

    @property
    def environment(self) -> Mapping[str, str]:
        return self.config.environment

    def now(self) -> float:
        return self._loop.time()

    @property
    def channel(self) -> DataChannel:
        """The agent's data channel (sequencing, acks, retransmission)."""
        return self.driver.channel

    def send(self, payload_type: int, payload: bytes) -> None:
        """Queue one sequenced payload to the client."""
        if payload:
            self._last_activity = self.now()
        self.driver.send(payload_type, payload)

    async def wait_writable(self) -> None:
        await self.driver.wait_writable()

    def finish(self, reason: str = "") -> None:
        """End the session once the client has acknowledged the output (or 2 s passed)."""
        self._begin_end(reason, drain=True)

    # ---------------------------------------------------------- gateway side

    @property
    def attached(self) -> bool:
        return self.driver.attached

    def attach(self, sink: Callable[[bytes], None]) -> None:
        """A client is connected: frames go to ``sink`` (unacked output is resent)."""
        self.driver.attach(sink)

    def detach(self) -> None:
        """The client went away: hold output until the next :meth:`attach`."""
        self.driver.detach()

    def set_paused(self, paused: bool) -> None:
        """Fault injection: the gateway pauses/resumes publication to this agent."""
        self.driver.set_paused(paused)

    def receive_frame(self, data: bytes) -> None:
        """One WebSocket frame from the client. Never raises on bad input."""
        if not self.ended:
            self.driver.receive_frame(data)

    def start(self) -> None:
        """Start the session (handshake, then the plugin). Call once, after attach()."""
        if self._started:
            return
        self._started = True
        stype = self.session.session_type
        if stype in _HANDSHAKE_REQUIRED and not (_HANDSHAKE_REQUIRED[stype] or self._kms_key_id()):
            # No handshake: the plugin must exist before the first client payload.
            self.plugin = self._make_plugin()
        self._main = asyncio.create_task(self._run(), name=f"agent {self.session.session_id}")
        idle = self.config.idle_timeout or _minutes(self._inputs.get("idleSessionTimeout"))
        if idle:
            self._watchers.append(asyncio.create_task(self._idle_watch(idle)))
        longest = self.config.max_session_duration or _minutes(
            self._inputs.get("maxSessionDuration")
        )
        if longest:
            self._max_timer = self._loop.call_later(longest, self.finish, MAX_DURATION_REASON)

    @property
    def _inputs(self) -> Mapping[str, Any]:
        """The session's preferences (the account's, overridden by its document's)."""
        inputs: Mapping[str, Any] | None = getattr(self.session, "inputs", None)
        return inputs or {}

    async def terminate(self, reason: str = "") -> None:
        """End the session now (TerminateSession, emulator shutdown) and wait for it."""
        self._begin_end(reason, drain=False)
        await self._done.wait()

    @property
    def ending(self) -> bool:
        """True from the moment the session starts to end."""
        return self._ending

    async def wait_ended(self) -> None:
        await self._done.wait()

    # --------------------------------------------------------------- running

    def _kms_key_id(self) -> str | None:
        if self.session.session_type == SessionType.PORT:
            return None  # the real agent never encrypts port sessions
        key = self.session.kms_key_id or (self.target.kms_key_id if self.target else None)
        return key or None

    async def _run(self) -> None:
        session = self.session
        kms_key_id = self._kms_key_id()
        required = _HANDSHAKE_REQUIRED.get(session.session_type)
        if required is None:
            self.finish(f"Plugin with name {session.session_type} is not supported")
            return
        if required or kms_key_id:
            self.handshake = AgentHandshake(
                agent_version=self._agent_version(),
                session_id=session.session_id,
                target_id=session.target_id,
                session_type=session.session_type,
                properties=session.properties,
                kms_key_id=kms_key_id,
                decrypt=self._kms,
                separate_output=(
                    session.session_type == SessionType.NON_INTERACTIVE_COMMANDS
                    and separate_output_requested(document_properties(session))
                ),
                started=self.now(),
            )
            self._handshake_waiter = self._loop.create_future()
            if self.config.handshake_delay:
                await asyncio.sleep(self.config.handshake_delay)
                if self._ending:
                    return
            self.send(PayloadType.HANDSHAKE_REQUEST, self.handshake.request_payload())
            try:
                async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                    await self._handshake_waiter
            except TimeoutError:
                self.finish(
                    "Encountered error while initiating handshake. Handshake timed out. Please "
                    "ensure that you have the latest version of the session manager plugin."
                )
                return
            except HandshakeError as exc:
                self.finish(str(exc))
                return
        if self.plugin is not None and not self._ending:
            await self.plugin.start()

    def _agent_version(self) -> str:
        if self.target is not None and self.target.agent_version:
            return self.target.agent_version
        return self.config.agent_version

    def _make_plugin(self) -> Plugin | None:
        session = self.session
        stype = session.session_type
        report = self.config.shell_exit_status
        if stype == SessionType.STANDARD_STREAM:
            plugin = ShellPlugin(self, self._shell_argv(), report, self.config.pty_start_delay)
            # The official agent types the preferences' Linux shell profile into the new
            # shell, as if the user had (its echo shows), before anything the client sends.
            profile = self._inputs.get("shellProfile")
            linux = profile.get("linux") if isinstance(profile, Mapping) else None
            if isinstance(linux, str) and linux.strip():
                plugin.receive(PayloadType.OUTPUT, linux.encode() + b"\n")
            return plugin
        if stype == SessionType.INTERACTIVE_COMMANDS:
            if not (session.command or "").strip():
                self.finish("Commands cannot be empty for session type InteractiveCommands")
                return None
            return ShellPlugin(
                self, ["sh", "-c", session.command or ""], report, self.config.pty_start_delay
            )
        if stype == SessionType.NON_INTERACTIVE_COMMANDS:
            return CommandPlugin(self, session.command or "")
        return make_port_plugin(self, half_close=self.config.agent_fin == "half-close")

    def _shell_argv(self) -> list[str]:
        """The target's or the configured shell; else ``sh``, as the official agent runs
        for Standard_Stream (``exec.Command("sh")``; a shell profile may start another)."""
        for candidate in (
            self.target.shell if self.target is not None else None,
            self.config.shell,
        ):
            if candidate and candidate.strip():
                try:
                    argv = shlex.split(candidate)
                except ValueError:
                    logger.warning("ignoring unparsable shell %r", candidate)
                    continue
                if argv:
                    return argv
        return ["sh"]

    async def _idle_watch(self, limit: float) -> None:
        while not self._ending:
            remaining = self._last_activity + limit - self.now()
            if remaining <= 0:
                self.finish(IDLE_TIMEOUT_REASON)
                return
            await asyncio.sleep(remaining)

    # ------------------------------------------------------------ the channel

    def _handle_event(self, event: Event) -> None:
        if isinstance(event, PayloadReceived):
            self._handle_payload(event.payload_type, event.payload)
        elif isinstance(event, ChannelClosedReceived):
            self._begin_end(event.payload.output, drain=False)
        elif isinstance(event, MessageDropped):
            logger.debug("session %s: dropped a frame: %s", self.session.session_id, event.reason)
            if event.fatal:
                self.finish(f"Error decrypting stream data message: {event.reason}")
        elif isinstance(event, RetransmissionTimeout):
            self.finish("The client stopped acknowledging messages; the session was closed.")

    def _handle_payload(self, payload_type: int, payload: bytes) -> None:
        self._last_activity = self.now()
        if self._ending:
            return
        handshake = self.handshake
        if payload_type == PayloadType.HANDSHAKE_RESPONSE:
            if handshake is not None and not handshake.complete:
                self._on_handshake_response(handshake, payload)
            return
        if payload_type == PayloadType.ENC_CHALLENGE_RESPONSE:
            if handshake is not None and not handshake.complete:
                self._on_challenge_response(handshake, payload)
            return
        if handshake is not None and not handshake.complete:
            logger.debug("handshake in progress: ignoring payload type %d", payload_type)
            return
        if self.plugin is not None:
            self.plugin.receive(payload_type, payload)

    def _on_handshake_response(self, handshake: AgentHandshake, payload: bytes) -> None:
        try:
            step = handshake.receive_response(payload, self.now())
        except HandshakeError as exc:
            self._handshake_failed(exc)
            return
        if isinstance(step, SendChallenge):
            self.channel.cipher = handshake.encrypter
            self.send(PayloadType.ENC_CHALLENGE_REQUEST, step.payload)
        else:
            self._handshake_complete(step.payload)

    def _on_challenge_response(self, handshake: AgentHandshake, payload: bytes) -> None:
        try:
            step = handshake.receive_challenge_response(payload, self.now())
        except HandshakeError as exc:
            self._handshake_failed(exc)
            return
        self._handshake_complete(step.payload)

    def _handshake_complete(self, payload: bytes) -> None:
        self.send(PayloadType.HANDSHAKE_COMPLETE, payload)
        # The plugin exists before any later client payload is delivered.
        self.plugin = self._make_plugin()
        if self._handshake_waiter is not None and not self._handshake_waiter.done():
            self._handshake_waiter.set_result(None)

    def _handshake_failed(self, exc: HandshakeError) -> None:
        logger.info("session %s: %s", self.session.session_id, exc)
        if self._handshake_waiter is not None and not self._handshake_waiter.done():
            self._handshake_waiter.set_exception(exc)
        else:
            self.finish(str(exc))

    # ---------------------------------------------------------------- ending

    def _begin_end(self, reason: str, drain: bool) -> None:
        if self._ending:
            return
        self._ending = True
        self.driver.wake()  # producers waiting for room must notice
        self._end_task = asyncio.create_task(
            self._end(reason, drain), name=f"agent end {self.session.session_id}"
        )

    async def _end(self, reason: str, drain: bool) -> None:
        try:
            if drain:
                await self.driver.wait_acked(DRAIN_TIMEOUT)
            current = asyncio.current_task()
            for task in (self._main, *self._watchers):
                if task is not None and task is not current and not task.done():
                    task.cancel()
            if self._max_timer is not None:
                self._max_timer.cancel()
            if self._handshake_waiter is not None and not self._handshake_waiter.done():
                self._handshake_waiter.cancel()
            if self.plugin is not None:
                try:
                    await self.plugin.stop()
                except Exception as exc:  # cleanup must not prevent the end
                    logger.warning("stopping the plugin failed: %s", exc)
        finally:
            self.driver.close()
            self.ended = True
            self.end_reason = reason
            self._done.set()
            if self._on_end is not None:
                try:
                    self._on_end(self, reason)
                except Exception:
                    logger.exception("on_end callback failed")


def _minutes(value: Any) -> float | None:
    """A preferences duration (minutes, as a string or a number) in seconds; None if unset."""
    if value is None or value == "":
        return None
    try:
        minutes = float(str(value).strip())
    except ValueError:
        logger.warning("ignoring a session duration that is not a number: %r", value)
        return None
    return minutes * 60 if minutes > 0 else None
