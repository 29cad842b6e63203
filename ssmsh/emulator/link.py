"""One client connection of the message gateway, and the messages the gateway makes.

A :class:`ClientLink` joins one client WebSocket to its session's agent: frames
from the agent are queued to the socket, frames from the client are fed to the
agent, and the fault injector decides on the way what is dropped, duplicated,
held back or delayed (:mod:`~ssmsh.emulator.faults`). A slow client's backlog is
bounded (:data:`MAX_QUEUED_BYTES`); what does not fit is dropped and left to the
agent's retransmission, as a congested network would.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from .._private_api import transport_of
from ..protocol.constants import MessageType
from ..protocol.payloads import ChannelClosedPayload
from .agent import Agent
from .agent.driver import gateway_control
from .faults import Delivery, Direction, FaultInjector
from .state import SessionRecord

__all__ = ["BYE", "MAX_QUEUED_BYTES", "ClientLink", "channel_closed_frame", "gateway_message"]

logger = logging.getLogger(__name__)

#: Frames waiting for a slow client beyond this many bytes are dropped (retransmitted later).
MAX_QUEUED_BYTES = 16 * 1024 * 1024
#: The close reason of a gateway that ends a connection normally.
BYE = "Bye"

T = TypeVar("T")


def gateway_message(message_type: MessageType, payload: bytes = b"") -> bytes:
    """A gateway-made message, encoded (see :func:`~.agent.driver.gateway_control`)."""
    return gateway_control(message_type, payload).encode()


def channel_closed_frame(session: SessionRecord, output: str = "") -> bytes:
    """The ``channel_closed`` message the gateway sends when a session ends."""
    now = dt.datetime.now(dt.UTC)
    payload = ChannelClosedPayload(
        message_id=str(uuid.uuid4()),
        created_date=now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        destination_id=session.target_id,
        session_id=session.session_id,
        output=output,
    ).encode()
    return gateway_message(MessageType.CHANNEL_CLOSED, payload)


class ClientLink:
    """One client WebSocket connection attached to a session's agent."""

    def __init__(
        self,
        ws: ServerConnection,
        session: SessionRecord,
        faults: FaultInjector,
        *,
        paused: Callable[[], bool],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self.ws = ws
        self.session = session
        self.faults = faults
        self._paused = paused
        self._spawn = spawn
        self.agent: Agent | None = None
        self._loop = asyncio.get_running_loop()
        self._out: collections.deque[tuple[float, bytes | None]] = collections.deque()
        self._out_bytes = 0
        self._out_ready = asyncio.Event()
        self._in: collections.deque[tuple[float, bytes]] = collections.deque()
        self._in_ready = asyncio.Event()
        self._release: dict[Direction, asyncio.TimerHandle] = {}
        self._finishing = False

    # ----------------------------------------------------------- agent -> client

    def to_client(self, frame: bytes) -> None:
        """The agent's sink while this link is attached."""
        if self._finishing:
            return
        self._queue_out(self.faults.process(Direction.TO_CLIENT, frame, self))
        self._schedule_release(Direction.TO_CLIENT)

    def send_control(self, frame: bytes) -> None:
        """A gateway message to the client (no per-frame faults, but silence applies)."""
        if self._finishing:
            return
        if self.faults.silent:
            self.faults.count("silenced")
            return
        self._queue_out([Delivery(frame)])

    def _queue_out(self, deliveries: Iterable[Delivery]) -> None:
        now = self._loop.time()
        for delivery in deliveries:
            if self._out_bytes + len(delivery.frame) > MAX_QUEUED_BYTES:
                self.faults.count("overflow")
                continue
            self._out.append((now + delivery.delay, delivery.frame))
            self._out_bytes += len(delivery.frame)
        if self._out:
            self._out_ready.set()

    def finish(self, frame: bytes) -> None:
        """Send ``channel_closed``, then close the socket with 1000 "Bye"."""
        if self._finishing:
            return
        self.send_control(frame)
        self._finishing = True
        self.agent = None
        self._out.append((self._loop.time(), None))
        self._out_ready.set()

    async def _writer(self) -> None:
        while True:
            frame = await self._next_due(self._out, self._out_ready)
            if frame is None:
                await self.ws.close(1000, BYE)
                return
            self._out_bytes -= len(frame)
            await self.ws.send(frame)

    # ----------------------------------------------------------- client -> agent

    def _from_client(self, frame: bytes) -> None:
        if self.agent is None:
            return
        if self._paused():
            self.faults.count("dropped_while_paused")
            return
        deliveries = self.faults.process(Direction.TO_AGENT, frame, self)
        self._schedule_release(Direction.TO_AGENT)
        now = self._loop.time()
        for delivery in deliveries:
            if not self._in and delivery.delay <= 0:
                self.agent.receive_frame(delivery.frame)
            else:
                self._in.append((now + delivery.delay, delivery.frame))
                self._in_ready.set()

    async def _deliverer(self) -> None:
        while True:
            frame = await self._next_due(self._in, self._in_ready)
            if self.agent is not None:
                self.agent.receive_frame(frame)

    async def _next_due(self, queue: collections.deque[tuple[float, T]], ready: asyncio.Event) -> T:
        """Take the first item of ``queue`` (``(due, item)`` pairs) once it is due."""
        while True:
            if not queue:
                ready.clear()
                await ready.wait()
                continue
            due, item = queue[0]
            wait = due - self._loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            queue.popleft()
            return item

    def _schedule_release(self, direction: Direction) -> None:
        if not self.faults.held(direction, self) or direction in self._release:
            return

        def release() -> None:
            del self._release[direction]
            frame = self.faults.release_held(direction, self)
            if frame is None:
                return
            if direction is Direction.TO_CLIENT:
                self._queue_out([Delivery(frame)])
            elif self.agent is not None:
                self._in.append((self._loop.time(), frame))
                self._in_ready.set()

        self._release[direction] = self._loop.call_later(self.faults.config.reorder_hold, release)

    # ------------------------------------------------------------------ running

    async def _disrupt(self, after: float, abrupt: bool) -> None:
        await asyncio.sleep(after)
        self.disrupt(abrupt)

    def disrupt(self, abrupt: bool, *, injected: bool = True) -> None:
        """Close with 1000 "Bye", or reset the TCP connection (``abrupt``)."""
        if injected:
            self.faults.count("reset" if abrupt else "closed")
        if abrupt:
            transport_of(self.ws).abort()
        else:
            self._spawn(self.ws.close(1000, BYE))

    async def run(self) -> None:
        config = self.faults.config
        tasks = [
            asyncio.create_task(self._writer()),
            asyncio.create_task(self._deliverer()),
        ]
        if config.close_every:
            tasks.append(asyncio.create_task(self._disrupt(config.close_every, False)))
        if config.reset_every:
            tasks.append(asyncio.create_task(self._disrupt(config.reset_every, True)))
        try:
            async for message in self.ws:
                if isinstance(message, str):
                    logger.debug("ignoring a text frame after OpenDataChannel")
                    continue
                self._from_client(message)
        except ConnectionClosed:
            pass
        finally:
            for handle in self._release.values():
                handle.cancel()
            self._release.clear()
            self.faults.forget_held(self)
            writer = tasks[0]
            if self._finishing and not writer.done():
                # Let channel_closed and the close frame go out.
                with contextlib.suppress(TimeoutError, ConnectionClosed):
                    async with asyncio.timeout(2.0):
                        await asyncio.shield(writer)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
