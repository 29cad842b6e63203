"""What a shell session leaves on disk so that ``ssmsh attach`` can take it over.

One file per session, ``$XDG_STATE_HOME/ssmsh/sessions/SESSION_ID.rec`` (default
``~/.local/state/ssmsh/sessions/``), mode 0600 in a 0700 directory, removed when
the session ends cleanly (whatever ends it, as long as ssmsh gets to run its
cleanup: ``exit``, ``~.``, Ctrl-C before the start, SIGTERM, SIGHUP, a failure).
Only a process that dies without cleanup (SIGKILL, a crash, a machine that went
away) leaves one behind: that is what ``attach`` is for.

The file is two parts:

* bytes 0-63, the **counters**: where the data channel's two streams stand
  (:class:`~ssmsh.protocol.datachannel.SequenceState`): the next incoming sequence
  number, the ones acked ahead of it (a 64-bit mask of the numbers after it), the
  oldest unacked and the next outgoing numbers; then a CRC-32. They are rewritten in
  place (``os.pwrite`` of one 64-byte block, within one page: a process that dies
  never leaves half of it) after every call into the protocol that changed them,
  *before* the frames that call made are sent (the
  :attr:`~ssmsh.channel.driver.ProtocolDriver.recorder` hook): an ack never goes out
  ahead of the record, since the agent never sends again what was acked, and an
  input message's number is on disk before the message leaves, since the agent's
  input stream would wait for ever for a number that never comes. No fsync per
  message: the page cache outlives the process; after a system crash a torn block
  fails its CRC and the record is reported damaged, in one line.
* from byte 64, the **header**, JSON, written once (and again by ``attach``, which
  takes the record over): session id, target, the StreamUrl (ResumeSession gives a
  new one, this is the fallback), the ClientId (``attach`` reopens with it, as a
  reconnect of the same client does), how to reach AWS (region, profile,
  endpoint), what the handshake settled (session type, agent and client versions,
  whether there was one), the owner's pid and start time, and whether the session is
  KMS-encrypted.

KMS-encrypted sessions: the data keys are never written to disk, so such a session
cannot be taken over; its record holds the header only, so that ``attach`` can
say why in one line.

Which sessions write one: ``ssmsh shell`` on a terminal, against AWS or a separate
emulator (``--local``'s emulator dies with the process). Not ``exec -t``: its exit
status travels in a trailer that a new process would have to pick up halfway.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..exceptions import UsageError
from ..protocol.datachannel import ACKED_AHEAD_WINDOW, SequenceState
from ..protocol.session import ClientSession
from .config import xdg_dir

__all__ = [
    "AttachHeader",
    "AttachRecord",
    "RecordWriter",
    "list_records",
    "new_header",
    "owner_alive",
    "process_start",
    "read_record",
    "record_path",
    "sessions_dir",
    "write_record",
]

logger = logging.getLogger(__name__)

MAGIC = b"SSMA"
VERSION = 1
#: magic, version, next_in, acked-ahead mask, out_acked, out_next, then the CRC-32.
_COUNTERS = struct.Struct(">4sB3xQQQQ")
_CRC = struct.Struct(">I")
COUNTERS_SIZE = 64
#: Acked-ahead numbers the record can hold: next_in + 1 .. next_in + 64.
AHEAD_WINDOW = ACKED_AHEAD_WINDOW  # (a 64-bit mask in the record)
MAX_HEADER = 64 * 1024
SUFFIX = ".rec"


def sessions_dir() -> Path:
    """``$XDG_STATE_HOME/ssmsh/sessions`` (``~/.local/state/ssmsh/sessions``)."""
    return xdg_dir("XDG_STATE_HOME", ".local/state") / "sessions"


def record_path(session_id: str) -> Path:
    if not session_id or "/" in session_id or session_id.startswith(".") or "\0" in session_id:
        raise UsageError(f"not a session id: {session_id!r}")
    return sessions_dir() / f"{session_id}{SUFFIX}"


@dataclasses.dataclass(frozen=True, slots=True)
class AttachHeader:
    """The part of the record written once (see the module docstring)."""

    session_id: str
    target_id: str
    stream_url: str
    client_id: str
    region: str | None
    profile: str | None
    endpoint_url: str | None
    session_type: str
    agent_version: str
    client_version: str
    #: "complete" (the agent handshook) or "none" (a shell without KMS: no handshake).
    handshake: str
    encrypted: bool
    pid: int
    #: The owner's start time (/proc), to tell it from a later process with its pid.
    pid_start: int | None
    #: When the session was started (epoch seconds).
    started: float

    def encode(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> AttachHeader:
        value = json.loads(data)
        if not isinstance(value, dict):
            raise ValueError("the header is not an object")
        fields = {f.name for f in dataclasses.fields(cls)}
        missing = fields - set(value)
        if missing:
            raise ValueError(f"the header lacks {', '.join(sorted(missing))}")
        header = cls(**{k: value[k] for k in fields})
        for name in ("session_id", "target_id", "stream_url", "client_id", "session_type"):
            if not isinstance(getattr(header, name), str) or not getattr(header, name):
                raise ValueError(f"the header's {name} is not a string")
        if not isinstance(header.pid, int) or isinstance(header.pid, bool):
            raise ValueError("the header's pid is not a number")
        if not isinstance(header.started, int | float) or isinstance(header.started, bool):
            raise ValueError("the header's started is not a number")  # attach's AGE
        return header


@dataclasses.dataclass(frozen=True, slots=True)
class AttachRecord:
    path: Path
    header: AttachHeader
    #: None for a KMS session (no counters are kept for it).
    state: SequenceState | None


def pack_counters(state: SequenceState) -> bytes:
    mask = 0
    for seq in state.acked_ahead:
        offset = seq - state.next_in - 1
        if 0 <= offset < AHEAD_WINDOW:
            mask |= 1 << offset
    body = _COUNTERS.pack(MAGIC, VERSION, state.next_in, mask, state.out_acked, state.out_next)
    block = body + _CRC.pack(zlib.crc32(body))
    return block.ljust(COUNTERS_SIZE, b"\0")


def unpack_counters(block: bytes) -> SequenceState | None:
    """The counters, or None when none were written (a KMS session). ValueError if damaged."""
    if len(block) < COUNTERS_SIZE:
        raise ValueError("the file is cut short")
    if block.count(0) == COUNTERS_SIZE:
        return None
    size = _COUNTERS.size
    body, (crc,) = block[:size], _CRC.unpack_from(block, size)
    if zlib.crc32(body) != crc:
        raise ValueError("its counters fail their checksum")
    magic, version, next_in, mask, out_acked, out_next = _COUNTERS.unpack(body)
    if magic != MAGIC or version != VERSION:
        raise ValueError("it is not an ssmsh session record (or one of another version)")
    if out_acked > out_next:
        raise ValueError("its counters are inconsistent")
    ahead = frozenset(next_in + 1 + i for i in range(AHEAD_WINDOW) if mask >> i & 1)
    return SequenceState(next_in, ahead, out_acked, out_next)


def read_record(path: Path) -> AttachRecord:
    """The record at ``path``; UsageError, one line, when it is unreadable or damaged."""
    try:
        with open(path, "rb") as file:
            data = file.read(COUNTERS_SIZE + MAX_HEADER + 1)
    except FileNotFoundError:
        raise UsageError(
            f"no record of session {path.stem} here (ssmsh attach lists the ones there are)"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        if len(data) > COUNTERS_SIZE + MAX_HEADER:
            raise ValueError("it is too large")
        state = unpack_counters(data[:COUNTERS_SIZE])
        header = AttachHeader.decode(data[COUNTERS_SIZE:])
        if header.session_id != path.stem:
            raise ValueError(f"it is the record of session {header.session_id}")
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise UsageError(f"the session record {path} is damaged ({exc}); remove it") from None
    return AttachRecord(path, header, state)


def list_records() -> Iterator[AttachRecord | tuple[Path, str]]:
    """Every record, oldest first; an unreadable one as (path, why)."""
    directory = sessions_dir()
    try:
        paths = sorted(directory.glob(f"*{SUFFIX}"), key=_mtime)
    except OSError:
        return
    for path in paths:
        try:
            yield read_record(path)
        except UsageError as exc:
            yield path, str(exc)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks after boot (Linux /proc), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
        return int(stat[stat.rindex(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def owner_alive(header: AttachHeader) -> bool:
    """Whether the process that wrote the record still runs (and is the same one)."""
    if header.pid <= 0:
        return False
    try:
        os.kill(header.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone's process; be safe
    except OSError:
        return False
    if header.pid_start is not None:
        start = process_start(header.pid)
        if start is not None and start != header.pid_start:
            return False  # the pid was reused
    return True


class RecordWriter:
    """Keeps one session's record current; a ``SessionConnection`` recorder.

    ``make_header`` is called once the session is established (the handshake's
    results are in the protocol then); the file is created at that moment. A failure
    to write is reported once through ``warn`` and recording stops: the session
    goes on, it just cannot be attached to.
    """

    def __init__(
        self,
        path: Path,
        make_header: Callable[[ClientSession], AttachHeader],
        warn: Callable[[str], None],
    ) -> None:
        self.path = path
        self._make_header = make_header
        self._warn = warn
        self._fd: int | None = None
        self._last = b""
        self._failed = False
        self._encrypted = False
        #: (st_dev, st_ino) of the file this writer created.
        self._written: tuple[int, int] | None = None

    def __call__(self, protocol: ClientSession) -> None:
        if self._failed or self._encrypted or not protocol.established:
            return
        try:
            if self._fd is None:
                header = self._make_header(protocol)
                self._create(header, protocol)
                return
            block = pack_counters(protocol.channel.sequence_state())
            if block != self._last:
                os.pwrite(self._fd, block, 0)
                self._last = block
        except OSError as exc:
            self._failed = True
            self._warn(f"cannot keep the session record {self.path}: {exc.strerror or exc}")
            self.close()

    def _create(self, header: AttachHeader, protocol: ClientSession) -> None:
        self._encrypted = header.encrypted
        # A KMS session: no counters (the keys are gone with the process anyway).
        block = (
            bytes(COUNTERS_SIZE)
            if header.encrypted
            else pack_counters(protocol.channel.sequence_state())
        )
        self._fd = write_record(self.path, header, block)
        self._last = block
        info = os.fstat(self._fd)
        self._written = (info.st_dev, info.st_ino)
        if header.encrypted:
            self.close()

    @property
    def attachable(self) -> bool:
        """A record with counters is on disk (written, not a KMS session's, not failed)."""
        return self._written is not None and not self._encrypted and not self._failed

    def close(self) -> None:
        """Stop recording; the file stays (for attach)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def remove(self) -> None:
        """The session ended cleanly: no record any more. Unless another process took
        the record over meanwhile (``attach --force``): the file there is its own."""
        self.close()
        self._failed = True
        with contextlib.suppress(FileNotFoundError):
            info = self.path.stat()
            if self._written in (None, (info.st_dev, info.st_ino)):
                self.path.unlink()


def write_record(path: Path, header: AttachHeader, block: bytes) -> int:
    """Write a whole record (a new file renamed over ``path``); returns an open fd."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, block + header.encode())
        os.fsync(fd)
        os.replace(tmp, path)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return fd


def new_header(
    protocol: ClientSession,
    *,
    session_id: str,
    target_id: str,
    stream_url: str,
    client_id: str,
    aws: dict[str, Any],
    started: float | None = None,
) -> AttachHeader:
    pid = os.getpid()
    return AttachHeader(
        session_id=session_id,
        target_id=target_id,
        stream_url=stream_url,
        client_id=client_id,
        region=aws.get("region"),
        profile=aws.get("profile"),
        endpoint_url=aws.get("endpoint_url"),
        session_type=protocol.session_type or "Standard_Stream",
        agent_version=protocol.agent_version,
        client_version=protocol.client_version,
        handshake="complete" if protocol.agent_version else "none",
        encrypted=protocol.encrypted,
        pid=pid,
        pid_start=process_start(pid),
        started=time.time() if started is None else started,
    )
