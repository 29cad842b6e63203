"""Multiplexed port sessions: an smux v1 server over the data channel.

The client's Output payloads are a raw smux byte stream (frames do not line up
with messages). Each stream the client opens becomes a new TCP connection to the
destination; when that connection cannot be made the agent sends the
ConnectToPortError flag (3) and closes the stream, as the official agent does.

The end of a direction is handled in one of two ways (``half_close``, from
:attr:`EmulatorConfig.agent_fin <ssmsh.emulator.config.EmulatorConfig.agent_fin>`):

* half-close (the default): the client's FIN half-closes the TCP connection
  (``write_eof``) and the destination's end of data sends FIN on the stream; the
  connection is closed once both directions are done, as TCP would have it.
* close, what amazon-ssm-agent does (its mux port session copies each direction
  until it ends and then closes the *other* end: the destination connection or the
  stream): the client's FIN, once the data before it is written, closes the whole
  destination connection; whatever the destination had not sent by then is lost,
  and the stream gets its FIN when the destination side is closed. The
  destination's end of data sends FIN and closes the connection too; client data
  that arrives afterwards is dropped.

The destination is read up to :data:`DESTINATION_READ` bytes at a time, each read one
smux frame (the official agent copies it into its smux stream with a 32 KiB buffer:
``protocol/traces/port-mux-download-96k.jsonl`` shows PSH frames of 32768 bytes). The
agent's smux output is then sent in messages of at most ``pacing.port_chunk`` bytes
(1024 when paced, as the official agent's), cut with no regard to frame boundaries.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from ...protocol.constants import Flag, PayloadType
from ...protocol.payloads import encode_flag
from ...protocol.smux import SmuxFailed, SmuxSession, StreamData, StreamFinished, StreamOpened
from .plugin import Plugin, PluginHost
from .port_common import describe, handle_flag

#: Largest read from a destination connection: one smux frame's worth.
DESTINATION_READ = 32 * 1024

__all__ = ["MuxPortPlugin"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(eq=False, slots=True)
class _Stream:
    stream_id: int
    writer: asyncio.StreamWriter | None = None
    pending: list[bytes] = dataclasses.field(default_factory=list)
    remote_done: bool = False  # the client sent FIN
    local_done: bool = False  # the destination finished sending (we sent FIN)
    failed: bool = False


class MuxPortPlugin(Plugin):
    """smux server; one TCP connection per stream."""

    requires_handshake = True

    def __init__(
        self,
        host: PluginHost,
        address: tuple[str, int],
        *,
        keepalive: bool,
        half_close: bool = True,
    ) -> None:
        super().__init__(host)
        self.address = address
        #: False: the first end of data, either way, closes the connection (real agent).
        self.half_close = half_close
        self.smux = SmuxSession(client=False, keepalive=keepalive, now=host.now())
        self._streams: dict[int, _Stream] = {}
        self._out = bytearray()
        self._out_ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        #: Streams the client opened, and how many could not be connected.
        self.opened = 0
        self.refused = 0

    @property
    def keepalive(self) -> bool:
        return self.smux.keepalive

    async def start(self) -> None:
        session_id = self.host.session.session_id
        self.spawn(self._sender(), f"smux sender {session_id}")
        if self.smux.keepalive:
            self.spawn(self._keepalive(), f"smux keepalive {session_id}")
        self._collect()

    # ------------------------------------------------------------ client side

    def receive(self, payload_type: int, payload: bytes) -> None:
        if payload_type == PayloadType.OUTPUT:
            self.smux.receive_data(payload, self.host.now())
            self._process()
        elif payload_type == PayloadType.FLAG:
            handle_flag(self.host, payload)

    def _process(self) -> None:
        for event in self.smux.events_received():
            if isinstance(event, StreamOpened):
                stream = _Stream(event.stream_id)
                self._streams[event.stream_id] = stream
                self.opened += 1
                self.spawn(self._serve(stream), f"smux stream {event.stream_id}")
            elif isinstance(event, StreamData):
                stream_or_none = self._streams.get(event.stream_id)
                if stream_or_none is not None:
                    self._deliver(stream_or_none, event.data)
            elif isinstance(event, StreamFinished):
                stream_or_none = self._streams.get(event.stream_id)
                if stream_or_none is not None:
                    stream_or_none.remote_done = True
                    self._end_input(stream_or_none)
            elif isinstance(event, SmuxFailed):
                logger.info("smux session ended: %s", event.reason)
                self.host.finish(f"smux session ended: {event.reason}")
        self._collect()

    def _deliver(self, stream: _Stream, data: bytes) -> None:
        writer = stream.writer
        if writer is None:
            if not stream.failed:
                stream.pending.append(data)
        elif not writer.is_closing():
            writer.write(data)

    def _end_input(self, stream: _Stream) -> None:
        """The client sent FIN: half-close the connection, or close it (real agent)."""
        writer = stream.writer
        if writer is None or writer.is_closing():
            return
        if self.half_close and not stream.local_done and writer.can_write_eof():
            writer.write_eof()
        else:
            # close() still writes what is buffered first; reading stops, and the
            # read loop below sends FIN once it sees the end.
            self._close(stream)

    def _close(self, stream: _Stream) -> None:
        if stream.writer is not None and not stream.writer.is_closing():
            stream.writer.close()
        if stream.local_done and (stream.remote_done or not self.half_close):
            # Without half-close the stream is over once we sent FIN: later data and
            # the client's FIN find no stream and are dropped, as in the real agent.
            self._streams.pop(stream.stream_id, None)

    # ------------------------------------------------------- destination side

    async def _serve(self, stream: _Stream) -> None:
        try:
            reader, writer = await asyncio.open_connection(*self.address)
        except OSError as exc:
            logger.info(
                "stream %d: cannot connect to %s:%d: %s",
                stream.stream_id,
                *self.address,
                describe(exc),
            )
            self.refused += 1
            stream.failed = True
            stream.local_done = True
            stream.pending.clear()
            self.host.send(PayloadType.FLAG, encode_flag(Flag.CONNECT_TO_PORT_ERROR))
            if not self.smux.closed:
                self.smux.close_stream(stream.stream_id)
            self._close(stream)
            self._collect()
            return
        stream.writer = writer
        for data in stream.pending:
            writer.write(data)
        stream.pending.clear()
        if stream.remote_done:
            self._end_input(stream)
        try:
            while not self.smux.closed:
                await self._wait_room()
                data = await reader.read(DESTINATION_READ)
                if not data or self.smux.closed:
                    break
                self.smux.send(stream.stream_id, data)
                self._collect()
        except OSError as exc:
            logger.debug("stream %d: read failed: %s", stream.stream_id, exc)
        stream.local_done = True
        if not self.smux.closed:
            self.smux.close_stream(stream.stream_id)
            self._collect()
        if stream.remote_done or writer.is_closing() or not self.half_close:
            self._close(stream)

    # ------------------------------------------------------------ smux output

    def _collect(self) -> None:
        data = self.smux.data_to_send()
        if data:
            self._out += data
            self._out_ready.set()
            if len(self._out) > 4 * self.host.pacing.port_chunk:
                self._room.clear()

    async def _wait_room(self) -> None:
        await self.host.wait_writable()
        await self._room.wait()

    async def _sender(self) -> None:
        host = self.host
        chunk = host.pacing.port_chunk
        while True:
            await self._out_ready.wait()
            self._out_ready.clear()
            while self._out:
                await host.wait_writable()
                piece = bytes(self._out[:chunk])
                del self._out[:chunk]
                host.send(PayloadType.OUTPUT, piece)
                if len(self._out) <= 4 * chunk:
                    self._room.set()
                await host.pacing.pause()

    async def _keepalive(self) -> None:
        smux = self.smux
        while True:
            when = smux.get_timer()
            if when is None:
                return
            await asyncio.sleep(max(0.0, when - self.host.now()))
            smux.handle_timer(self.host.now())
            self._process()

    async def stop(self) -> None:
        await super().stop()
        for stream in list(self._streams.values()):
            if stream.writer is not None and not stream.writer.is_closing():
                stream.writer.close()
        self._streams.clear()
        self.smux.close()
