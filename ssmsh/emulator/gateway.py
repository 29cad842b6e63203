"""The message gateway: the WebSocket endpoint clients open at a session's StreamUrl.

Path ``/v1/data-channel/<session-id>``. The first frame must be the
OpenDataChannel text JSON; its ``TokenValue`` must be the session's current token
(:meth:`~ssmsh.emulator.state.EmulatorState.check_token`), otherwise the socket is
closed with code 1008 and the reason (the real gateway is closed source; this is
our choice). When credentials are configured, a SigV4-signed upgrade (plugin
1.2.764.0 and later sign it, service ``ssmmessages``) must carry a valid signature
or is refused with HTTP 403; unsigned upgrades are accepted, as the service still
accepts older plugins, the token being the authentication.

Each session has one :class:`~ssmsh.emulator.agent.Agent`, created at the first
connection. It outlives the client's connections: a reconnect with a resumed
token re-attaches the same agent (same sequence numbers; both sides retransmit
what the other has not acknowledged), and a new connection replaces an old one.
While no client is attached the agent is paused (``pause_publication``), as the
real gateway pauses the agent; ``start_publication`` is sent to the client when it
(re)connects and the agent is there. When the session ends the client gets
``channel_closed`` (Output = the reason, empty for a normal end) and the socket is
closed with 1000 "Bye".

Fault injection (:mod:`~ssmsh.emulator.faults`) is applied here, on real traffic.

Connections are capped like the API's (:data:`MAX_CONNECTIONS`, at most a quarter of
the open-file limit; the two share the process's descriptors): at the cap, the
connection that has waited longest without completing its upgrade or sending
OpenDataChannel is cut; a connection with a session is never cut to make room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import resource
import time
from collections.abc import Coroutine
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from .._private_api import counted_server_connection, transport_of
from ..exceptions import RemoteProtocolError
from ..protocol.constants import MessageType
from ..protocol.payloads import OpenDataChannel
from .agent import Agent
from .config import EmulatorConfig
from .faults import FaultInjector
from .httpserver import LogThrottle
from .link import ClientLink, channel_closed_frame, gateway_message
from .sigv4 import SigV4Error, verify_request
from .state import EmulatorState, SessionRecord, SessionStatus, TokenError

__all__ = ["CLOSE_AUTH_FAILED", "Gateway"]

logger = logging.getLogger(__name__)

_PATH = re.compile(r"^/v1/data-channel/([A-Za-z0-9][A-Za-z0-9_.:\-]{0,127})$")
#: Seconds a new connection may take to send its OpenDataChannel frame.
OPEN_TIMEOUT = 30.0
#: Close code for a refused OpenDataChannel (bad or expired token, bad JSON).
CLOSE_AUTH_FAILED = 1008
#: How often sessions ended behind the gateway's back (``state.end_session``) are reaped.
REAP_INTERVAL = 1.0
#: Largest WebSocket message accepted from a client.
MAX_MESSAGE = 16 * 1024 * 1024
#: Concurrent connections (upgrading, opening or with a session); also at most a
#: quarter of the soft RLIMIT_NOFILE.
MAX_CONNECTIONS = 256
#: Seconds a connection may take to complete its WebSocket upgrade.
UPGRADE_TIMEOUT = 10.0


def _connection_cap() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return MAX_CONNECTIONS
    return min(MAX_CONNECTIONS, max(8, soft // 4))


class Gateway:
    """The data-channel WebSocket server and the agents behind it."""

    def __init__(self, state: EmulatorState, config: EmulatorConfig) -> None:
        self.state = state
        self.config = config
        self.faults = FaultInjector(config.faults)
        self.url = ""
        self.paused_sessions: set[str] = set()
        self._agents: dict[str, Agent] = {}
        self._links: dict[str, ClientLink] = {}
        #: Connections that have not sent OpenDataChannel yet.
        self._opening: set[ServerConnection] = set()
        self._server: Server | None = None
        #: Every connection, with when it came.
        self._connections: dict[ServerConnection, float] = {}
        self._cap = MAX_CONNECTIONS
        self._throttle = LogThrottle(logger)
        self._background: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None
        state.on_terminate = self.terminate
        state.resume_filter = self._allow_resume

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host`` (port 0: any free port); sets :attr:`url`."""
        self._cap = _connection_cap()
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._process_request,
            ping_interval=None,
            close_timeout=2.0,
            max_size=MAX_MESSAGE,
            compression=None,
            open_timeout=UPGRADE_TIMEOUT,
            create_connection=counted_server_connection(self._admit, self._forget),
        )
        sockname = self._server.sockets[0].getsockname()
        address = str(sockname[0])
        if address in ("0.0.0.0", ""):
            address = "127.0.0.1"
        elif address == "::":
            address = "::1"
        if ":" in address:
            address = f"[{address}]"
        self.url = f"ws://{address}:{sockname[1]}"
        self._reaper = asyncio.create_task(self._reap(), name="gateway reaper")

    async def close(self) -> None:
        """End every session's agent and stop listening."""
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
            self._reaper = None
        for agent in list(self._agents.values()):
            await agent.terminate("")
        for ws in list(self._connections):
            # websockets waits for upgrades in progress (up to UPGRADE_TIMEOUT): cut them.
            if ws.protocol.state is State.CONNECTING or ws in self._opening:
                transport_of(ws).abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the background; :meth:`close` waits for it."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def terminate(self, session: SessionRecord) -> None:
        """TerminateSession: end the session's agent; the client gets channel_closed.

        Its Output is empty, as in the recording of a real TerminateSession call
        (the session keeps the ``end_reason`` the API recorded).
        """
        agent = self._agents.get(session.session_id)
        if agent is not None:
            await agent.terminate("")
        else:
            self.state.end_session(session.session_id)
            link = self._links.pop(session.session_id, None)
            if link is not None:
                link.finish(channel_closed_frame(session))

    async def _reap(self) -> None:
        """Agents of sessions the state ended without telling us (expiry) are stopped."""
        while True:
            await asyncio.sleep(REAP_INTERVAL)
            for agent in list(self._agents.values()):
                if agent.session.ended and not agent.ending:
                    self.spawn(agent.terminate(agent.session.end_reason))

    # ---------------------------------------------------------------- inspection

    def agent(self, session_id: str) -> Agent | None:
        """The live agent of a session, if it has one."""
        return self._agents.get(session_id)

    def connected(self, session_id: str) -> bool:
        """True while a client WebSocket is attached to the session."""
        return session_id in self._links

    # --------------------------------------------------------------- fault API

    def set_silent(self, silent: bool) -> None:
        """Go silent (nothing delivered either way, no pongs) or speak again."""
        self.faults.silent = silent
        sockets = [link.ws for link in self._links.values()] + list(self._opening)
        for ws in sockets:
            transport = transport_of(ws)
            if silent:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def pause_publication(self, session_id: str | None = None) -> None:
        """Pretend the agent went away: pause_publication to the client, traffic held."""
        for sid in self._session_ids(session_id):
            if sid in self.paused_sessions:
                continue
            self.paused_sessions.add(sid)
            self.faults.count("paused")
            agent = self._agents.get(sid)
            if agent is not None:
                agent.set_paused(True)
            link = self._links.get(sid)
            if link is not None:
                link.send_control(gateway_message(MessageType.PAUSE_PUBLICATION))

    def resume_publication(self, session_id: str | None = None) -> None:
        """The agent is back: start_publication to the client; both sides resend."""
        for sid in self._session_ids(session_id):
            if sid not in self.paused_sessions:
                continue
            self.paused_sessions.discard(sid)
            self.faults.count("resumed")
            link = self._links.get(sid)
            if link is not None:
                link.send_control(gateway_message(MessageType.START_PUBLICATION))
            agent = self._agents.get(sid)
            if agent is not None:
                agent.set_paused(False)

    def close_connections(self, session_id: str | None = None, *, abrupt: bool = False) -> int:
        """Close client sockets now (1000 "Bye", or a TCP reset); returns how many."""
        links = [self._links[sid] for sid in self._session_ids(session_id) if sid in self._links]
        for link in links:
            link.disrupt(abrupt)
        return len(links)

    def _session_ids(self, session_id: str | None) -> list[str]:
        if session_id is not None:
            return [session_id]
        return sorted(set(self._agents) | set(self._links))

    def _allow_resume(self, session: SessionRecord) -> bool:
        if self.faults.refuse_resume:
            self.faults.count("resume_refused")
            return False
        return True

    # ------------------------------------------------------------------ serving

    def _forget(self, ws: ServerConnection) -> None:
        self._connections.pop(ws, None)

    def _admit(self, ws: ServerConnection) -> None:
        """Count a new connection; at the cap, cut the one waiting longest to open."""
        if len(self._connections) >= self._cap:
            waiting = [
                (since, conn)
                for conn, since in self._connections.items()
                if conn.protocol.state is State.CONNECTING or conn in self._opening
            ]
            self._throttle.log(
                logging.WARNING,
                "cap",
                "gateway at its cap of %d connections: cutting the ones waiting longest to open",
                self._cap,
            )
            victim = min(waiting, key=lambda item: item[0])[1] if waiting else ws
            self._connections.pop(victim, None)
            transport_of(victim).abort()
            if victim is ws:
                return
        self._connections[ws] = time.monotonic()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        split = urlsplit(request.path)
        if not _PATH.match(split.path):
            return connection.respond(404, "Not Found\n")
        signed = "Authorization" in request.headers or "X-Amz-Signature=" in split.query
        if signed:
            try:
                verify_request(
                    "GET",
                    request.path,
                    request.headers,
                    b"",
                    self.config.credentials,
                    service="ssmmessages",
                )
            except SigV4Error as exc:
                logger.info("refused a data-channel upgrade: %s", exc.message)
                response = connection.respond(403, exc.message + "\n")
                response.headers["x-amzn-ErrorType"] = exc.code
                return response
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        try:
            await self._handle_connection(ws)
        except ConnectionClosed:
            pass
        except Exception:  # one broken connection must not take the gateway down
            logger.exception("data-channel connection failed")
            with contextlib.suppress(Exception):
                await ws.close(1011, "Internal error")

    async def _handle_connection(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        match = _PATH.match(urlsplit(ws.request.path).path)
        assert match is not None  # checked in _process_request
        session_id = match.group(1)
        if self.faults.silent:  # not even a ping sent with OpenDataChannel gets its pong
            transport_of(ws).pause_reading()
        self._opening.add(ws)
        try:
            async with asyncio.timeout(OPEN_TIMEOUT):
                first = await ws.recv()
        except TimeoutError:
            await ws.close(CLOSE_AUTH_FAILED, "OpenDataChannel not received")
            return
        finally:
            self._opening.discard(ws)
        try:
            open_message = OpenDataChannel.decode(first)
        except RemoteProtocolError as exc:
            logger.info("session %s: bad OpenDataChannel: %s", session_id, exc)
            await ws.close(CLOSE_AUTH_FAILED, "Invalid OpenDataChannel message")
            return
        try:
            session = self.state.check_token(session_id, open_message.token_value)
        except TokenError as exc:
            logger.info("session %s: OpenDataChannel refused: %s", session_id, exc)
            await ws.close(CLOSE_AUTH_FAILED, f"Authentication failed: {exc}")
            return
        logger.info(
            "session %s: client connected (ClientVersion %r)",
            session_id,
            open_message.client_version,
        )
        await self._serve(ws, session)

    async def _serve(self, ws: ServerConnection, session: SessionRecord) -> None:
        sid = session.session_id
        old = self._links.pop(sid, None)
        agent = self._agents.get(sid)
        if old is not None:
            old.agent = None
            if agent is not None:
                agent.detach()
            old.disrupt(abrupt=False, injected=False)
        link = ClientLink(
            ws,
            session,
            self.faults,
            paused=lambda: sid in self.paused_sessions,
            spawn=self.spawn,
        )
        self._links[sid] = link
        self.state.set_status(sid, SessionStatus.CONNECTED)
        new = agent is None
        if agent is None:
            agent = Agent(
                session,
                config=self.config,
                target=self.state.targets.get(session.target_id),
                kms=self.state.kms.decrypt,
                on_end=self._agent_ended,
            )
            self._agents[sid] = agent
        link.agent = agent
        paused = sid in self.paused_sessions
        if self.faults.silent:
            transport_of(ws).pause_reading()
        kind = MessageType.PAUSE_PUBLICATION if paused else MessageType.START_PUBLICATION
        link.send_control(gateway_message(kind))
        agent.set_paused(paused)
        agent.attach(link.to_client)
        if new:
            agent.start()
        try:
            await link.run()
        finally:
            if self._links.get(sid) is link:
                del self._links[sid]
                if link.agent is not None:
                    link.agent.detach()
                self.state.set_status(sid, SessionStatus.DISCONNECTED)

    def _agent_ended(self, agent: Agent, reason: str) -> None:
        session = agent.session
        sid = session.session_id
        if self._agents.get(sid) is agent:
            del self._agents[sid]
        self.paused_sessions.discard(sid)
        self.state.end_session(sid, reason)
        link = self._links.pop(sid, None)
        if link is not None:
            link.finish(channel_closed_frame(session, reason))
        logger.info("session %s ended%s", sid, f": {reason}" if reason else "")
