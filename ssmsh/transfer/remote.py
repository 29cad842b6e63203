"""One session running the ``ssmsh cp`` helper (:mod:`ssmsh.protocol.transfer`), driven
with async requests: :meth:`RemoteHelper.call` sends one and waits for its reply."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from ..aws import SsmSessions
from ..channel import (
    ChannelClosedByRemote,
    ConnectionConfig,
    OutputReceived,
    SessionConnection,
    StderrReceived,
)
from ..exceptions import SsmshError
from ..protocol.status_trailer import new_marker
from ..protocol.transfer import (
    QUIT,
    Capabilities,
    HelperOutput,
    HelperReady,
    Reply,
    TransferProtocolError,
    helper_script,
    request,
)

__all__ = ["HELPER_DOCUMENT", "RemoteHelper", "TransferError", "open_helper"]

logger = logging.getLogger(__name__)

#: The document whose command gets the session's input (see ssmsh.protocol.transfer).
HELPER_DOCUMENT = "AWS-StartInteractiveCommand"


class TransferError(SsmshError):
    """A copy failed (the message says what and where)."""


class RemoteHelper:
    """The helper on the other end of ``conn``; one request at a time."""

    def __init__(self, conn: SessionConnection, marker: str) -> None:
        self.conn = conn
        self.output = HelperOutput(marker)
        self._replies: asyncio.Queue[HelperReady | Reply | BaseException] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._reader = asyncio.ensure_future(self._read())
        self.capabilities: Capabilities | None = None
        self.session_id = conn.info.session_id
        #: Bytes of file data moved by this helper (for the progress line).
        self.closed = False

    async def _read(self) -> None:
        ended: BaseException
        try:
            while True:
                event = await self.conn.receive()
                if event is None or isinstance(event, ChannelClosedByRemote):
                    ended = TransferError("the session on the target ended")
                    break
                if isinstance(event, OutputReceived | StderrReceived):
                    for item in self.output.feed(event.data):
                        self._replies.put_nowait(item)
        except TransferProtocolError as exc:
            ended = TransferError(f"the copy helper on the target went wrong: {exc}")
        except SsmshError as exc:
            ended = exc
        except Exception as exc:
            ended = exc
        self._replies.put_nowait(ended)

    async def _next(self) -> HelperReady | Reply:
        item = await self._replies.get()
        if isinstance(item, BaseException):
            self._replies.put_nowait(item)  # every later call fails the same way
            raise item
        return item

    async def ready(self, timeout: float | None = None) -> Capabilities:
        """Wait for the helper to start; TransferError if it cannot (or not in ``timeout``)."""
        try:
            async with asyncio.timeout(timeout):
                item = await self._next()
        except (TransferError, TimeoutError) as exc:
            if isinstance(exc, TimeoutError):
                preamble = self.output.preamble.decode(errors="replace").strip()
                raise TransferError(
                    f"the copy helper did not start on the target within {timeout:.0f} s"
                    + (f"; it said: {preamble.splitlines()[-1].strip()[:200]}" if preamble else "")
                ) from None
            preamble = self.output.preamble.decode(errors="replace").strip()
            last = preamble.splitlines()[-1].strip() if preamble else ""
            raise TransferError(
                "the copy helper did not start on the target"
                + (f": {last}" if last else " (it needs sh and stty)")
            ) from None
        if not isinstance(item, HelperReady):
            raise TransferError("the copy helper answered before it was ready")
        self.capabilities = item.capabilities
        missing = item.capabilities.missing()
        if missing:
            raise TransferError(f"the target has no {missing}, which ssmsh cp needs")
        return item.capabilities

    async def call(
        self,
        operation: str,
        numbers: Sequence[int | str] = (),
        paths: Sequence[bytes] = (),
        data: bytes | memoryview = b"",
    ) -> Reply:
        async with self._lock:
            logger.debug("%s: %s %s %r", self.session_id, operation, list(numbers), list(paths))
            await self.conn.send_input(request(operation, numbers, paths))
            if data:
                await self.conn.send_input(bytes(data))
            item = await self._next()
            logger.debug("%s: %s -> %s", self.session_id, operation, getattr(item, "status", item))
        if not isinstance(item, Reply):
            raise TransferError("the copy helper said it was ready twice")
        return item

    async def close(self) -> None:
        """End the helper and its session (TerminateSession)."""
        if self.closed:
            return
        self.closed = True
        if not self._reader.done() and not self._lock.locked():
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await self.conn.send_input(QUIT)
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader
        await self.conn.close(terminate=True)


async def open_helper(
    sessions: SsmSessions, target_id: str, config: ConnectionConfig, reason: str | None = None
) -> RemoteHelper:
    """Start a session running the helper and wait until it is ready."""
    marker = new_marker()
    info = await sessions.start_session(
        target_id, HELPER_DOCUMENT, {"command": [helper_script(marker)]}, reason
    )
    logger.debug("copy session %s started", info.session_id)
    conn = SessionConnection(info, sessions, config=config)
    try:
        await conn.start()
    except BaseException:
        await conn.close(terminate=True)
        raise
    helper = RemoteHelper(conn, marker)
    try:
        await helper.ready(config.handshake_timeout)
    except BaseException:
        await helper.close()
        raise
    return helper
