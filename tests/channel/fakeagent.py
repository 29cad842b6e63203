"""A small gateway + agent on loopback for testing the channel driver.

Real WebSockets on 127.0.0.1, the real protocol (DataChannel(Role.AGENT) and
the real payload codecs); only the agent's *behaviour* is scripted: it
optionally handshakes (with KMS), sends a prompt, and echoes input back.
It also implements the driver's SessionService seam (ResumeSession issues a
new token, TerminateSession closes the channel) and can inject faults: drop
the link, or go silent (stop reading, so pings go unanswered).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import time
import uuid
from collections.abc import Mapping

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from ssmsh.channel import DataKey, SessionInfo, StreamCredentials
from ssmsh.exceptions import AwsError
from ssmsh.protocol.constants import MessageType, PayloadType
from ssmsh.protocol.crypto import Encrypter, verify_challenge
from ssmsh.protocol.datachannel import ChannelConfig, DataChannel, Role
from ssmsh.protocol.events import PayloadReceived
from ssmsh.protocol.message import ClientMessage
from ssmsh.protocol.payloads import (
    ChannelClosedPayload,
    EncChallenge,
    HandshakeComplete,
    HandshakeRequest,
    HandshakeResponse,
    OpenDataChannel,
    TerminalSize,
    decode_flag,
)

DATA_KEY = bytes(range(64))


@dataclasses.dataclass
class AgentSession:
    session_id: str
    target_id: str
    channel: DataChannel
    token: str
    handshake: bool
    kms_key: str | None
    prompt: bytes
    established: bool = False
    encrypter: Encrypter | None = None
    challenge: bytes = b""
    received: bytearray = dataclasses.field(default_factory=bytearray)
    sizes: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    flags: list[int] = dataclasses.field(default_factory=list)
    client_ids: list[str] = dataclasses.field(default_factory=list)
    request_ids: list[str] = dataclasses.field(default_factory=list)
    terminated: bool = False
    ws: ServerConnection | None = None
    wake: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    echo: bool = True


class FakeAgent:
    """Gateway and agent in one, plus the SessionService seam."""

    def __init__(
        self,
        handshake: bool = True,
        kms_key: str | None = None,
        prompt: bytes = b"$ ",
        data_key: bytes = DATA_KEY,
        echo: bool = True,
    ) -> None:
        self.handshake = handshake
        self.kms_key = kms_key
        self.prompt = prompt
        self.data_key = data_key
        #: Key ids GenerateDataKey knows.
        self.known_keys = {kms_key}
        #: The key the agent believes in (None: the same as ``data_key``).
        self.agent_key: bytes | None = None
        self.echo = echo
        self.sessions: dict[str, AgentSession] = {}
        self.links: list[ServerConnection] = []
        self.server: Server | None = None
        self.port = 0
        self.resume_calls = 0
        self.terminate_calls: list[str] = []
        self.resume_refused = False
        self.connections = 0
        self.headers_seen: list[Mapping[str, str]] = []
        #: Drop every link this many seconds after it opens (None: never).
        self.drop_every: float | None = None
        #: Send this as the HandshakeRequest payload instead of a well-formed one.
        self.handshake_payload: bytes | None = None
        #: Refuse new links this long after OpenDataChannel (a pong is answered first).
        self.refuse_after: float | None = None
        #: SessionType the HandshakeRequest asks for.
        self.session_type = "Standard_Stream"
        #: Answer pings, but never begin (no HandshakeRequest, no output).
        self.mute = False

    async def __aenter__(self) -> FakeAgent:
        self.server = await serve(self._handle, "127.0.0.1", 0, compression=None, max_size=None)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        for ws in self.links:
            ws.transport.abort()  # silenced links would wait for a close handshake
        self.server.close()
        await self.server.wait_closed()

    # ------------------------------------------------------------ sessions

    def url(self, session_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/data-channel/{session_id}?role=publish_subscribe"

    def start_session(self, target: str = "i-0123456789abcdef0") -> SessionInfo:
        session_id = f"test-{uuid.uuid4().hex[:17]}"
        token = secrets.token_hex(16)
        channel = DataChannel(
            Role.AGENT, ChannelConfig(epoch_offset=time.time() - time.monotonic())
        )
        self.sessions[session_id] = AgentSession(
            session_id,
            target,
            channel,
            token,
            self.handshake,
            self.kms_key,
            self.prompt,
            echo=self.echo,
        )
        return SessionInfo(session_id, target, StreamCredentials(self.url(session_id), token))

    # ------------------------------------------------------------ SessionService

    async def resume_session(self, session_id: str) -> StreamCredentials | None:
        self.resume_calls += 1
        if self.resume_refused:
            raise AwsError(
                "ResumeSession failed: DoesNotExistException: gone", "DoesNotExistException"
            )
        session = self.sessions.get(session_id)
        if session is None or session.terminated:
            return None
        session.token = secrets.token_hex(16)
        return StreamCredentials(self.url(session_id), session.token)

    async def terminate_session(self, session_id: str) -> None:
        self.terminate_calls.append(session_id)
        session = self.sessions.get(session_id)
        if session is not None and not session.terminated:
            await self.close_channel(session, "")

    async def generate_data_key(self, key_id: str, session_id: str, target_id: str) -> DataKey:
        if key_id not in self.known_keys:
            raise AwsError(
                f"KMS GenerateDataKey failed: NotFoundException: {key_id}", "NotFoundException"
            )
        return DataKey(self.data_key, b"blob:" + session_id.encode())

    async def sign_stream_url(self, url: str) -> Mapping[str, str]:
        return {"X-Test-Signed": "yes"}

    # ------------------------------------------------------------ faults

    async def drop(self, session: AgentSession, code: int = 1000, reason: str = "Bye") -> None:
        """Close the current link the way the gateway does every hour."""
        if session.ws is not None:
            await session.ws.close(code, reason)

    def go_silent(self, session: AgentSession) -> None:
        """Stop reading the socket: pings go unanswered, nothing is sent."""
        if session.ws is not None:
            session.ws.transport.pause_reading()

    async def close_channel(self, session: AgentSession, output: str) -> None:
        session.terminated = True
        payload = ChannelClosedPayload(
            str(uuid.uuid4()), "2026-01-01T00:00:00.000Z", "client", session.session_id, output
        )
        session.channel.send_raw(
            ClientMessage(
                MessageType.CHANNEL_CLOSED,
                1,
                int(time.time() * 1000),
                0,
                0,
                uuid.uuid4(),
                0,
                payload.encode(),
            )
        )
        await self._flush(session)
        if session.ws is not None:
            with contextlib.suppress(Exception):
                await session.ws.close()

    def send_output(
        self, session: AgentSession, data: bytes, ptype: int = PayloadType.OUTPUT
    ) -> None:
        session.channel.send_data(ptype, data, time.monotonic())
        session.wake.set()

    # ------------------------------------------------------------ the link

    async def _flush(self, session: AgentSession) -> None:
        ws = session.ws
        for frame in session.channel.data_to_send():
            if ws is not None:
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(frame)

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        self.links.append(ws)
        self.headers_seen.append(ws.request.headers if ws.request else {})
        hello = OpenDataChannel.decode(await ws.recv())
        if self.refuse_after is not None:
            await asyncio.sleep(self.refuse_after)  # long enough to answer the first ping
            await ws.close(1008, "refused")
            return
        session_id = ws.request.path.split("?")[0].rsplit("/", 1)[-1] if ws.request else ""
        session = self.sessions.get(session_id)
        if session is None or session.terminated or hello.token_value != session.token:
            await ws.close(1008, "invalid token")
            return
        session.client_ids.append(hello.client_id)
        session.request_ids.append(hello.request_id)
        first = session.ws is None and len(session.request_ids) == 1
        session.ws = ws
        session.channel.connection_made(time.monotonic())
        if first and not self.mute:
            self._begin(session)
        dropper = None
        if self.drop_every is not None:
            dropper = asyncio.create_task(self._drop_later(session, ws, self.drop_every))
        timer = asyncio.create_task(self._timer(session, ws))
        try:
            await self._flush(session)
            async for message in ws:
                data = message.encode() if isinstance(message, str) else message
                session.channel.receive_data(data, time.monotonic())
                self._process(session)
                await self._flush(session)
        except ConnectionClosed:
            pass
        finally:
            timer.cancel()
            if dropper:
                dropper.cancel()
            if session.ws is ws:
                session.ws = None
                session.channel.connection_lost()

    async def _drop_later(self, session: AgentSession, ws: ServerConnection, delay: float) -> None:
        await asyncio.sleep(delay)
        await ws.close(1000, "Bye")

    async def _timer(self, session: AgentSession, ws: ServerConnection) -> None:
        while True:
            when = session.channel.get_timer()
            delay = 0.05 if when is None else max(0.0, min(0.05, when - time.monotonic()))
            session.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await session.wake.wait()
            session.channel.handle_timer(time.monotonic())
            self._process(session)
            await self._flush(session)

    def _begin(self, session: AgentSession) -> None:
        now = time.monotonic()
        if session.handshake:
            request = HandshakeRequest.for_session(
                "3.3.1142.0", self.session_type, {}, session.kms_key
            )
            payload = self.handshake_payload or request.encode()
            session.channel.send_data(PayloadType.HANDSHAKE_REQUEST, payload, now)
        else:
            session.established = True
            session.channel.send_data(PayloadType.OUTPUT, session.prompt, now)

    def _process(self, session: AgentSession) -> None:
        now = time.monotonic()
        for event in session.channel.events_received():
            if not isinstance(event, PayloadReceived):
                continue
            ptype, data = event.payload_type, event.payload
            if ptype == PayloadType.HANDSHAKE_RESPONSE:
                response = HandshakeResponse.decode(data)
                kms = [a for a in response.processed_actions if a.action_type == "KMSEncryption"]
                if kms and kms[0].succeeded:
                    session.encrypter = Encrypter.for_agent(self.agent_key or self.data_key)
                    session.challenge = secrets.token_bytes(32)
                    challenge = EncChallenge(session.encrypter.encrypt(session.challenge))
                    session.channel.send_data(
                        PayloadType.ENC_CHALLENGE_REQUEST, challenge.encode(), now
                    )
                elif response.errors:
                    continue  # the client reported a failure; it will give up
                else:
                    self._complete(session, now)
            elif ptype == PayloadType.ENC_CHALLENGE_RESPONSE:
                assert session.encrypter is not None
                answer = EncChallenge.decode(data).challenge
                if verify_challenge(session.encrypter, session.challenge, answer):
                    session.channel.cipher = session.encrypter
                    self._complete(session, now)
            elif ptype == PayloadType.OUTPUT:
                session.received += data
                if session.echo:
                    session.channel.send_data(PayloadType.OUTPUT, data, now)
            elif ptype == PayloadType.SIZE:
                size = TerminalSize.decode(data)
                session.sizes.append((size.cols, size.rows))
            elif ptype == PayloadType.FLAG:
                session.flags.append(decode_flag(data))

    def _complete(self, session: AgentSession, now: float) -> None:
        session.established = True
        complete = HandshakeComplete(1000, "hello from the fake agent")
        session.channel.send_data(PayloadType.HANDSHAKE_COMPLETE, complete.encode(), now)
        session.channel.send_data(PayloadType.OUTPUT, session.prompt, now)
