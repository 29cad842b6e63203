"""One forward: a listener and the port session serving it (:class:`ForwardSession`).

Connections that arrive before the session is established wait for it (they
are accepted, not refused: :class:`~ssmsh.tunnel.gate.HandlerGate`). Once it
is, :func:`~ssmsh.tunnel.mode.choose_mode` picks multiplexed or basic
forwarding, and the session runs with an
:class:`~ssmsh.tunnel.watchdog.AgentWatchdog` beside it.
:meth:`ForwardSession.terminate` sends Flag TerminateSession (to agents that
understand it), waits briefly for it to be acknowledged, then calls the
TerminateSession API and closes everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from ..channel import SessionConnection
from ..exceptions import ChannelClosed, SsmshError, TunnelError
from ..protocol.constants import Flag
from ..protocol.versions import agent_supports_terminate_session_flag, client_keepalive_enabled
from .basic import BasicTunnel
from .channel import ConnectionChannel
from .config import TunnelConfig
from .forwarder import ConnectionLog, MuxForwarder, StreamConfirm
from .gate import HandlerGate
from .listeners import Listener
from .mode import PortMode, choose_mode
from .mux import MuxTunnel
from .watchdog import AgentWatchdog

__all__ = ["ForwardSession", "closed_message"]

logger = logging.getLogger(__name__)


def closed_message(exc: ChannelClosed) -> str:
    """What to tell the user when the remote end closed the session."""
    return exc.reason or "the session was closed by the remote end"


Report = Callable[[str], None]


class ForwardSession:
    """One forward: a listener and the port session serving it."""

    def __init__(
        self,
        connection: SessionConnection,
        listener: Listener,
        gate: HandlerGate,
        *,
        remote_label: str,
        report: Report,
        verbose: bool = False,
        config: TunnelConfig | None = None,
        label: str | None = None,
        confirm: StreamConfirm | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        """``label`` names the session in messages (default: the listener's address);
        ``confirm`` is handed to the :class:`MuxForwarder`; ``on_ready`` is called once
        the session is established and its connections are being served."""
        self.connection = connection
        self.listener = listener
        self.gate = gate
        self.remote_label = remote_label
        self.report = report
        self.config = config or TunnelConfig()
        self.channel = ConnectionChannel(connection)
        self.log = ConnectionLog(label or listener.label, report, verbose)
        self.confirm = confirm
        self.on_ready = on_ready
        self.mode: PortMode | None = None
        self.agent_version = ""
        self._abort: Callable[[], None] | None = None
        self._terminated = False

    @property
    def session_id(self) -> str:
        return self.connection.info.session_id

    async def run(self) -> None:
        """Serve until the session ends; raises ChannelClosed / TunnelError / channel errors."""
        try:
            established = await self.connection.wait_established()
            self.agent_version = established.agent_version
            self.mode = mode = choose_mode(established)
            if mode is PortMode.STDIO:
                raise TunnelError(
                    "the session document did not start port forwarding "
                    f"(session properties: {established.properties!r})"
                )
            runner: Callable[[], Awaitable[None]]
            if mode is PortMode.MUX:
                keepalive = client_keepalive_enabled(established.agent_version)
                tunnel = MuxTunnel(self.channel, keepalive=keepalive, config=self.config)
                forwarder = MuxForwarder(
                    tunnel,
                    self.log,
                    remote_label=self.remote_label,
                    config=self.config,
                    confirm=self.confirm,
                )
                self.gate.open(forwarder.handle)
                self._abort = forwarder.abort_all
                runner = tunnel.run
            else:
                basic = BasicTunnel(self.channel, self.log, config=self.config)
                self.gate.open(basic.handle)
                self._abort = basic.abort_all
                runner = basic.run
            if self.log.verbose:
                agent = established.agent_version or "unknown"
                self.report(
                    f"{self.log.label}: session {self.session_id} ready "
                    f"({mode.value}, agent {agent})"
                )
            if self.on_ready is not None:
                self.on_ready()
            async with asyncio.TaskGroup() as group:
                group.create_task(runner())
                group.create_task(AgentWatchdog(self.connection, self.config.agent_timeout).run())
        except BaseExceptionGroup as errors:
            raise errors.exceptions[0] from None
        finally:
            self.gate.fail()
            if self._abort is not None:
                self._abort()

    async def release(self) -> None:
        """After :meth:`run` ended: let go of the session; the listener stays. Never raises."""
        with contextlib.suppress(Exception):
            await self.connection.close(terminate=True)

    async def terminate(self, timeout: float = 2.0, *, close_listener: bool = True) -> None:
        """End the session from our side (Ctrl-C): flag, API, sockets. Never raises.

        ``close_listener=False`` leaves the listener open (a pool's other sessions use it).
        """
        if self._terminated:
            return
        self._terminated = True
        connection = self.connection
        if not connection.closed and self._flag_understood():
            try:
                async with asyncio.timeout(timeout):
                    await connection.send_flag(Flag.TERMINATE_SESSION)
                    await connection.drain(timeout)
            except (SsmshError, TimeoutError) as exc:
                logger.debug("TerminateSession flag: %s", exc)
        with contextlib.suppress(Exception):
            await connection.close(terminate=True)
        self.gate.fail()
        if self._abort is not None:
            self._abort()
        if close_listener:
            await self.listener.close()

    def _flag_understood(self) -> bool:
        if self.mode is PortMode.MUX:
            return True  # the official client sends it to every mux agent
        if self.mode is PortMode.BASIC:
            return agent_supports_terminate_session_flag(self.agent_version)
        return False
