"""The seam between tunnels and the data channel.

A tunnel needs very little from a Session Manager data channel: send Output
bytes (waiting while the channel is congested), send a Flag, and receive the
agent's payloads in order. :class:`PortChannel` says exactly that, and
:data:`PortEvent` is what it receives: the data channel's own
:class:`~ssmsh.protocol.session.OutputReceived` and
:class:`~ssmsh.protocol.session.FlagReceived` events (frozen dataclasses; a flag
arrives decoded, as an int to compare with :class:`~ssmsh.protocol.constants.Flag`).

:class:`ConnectionChannel` is the real one: a
:class:`~ssmsh.channel.SessionConnection` seen as a port channel. Tests
implement the protocol in memory (``tests/tunnel/helpers.py``).
"""

from __future__ import annotations

import logging
from typing import Protocol

from ..channel import ChannelClosedByRemote, FlagReceived, OutputReceived, SessionConnection
from ..exceptions import ChannelClosed

__all__ = ["ConnectionChannel", "PortChannel", "PortEvent"]

logger = logging.getLogger(__name__)

#: What :meth:`PortChannel.receive` returns: the agent's Output bytes, or a Flag.
PortEvent = OutputReceived | FlagReceived


class PortChannel(Protocol):
    """A port session's data channel, as the tunnel sees it."""

    async def send(self, data: bytes) -> None:
        """Send ``data`` as Output payload(s); returns once the channel has accepted it.

        Waiting here is the upstream backpressure: it returns late when too much
        is unacknowledged. Raises :class:`~ssmsh.exceptions.ChannelClosed` (or
        another :class:`~ssmsh.exceptions.SsmshError`) once the channel is gone.
        """
        ...

    async def send_flag(self, flag: int) -> None:
        """Send a Flag payload (4-byte big-endian)."""
        ...

    async def receive(self) -> PortEvent:
        """The agent's next Output or Flag, in order.

        Not calling it is the downstream backpressure: the channel stops reading
        once enough is buffered. Raises :class:`~ssmsh.exceptions.ChannelClosed`
        when the session ends, or another :class:`~ssmsh.exceptions.SsmshError`
        when the channel is lost.
        """
        ...


class ConnectionChannel:
    """A :class:`SessionConnection` seen as a :class:`PortChannel`."""

    def __init__(self, connection: SessionConnection) -> None:
        self.connection = connection

    async def send(self, data: bytes) -> None:
        await self.connection.send_input(data)

    async def send_flag(self, flag: int) -> None:
        await self.connection.send_flag(flag)

    async def receive(self) -> PortEvent:
        while True:
            event = await self.connection.receive()
            if type(event) is OutputReceived or isinstance(event, FlagReceived):
                return event
            if event is None:
                raise ChannelClosed("")  # the link ended without channel_closed
            if isinstance(event, ChannelClosedByRemote):
                raise ChannelClosed(event.output.strip())
            logger.debug("ignoring %s in a port session", type(event).__name__)
