"""Connections that arrive before a listener knows how to serve them.

A forward's listener is open before its session is established (the user may
connect at once); :class:`HandlerGate` is the listener's connection handler
until then. Connections wait, accepted, until :meth:`HandlerGate.open` names
the real handler (the mux forwarder or the basic tunnel), or are dropped by
:meth:`HandlerGate.fail` when the session could not be had.
"""

from __future__ import annotations

import asyncio

from .listeners import ConnectionHandler

__all__ = ["HandlerGate"]


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
