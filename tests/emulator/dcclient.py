"""Test helpers for the gateway and agent: a minimal data-channel client, a gateway, sessions.

:class:`DCClient` is the client side built only from the protocol core:
``DataChannel(Role.CLIENT)`` over a real ``websockets`` connection to the gateway.
It answers the handshake (with a real KMS data key when asked), records every frame
it receives, and collects output, so tests can check both behaviour and wire shapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from ssmsh.emulator.config import EmulatorConfig
from ssmsh.emulator.errors import ServiceError
from ssmsh.emulator.faults import FaultConfig
from ssmsh.emulator.gateway import Gateway
from ssmsh.emulator.kms import KmsService
from ssmsh.emulator.state import DEFAULT_TARGET, EmulatorState, SessionRecord
from ssmsh.exceptions import InvalidMessage
from ssmsh.protocol.constants import CLIENT_VERSION, PayloadType
from ssmsh.protocol.crypto import Encrypter
from ssmsh.protocol.datachannel import ChannelConfig, DataChannel, Role
from ssmsh.protocol.events import (
    ChannelClosedReceived,
    MessageDropped,
    PayloadReceived,
)
from ssmsh.protocol.handshake import (
    DataKey,
    answer_encryption_challenge,
    parse_handshake_complete,
    parse_handshake_request,
    process_handshake_request,
    requested_kms_key_id,
)
from ssmsh.protocol.message import ClientMessage
from ssmsh.protocol.payloads import (
    ChannelClosedPayload,
    HandshakeComplete,
    HandshakeRequest,
    OpenDataChannel,
    decode_exit_code,
)
from tests.conftest import scaled

__all__ = ["DCClient", "gateway_for", "make_session"]


def make_session(
    state: EmulatorState,
    session_type: str = "Standard_Stream",
    *,
    properties: dict[str, Any] | None = None,
    command: str | None = None,
    kms_key_id: str | None = None,
    gateway: Gateway | None = None,
) -> SessionRecord:
    """A session record with a fresh token, straight into the state."""
    session = SessionRecord(
        session_id=state.new_session_id("test"),
        target_id=DEFAULT_TARGET,
        document_name="test",
        session_type=session_type,
        properties=properties or {},
        parameters={},
        command=command,
        kms_key_id=kms_key_id,
    )
    if kms_key_id:
        state.kms.add_key(kms_key_id)
    state.sessions[session.session_id] = session
    state.issue_token(session)
    if gateway is not None:
        session.stream_url = f"{gateway.url}/v1/data-channel/{session.session_id}"
    return session


@contextlib.asynccontextmanager
async def gateway_for(
    config: EmulatorConfig | None = None, faults: FaultConfig | None = None
) -> AsyncIterator[Gateway]:
    """A started gateway on 127.0.0.1 with its own state."""
    config = config or EmulatorConfig(shell="/bin/sh")
    if faults is not None:
        config.faults = faults
    state = EmulatorState()
    gateway = Gateway(state, config)
    await gateway.start("127.0.0.1")
    try:
        yield gateway
    finally:
        await gateway.close()


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    async with gateway_for() as gw:
        yield gw


class DCClient:
    """A small but real data-channel client."""

    def __init__(
        self,
        session: SessionRecord,
        *,
        client_version: str = CLIENT_VERSION,
        kms: KmsService | None = None,
        answer_challenge: Callable[[bytes], bytes] | None = None,
        kms_context: dict[str, str] | None = None,
        auto_handshake: bool = True,
    ) -> None:
        self.session = session
        self.client_version = client_version
        self.client_id = str(uuid.uuid4())
        self.kms = kms
        self._answer_challenge = answer_challenge
        self.kms_context = kms_context
        self.auto_handshake = auto_handshake
        self.loop = asyncio.get_running_loop()
        self.channel = DataChannel(
            Role.CLIENT, ChannelConfig(epoch_offset=time.time() - self.loop.time())
        )
        self.ws: ClientConnection | None = None
        #: Every frame received from the gateway, decoded (None for undecodable ones).
        self.received: list[ClientMessage | None] = []
        self.payloads: list[PayloadReceived] = []
        self.output = bytearray()
        self.stderr = bytearray()
        self.exit_codes: list[int] = []
        self.handshake_requests: list[HandshakeRequest] = []
        self.handshake_complete: HandshakeComplete | None = None
        self.channel_closed: ChannelClosedPayload | None = None
        self.encrypter: Encrypter | None = None
        self.dropped: list[str] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._changed = asyncio.Event()
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------ connection

    async def connect(
        self,
        token: str | None = None,
        url: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Open (or re-open) the WebSocket and send OpenDataChannel."""
        url = url or self.session.stream_url
        self.ws = await connect(
            url,
            ping_interval=None,
            max_size=None,
            compression=None,
            additional_headers=headers,
        )
        opening = OpenDataChannel(
            request_id=str(uuid.uuid4()),
            token_value=token if token is not None else (self.session.token or ""),
            client_id=self.client_id,
            client_version=self.client_version,
        )
        await self.ws.send(opening.encode())
        if self.received or self.channel.next_sequence_number:
            self.channel.connection_made(self.loop.time())
        self._tasks = [
            asyncio.create_task(self._reader(self.ws)),
            asyncio.create_task(self._writer(self.ws)),
        ]
        self._pump()

    async def _reader(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                data = message.encode() if isinstance(message, str) else message
                try:
                    self.received.append(ClientMessage.decode(data))
                except InvalidMessage:
                    self.received.append(None)
                self.channel.receive_data(data, self.loop.time())
                self._pump()
        except Exception:
            pass
        finally:
            self.close_code = ws.close_code
            self.close_reason = ws.close_reason
            self.channel.connection_lost()
            self._notify()

    async def _writer(self, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            while True:
                frame = await self._outbox.get()
                await ws.send(frame)

    async def disconnect(self, abrupt: bool = False) -> None:
        """Drop the connection (close it, or reset the TCP connection)."""
        ws = self.ws
        if ws is None:
            return
        if abrupt:
            ws.transport.abort()
        else:
            await ws.close()
        reader, writer = self._tasks
        writer.cancel()
        await asyncio.gather(reader, writer, return_exceptions=True)
        self._outbox = asyncio.Queue()
        self.ws = None

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        await self.disconnect()

    # --------------------------------------------------------------- sending

    def send(self, payload_type: int, payload: bytes) -> None:
        self.channel.send_data(payload_type, payload, self.loop.time())
        self._pump()

    def send_raw(self, frame: bytes) -> None:
        """Put arbitrary bytes on the wire as one binary frame."""
        self._outbox.put_nowait(frame)

    def _pump(self) -> None:
        while True:
            frames = self.channel.data_to_send()
            events = self.channel.events_received()
            if not frames and not events:
                break
            if self.channel.connected:
                for frame in frames:
                    self._outbox.put_nowait(frame)
            for event in events:
                self._handle(event)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        when = self.channel.get_timer()
        if when is not None:
            self._timer = self.loop.call_at(when, self._on_timer)
        self._notify()

    def _on_timer(self) -> None:
        self._timer = None
        self.channel.handle_timer(self.loop.time())
        self._pump()

    def _notify(self) -> None:
        self._changed.set()

    def _handle(self, event: Any) -> None:
        if isinstance(event, ChannelClosedReceived):
            self.channel_closed = event.payload
        elif isinstance(event, MessageDropped):
            self.dropped.append(event.reason)
        elif isinstance(event, PayloadReceived):
            self.payloads.append(event)
            ptype = event.payload_type
            if ptype == PayloadType.HANDSHAKE_REQUEST:
                request = parse_handshake_request(event.payload)
                self.handshake_requests.append(request)
                if self.auto_handshake:
                    self._answer_handshake(request)
            elif ptype == PayloadType.ENC_CHALLENGE_REQUEST:
                answer = self._answer_challenge or self._default_challenge_answer
                self.channel.send_data(
                    PayloadType.ENC_CHALLENGE_RESPONSE, answer(event.payload), self.loop.time()
                )
            elif ptype == PayloadType.HANDSHAKE_COMPLETE:
                self.handshake_complete = parse_handshake_complete(event.payload)
            elif ptype == PayloadType.STDERR:
                self.stderr += event.payload
            elif ptype == PayloadType.EXIT_CODE:
                self.exit_codes.append(decode_exit_code(event.payload))
            else:
                self.output += event.payload

    def _answer_handshake(self, request: HandshakeRequest) -> None:
        data_key: DataKey | str | None = None
        key_id = requested_kms_key_id(request)
        if key_id is not None:
            assert self.kms is not None, "the session asks for KMS; give the client a KmsService"
            context = self.kms_context or {
                "aws:ssm:SessionId": self.session.session_id,
                "aws:ssm:TargetId": self.session.target_id,
            }
            try:
                generated = self.kms.generate_data_key(key_id, 64, context=context)
            except ServiceError as exc:
                data_key = exc.message
            else:
                data_key = DataKey(generated.plaintext, generated.ciphertext_blob)
        result = process_handshake_request(request, data_key, self.client_version)
        self.channel.send_data(
            PayloadType.HANDSHAKE_RESPONSE, result.response.encode(), self.loop.time()
        )
        if result.encrypter is not None:
            self.encrypter = result.encrypter
            self.channel.cipher = result.encrypter

    def _default_challenge_answer(self, payload: bytes) -> bytes:
        assert self.encrypter is not None
        return answer_encryption_challenge(self.encrypter, payload)

    # --------------------------------------------------------------- waiting

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` is true (checked after every event)."""
        try:
            async with asyncio.timeout(scaled(timeout)):
                while not predicate():
                    self._changed.clear()
                    # Also poll: the predicate may look at things other than this client.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.02):
                            await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"timed out; output tail {bytes(self.output[-300:])!r}, "
                f"{len(self.received)} frames received, connected={self.channel.connected}, "
                f"unacked={self.channel.unacked}, closed={self.channel_closed}"
            ) from None

    async def wait_output(self, text: bytes, timeout: float = 5.0) -> None:
        await self.wait_for(lambda: text in self.output, timeout)

    async def wait_closed(self, timeout: float = 5.0) -> ChannelClosedPayload:
        await self.wait_for(lambda: self.channel_closed is not None, timeout)
        assert self.channel_closed is not None
        return self.channel_closed

    async def wait_ready(self, timeout: float = 5.0) -> None:
        """Until the handshake is complete (port and command sessions)."""
        await self.wait_for(lambda: self.handshake_complete is not None, timeout)

    async def wait_disconnected(self, timeout: float = 5.0) -> None:
        await self.wait_for(lambda: not self.channel.connected, timeout)

    def agent_data_frames(self) -> list[ClientMessage]:
        return [
            m for m in self.received if m is not None and m.message_type == "output_stream_data"
        ]
