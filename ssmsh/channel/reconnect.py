"""Getting a link (back): the first open, and ResumeSession after a loss.

:class:`Reconnector` keeps the backoff state of one
:class:`~ssmsh.channel.SessionConnection` and the stream credentials its links
are opened with (the StartSession ones, then each ResumeSession's). It knows
the connection only through what it is given: the AWS operations, the session
and client ids, and a callback for state changes. An *outage* starts when a link is
lost and ends when a new link proves healthy (a frame or a pong arrives on
it). A link that carried no frame and died within :data:`STABLE_LINK` seconds
(a gateway that answers the ping and then refuses OpenDataChannel, or keeps
hanging up) does not end it for the budget and the backoff: the next attempt
continues the same outage, so such a gateway cannot make us spin or outlive
the budget.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Protocol

from .._private_api import FrameLink
from ..exceptions import AwsError, ReconnectFailed
from .config import ConnectionConfig, backoff_delays
from .link import LinkError, open_link
from .types import ConnectionState, SessionService, StreamCredentials

__all__ = ["FATAL_RESUME_CODES", "STABLE_LINK", "Reconnector", "StateSetter"]

logger = logging.getLogger(__name__)

#: ResumeSession error codes that retrying cannot fix.
FATAL_RESUME_CODES = frozenset(
    {
        "AccessDeniedException",
        "DoesNotExistException",
        "InvalidParameters",
        "ValidationException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "NoCredentials",
        "NoRegion",
    }
)


#: Seconds a link that carried no frame must live to count as a real recovery.
STABLE_LINK = 1.0


class StateSetter(Protocol):
    """Moves the connection to a new state (``SessionConnection._set_state``)."""

    def __call__(
        self,
        new: ConnectionState,
        reason: str = "",
        outage: float | None = None,
        attempt: int = 0,
    ) -> None: ...


class Reconnector:
    """Opens links for a connection, within the configured budgets.

    :param stream: the first StreamUrl and token (StartSession's); :attr:`stream`
        then holds the latest ones.
    :param set_state: called for CONNECTED and RECONNECTING.
    """

    def __init__(
        self,
        config: ConnectionConfig,
        service: SessionService,
        *,
        session_id: str,
        client_id: str,
        stream: StreamCredentials,
        set_state: StateSetter,
    ) -> None:
        self.config = config
        self.service = service
        self.session_id = session_id
        self.client_id = client_id
        #: The credentials the next link is opened with.
        self.stream = stream
        self._set_state = set_state
        self._loop = asyncio.get_running_loop()
        self._delays: Iterator[float] = backoff_delays(self.config)
        #: When the current outage began (None while healthy).
        self._outage_start: float | None = None
        self._attempt = 0
        #: Start of the outage the current link ended, while that link is on probation.
        self._previous_outage: float | None = None
        self._link_opened = 0.0
        self._link_carried_data = False
        self._ever_received = False  # a frame arrived on some link: the longer budget applies
        #: Reconnects that succeeded (a link proved healthy after an outage).
        self.reconnects = 0
        #: Durations of the outages that ended, in seconds.
        self.outages: list[float] = []

    @property
    def deadline(self) -> float | None:
        """During an outage, the loop time after which no attempt will start (the
        budget, from the outage's start); None while healthy."""
        if self._outage_start is None:
            return None
        budget = self.config.reconnect_budget if self._ever_received else self.config.connect_budget
        return self._outage_start + budget

    # -------------------------------------------------------------- notifications

    def link_up(self) -> None:
        """A link is open and the protocol has been told."""
        self._link_opened = self._loop.time()
        self._link_carried_data = False
        if self._outage_start is None:
            self._set_state(ConnectionState.CONNECTED)

    def link_healthy(self, data: bool = False) -> None:
        """Something arrived on the current link (``data``: a frame, else a pong):
        the outage, if any, is over."""
        if data:
            self._link_carried_data = True
            self._ever_received = True
        if self._outage_start is None:
            return
        outage = self._loop.time() - self._outage_start
        self._previous_outage = self._outage_start
        self._outage_start = None
        self.reconnects += 1
        self.outages.append(outage)
        self._set_state(
            ConnectionState.CONNECTED, f"reconnected after {outage:.1f} s", outage=outage
        )

    # -------------------------------------------------------------- opening

    async def _open(self) -> FrameLink:
        stream = self.stream
        try:
            headers = await self.service.sign_stream_url(stream.stream_url)
        except Exception as exc:  # signing is optional (notes §12)
            logger.debug("could not sign the stream URL, connecting unsigned: %s", exc)
            headers = {}
        return await open_link(
            stream.stream_url, stream.token_value, self.client_id, headers, self.config
        )

    async def first_link(self) -> FrameLink:
        """Open the first link with the StartSession token, retrying within ``connect_budget``."""
        start = self._loop.time()
        delays = backoff_delays(self.config)
        while True:
            try:
                return await self._open()
            except LinkError as exc:
                if exc.fatal:
                    raise ReconnectFailed(str(exc)) from None
                delay = next(delays)
                if self._loop.time() + delay - start > self.config.connect_budget:
                    raise ReconnectFailed(str(exc)) from None
                logger.debug("first link failed (%s); retrying in %.2f s", exc, delay)
                await asyncio.sleep(delay)

    async def relink(self, reason: str) -> FrameLink:
        """Resume the session after a lost link; raise :class:`ReconnectFailed` when
        the service refuses or the budget runs out."""
        now = self._loop.time()
        fresh = self._outage_start is None
        if fresh:
            lived = now - self._link_opened
            if (
                self._previous_outage is not None
                and not self._link_carried_data
                and lived < STABLE_LINK
            ):
                # That link only answered a ping: still the same outage, same backoff.
                self._outage_start = self._previous_outage
                fresh = False
                logger.debug("link lost again after %.2f s (%s)", lived, reason)
            else:
                self._outage_start = now
                self._attempt = 0
                self._delays = backoff_delays(self.config)
                logger.info("link lost (%s); reconnecting", reason)
        self._previous_outage = None
        budget = self.config.reconnect_budget if self._ever_received else self.config.connect_budget
        last_error = reason
        assert self._outage_start is not None
        while True:
            if not fresh or self._attempt > 0:
                delay = next(self._delays)
                if self._loop.time() + delay - self._outage_start > budget:
                    raise ReconnectFailed(
                        f"could not reconnect within {budget:g} s: {last_error}",
                        session_may_live=True,
                    )
                await asyncio.sleep(delay)
            fresh = False
            self._attempt += 1
            self._set_state(ConnectionState.RECONNECTING, last_error, attempt=self._attempt)
            try:
                async with asyncio.timeout(self.config.open_timeout):
                    stream = await self.service.resume_session(self.session_id)
                if stream is None:
                    raise ReconnectFailed(f"session {self.session_id} timed out or was terminated")
                self.stream = type(stream)(
                    stream.stream_url or self.stream.stream_url, stream.token_value
                )
                return await self._open()
            except AwsError as exc:
                if exc.code in FATAL_RESUME_CODES:
                    raise ReconnectFailed(f"cannot resume the session: {exc}") from None
                last_error = str(exc)
            except LinkError as exc:
                last_error = str(exc)
            except TimeoutError:
                last_error = "ResumeSession timed out"
            logger.debug("reconnect attempt %d failed: %s", self._attempt, last_error)
