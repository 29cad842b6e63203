"""Noticing an agent that stopped acknowledging while the link to the gateway is fine.

The data channel itself gives up only after minutes of retransmissions; a port
session should fail sooner when its agent is gone. :class:`AgentWatchdog`
watches the connection's public counters (:attr:`~ssmsh.channel.SessionConnection.acked`,
:attr:`~ssmsh.channel.SessionConnection.unacked`) and its state.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from ..channel import ConnectionState
from ..exceptions import TunnelError

__all__ = ["AgentWatchdog", "Watched"]


class Watched(Protocol):
    """What the watchdog reads of a :class:`~ssmsh.channel.SessionConnection`."""

    @property
    def closed(self) -> bool: ...
    @property
    def state(self) -> ConnectionState: ...
    @property
    def acked(self) -> int: ...
    @property
    def unacked(self) -> int: ...
    @property
    def publication_paused(self) -> bool: ...


class AgentWatchdog:
    """Raises TunnelError from :meth:`run` when the agent stops acknowledging.

    Once something has been waiting for an acknowledgement for ``timeout``
    seconds with no acknowledgement at all arriving meanwhile, :meth:`run` raises
    TunnelError. Only time in which the agent could have answered counts: while
    the WebSocket is being reconnected, or while the gateway has paused
    publication (the agent is away and sends are held, however long that lasts),
    the clock stops and starts again from zero once the link is usable. An idle
    tunnel sends nothing and so is never declared dead; the first connection
    through it is.
    """

    def __init__(self, connection: Watched, timeout: float, period: float = 1.0) -> None:
        self.connection = connection
        self.timeout = timeout
        self.period = min(period, timeout / 4)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        connection = self.connection
        last_acked = connection.acked
        stalled_since: float | None = None
        while not connection.closed:
            await asyncio.sleep(self.period)
            now = loop.time()
            acked = connection.acked
            waiting = (
                connection.unacked > 0
                and connection.state is ConnectionState.CONNECTED
                and not connection.publication_paused
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
