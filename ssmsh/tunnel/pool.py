"""Several port sessions to one destination behind one listener: :class:`SessionPool`.

One port session carries any number of connections (smux streams), but the agent
sends at its own pace: 1 KiB per message and a pause after each, about 600 KiB/s
per session (``port-mux-download-96k``; the official agent's smux reader sleeps 1 ms
per read). No client can go faster within one session; across sessions it scales.
A pool spreads the connections of one listener over up to ``size`` sessions:

* **least loaded first**: a connection goes to the live session carrying the fewest
  connections (an established one before one still starting, on a tie);
* **lazily**: a new session is started only when every live session already carries
  a connection and the pool has fewer than ``size`` (and ``can_grow`` allows it); the
  connection that asked for it goes to it, and waits for it, accepted;
* **replaced**: a session that ends (the idle timeout, an administrator, the agent
  gone) leaves the pool at once, and the next connection that needs a session
  starts a new one. Connections open on it end with it.

A connection whose session could not be started goes to another established session
of the pool if there is one; otherwise the start failure is raised to whoever asked
(:meth:`SessionPool.slot`). When a start fails and no session of the pool is left,
:attr:`SessionPool.fatal` is set: ``ssmsh forward --sessions`` ends then, as
``--persist`` does when a new session cannot start.

Each session is a :class:`~ssmsh.tunnel.session.ForwardSession` with a
:class:`~ssmsh.tunnel.gate.HandlerGate` of its own, which is not any listener's
handler: the pool hands it the connections it picked for that session.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from ..channel import SessionConnection
from ..exceptions import ChannelClosed, SsmshError, TunnelError
from .config import TunnelConfig
from .forwarder import StreamConfirm
from .gate import HandlerGate
from .listeners import Listener
from .mode import PortMode
from .session import ForwardSession, closed_message
from .stream import MuxStream

__all__ = ["PoolMember", "PoolUnavailable", "SessionPool", "describe_error"]

logger = logging.getLogger(__name__)

Report = Callable[[str], None]
#: Starts one port session (StartSession and its data channel) for the pool.
StartSession = Callable[[], Awaitable[SessionConnection]]
#: A :data:`~ssmsh.tunnel.forwarder.StreamConfirm` that is also told the session.
PoolConfirm = Callable[[SessionConnection, MuxStream, asyncio.StreamWriter], Awaitable[bool]]


class PoolUnavailable(TunnelError):
    """The pool has no session for a connection and may not start one."""


def describe_error(exc: BaseException) -> str:
    """One line for a failure of a pool's session."""
    if isinstance(exc, ChannelClosed):
        return closed_message(exc)
    text = str(exc)
    if isinstance(exc, SsmshError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class PoolMember:
    """One session of a pool, from its start to its end."""

    def __init__(self, number: int, label: str) -> None:
        self.number = number
        self.label = label
        self.gate = HandlerGate()
        self.session: ForwardSession | None = None
        #: Connections given to this session and not finished.
        self.load = 0
        #: Set once the session serves connections, or has failed to start.
        self.ready = asyncio.Event()
        #: Why the session could not start (set with :attr:`ready`), or None.
        self.error: BaseException | None = None
        self.ended = False
        self.task: asyncio.Task[None] | None = None

    @property
    def usable(self) -> bool:
        """Starting or serving, not failed or ended."""
        return not self.ended and self.error is None

    @property
    def serving(self) -> bool:
        return self.usable and self.ready.is_set()

    @property
    def mode(self) -> PortMode | None:
        return self.session.mode if self.session is not None else None

    @property
    def session_id(self) -> str:
        return self.session.session_id if self.session is not None else "?"


class SessionPool:
    """Up to ``size`` port sessions to one destination; see the module docstring."""

    def __init__(
        self,
        start: StartSession,
        listener: Listener,
        *,
        size: int,
        label: str,
        remote_label: str,
        report: Report,
        verbose: bool = False,
        config: TunnelConfig | None = None,
        confirm: PoolConfirm | None = None,
        can_grow: Callable[[], bool] | None = None,
        owner_reports_fatal: bool = False,
    ) -> None:
        """``can_grow`` says whether one more session may start (a cap shared with other
        pools); with ``owner_reports_fatal`` a start failure that sets :attr:`fatal` is
        left for the owner to report (it ends, saying why), other failures are reported."""
        if size < 1:
            raise ValueError("a pool holds at least one session")
        self._start = start
        self.listener = listener
        self.size = size
        self.label = label
        self.remote_label = remote_label
        self.report = report
        self.verbose = verbose
        self.config = config or TunnelConfig()
        self.confirm = confirm
        self.can_grow = can_grow
        self.owner_reports_fatal = owner_reports_fatal
        #: The sessions that are starting or serving (ended ones leave at once).
        self.members: list[PoolMember] = []
        self._numbers = itertools.count(1)
        self._closed = False
        #: Sessions started so far (StartSession succeeded), for reports and tests.
        self.started = 0
        #: Set when a start failed and no session of the pool was left.
        self.fatal = asyncio.Event()
        self.fatal_error: BaseException | None = None
        self.last_used = asyncio.get_running_loop().time()

    # ------------------------------------------------------------- measures

    @property
    def load(self) -> int:
        """Connections in the pool's sessions, open or waiting for their session."""
        return sum(member.load for member in self.members)

    def idle_for(self) -> float:
        """Seconds since the pool last carried a connection (0 while it carries one)."""
        if self.load:
            return 0.0
        return asyncio.get_running_loop().time() - self.last_used

    # ------------------------------------------------------------ using it

    def warm(self) -> PoolMember:
        """Start a session now, before any connection asks for one."""
        return self._add()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A listener's connection handler: the connection through the pool's least
        loaded session; dropped if no session can be had."""
        try:
            async with self.slot() as member:
                await member.gate(reader, writer)
        except Exception as exc:  # no session for it (the failure is reported where it happened)
            logger.debug("%s: connection dropped: %s", self.label, describe_error(exc))
            writer.transport.abort()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[PoolMember]:
        """A serving session for one connection, counted in its load while inside.

        Raises the start failure when the session picked could not start and no
        other session of the pool serves, :class:`PoolUnavailable` when the pool
        is closed or has no session and may not start one.
        """
        member = self._pick()
        member.load += 1
        try:
            await member.ready.wait()
            if member.error is not None:
                others = [m for m in self.members if m.serving]
                if not others:
                    raise member.error
                member.load -= 1
                member = min(others, key=lambda m: m.load)
                member.load += 1
            yield member
        finally:
            member.load -= 1
            self.last_used = asyncio.get_running_loop().time()

    def _pick(self) -> PoolMember:
        if self._closed:
            raise PoolUnavailable("the tunnel is closing")
        live = [m for m in self.members if m.usable]
        best = min(live, key=lambda m: (m.load, not m.ready.is_set(), m.number), default=None)
        busy = best is None or best.load > 0
        if busy and len(self.members) < self.size and (self.can_grow is None or self.can_grow()):
            return self._add()
        if best is None:
            raise PoolUnavailable("no session may be started now (the session limit is reached)")
        return best

    def _add(self) -> PoolMember:
        number = next(self._numbers)
        label = self.label if self.size == 1 else f"{self.label}[{number}]"
        member = PoolMember(number, label)
        self.members.append(member)
        member.task = asyncio.get_running_loop().create_task(
            self._run(member), name=f"pool session {label}"
        )
        return member

    # ------------------------------------------------------- one session

    async def _run(self, member: PoolMember) -> None:
        session: ForwardSession | None = None
        error: BaseException | None = None
        try:
            connection = await self._start()
            self.started += 1
            confirm: StreamConfirm | None = None
            if self.confirm is not None:
                confirm = functools.partial(self.confirm, connection)
            session = ForwardSession(
                connection,
                self.listener,
                member.gate,
                remote_label=self.remote_label,
                report=self.report,
                verbose=self.verbose,
                config=self.config,
                label=member.label,
                confirm=confirm,
                on_ready=member.ready.set,
            )
            member.session = session
            await session.run()
        except asyncio.CancelledError:
            self._ended(member, None)
            raise
        except Exception as exc:
            error = exc
        self._ended(member, error)
        if session is not None:
            await session.release()
        self._report_end(member, error)

    def _ended(self, member: PoolMember, error: BaseException | None) -> None:
        member.ended = True
        if not member.ready.is_set():
            member.error = error or TunnelError("the session ended before it was established")
            member.ready.set()
        member.gate.fail()
        with contextlib.suppress(ValueError):
            self.members.remove(member)
        failed = member.error is not None and not self._closed
        if failed and not self.members and not self.fatal.is_set():
            self.fatal_error = member.error
            self.fatal.set()

    def _report_end(self, member: PoolMember, error: BaseException | None) -> None:
        if self._closed:
            return
        if (
            self.owner_reports_fatal
            and member.error is not None
            and member.error is self.fatal_error
        ):
            return
        if member.session is None or member.error is not None:
            reason = describe_error(member.error or error or TunnelError("unknown"))
            self.report(f"{member.label}: cannot start a session: {reason}")
            return
        label = f"{member.label}: session {member.session_id}"
        if error is None:
            self.report(f"{label} ended")
        elif isinstance(error, ChannelClosed):
            self.report(f"{label} ended: {describe_error(error)}")
        else:
            self.report(f"{label} failed: {describe_error(error)}")
            if not isinstance(error, SsmshError):
                logger.debug("pool session failed", exc_info=error)

    # ---------------------------------------------------------------- end

    async def close(self) -> None:
        """End every session from our side (flag, API); connections are dropped."""
        self._closed = True
        members = list(self.members)
        await asyncio.gather(
            *(m.session.terminate(close_listener=False) for m in members if m.session is not None),
            return_exceptions=True,
        )
        tasks = [m.task for m in members if m.task is not None]
        for member in members:
            member.gate.fail()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
