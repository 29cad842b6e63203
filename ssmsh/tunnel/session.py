"""A port session behind a listener: mode choice, the channel adapter, clean shutdown.

* :class:`ConnectionChannel` adapts :class:`~ssmsh.channel.SessionConnection`
  to :class:`~ssmsh.tunnel.channel.PortChannel`.
* :func:`choose_mode` decides as the official client does (protocol notes §9.4):
  ``type == "LocalPortForwarding"`` gives multiplexed forwarding when the agent
  is newer than 3.0.196.0 and basic forwarding otherwise; any other type is
  standard-stream (stdio) forwarding. smux keepalive is on only for agents up to
  3.1.1511.0, which expect it.
* :class:`ForwardSession` ties one listener to one session. Connections that
  arrive before the session is established wait for it (they are accepted, not
  refused). :meth:`ForwardSession.terminate` sends Flag TerminateSession (to
  agents that understand it), waits briefly for it to be acknowledged, then
  calls the TerminateSession API and closes everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..channel import (
    ChannelClosedByRemote,
    ConnectionState,
    FlagReceived,
    OutputReceived,
    SessionConnection,
)
from ..exceptions import ChannelClosed, SsmshError, TunnelError
from ..protocol.constants import Flag, PayloadType
from ..protocol.session import SessionEstablished
from ..protocol.versions import (
    agent_supports_smux,
    agent_supports_terminate_session_flag,
    client_keepalive_enabled,
)
from .basic import BasicTunnel
from .channel import TunnelConfig
from .forwarder import ConnectionLog, MuxForwarder
from .listeners import ConnectionHandler, Listener
from .mux import MuxTunnel

__all__ = [
    "AgentWatchdog",
    "ConnectionChannel",
    "ForwardSession",
    "HandlerGate",
    "PortMode",
    "choose_mode",
    "closed_message",
]

logger = logging.getLogger(__name__)

LOCAL_PORT_FORWARDING = "LocalPortForwarding"


class PortMode(enum.Enum):
    MUX = "multiplexed"
    BASIC = "basic"
    STDIO = "standard stream"


def choose_mode(established: SessionEstablished) -> PortMode:
    """The forwarding variant for a session, from its properties and the agent version."""
    properties: Any = established.properties
    port_type = properties.get("type") if isinstance(properties, dict) else None
    if port_type != LOCAL_PORT_FORWARDING:
        return PortMode.STDIO
    if agent_supports_smux(established.agent_version):
        return PortMode.MUX
    return PortMode.BASIC


def closed_message(exc: ChannelClosed) -> str:
    """What to tell the user when the remote end closed the session."""
    return exc.reason or "the session was closed by the remote end"


class ConnectionChannel:
    """A :class:`SessionConnection` seen as a :class:`PortChannel`."""

    def __init__(self, connection: SessionConnection) -> None:
        self.connection = connection

    async def send(self, data: bytes) -> None:
        await self.connection.send_input(data)

    async def send_flag(self, flag: int) -> None:
        await self.connection.send_flag(flag)

    async def receive(self) -> tuple[int, bytes]:
        while True:
            event = await self.connection.receive()
            if type(event) is OutputReceived:
                return PayloadType.OUTPUT, event.data
            if event is None:
                raise ChannelClosed("")  # the link ended without channel_closed
            if isinstance(event, FlagReceived):
                return PayloadType.FLAG, int(event.flag).to_bytes(4, "big")
            if isinstance(event, ChannelClosedByRemote):
                raise ChannelClosed(event.output.strip())
            logger.debug("ignoring %s in a port session", type(event).__name__)


class AgentWatchdog:
    """Notices an agent that stopped acknowledging while the link to the gateway is fine.

    The data channel itself gives up only after minutes of retransmissions. Here,
    once something has been waiting for an acknowledgement for ``timeout``
    seconds with no acknowledgement at all arriving meanwhile, :meth:`run` raises
    TunnelError. Only time in which the agent could have answered counts: while
    the WebSocket is being reconnected, or while the gateway has paused
    publication (the agent is away and sends are held, however long that lasts),
    the clock stops and starts again from zero once the link is usable. An idle
    tunnel sends nothing and so is never declared dead; the first connection
    through it is.
    """

    def __init__(self, connection: SessionConnection, timeout: float, period: float = 1.0) -> None:
        self.connection = connection
        self.timeout = timeout
        self.period = min(period, timeout / 4)

    def _acked(self) -> int:
        return int(self.connection.protocol.channel.stats["acked"])

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        connection = self.connection
        last_acked = self._acked()
        stalled_since: float | None = None
        while not connection.closed:
            await asyncio.sleep(self.period)
            now = loop.time()
            acked = self._acked()
            waiting = (
                connection.unacked > 0
                and connection.state is ConnectionState.CONNECTED
                and not connection.protocol.channel.paused
            )
            if acked != last_acked or not waiting:
                last_acked = acked
                stalled_since = None
                continue
            if stalled_since is None:
                stalled_since = now
            elif now - stalled_since >= self.timeout:
                raise TunnelError(
                    f"the agent stopped responding (nothing acknowledged for {self.timeout:g} s)"
                )


class HandlerGate:
    """A listener's connection handler that waits until the real one is known."""

    def __init__(self) -> None:
        self._handler: asyncio.Future[ConnectionHandler] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiting: set[asyncio.StreamWriter] = set()
        self._demand = asyncio.Event()

    def open(self, handler: ConnectionHandler) -> None:
        if not self._handler.done():
            self._handler.set_result(handler)

    def reset(self) -> None:
        """After :meth:`fail`: connections from now on wait for the next :meth:`open`."""
        if self._handler.done():
            self._handler = asyncio.get_running_loop().create_future()
        self._demand.clear()

    async def wait_demand(self) -> None:
        """Until a connection has come in since the last :meth:`reset`."""
        await self._demand.wait()

    def fail(self) -> None:
        """No handler will come: drop waiting and future connections."""
        if not self._handler.done():
            self._handler.cancel()
        for writer in list(self._waiting):
            writer.transport.abort()

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._waiting.add(writer)
        self._demand.set()
        try:
            handler = await asyncio.shield(self._handler)
        except asyncio.CancelledError:
            writer.transport.abort()
            if self._handler.cancelled():
                return
            raise
        finally:
            self._waiting.discard(writer)
        await handler(reader, writer)


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
    ) -> None:
        self.connection = connection
        self.listener = listener
        self.gate = gate
        self.remote_label = remote_label
        self.report = report
        self.config = config or TunnelConfig()
        self.channel = ConnectionChannel(connection)
        self.log = ConnectionLog(listener.label, report, verbose)
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
                    tunnel, self.log, remote_label=self.remote_label, config=self.config
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
                    f"{self.listener.label}: session {self.session_id} ready "
                    f"({mode.value}, agent {agent})"
                )
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

    async def terminate(self, timeout: float = 2.0) -> None:
        """End the session from our side (Ctrl-C): flag, API, sockets. Never raises."""
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
        await self.listener.close()

    def _flag_understood(self) -> bool:
        if self.mode is PortMode.MUX:
            return True  # the official client sends it to every mux agent
        if self.mode is PortMode.BASIC:
            return agent_supports_terminate_session_flag(self.agent_version)
        return False
