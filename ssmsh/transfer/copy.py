"""``ssmsh cp``'s engine: what to copy where, in chunks over a pool of helper sessions.

A copy is planned first (:func:`plan_download`, :func:`plan_upload`): every file
becomes a :class:`FileJob` with the chunks it still needs (all of them, or with
``resume`` only those whose SHA-256 differs on the two sides). The chunks of every
file go into one queue that :class:`Pool` works through with up to ``jobs``
sessions, opened as they are needed: a big download is striped over them by byte
range, many small files are spread over them. A file is done when its chunks are
and the SHA-256 of the whole file matches on both sides; only then does it get its
name (downloads land in ``NAME.ssmsh-part`` first, uploads in ``NAME.ssmsh-part``
on the target), so an interrupted copy leaves no half file under the real name and
``--resume`` finds what was already moved.

Why chunks of :data:`CHUNK` bytes: big enough that a request's round trip is small
against its transfer (1 MiB takes about 2 s at the official agent's pace), small
enough to spread a file over 8 sessions and to resume with little lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
import stat
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from ..exceptions import SsmshError
from ..protocol.transfer import (
    BLOCK,
    Entry,
    parse_entries,
    parse_hashes,
    parse_paths,
    parse_stat,
)
from .remote import RemoteHelper, TransferError

__all__ = [
    "CHUNK",
    "PART_SUFFIX",
    "DestinationError",
    "FileJob",
    "Plan",
    "Pool",
    "plan_download",
    "plan_upload",
    "touch_stamp",
]

logger = logging.getLogger(__name__)

#: Bytes per chunk (a whole number of BLOCKs, so that dd can seek to it).
CHUNK = 16 * BLOCK
#: Where a file is written until it is complete and verified.
PART_SUFFIX = ".ssmsh-part"
#: Times a chunk is tried on a new session after its session ended.
ATTEMPTS = 3

Opener = Callable[[], Awaitable[RemoteHelper]]


class FileFailed(Exception):
    """One file cannot be copied (the rest go on)."""


class DestinationError(TransferError):
    """The destination cannot take the sources (not a directory, no such directory):
    nothing is copied, as scp's status 1."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def touch_stamp(mtime: float) -> str:
    """``touch -t``'s stamp for ``mtime``, in UTC (the helper runs it with TZ=UTC0)."""
    return time.strftime("%Y%m%d%H%M.%S", time.gmtime(int(mtime)))


def local_hashes(path: Path, size: int) -> list[str]:
    """SHA-256 of each CHUNK of the first ``size`` bytes of ``path``."""
    out = []
    with open(path, "rb") as f:
        for _ in range(0, size, CHUNK):
            out.append(hashlib.sha256(f.read(CHUNK)).hexdigest())
    return out


def local_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _show(path: bytes | Path) -> str:
    return os.fsdecode(path) if isinstance(path, bytes) else str(path)


@dataclasses.dataclass(eq=False)
class FileJob:
    """One file to copy, and how far it got."""

    upload: bool
    remote: bytes  # the final path on the target
    local: Path  # the source (upload) or destination (download) here
    size: int
    mode: int | None
    mtime: float | None
    label: str
    chunks: list[int] = dataclasses.field(default_factory=list)
    #: Bytes already moved (chunks left out by resume count as moved).
    moved: int = 0
    failed: str | None = None
    done: bool = False
    #: The target's SHA-256 of a file to download (taken before its chunks).
    remote_digest: str | None = None
    #: An upload whose ``.ssmsh-part`` is on the target at its size (resume): no ``size``.
    part_there: bool = False
    _left: int = 0
    _fd: int | None = None
    _finishing: bool = False
    #: Set once the file's first step is over (its chunks may go).
    _opened: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    @property
    def part_remote(self) -> bytes:
        return self.remote + PART_SUFFIX.encode()

    @property
    def part_local(self) -> Path:
        return self.local.with_name(self.local.name + PART_SUFFIX)

    def chunk_range(self, index: int) -> tuple[int, int]:
        start = index * CHUNK
        return start, min(CHUNK, self.size - start)

    def fail(self, message: str) -> None:
        if self.failed is None:
            self.failed = message
        self._opened.set()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclasses.dataclass
class Plan:
    jobs: list[FileJob]
    #: Directories to make first (remote paths for uploads, local ones for downloads),
    #: with the mode and modification time to give them (-p; None: leave as made).
    directories: list[tuple[bytes | Path, int | None, float | None]]
    #: Files that were already there, the same on both sides (--resume).
    skipped: list[FileJob] = dataclasses.field(default_factory=list)
    #: Sources that cannot be copied at all: (what, why).
    refused: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(job.size for job in self.jobs)


# ---------------------------------------------------------------- planning


async def _stat(helper: RemoteHelper, path: bytes) -> Entry:
    reply = await helper.call("stat", (), [path])
    if not reply.ok:
        raise TransferError(f"{_show(path)}: {reply.message}")
    return parse_stat(reply.payload)


def _join(directory: bytes, name: bytes) -> bytes:
    return directory.rstrip(b"/") + b"/" + name if directory.rstrip(b"/") else b"/" + name


async def plan_download(
    helper: RemoteHelper,
    target: str,
    sources: list[bytes],
    destination: Path,
    *,
    recursive: bool,
    preserve: bool,
    resume: bool,
) -> Plan:
    """What to fetch from ``sources`` on the target into ``destination`` here. A source
    with ``*``, ``?`` or ``[`` that names no file is a pattern, expanded on the target
    as its shell would (``web-1:/var/log/*.gz``)."""
    plan = Plan([], [])
    found: list[tuple[bytes, Entry]] = []
    for source in sources:
        entry = await _stat(helper, source)
        if entry.kind == "n" and any(c in source for c in b"*?["):
            reply = await helper.call("glob", (), [source])
            matches = parse_paths(reply.payload) if reply.ok else []
            if not matches:
                plan.refused.append((f"{target}:{_show(source)}", "no match"))
            for match in matches:
                found.append((match, await _stat(helper, match)))
            continue
        found.append((source, entry))
    into_directory = destination.is_dir()
    if len(found) > 1 and not into_directory:
        raise DestinationError(f"{destination}: not a directory (copying several sources)")
    if not into_directory and not destination.parent.is_dir():
        raise DestinationError(f"{destination.parent}: no such directory")
    if not into_directory and destination.exists() and any(e.kind == "d" for _, e in found):
        raise DestinationError(f"{destination}: not a directory")
    for source, entry in found:
        shown = f"{target}:{_show(source)}"
        name = source.rstrip(b"/").rsplit(b"/", 1)[-1] or source
        local = destination / os.fsdecode(name) if into_directory else destination
        if entry.kind == "n":
            plan.refused.append((shown, "no such file or directory"))
        elif entry.kind == "d" and not recursive:
            plan.refused.append((shown, "is a directory (give -r to copy it)"))
        elif entry.kind == "o":
            plan.refused.append((shown, "not a regular file"))
        elif entry.kind == "f":
            _add_download(plan, source, local, entry, preserve)
        else:
            reply = await helper.call("list", (), [source])
            if not reply.ok:
                plan.refused.append((shown, reply.message))
                continue
            entries = parse_entries(reply.payload)
            root = entries[0].path if entries else source
            for item in entries:
                relative = item.path[len(root) :].lstrip(b"/")
                here = local / os.fsdecode(relative) if relative else local
                if item.kind == "d":
                    plan.directories.append(
                        (here, item.mode if preserve else None, item.mtime if preserve else None)
                    )
                elif item.kind == "f":
                    _add_download(plan, item.path, here, item, preserve)
    if resume:
        await _resume_downloads(helper, plan)
    return plan


def _chunk_count(size: int) -> int:
    return (size + CHUNK - 1) // CHUNK


def _add_download(plan: Plan, remote: bytes, local: Path, entry: Entry, preserve: bool) -> None:
    plan.jobs.append(
        FileJob(
            upload=False,
            remote=remote,
            local=local,
            size=entry.size,
            mode=entry.mode if preserve else None,
            mtime=entry.mtime if preserve else None,
            label=os.fsdecode(remote.rstrip(b"/").rsplit(b"/", 1)[-1]),
            chunks=list(range(_chunk_count(entry.size))),
        )
    )


async def _resume_downloads(helper: RemoteHelper, plan: Plan) -> None:
    """Leave out what is already here: whole files equal on both sides, and the chunks
    of a ``.ssmsh-part`` whose SHA-256 matches the target's."""
    keep = []
    loop = asyncio.get_running_loop()
    for job in plan.jobs:
        if _is_file(job.local) and job.local.stat().st_size == job.size:
            here = await loop.run_in_executor(None, local_digest, job.local)
            reply = await helper.call("hash", (), [job.remote])
            if reply.ok and parse_hashes(reply.payload)[:1] == [here]:
                plan.skipped.append(job)
                continue
        part = job.part_local
        if _is_file(part) and job.size and part.stat().st_size == job.size:
            await _keep_matching_chunks(helper, job, job.remote, part)
        keep.append(job)
    plan.jobs = keep


async def _keep_matching_chunks(
    helper: RemoteHelper, job: FileJob, remote: bytes, local: Path
) -> None:
    """Leave out of ``job`` the chunks whose SHA-256 is the same in ``remote`` (on the
    target) and ``local`` (here): they count as moved."""
    count = _chunk_count(job.size)
    reply = await helper.call("hashes", (CHUNK // BLOCK, count), [remote])
    theirs = parse_hashes(reply.payload) if reply.ok else []
    loop = asyncio.get_running_loop()
    ours = await loop.run_in_executor(None, local_hashes, local, job.size)
    job.chunks = [i for i in range(count) if i >= len(theirs) or theirs[i] != ours[i]]
    job.moved = sum(job.chunk_range(i)[1] for i in range(count) if i not in job.chunks)


def _is_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


async def plan_upload(
    helper: RemoteHelper,
    target: str,
    sources: list[Path],
    destination: bytes,
    *,
    recursive: bool,
    preserve: bool,
    resume: bool,
) -> Plan:
    """What to send from ``sources`` here to ``destination`` on the target."""
    plan = Plan([], [])
    entry = await _stat(helper, destination)
    into_directory = entry.kind == "d"
    shown_destination = f"{target}:{_show(destination)}"
    if len(sources) > 1 and not into_directory:
        raise DestinationError(f"{shown_destination}: not a directory (copying several sources)")
    if entry.kind == "n" and destination.endswith(b"/"):
        raise DestinationError(f"{shown_destination}: no such directory")
    if entry.kind not in ("d", "n") and any(source.is_dir() for source in sources):
        raise DestinationError(f"{shown_destination}: not a directory")
    for source in sources:
        try:
            info = source.stat()
        except OSError as exc:
            plan.refused.append((str(source), exc.strerror or str(exc)))
            continue
        name = os.fsencode(source.resolve().name if source.name in ("", ".", "..") else source.name)
        remote = _join(destination, name) if into_directory else destination
        if stat.S_ISREG(info.st_mode):
            _add_upload(plan, source, remote, info, preserve)
        elif stat.S_ISDIR(info.st_mode):
            if not recursive:
                plan.refused.append((str(source), "is a directory (give -r to copy it)"))
                continue
            _walk_upload(plan, source, remote, preserve)
        else:
            plan.refused.append((str(source), "not a regular file"))
    if resume:
        await _resume_uploads(helper, plan)
    return plan


def _add_upload(
    plan: Plan, local: Path, remote: bytes, info: os.stat_result, preserve: bool
) -> None:
    plan.jobs.append(
        FileJob(
            upload=True,
            remote=remote,
            local=local,
            size=info.st_size,
            mode=stat.S_IMODE(info.st_mode) if preserve else None,
            mtime=info.st_mtime if preserve else None,
            label=local.name,
            chunks=list(range(_chunk_count(info.st_size))),
        )
    )


def _walk_upload(plan: Plan, root: Path, remote_root: bytes, preserve: bool) -> None:
    def failed(exc: OSError) -> None:
        plan.refused.append((str(exc.filename), exc.strerror or str(exc)))

    for directory, dirnames, filenames in os.walk(root, onerror=failed, followlinks=True):
        here = Path(directory)
        relative = here.relative_to(root)
        remote_dir = remote_root
        for part in relative.parts:
            remote_dir = _join(remote_dir, os.fsencode(part))
        info = here.stat()
        plan.directories.append(
            (
                remote_dir,
                stat.S_IMODE(info.st_mode) if preserve else None,
                info.st_mtime if preserve else None,
            )
        )
        dirnames.sort()
        for name in sorted(filenames):
            path = here / name
            try:
                info = path.stat()
            except OSError as exc:
                failed(exc)
                continue
            if stat.S_ISREG(info.st_mode):
                _add_upload(plan, path, _join(remote_dir, os.fsencode(name)), info, preserve)
            else:
                plan.refused.append((str(path), "not a regular file"))


async def _resume_uploads(helper: RemoteHelper, plan: Plan) -> None:
    keep = []
    loop = asyncio.get_running_loop()
    for job in plan.jobs:
        there = await _stat(helper, job.remote)
        if there.kind == "f" and there.size == job.size:
            reply = await helper.call("hash", (), [job.remote])
            here = await loop.run_in_executor(None, local_digest, job.local)
            if reply.ok and parse_hashes(reply.payload)[:1] == [here]:
                plan.skipped.append(job)
                continue
        part = await _stat(helper, job.part_remote)
        if part.kind == "f" and part.size == job.size and job.size:
            await _keep_matching_chunks(helper, job, job.part_remote, job.local)
            job.part_there = True
        keep.append(job)
    plan.jobs = keep


# ---------------------------------------------------------------- running


@dataclasses.dataclass
class _Task:
    job: FileJob
    chunk: int | None  # None: the file's first step (open it; for downloads, its hash)
    attempts: int = 0


class Pool:
    """Runs a plan's chunks over up to ``size`` helpers (the first one given, the others
    opened by ``opener`` as there is work for them)."""

    def __init__(
        self, first: RemoteHelper, opener: Opener, size: int, compress: bool = False
    ) -> None:
        self.first = first
        #: Downloads through gzip on the target (where it has gzip).
        self.compress = compress
        self.opener = opener
        self.size = size
        self.helpers: list[RemoteHelper] = [first]
        self.moved = 0  # bytes moved in this run
        self.on_file_done: Callable[[FileJob], None] = lambda job: None
        self._queue: asyncio.Queue[_Task] = asyncio.Queue()
        self._busy: dict[RemoteHelper, tuple[int, int, bool]] = {}

    def in_flight(self) -> int:
        """Bytes of chunks under way, estimated from what their sessions moved."""
        total = 0
        for helper, (length, start, upload) in list(self._busy.items()):
            counter = helper.conn.bytes_sent if upload else helper.conn.bytes_received
            # Downloads come base64-encoded: 4 characters (and a newline per 76) for 3 bytes.
            done = counter - start if upload else (counter - start) * 57 // 77
            total += max(0, min(length, done))
        return total

    async def make_directories(self, plan: Plan) -> None:
        for path, mode, _ in plan.directories:
            if isinstance(path, Path):
                try:
                    path.mkdir(parents=True, exist_ok=True)
                    if mode is not None:
                        os.chmod(path, mode)
                except OSError as exc:
                    raise DestinationError(f"{path}: {exc.strerror or exc}") from None
                continue
            reply = await self.first.call(
                "mkdir", (f"{mode:o}" if mode is not None else "-",), [path]
            )
            if not reply.ok:
                raise DestinationError(f"{_show(path)}: {reply.message}")

    async def date_directories(self, plan: Plan) -> None:
        """The directories' times (-p), deepest first: what went into them changed them."""
        for path, _, mtime in reversed(plan.directories):
            if mtime is None:
                continue
            if isinstance(path, Path):
                with contextlib.suppress(OSError):
                    os.utime(path, (mtime, mtime))
                continue
            reply = await self.first.call("stamp", (touch_stamp(mtime),), [path])
            if not reply.ok:
                logger.info("%s: cannot set its time: %s", _show(path), reply.message)

    async def run(self, jobs: Sequence[FileJob]) -> None:
        for job in jobs:
            job._left = len(job.chunks)
            self._queue.put_nowait(_Task(job, None))
            for index in job.chunks:
                self._queue.put_nowait(_Task(job, index))
        # A session per chunk at most (a file's first step is quick: it needs none).
        chunks = sum(len(job.chunks) for job in jobs)
        workers = min(self.size, max(1, chunks))
        tasks = [asyncio.ensure_future(self._work(self.first))]
        tasks += [asyncio.ensure_future(self._work(None)) for _ in range(workers - 1)]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def close(self) -> None:
        await asyncio.gather(*(h.close() for h in self.helpers), return_exceptions=True)

    async def _work(self, helper: RemoteHelper | None) -> None:
        if helper is None:
            if self._queue.empty():
                return
            try:
                helper = await self.opener()
            except SsmshError as exc:
                logger.info("could not open another copy session: %s", exc)
                return  # the others carry on
            self.helpers.append(helper)
        while not self._queue.empty():
            task = self._queue.get_nowait()
            if task.job.failed is not None:
                continue
            try:
                await self._do(helper, task)
            except FileFailed as exc:
                task.job.fail(str(exc))
                self.on_file_done(task.job)
            except TransferError:
                if not helper.conn.closed:
                    raise  # the session is fine: the helper itself went wrong
                task.attempts += 1
                if task.attempts >= ATTEMPTS:
                    raise
                self._queue.put_nowait(task)
                await helper.close()
                helper = await self.opener()
                self.helpers.append(helper)

    async def _do(self, helper: RemoteHelper, task: _Task) -> None:
        job = task.job
        if task.chunk is None:
            await (
                self._start_upload(helper, job) if job.upload else self._start_download(helper, job)
            )
        else:
            start, length = job.chunk_range(task.chunk)
            conn = helper.conn
            self._busy[helper] = (
                length,
                conn.bytes_sent if job.upload else conn.bytes_received,
                job.upload,
            )
            try:
                if job.upload:
                    await self._send_chunk(helper, job, start, length)
                else:
                    await self._fetch_chunk(helper, job, start, length)
            finally:
                self._busy.pop(helper, None)
            if job.failed is not None:
                return  # another chunk of it failed: this one was not moved
            job.moved += length
            self.moved += length
            job._left -= 1
        if job.failed is None and job._left == 0 and job._opened.is_set() and not job._finishing:
            job._finishing = True
            await (
                self._finish_upload(helper, job)
                if job.upload
                else self._finish_download(helper, job)
            )
            job.done = True
            self.on_file_done(job)

    # downloads

    async def _start_download(self, helper: RemoteHelper, job: FileJob) -> None:
        part = job.part_local
        try:
            flags = os.O_WRONLY | os.O_CREAT | (0 if job.moved else os.O_TRUNC)
            job._fd = os.open(part, flags, 0o600)
            os.ftruncate(job._fd, job.size)
        except OSError as exc:
            raise FileFailed(f"{part}: {exc.strerror}") from None
        reply = await helper.call("hash", (), [job.remote])
        digests = parse_hashes(reply.payload) if reply.ok else []
        if not digests:
            raise FileFailed(reply.message)
        job.remote_digest = digests[0]
        job._opened.set()

    async def _fetch_chunk(
        self, helper: RemoteHelper, job: FileJob, start: int, length: int
    ) -> None:
        await job._opened.wait()  # the file's first step may be under way elsewhere
        if job.failed is not None or job._fd is None:
            return
        caps = helper.capabilities
        squeeze = self.compress and caps is not None and caps.compressor == "gzip"
        operation = "readz" if squeeze else "read"
        reply = await helper.call(operation, (start // BLOCK, CHUNK // BLOCK), [job.remote])
        if not reply.ok:
            raise FileFailed(reply.message)
        data = reply.payload
        if squeeze:
            try:  # at most one byte more than the chunk: no more is kept of a bad stream
                data = zlib.decompressobj(wbits=31).decompress(data, length + 1)
            except zlib.error as exc:
                raise FileFailed(f"the target's gzip data is damaged ({exc})") from None
        if len(data) != length:
            raise FileFailed(
                f"changed during the copy ({len(data)} bytes at {start}, not {length})"
            )
        assert job._fd is not None
        os.pwrite(job._fd, data, start)

    async def _finish_download(self, helper: RemoteHelper, job: FileJob) -> None:
        fd, job._fd = job._fd, None
        if fd is not None:
            os.close(fd)
        loop = asyncio.get_running_loop()
        here = await loop.run_in_executor(None, local_digest, job.part_local)
        if here != job.remote_digest:
            raise FileFailed(
                "SHA-256 differs after the copy: the file changed on the target during it?"
            )
        try:
            # The part was made 0600 (nobody else reads a half file); the copy gets
            # -p's mode, or what the umask gives a new file, as cp and scp do.
            os.chmod(job.part_local, job.mode if job.mode is not None else 0o666 & ~_umask())
            os.replace(job.part_local, job.local)
            if job.mtime is not None:
                os.utime(job.local, (job.mtime, job.mtime))
        except OSError as exc:
            raise FileFailed(f"{job.local}: {exc.strerror}") from None

    # uploads

    async def _start_upload(self, helper: RemoteHelper, job: FileJob) -> None:
        try:
            job._fd = os.open(job.local, os.O_RDONLY)
        except OSError as exc:
            raise FileFailed(f"{job.local}: {exc.strerror}") from None
        if not job.part_there:
            reply = await helper.call("size", (job.size,), [job.part_remote])
            if not reply.ok:
                raise FileFailed(reply.message)
        job._opened.set()

    async def _send_chunk(
        self, helper: RemoteHelper, job: FileJob, start: int, length: int
    ) -> None:
        await job._opened.wait()
        if job.failed is not None or job._fd is None:
            return
        data = os.pread(job._fd, length, start)
        if len(data) != length:
            raise FileFailed("changed during the copy (it is shorter now)")
        reply = await helper.call("write", (start // BLOCK, length), [job.part_remote], data)
        if not reply.ok:
            raise FileFailed(reply.message)

    async def _finish_upload(self, helper: RemoteHelper, job: FileJob) -> None:
        fd, job._fd = job._fd, None
        if fd is not None:
            os.close(fd)
        loop = asyncio.get_running_loop()
        here = await loop.run_in_executor(None, local_digest, job.local)
        reply = await helper.call("hash", (), [job.part_remote])
        if not reply.ok or parse_hashes(reply.payload)[:1] != [here]:
            raise FileFailed(
                reply.message
                if not reply.ok
                else "SHA-256 differs after the copy: the file changed here during it?"
            )
        mode = f"{job.mode:o}" if job.mode is not None else "-"
        stamp = touch_stamp(job.mtime) if job.mtime is not None else "-"
        reply = await helper.call("commit", (mode, stamp), [job.part_remote, job.remote])
        if not reply.ok:
            raise FileFailed(reply.message)
