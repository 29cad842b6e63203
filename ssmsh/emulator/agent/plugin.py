"""What a session plugin (shell, commands, port) needs from the agent, and its base class.

A plugin turns the client's payloads into local effects (pty input, signals, TCP
writes) and local output into payloads, through a :class:`PluginHost` that the
:class:`~ssmsh.emulator.agent.agent.Agent` provides. Plugins own their background
tasks; :meth:`Plugin.stop` cancels them and releases processes and sockets.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Coroutine, Mapping
from typing import Any, ClassVar, Protocol

from ..state import SessionRecord
from .pacing import Pacing

__all__ = ["Plugin", "PluginHost", "split_utf8_tail"]

logger = logging.getLogger(__name__)


class PluginHost(Protocol):
    """The agent, as seen by a plugin."""

    @property
    def session(self) -> SessionRecord: ...

    @property
    def pacing(self) -> Pacing: ...

    @property
    def client_version(self) -> str:
        """ClientVersion from the HandshakeResponse ("" when there was no handshake)."""
        ...

    @property
    def agent_version(self) -> str:
        """The AgentVersion this agent reports (its own feature gates follow it)."""
        ...

    @property
    def environment(self) -> Mapping[str, str]:
        """Extra environment variables for the programs a plugin starts."""
        ...

    def now(self) -> float:
        """Monotonic time, the clock of every Sans-I/O object in the agent."""
        ...

    def send(self, payload_type: int, payload: bytes) -> None:
        """Queue one sequenced payload to the client (empty payloads are ignored)."""
        ...

    async def wait_writable(self) -> None:
        """Return once the data channel can take more output (backpressure)."""
        ...

    def finish(self, reason: str = "") -> None:
        """The plugin is done: end the session; ``reason`` goes into channel_closed."""
        ...


class Plugin(abc.ABC):
    """Base class of the session plugins."""

    #: Whether the real agent handshakes for this plugin even without KMS.
    requires_handshake: ClassVar[bool] = False

    def __init__(self, host: PluginHost) -> None:
        self.host = host
        self._tasks: set[asyncio.Task[None]] = set()
        self.stopped = False

    @abc.abstractmethod
    async def start(self) -> None:
        """Start working (after the handshake); may call ``host.finish`` on failure."""

    @abc.abstractmethod
    def receive(self, payload_type: int, payload: bytes) -> None:
        """One payload from the client, in sequence order. Must not raise on bad input."""

    async def stop(self) -> None:
        """Cancel background work and release resources. Idempotent."""
        self.stopped = True
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run ``coro`` as a tracked task; an unexpected error ends the session."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not self.stopped:
            logger.error("%s failed: %s", task.get_name(), exc, exc_info=exc)
            self.host.finish(f"{type(self).__name__} failed: {exc}")


def split_utf8_tail(data: bytes) -> tuple[bytes, bytes]:
    """Split ``data`` into what can be sent and an incomplete UTF-8 sequence at its end.

    The real agent never cuts a multi-byte character between two messages: it keeps
    the unfinished bytes for the next read. Invalid bytes are passed through as-is.
    """
    size = len(data)
    for back in range(1, min(4, size) + 1):
        byte = data[size - back]
        if byte < 0x80:
            break
        if byte >= 0xC0:  # a lead byte: how long should its sequence be?
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4 if byte < 0xF8 else 1
            if need > back:
                return data[: size - back], data[size - back :]
            break
    return data, b""
