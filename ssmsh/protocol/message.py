"""The binary ``ClientMessage``: one per WebSocket frame.

Layout (big-endian, 120-byte header, then the payload)::

    0   4  HeaderLength     always 116 (offset of the PayloadLength field)
    4  32  MessageType      ASCII, right-padded with spaces
   36   4  SchemaVersion
   40   8  CreatedDate      ms since the epoch
   48   8  SequenceNumber   signed
   56   8  Flags
   64  16  MessageId        UUID with its two 8-byte halves swapped
   80  32  PayloadDigest    SHA-256 of the payload
  112   4  PayloadType
  116   4  PayloadLength
  120   n  Payload
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import struct
import uuid
from collections.abc import Callable
from hashlib import sha256

from ..exceptions import InvalidMessage, LocalProtocolError
from .constants import MessageType

__all__ = [
    "HEADER_LENGTH",
    "HEADER_SIZE",
    "ClientMessage",
    "MessageIdSource",
    "format_wire_id",
    "new_wire_id",
    "pack_frame",
    "parse_frame",
    "type_field",
]

#: The header, with the message id as one 16-byte field in wire order (see format_wire_id).
_WIRE_HEADER = struct.Struct(">I32sIQqQ16s32sII")
HEADER_LENGTH = 116
HEADER_SIZE = _WIRE_HEADER.size  # 120
_TYPE_SIZE = 32
_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1

#: Types that the gateway sends without a payload and that skip validation.
PAYLOADLESS_TYPES = frozenset({MessageType.START_PUBLICATION, MessageType.PAUSE_PUBLICATION})

#: The MessageType field of every known type, as we write it, and the type it decodes to.
_KNOWN_FIELDS: dict[bytes, str] = {
    str(t).encode("ascii").ljust(_TYPE_SIZE, b" "): str(t) for t in MessageType
}


def type_field(message_type: str) -> bytes:
    """The 32-byte MessageType field for ``message_type`` (validated as in encode)."""
    try:
        mtype = message_type.encode("ascii")
    except UnicodeEncodeError:
        raise LocalProtocolError(f"message type {message_type!r} is not ASCII") from None
    if not mtype or len(mtype) > _TYPE_SIZE:
        raise LocalProtocolError(f"message type {message_type!r} must be 1-32 bytes")
    # The decoder trims whitespace and NULs, so such a type would not come back intact.
    if message_type != message_type.strip():
        raise LocalProtocolError(f"message type {message_type!r} has outer whitespace")
    if not message_type.isprintable():
        raise LocalProtocolError(f"message type {message_type!r} is not printable")
    return mtype.ljust(_TYPE_SIZE, b" ")


#: A source of MessageId fields (16 bytes each), for ``DataChannel(message_ids=...)``.
MessageIdSource = Callable[[], bytes]


class _RandomPool:
    """Random bytes from the OS, fetched 4 KiB at a time instead of 16 bytes per id.

    Nothing happens at import: the first id fills the pool and registers the at-fork
    hook that makes a forked child forget its parent's unused bytes.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._pool = memoryview(b"")
        self._offset = 0
        self._fork_safe = False

    def discard(self) -> None:
        """Forget the unused bytes (a forked child must not reuse its parent's)."""
        self._pool = memoryview(b"")
        self._offset = 0

    def take16(self) -> bytes:
        offset = self._offset
        if offset + 16 > len(self._pool):
            if not self._fork_safe:
                os.register_at_fork(after_in_child=self.discard)
                self._fork_safe = True
            self._pool = memoryview(secrets.token_bytes(self._size))
            offset = 0
        self._offset = offset + 16
        return self._pool[offset : offset + 16].tobytes()


_random = _RandomPool()


def new_wire_id() -> bytes:
    """A random (version 4) message id, as the 16 bytes of the MessageId field.

    The same randomness as ``uuid.uuid4()`` (the OS's), without building a UUID
    object. The field holds the UUID's two 8-byte halves swapped, so the version
    nibble is byte 14 and the variant bits byte 0.
    """
    raw = bytearray(_random.take16())
    raw[14] = (raw[14] & 0x0F) | 0x40  # version 4 (UUID byte 6)
    raw[0] = (raw[0] & 0x3F) | 0x80  # RFC 4122 variant (UUID byte 8)
    return bytes(raw)


def format_wire_id(field: bytes) -> str:
    """The canonical UUID string of a MessageId field (the inverse of the swap)."""
    h = (field[8:] + field[:8]).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def pack_frame(
    type_field: bytes,
    created_date: int,
    sequence_number: int,
    flags: int,
    wire_id: bytes,
    payload_type: int,
    payload: bytes,
    schema_version: int = 1,
) -> bytes:
    """Wire bytes of one message from trusted, already validated fields.

    The fast path behind :meth:`ClientMessage.encode` for the data channel's own
    messages: ``type_field`` comes from :func:`type_field`, ``wire_id`` from
    :func:`new_wire_id`. Out-of-range integers raise ``struct.error``.
    """
    return (
        _WIRE_HEADER.pack(
            HEADER_LENGTH,
            type_field,
            schema_version,
            created_date,
            sequence_number,
            flags,
            wire_id,
            sha256(payload).digest(),
            payload_type,
            len(payload),
        )
        + payload
    )


@dataclasses.dataclass(frozen=True, slots=True)
class ClientMessage:
    """One data-channel message. The digest is computed on encode and checked on decode."""

    message_type: str
    schema_version: int
    created_date: int
    sequence_number: int
    flags: int
    message_id: uuid.UUID
    payload_type: int
    payload: bytes

    def encode(self) -> bytes:
        """Serialize to wire bytes. Raises LocalProtocolError for unencodable fields."""
        field = type_field(self.message_type)
        if not self.payload and self.message_type not in PAYLOADLESS_TYPES:
            raise LocalProtocolError("refusing to encode a message with an empty payload")
        if not 0 <= self.schema_version <= _U32:
            raise LocalProtocolError(f"schema version {self.schema_version} out of range")
        if not 0 <= self.created_date <= _U64:
            raise LocalProtocolError(f"created date {self.created_date} out of range")
        if not _I64_MIN <= self.sequence_number <= _I64_MAX:
            raise LocalProtocolError(f"sequence number {self.sequence_number} out of range")
        if not 0 <= self.flags <= _U64:
            raise LocalProtocolError(f"flags {self.flags} out of range")
        if not 0 <= self.payload_type <= _U32:
            raise LocalProtocolError(f"payload type {self.payload_type} out of range")
        if len(self.payload) > _U32:
            raise LocalProtocolError("payload too large")
        if self.message_id.int == 0:
            raise LocalProtocolError("the nil UUID cannot be used as a message id")
        raw_id = self.message_id.bytes
        return pack_frame(
            field,
            self.created_date,
            self.sequence_number,
            self.flags,
            raw_id[8:] + raw_id[:8],
            self.payload_type,
            bytes(self.payload),
            self.schema_version,
        )

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> ClientMessage:
        """Parse and validate one frame. Raises InvalidMessage (only) on bad input."""
        return cls.from_fields(parse_frame(data))

    @classmethod
    def from_fields(cls, fields: FrameFields) -> ClientMessage:
        """The message of fields returned by :func:`parse_frame`."""
        mtype, schema_version, created_date, seq, flags, wire_id, ptype, payload = fields
        message_id = uuid.UUID(bytes=wire_id[8:] + wire_id[:8])
        return cls(mtype, schema_version, created_date, seq, flags, message_id, ptype, payload)


#: What :func:`parse_frame` returns: message type, schema version, created date,
#: sequence number, flags, message id (the 16 bytes of the field), payload type, payload.
FrameFields = tuple[str, int, int, int, int, bytes, int, bytes]


def parse_frame(data: bytes | bytearray | memoryview) -> FrameFields:
    """Parse and validate one frame into its fields. Raises InvalidMessage (only).

    :meth:`ClientMessage.decode` without building the message: the data channel
    uses it directly for the frames it receives. The message id stays in wire
    form (see :func:`format_wire_id`).
    """
    if type(data) is not bytes:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidMessage(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
    if len(data) < HEADER_SIZE:
        raise InvalidMessage(f"short frame: {len(data)} bytes, the header alone is {HEADER_SIZE}")
    (
        header_length,
        raw_type,
        schema_version,
        created_date,
        sequence_number,
        flags,
        wire_id,
        digest,
        payload_type,
        payload_length,
    ) = _WIRE_HEADER.unpack_from(data)
    if header_length != HEADER_LENGTH:
        raise InvalidMessage(f"bad header length {header_length}, expected {HEADER_LENGTH}")
    message_type = _KNOWN_FIELDS.get(raw_type)
    if message_type is None:
        try:
            message_type = raw_type.strip(b"\x00").decode("utf-8").strip()
        except UnicodeDecodeError:
            raise InvalidMessage("message type is not valid UTF-8") from None
        message_type = message_type.strip("\x00")
        if not message_type:
            raise InvalidMessage("empty message type")
    payload = data[HEADER_SIZE:]
    if message_type not in PAYLOADLESS_TYPES:
        if len(payload) != payload_length:
            if len(payload) < payload_length:
                raise InvalidMessage(f"truncated payload: {len(payload)} of {payload_length} bytes")
            raise InvalidMessage(
                f"{len(payload) - payload_length} trailing bytes after the payload"
            )
        if created_date == 0:
            raise InvalidMessage("created date is zero")
        if payload_length and sha256(payload).digest() != digest:
            raise InvalidMessage("payload digest mismatch")
    return (
        message_type,
        schema_version,
        created_date,
        sequence_number,
        flags,
        wire_id,
        payload_type,
        payload,
    )
