"""smux protocol version 1 (xtaci/smux v1.5.16), Sans-I/O.

Session Manager's multiplexed port forwarding carries a raw smux byte stream
inside PayloadType 1 data messages (protocol notes §9.6). Frame boundaries do
not line up with message boundaries, so :class:`SmuxSession` takes arbitrary
chunks and reassembles frames itself.

Wire format: an 8-byte little-endian header ``version(1) cmd(1) length(2)
stream_id(4)`` followed by ``length`` bytes of data.

Semantics, as read from xtaci/smux v1.5.16 (``session.go`` ``recvLoop``,
``stream.go``) and where this module chooses differently:

* **Version / cmd.** A header whose version is not 1, or whose cmd is not one of
  SYN, FIN, PSH, NOP, is a protocol error: the session stops reading. Here that
  is a :class:`SmuxFailed` event and ``closed`` becomes true. (v1.5.16 also
  parses cmd 4, UPD, under version 1 by reading 8 more bytes; no v1 peer sends
  it, so it is an error here.)
* **Length.** The receiver never checks ``length`` against MaxFrameSize, which
  only limits what a sender produces; any uint16 length is accepted here too.
  SYN, FIN and NOP carry no data. v1.5.16 would not consume a body on them (and
  so lose framing); we skip the body so framing survives.
* **SYN** for an id that is not in the stream table opens a stream (whatever
  its parity). SYN for an id already in the table is ignored, as in v1.5.16.
  An id that was fully closed and forgotten may be opened again.
* **FIN** is a half-close: the peer will send no more data on that stream.
  v1.5.16 lets the receiver keep writing after a FIN (``Stream.Write`` in v1
  checks only the local close), and so do we. FIN for an unknown stream, or a
  second FIN, is ignored.
* **Local close** sends FIN. v1.5.16's ``Stream.Close`` also forgets the stream
  at once, dropping whatever the peer still sends; here the stream stays in the
  table as ``LOCAL_CLOSED`` and its data is still delivered until the peer's FIN.
  Once both halves are closed the stream is forgotten.
* **PSH** for an id not in the table (never opened, or fully closed), or after
  the peer's own FIN, is dropped and counted in ``dropped_frames`` and
  ``dropped_bytes``. (v1.5.16 would still buffer data that follows a FIN.)
* **NOP** is a keepalive. With keepalive enabled a NOP is sent every
  ``keepalive_interval`` and the session dies with ``SmuxFailed("keepalive
  timeout")`` once nothing has been received for ``keepalive_timeout``.
  (v1.5.16 checks on a 30 s ticker, so its real limit is 30-60 s.)
"""

from __future__ import annotations

import dataclasses
import enum
import struct
import types
from collections.abc import Mapping

from ..exceptions import LocalProtocolError, RemoteProtocolError

__all__ = [
    "HEADER_SIZE",
    "MAX_FRAME_SIZE",
    "SMUX_VERSION",
    "Cmd",
    "Frame",
    "SmuxEvent",
    "SmuxFailed",
    "SmuxSession",
    "StreamData",
    "StreamFinished",
    "StreamOpened",
    "StreamState",
]

SMUX_VERSION = 1
HEADER_SIZE = 8
MAX_FRAME_SIZE = 32768
_MAX_LENGTH = 0xFFFF
_MAX_STREAM_ID = 0xFFFFFFFF
_HEADER = struct.Struct("<BBHI")
_SLACK = 1e-6  # timers may fire a hair early; treat that as on time


class Cmd(enum.IntEnum):
    """Frame commands of smux version 1."""

    SYN = 0  # open a stream
    FIN = 1  # half-close: no more data from the sender on this stream
    PSH = 2  # data
    NOP = 3  # keepalive


_SYN, _FIN, _PSH, _NOP = 0, 1, 2, 3


@dataclasses.dataclass(frozen=True, slots=True)
class Frame:
    """One smux frame."""

    cmd: Cmd
    stream_id: int
    data: bytes = b""
    version: int = SMUX_VERSION

    def encode(self) -> bytes:
        """Serialize the frame; raises LocalProtocolError if a field is out of range."""
        if len(self.data) > _MAX_LENGTH:
            raise LocalProtocolError(f"smux frame data too long: {len(self.data)} bytes")
        if not 0 <= self.stream_id <= _MAX_STREAM_ID:
            raise LocalProtocolError(f"smux stream id out of range: {self.stream_id}")
        if not 0 <= self.version <= 0xFF:
            raise LocalProtocolError(f"smux version out of range: {self.version}")
        header = _HEADER.pack(self.version, int(self.cmd), len(self.data), self.stream_id)
        return header + bytes(self.data)

    @classmethod
    def parse(
        cls, data: bytes | bytearray | memoryview, offset: int = 0
    ) -> tuple[Frame | None, int]:
        """Parse the frame starting at ``offset``.

        Returns ``(frame, end_offset)``, or ``(None, offset)`` when the frame is
        not complete yet. Raises RemoteProtocolError on a bad version or cmd.
        """
        if len(data) - offset < HEADER_SIZE:
            return None, offset
        version, cmd, length, stream_id = _HEADER.unpack_from(data, offset)
        if version != SMUX_VERSION:
            raise RemoteProtocolError(f"unsupported smux version {version}")
        if cmd > _NOP:
            raise RemoteProtocolError(f"unknown smux cmd {cmd}")
        end = offset + HEADER_SIZE + length
        if end > len(data):
            return None, offset
        body = bytes(data[offset + HEADER_SIZE : end])
        return cls(Cmd(cmd), stream_id, body, version), end

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> Frame:
        """Decode exactly one frame; raises RemoteProtocolError otherwise."""
        frame, end = cls.parse(data)
        if frame is None:
            raise RemoteProtocolError(f"truncated smux frame ({len(data)} bytes)")
        if end != len(data):
            raise RemoteProtocolError(f"{len(data) - end} trailing bytes after smux frame")
        return frame


# ------------------------------------------------------------------ events


@dataclasses.dataclass(frozen=True, slots=True)
class StreamOpened:
    """The peer opened a stream (SYN)."""

    stream_id: int


@dataclasses.dataclass(frozen=True, slots=True)
class StreamData:
    """Data the peer sent on a stream (one PSH frame)."""

    stream_id: int
    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class StreamFinished:
    """The peer closed its half of a stream (FIN): no more data will come on it."""

    stream_id: int


@dataclasses.dataclass(frozen=True, slots=True)
class SmuxFailed:
    """An event, not an exception: the smux session (every stream of the tunnel) is dead,
    after a protocol error or a keepalive timeout; ``reason`` says why."""

    reason: str


SmuxEvent = StreamOpened | StreamData | StreamFinished | SmuxFailed


class StreamState(enum.Enum):
    """State of a stream in the table. Streams closed both ways are removed."""

    OPEN = "open"
    LOCAL_CLOSED = "local-closed"  # we sent FIN; the peer may still send
    REMOTE_CLOSED = "remote-closed"  # the peer sent FIN; we may still send


_OPEN = StreamState.OPEN
_LOCAL_CLOSED = StreamState.LOCAL_CLOSED
_REMOTE_CLOSED = StreamState.REMOTE_CLOSED


# ----------------------------------------------------------------- session


class SmuxSession:
    """One end of an smux v1 session.

    ``client`` selects the stream-id parity for :meth:`open_stream`: odd ids
    from 3 for the client, even ids from 2 for the server. With ``keepalive``
    the clock starts at ``now`` if given, else at the first call that passes a
    time (:meth:`receive_data` or :meth:`handle_timer`).
    """

    def __init__(
        self,
        client: bool,
        *,
        keepalive: bool = False,
        keepalive_interval: float = 10.0,
        keepalive_timeout: float = 30.0,
        max_frame_size: int = MAX_FRAME_SIZE,
        accept_streams: bool = True,
        now: float | None = None,
    ) -> None:
        if not 0 < max_frame_size <= _MAX_LENGTH:
            raise ValueError(f"max_frame_size must be in 1..{_MAX_LENGTH}, not {max_frame_size}")
        if keepalive and not 0 < keepalive_interval <= keepalive_timeout:
            raise ValueError("keepalive needs 0 < keepalive_interval <= keepalive_timeout")
        self.client = client
        self.keepalive = keepalive
        self.keepalive_interval = keepalive_interval
        self.keepalive_timeout = keepalive_timeout
        self.max_frame_size = max_frame_size
        #: False: a peer's SYN is ignored, remembered nowhere (``refused_streams`` counts
        #: them), and data on such a stream dropped: for an end whose peer never opens
        #: streams, so that a flood of SYNs costs nothing.
        self.accept_streams = accept_streams
        self.refused_streams = 0
        #: True once the session is dead (SmuxFailed emitted, or :meth:`close`).
        self.closed = False
        #: Why the session died, or None.
        self.error: str | None = None
        #: PSH frames (and their data bytes) dropped: unknown stream or after the peer's FIN.
        self.dropped_frames = 0
        self.dropped_bytes = 0
        self._next_id = 1 if client else 0
        self._streams: dict[int, StreamState] = {}
        self._buffer = bytearray()
        self._need = HEADER_SIZE  # bytes the buffer must hold before parsing can progress
        self._output: list[bytes | memoryview] = []
        self._events: list[SmuxEvent] = []
        self._last_received: float | None = None
        self._next_ping: float | None = None
        if now is not None:
            self._start_clock(now)

    # ------------------------------------------------------------- queries

    @property
    def streams(self) -> Mapping[int, StreamState]:
        """Read-only view of the stream table (streams not yet closed both ways)."""
        return types.MappingProxyType(self._streams)

    def data_to_send(self) -> bytes:
        """All pending outgoing bytes, frames concatenated; clears the queue."""
        output = self._output
        if not output:
            return b""
        self._output = []
        return b"".join(output)

    def events_received(self) -> list[SmuxEvent]:
        """Events produced since the last call."""
        events = self._events
        self._events = []
        return events

    # ------------------------------------------------------- local actions

    def open_stream(self) -> int:
        """Open a stream (sends SYN) and return its id."""
        self._check_alive()
        stream_id = self._next_id + 2
        while stream_id in self._streams:  # the peer used one of our ids
            stream_id += 2
        if stream_id > _MAX_STREAM_ID:
            raise LocalProtocolError("smux stream ids exhausted; open a new session")
        self._next_id = stream_id
        self._streams[stream_id] = _OPEN
        self._output.append(_HEADER.pack(SMUX_VERSION, _SYN, 0, stream_id))
        return stream_id

    def send(self, stream_id: int, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` on a stream as PSH frames of at most ``max_frame_size`` bytes."""
        self._check_alive()
        state = self._streams.get(stream_id)
        if state is not _OPEN and state is not _REMOTE_CLOSED:
            raise LocalProtocolError(f"smux stream {stream_id} is not open for sending")
        if not isinstance(data, bytes):
            data = bytes(data)  # the caller may reuse its buffer before data_to_send()
        size = len(data)
        if not size:
            return
        out = self._output
        pack = _HEADER.pack
        step = self.max_frame_size
        if size <= step:
            out.append(pack(SMUX_VERSION, _PSH, size, stream_id))
            out.append(data)
            return
        view = memoryview(data)
        for start in range(0, size, step):
            chunk = view[start : start + step]
            out.append(pack(SMUX_VERSION, _PSH, len(chunk), stream_id))
            out.append(chunk)

    def close_stream(self, stream_id: int) -> None:
        """Close our half of a stream (sends FIN). Idempotent; unknown ids are ignored."""
        if self.closed:
            return
        state = self._streams.get(stream_id)
        if state is _OPEN:
            self._streams[stream_id] = _LOCAL_CLOSED
        elif state is _REMOTE_CLOSED:
            del self._streams[stream_id]
        else:
            return
        self._output.append(_HEADER.pack(SMUX_VERSION, _FIN, 0, stream_id))

    def close(self) -> None:
        """Stop the session locally (no event, nothing sent; smux has no goodbye frame)."""
        self.closed = True
        self._buffer = bytearray()

    def _check_alive(self) -> None:
        if self.closed:
            raise LocalProtocolError(f"smux session is closed ({self.error or 'closed locally'})")

    # -------------------------------------------------------------- timers

    def _start_clock(self, now: float) -> None:
        self._last_received = now
        self._next_ping = now + self.keepalive_interval

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next run, or None (keepalive off or session dead)."""
        if not self.keepalive or self.closed or self._next_ping is None:
            return None
        assert self._last_received is not None
        return min(self._next_ping, self._last_received + self.keepalive_timeout)

    def handle_timer(self, now: float) -> None:
        """Send a NOP when one is due; kill the session when the peer has gone quiet."""
        if not self.keepalive or self.closed:
            return
        if self._next_ping is None or self._last_received is None:
            self._start_clock(now)
            return
        if now + _SLACK >= self._last_received + self.keepalive_timeout:
            self._fail("keepalive timeout")
            return
        if now + _SLACK >= self._next_ping:
            self._output.append(_HEADER.pack(SMUX_VERSION, _NOP, 0, 0))
            self._next_ping += self.keepalive_interval
            if self._next_ping <= now:  # we were late by more than an interval
                self._next_ping = now + self.keepalive_interval

    # ----------------------------------------------------------- receiving

    def receive_data(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """Feed received bytes (any chunking). Never raises on bad input."""
        if self.closed:
            return
        if self.keepalive:
            if self._next_ping is None:
                self._start_clock(now)
            elif data:
                self._last_received = now
        if not data:
            return
        buffer = self._buffer
        if buffer:
            buffer += data
            if len(buffer) < self._need:
                return
            with memoryview(buffer) as view:
                consumed = self._parse(view)
            if consumed < 0:
                return
            del buffer[:consumed]
        else:
            with memoryview(data) as view:
                consumed = self._parse(view)
                if consumed < 0:
                    return
                if consumed < len(view):
                    buffer += view[consumed:]

    def _parse(self, view: memoryview) -> int:
        """Handle every complete frame in ``view``; return the bytes consumed, -1 on error."""
        size = len(view)
        pos = 0
        unpack = _HEADER.unpack_from
        streams = self._streams
        events = self._events
        while size - pos >= HEADER_SIZE:
            version, cmd, length, stream_id = unpack(view, pos)
            if version != SMUX_VERSION:
                self._fail(f"protocol error: unsupported smux version {version}")
                return -1
            start = pos + HEADER_SIZE
            end = start + length
            if cmd == _PSH:
                if end > size:
                    self._need = end - pos
                    return pos
                if length:
                    state = streams.get(stream_id)
                    if state is _OPEN or state is _LOCAL_CLOSED:
                        events.append(StreamData(stream_id, view[start:end].tobytes()))
                    else:
                        self.dropped_frames += 1
                        self.dropped_bytes += length
            elif cmd > _NOP:
                self._fail(f"protocol error: unknown smux cmd {cmd}")
                return -1
            else:
                if end > size:
                    self._need = end - pos
                    return pos
                if cmd == _SYN:
                    if stream_id in streams:
                        pass
                    elif self.accept_streams:
                        streams[stream_id] = _OPEN
                        events.append(StreamOpened(stream_id))
                    else:
                        self.refused_streams += 1
                elif cmd == _FIN:
                    state = streams.get(stream_id)
                    if state is _OPEN:
                        streams[stream_id] = _REMOTE_CLOSED
                        events.append(StreamFinished(stream_id))
                    elif state is _LOCAL_CLOSED:
                        del streams[stream_id]
                        events.append(StreamFinished(stream_id))
                # NOP: nothing to do beyond having received bytes
            pos = end
        self._need = HEADER_SIZE
        return pos

    def _fail(self, reason: str) -> None:
        self.closed = True
        self.error = reason
        self._buffer = bytearray()
        self._events.append(SmuxFailed(reason))
