"""Basic port forwarding: one local connection at a time, for agents without smux.

Agents up to 3.0.196.0 (and every agent when the port type is not
``LocalPortForwarding``) relay a single TCP connection: the data channel's
Output payloads *are* the connection's bytes. The agent dials the destination
when the session starts; when the client sends Flag DisconnectToPort it closes
that connection, and it dials again when the next Output arrives.

So this forwarder:

* serves accepted connections one after the other (later ones wait, accepted,
  and are told so on ``-v``) instead of leaving them in the listen backlog;
* keeps what the agent sends before the first connection (up to
  ``basic_early_buffer`` bytes; a server that speaks first, such as sshd) and
  hands it to that connection;
* sends DisconnectToPort when a local connection ends, and then ignores agent
  output until the next connection has sent something: output in between
  belongs to the old destination connection;
* cannot half-close, nor see the destination close: the protocol has no way
  to say either (docs/tunnels.md).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging

from ..exceptions import SsmshError
from ..protocol.constants import Flag
from ..protocol.session import FlagReceived
from .channel import PortChannel
from .config import TunnelConfig
from .forwarder import ConnectionLog, peer_label, tune_socket

__all__ = ["BasicTunnel"]

logger = logging.getLogger(__name__)


class _Current:
    __slots__ = ("broken", "received", "sent", "writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.sent = 0
        self.received = 0
        self.broken = False


class BasicTunnel:
    """A basic-mode port session: :meth:`run` receives, :meth:`handle` serves connections."""

    def __init__(
        self,
        channel: PortChannel,
        log: ConnectionLog,
        *,
        config: TunnelConfig | None = None,
    ) -> None:
        self.channel = channel
        self.log = log
        self.config = config or TunnelConfig()
        self._turn = asyncio.Lock()
        self._current: _Current | None = None
        self._served_any = False
        self._early: collections.deque[bytes] = collections.deque()
        self._early_size = 0
        self._first_arrived = asyncio.Event()
        #: Counters for logs and tests.
        self.stats: collections.Counter[str] = collections.Counter()

    async def run(self) -> None:
        """Deliver the agent's output until the channel ends (raises ChannelClosed etc.)."""
        while True:
            event = await self.channel.receive()
            if isinstance(event, FlagReceived):
                logger.debug("ignoring flag %08x in basic mode", event.flag)
                continue
            payload = event.data
            current = self._current
            if current is None and not self._served_any:
                # Before the first connection: keep it for that connection.
                self._early.append(payload)
                self._early_size += len(payload)
                if self._early_size > self.config.basic_early_buffer:
                    await self._first_arrived.wait()
            elif current is None or (self._served_any and current.sent == 0):
                # Between connections, or before the new one has said anything (which is
                # what makes the agent dial again): left over from the previous connection.
                self.stats["stale_bytes"] += len(payload)
            else:
                await self._deliver(current, payload)

    async def _deliver(self, current: _Current, payload: bytes) -> None:
        if current.broken:
            self.stats["lost_bytes"] += len(payload)
            return
        current.received += len(payload)
        writer = current.writer
        try:
            writer.write(payload)
            await writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            logger.debug("local write failed: %s", exc)
            current.broken = True
            writer.transport.abort()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one accepted connection (after any earlier one has finished)."""
        tune_socket(writer, self.config.read_size)
        number, started = self.log.opened(peer_label(writer), "basic mode")
        if self._turn.locked() and self.log.verbose:
            self.log.report(
                f"{self.log.label} #{number}: waiting; basic mode serves one connection at a time"
            )
        current = _Current(writer)
        note = ""
        try:
            async with self._turn:
                note = await self._serve(reader, current)
        finally:
            if note:
                writer.transport.abort()
            else:
                writer.close()
            self.log.closed(number, started, current.sent, current.received, note)

    async def _serve(self, reader: asyncio.StreamReader, current: _Current) -> str:
        self._current = current
        self._first_arrived.set()
        while self._early:
            chunk = self._early.popleft()
            await self._deliver(current, chunk)
        self._early_size = 0
        note = ""
        try:
            while not current.broken:
                try:
                    data = await reader.read(self.config.read_size)
                except ConnectionError as exc:
                    note = str(exc) or type(exc).__name__
                    break
                if not data:
                    break
                current.sent += len(data)
                await self.channel.send(data)
        finally:
            self._current = None
            self._served_any = True
        with contextlib.suppress(SsmshError):
            await self.channel.send_flag(Flag.DISCONNECT_TO_PORT)
        return note

    def abort_all(self) -> None:
        """Drop the local connection being served (the session is over)."""
        if self._current is not None:
            self._current.writer.transport.abort()
