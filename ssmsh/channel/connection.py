"""The asyncio driver of a Session Manager session: :class:`SessionConnection`.

It owns one Sans-I/O :class:`~ssmsh.protocol.session.ClientSession` and keeps
it connected to the message gateway over successive WebSocket links:

* one receive loop feeds frames to the protocol; what the protocol produces is
  written once per loop iteration, all frames in one transport write (a writer
  task takes over only while the transport's buffer is full); one timer
  (``loop.call_at``) is armed from ``get_timer()``;
* while frames stream in, reading pauses briefly after each batch
  (``ConnectionConfig.receive_coalesce``) so that a peer sending many small
  messages costs one wakeup and one ack write per batch, not per message;
* KMS data keys are fetched through the injected :class:`SessionService`;
* when a link is lost (close, reset, or silence noticed by pings), it calls
  ResumeSession, opens a new link with the new token (same ClientId, new
  RequestId) and carries all sequence state over, so unacknowledged messages
  are retransmitted and nothing is lost or duplicated;
* input is queued while disconnected; ``send_input`` waits when the queue is
  full (backpressure), never fails because of an outage.

This module is the public API, the life cycle and the connection state; the
parts that do the work are each in their own module:

* :mod:`~ssmsh.channel.driver` feeds the protocol and collects what it
  produces (frames, events, its timer) and records how the session ends;
* :mod:`~ssmsh.channel.serving` serves the links (reader, writer, liveness)
  and :mod:`~ssmsh.channel.reconnect` gets new ones;
* :mod:`~ssmsh.channel.reading` decides when the link is read (receive
  coalescing, backpressure) and :mod:`~ssmsh.channel.writing` batches frames;
* :mod:`~ssmsh.channel.inbox` holds the events for :meth:`SessionConnection.receive`;
* :mod:`~ssmsh.channel.diagnostics` words the debug lines.

Typical use::

    async with SessionConnection(info, service) as conn:
        await conn.wait_established()
        await conn.send_size(cols, rows)
        async for event in conn:            # OutputReceived, StderrReceived, ...
            ...

Leaving the ``async with`` block calls :meth:`SessionConnection.close`, which
attempts TerminateSession.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from types import TracebackType

from .._private_api import FrameLink
from ..exceptions import HandshakeError, InternalError, SsmshError
from ..protocol.datachannel import ChannelConfig
from ..protocol.session import ClientSession, SessionEstablished
from .config import ConnectionConfig
from .diagnostics import log_ended, session_logger
from .driver import ProtocolDriver
from .events import SessionEvent
from .inbox import Inbox
from .reading import ReadGate
from .reconnect import Reconnector
from .serving import LinkServer
from .types import ConnectionState, SessionInfo, SessionService, StateChange
from .writing import FrameWriter

__all__ = ["CLIENT_ID", "SessionConnection"]

logger = logging.getLogger(__name__)

#: One ClientId per process, reused by every session and every reconnect.
CLIENT_ID = str(uuid.uuid4())

StateListener = Callable[[StateChange], None]


#: Input up to this many bytes is interactive (keystrokes, a short line): what comes
#: back is read at once, never held for coalescing (see ``ReadGate.input_sent``).
INTERACTIVE_INPUT = 256


class SessionConnection:
    """A live data channel for one session, resilient to link loss.

    :param info: the session (id, target, first StreamUrl and token).
    :param service: AWS operations (ResumeSession, TerminateSession, KMS, signing).
    :param config: driver tunables; :class:`ConnectionConfig` defaults otherwise.
    :param protocol: the Sans-I/O session object; a new ``ClientSession`` by default.
        One given here is driven with ``loop.time()`` as ``now``, so its
        ``ChannelConfig.epoch_offset`` should be ``time.time() - loop.time()``.
    :param client_id: ClientId for OpenDataChannel; the process-wide :data:`CLIENT_ID`.
    :param on_state_change: called (synchronously) on every :class:`StateChange`.

    Public API, all coroutines unless noted:

    * :meth:`start` / ``async with`` — open the first link (returns once it is open);
    * :meth:`wait_established` — the handshake result (:class:`SessionEstablished`);
    * :meth:`send_input`, :meth:`send_size`, :meth:`send_flag` — wait for the
      handshake and for room in the send window, then queue the data;
    * :meth:`receive` / ``async for`` — OutputReceived, StderrReceived,
      ExitCodeReceived, FlagReceived and finally ChannelClosedByRemote; also a
      second SessionEstablished if a handshake comes after :meth:`skip_handshake`;
    * :attr:`state`, :meth:`add_state_listener`, :meth:`state_changes` — connection state;
    * :meth:`drain`, :attr:`unacked` — wait until the agent acknowledged everything;
      :attr:`acked` counts what it did, :attr:`publication_paused` says whether the
      gateway is holding sends (the agent is away);
    * :meth:`close` — terminate (TerminateSession API) and release everything;
    * :meth:`wait_closed` — wait for the end; raises the failure if there was one;
      :attr:`closed`, :attr:`error` tell how it ended.

    Received data is acknowledged promptly (small messages streaming in are
    acknowledged per batch, see ``ConnectionConfig.receive_coalesce``) and
    buffered for :meth:`receive` up to ``config.max_receive_buffer`` bytes; beyond
    that the driver stops reading the WebSocket (backpressure) without mistaking
    the pause for a dead link.

    Failures (:class:`ReconnectFailed`, :class:`HandshakeError`,
    :class:`EncryptionError`, :class:`RemoteProtocolError`, :class:`AwsError`...)
    are raised from :meth:`receive`, :meth:`wait_established`, the send methods
    and :meth:`wait_closed`.
    """

    def __init__(
        self,
        info: SessionInfo,
        service: SessionService,
        *,
        config: ConnectionConfig | None = None,
        protocol: ClientSession | None = None,
        client_id: str | None = None,
        on_state_change: StateListener | None = None,
    ) -> None:
        self.info = info
        self.service = service
        #: Set by a caller that leaves the session to another process (``ssmsh attach``
        #: after the network was lost): its owner then closes without TerminateSession.
        self.leave_running = False
        self.config = config = config or ConnectionConfig()
        self.client_id = client_id or CLIENT_ID
        self._loop = loop = asyncio.get_running_loop()
        if protocol is None:
            epoch = time.time() - loop.time()
            protocol = ClientSession(ChannelConfig(epoch_offset=epoch))
        self.protocol = protocol
        self._state = ConnectionState.CONNECTING
        self._listeners: list[StateListener] = [on_state_change] if on_state_change else []
        self._closing = False
        self._runner: asyncio.Task[None] | None = None
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._inbox = Inbox()
        self._gate = ReadGate(loop, config.receive_coalesce)
        self._writer = FrameWriter(loop, config.write_limit)
        self._driver = ProtocolDriver(
            protocol, info, service, self._writer, self._inbox, on_finished=self._on_finished
        )
        self._reconnector = Reconnector(
            config,
            service,
            session_id=info.session_id,
            client_id=self.client_id,
            stream=info.stream,
            set_state=self._set_state,
        )
        self._server = LinkServer(
            self._driver,
            config,
            self._reconnector,
            self._gate,
            self._writer,
            self._inbox,
            closing=lambda: self._closing,
        )

    # ------------------------------------------------------------------ life cycle

    async def __aenter__(self) -> SessionConnection:
        if self._runner is None:
            try:
                await self.start()
            except BaseException:
                await self.close()
                raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the first link and start the driver. Raises if it cannot be opened."""
        if self._runner is not None:
            raise RuntimeError("start() was already called")
        self._driver.started_at = self._loop.time()
        ws = await self._reconnector.first_link()
        self._runner = asyncio.create_task(self._run(ws), name=f"ssmsh-{self.info.session_id}")
        self._reconnector.link_up()  # CONNECTED as soon as start() returns
        deadline = self.config.handshake_timeout
        if deadline is not None and not self._driver.established.done():
            self._handshake_timer = self._loop.call_later(deadline, self._handshake_overdue)

    def _handshake_overdue(self) -> None:
        """``handshake_timeout`` passed with no word from the agent: end the session."""
        self._handshake_timer = None
        if not self._driver.established.done() and not self._driver.finished:
            self._driver.finish(
                HandshakeError(
                    f"no handshake from the agent within {self.config.handshake_timeout:g} s "
                    "(is the SSM agent on the instance running?)"
                )
            )

    async def close(self, terminate: bool = True) -> None:
        """End the session and release everything. Idempotent; never raises.

        With ``terminate`` (the default) the TerminateSession API is attempted
        first, whatever state the connection is in, so nothing is left orphaned.
        """
        first = not self._closing
        self._closing = True
        if first and terminate:
            try:
                async with asyncio.timeout(self.config.terminate_timeout):
                    await self.service.terminate_session(self.info.session_id)
                logger.debug("TerminateSession %s done", self.info.session_id)
            except Exception as exc:  # best effort, on every exit path
                logger.debug("TerminateSession %s failed: %s", self.info.session_id, exc)
        self._driver.finish(None)
        if self._runner is not None and not self._runner.done():
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        ws = self._server.link
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        await self._driver.aclose()

    async def wait_closed(self) -> None:
        """Wait until the session is over; raise its failure if it failed."""
        await asyncio.shield(self._driver.done)

    @property
    def closed(self) -> bool:
        """True once the session is over, for whatever reason."""
        return self._driver.finished

    @property
    def error(self) -> BaseException | None:
        """The failure that ended the session, if any."""
        return self._driver.error

    async def _run(self, ws: FrameLink) -> None:
        """Serve links until the session is over; end it with what failed, if anything."""
        try:
            await self._server.run(ws)
        except asyncio.CancelledError:
            raise
        except SsmshError as exc:
            self._driver.finish(exc)
        except Exception as exc:  # a bug: still end cleanly, with the cause logged
            logger.exception("channel driver failed")
            self._driver.finish(InternalError(f"{type(exc).__name__}: {exc}"))

    def _on_finished(self, error: BaseException | None) -> None:
        """The driver saw the end (called once): the counters' line, then CLOSED."""
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        if session_logger.isEnabledFor(logging.INFO):
            reconnector = self._reconnector
            log_ended(
                self.info.session_id,
                self.protocol.channel,
                duration=self._loop.time() - self._driver.started_at,
                links=self.links,
                reconnects=reconnector.reconnects,
                outages=reconnector.outages,
                receive_holds=self.receive_holds,
                bytes_in=self.bytes_received,
                bytes_out=self.bytes_sent,
            )
        self._set_state(ConnectionState.CLOSED, str(error) if error else "session ended")

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def reconnect_deadline(self) -> float | None:
        """While reconnecting: the event loop's time when it gives up (None otherwise)."""
        return self._reconnector.deadline

    def add_state_listener(self, listener: StateListener) -> Callable[[], None]:
        """Call ``listener`` on every state change; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def state_changes(self) -> AsyncIterator[StateChange]:
        """Every state change from now on, until CLOSED (included)."""
        queue: asyncio.Queue[StateChange] = asyncio.Queue()
        remove = self.add_state_listener(queue.put_nowait)
        try:
            if self._state is ConnectionState.CLOSED:
                return
            while True:
                change = await queue.get()
                yield change
                if change.new is ConnectionState.CLOSED:
                    return
        finally:
            remove()

    def _set_state(
        self, new: ConnectionState, reason: str = "", outage: float | None = None, attempt: int = 0
    ) -> None:
        old = self._state
        if old is ConnectionState.CLOSED or (old is new and not attempt):
            return
        self._state = new
        change = StateChange(old, new, reason, outage, attempt)
        logger.debug("state %s -> %s %s", old.value, new.value, reason)
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                logger.exception("state listener failed")

    # ------------------------------------------------------------------ sending

    async def wait_established(self) -> SessionEstablished:
        """Wait for the handshake (or the first output of an agent that does not
        handshake). Raises the failure if the session ended first."""
        return await asyncio.shield(self._driver.established)

    def set_recorder(self, recorder: Callable[[ClientSession], None] | None) -> None:
        """Call ``recorder`` with the protocol after every call into it, before the
        frames it made are sent (``ssmsh attach`` keeps the sequence state with it).
        It is called once now. It must be quick and must not raise."""
        self._driver.recorder = recorder
        if recorder is not None:
            recorder(self.protocol)

    def skip_handshake(self) -> bool:
        """Stop waiting for a handshake the agent may never start; True if that
        established the session (see :meth:`ClientSession.skip_handshake`)."""
        driver = self._driver
        if driver.finished:
            return False
        driver.skipping = True  # for the debug line of SessionEstablished
        try:
            skipped = self.protocol.skip_handshake(self._loop.time())
            driver.after_protocol()
        finally:
            driver.skipping = False
        return skipped

    async def send_input(self, data: bytes) -> None:
        """Send stdin / stream bytes (split into messages of ``max_payload_size``).

        Waits for the handshake, and while the send window is full (for example
        during an outage). Raises the session's failure, or :class:`ChannelClosed`
        if it ended normally.
        """
        if not data:
            return
        await self._ready()
        driver = self._driver
        size = self.config.max_payload_size
        if len(data) <= size:
            await driver.wait_writable()
            self.protocol.send_input(bytes(data), self._loop.time())
            driver.after_protocol()
            if len(data) <= INTERACTIVE_INPUT:
                self._gate.input_sent()  # its echo is awaited: no receive hold for it
            return
        view = memoryview(data)
        for start in range(0, len(view), size):
            await driver.wait_writable()
            self.protocol.send_input(bytes(view[start : start + size]), self._loop.time())
            driver.after_protocol()

    async def send_size(self, cols: int, rows: int) -> None:
        """Send the terminal size."""
        await self._ready()
        await self._driver.wait_writable()
        self.protocol.send_size(cols, rows, self._loop.time())
        self._driver.after_protocol()

    async def send_flag(self, flag: int) -> None:
        """Send a Flag payload (e.g. ``Flag.TERMINATE_SESSION``)."""
        await self._ready()
        await self._driver.wait_writable()
        self.protocol.send_flag(flag, self._loop.time())
        self._driver.after_protocol()

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything sent so far was acknowledged; False on timeout/end."""
        writable = self._driver.writable
        try:
            async with asyncio.timeout(timeout):
                while self.protocol.channel.unacked and not self._driver.finished:
                    writable.clear()
                    await writable.wait()
        except TimeoutError:
            return False
        return not self.protocol.channel.unacked

    async def _ready(self) -> None:
        if self._driver.finished:
            self._driver.raise_end()
        await self.wait_established()

    # ------------------------------------------------------------------ receiving

    async def receive(self) -> SessionEvent | None:
        """The next event, or None after the last one. Raises the session's failure."""
        event = await self._inbox.get()
        if self._gate.paused and self._inbox.size <= self.config.max_receive_buffer // 2:
            self._gate.resume()
        return event

    def __aiter__(self) -> AsyncIterator[SessionEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[SessionEvent]:
        while (event := await self.receive()) is not None:
            yield event

    # ------------------------------------------------------------------ counters

    @property
    def unacked(self) -> int:
        """Messages sent or queued and not yet acknowledged by the agent."""
        return int(self.protocol.channel.unacked)

    @property
    def acked(self) -> int:
        """Messages the agent has acknowledged so far (it grows while the agent is alive)."""
        return int(self.protocol.channel.stats["acked"])

    @property
    def publication_paused(self) -> bool:
        """The gateway paused publication (the agent is away): sends are held."""
        return bool(self.protocol.channel.paused)

    @property
    def links(self) -> int:
        """WebSocket links the session was served over (the first, then one per reconnect)."""
        return self._server.links

    @property
    def bytes_received(self) -> int:
        """WebSocket message bytes received (frame headers not counted)."""
        return self._server.bytes_received

    @property
    def bytes_sent(self) -> int:
        """WebSocket message bytes sent (frame headers not counted)."""
        return self._writer.bytes_sent

    @property
    def receive_holds(self) -> int:
        """Times reading was held back to coalesce received frames (for tests and benchmarks)."""
        return self._gate.holds
