"""``ssmsh cp [-r] [-p] [-j N] [--resume] SOURCE... DEST``: copy files as scp does, over
Session Manager only (:mod:`ssmsh.transfer`; the helper of :mod:`ssmsh.protocol.transfer`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from pathlib import Path

from ..exceptions import UsageError
from ..terminal.tty import Terminal
from ..transfer.copy import DestinationError, FileJob, Plan, Pool, plan_download, plan_upload
from ..transfer.remote import RemoteHelper, open_helper
from .common import add_common_options, connection_config, default_target
from .errors import EXIT_INTERRUPTED, EXIT_OK
from .listing import duration
from .portsession import session_service
from .progress import ProgressLine
from .runtime import STOP_SIGNALS, Reporter, handle_signals, unless_set

__all__ = ["DEFAULT_JOBS", "DESCRIPTION", "MAX_JOBS", "configure_cp", "parse_location", "run_cp"]

#: Sessions a copy may use at once by default, and at most (each is a process there).
DEFAULT_JOBS = 4
MAX_JOBS = 32
#: Exit status when some files could not be copied (as scp's 1).
EXIT_SOME_FAILED = 1

DESCRIPTION = """\
Copy files between this machine and a managed instance, over Session Manager only (no
sshd, no S3), as scp does: ssmsh cp ./a.tar web-1:/tmp/   ssmsh cp web-1:/var/log/x.gz .

A remote location is TARGET:PATH (TARGET as for ssmsh shell; a relative PATH is from the
home directory of the session's user; :PATH alone means --local's or SSMSH_TARGET's
target); write ./a:b for a local name with a colon. One side is local, the other remote.
A remote pattern ('web-1:/var/log/*.gz', quoted) is expanded by the target's shell.

Every file is checked end to end by SHA-256 on both sides, and gets its name only once
it matches. Large files are striped over -j sessions by byte range (the agent sends a
session's output at about 0.6 MB/s: N sessions move N times that). An interrupted copy
keeps what it moved (NAME.ssmsh-part); --resume moves only what is missing. -C compresses
downloads with gzip on the target (text comes several times faster). The target
needs sh, stty, dd, base64 or od, and sha256sum, openssl or shasum (any Linux has them).

exit status: 0 all copied, 1 some files could not be (one line each) or the destination
cannot take them, 130 interrupted, 255 ssmsh's own failure (the session, the target)."""


def configure_cp(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "locations", nargs="+", metavar="SOURCE", help="what to copy, then where (DEST)"
    )
    parser.add_argument(
        "-r", "--recursive", action="store_true", help="copy directories and what they hold"
    )
    parser.add_argument(
        "-p", "--preserve", action="store_true", help="keep modes and modification times"
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=DEFAULT_JOBS,
        metavar="N",
        help=f"sessions to use at once (default {DEFAULT_JOBS}; at most {MAX_JOBS})",
    )
    parser.add_argument(
        "-C",
        "--compress",
        action="store_true",
        help="compress downloads with gzip on the target: several times faster for text "
        "(logs, dumps), slower for what is compressed already",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="carry on an interrupted copy: skip files already the same on both sides and "
        "the chunks of NAME.ssmsh-part that match",
    )
    parser.add_argument("--reason", metavar="TEXT", help="reason recorded with the sessions")
    add_common_options(parser, suppress=True)


def parse_location(word: str) -> tuple[str | None, str]:
    """``(target, path)`` for TARGET:PATH (target ``""``: the default one), ``(None, path)``
    for a local path: as scp, a colon before any slash makes the word remote."""
    head, colon, tail = word.partition(":")
    if colon and "/" not in head:
        return head, tail
    return None, word


async def run_cp(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    if len(args.locations) < 2:
        raise UsageError("cp needs a SOURCE and a DEST: ssmsh cp [-r] SOURCE... DEST")
    if not 1 <= args.jobs <= MAX_JOBS:
        raise UsageError(f"-j {args.jobs} is out of range (1-{MAX_JOBS})")
    *sources, destination = [parse_location(word) for word in args.locations]
    upload = destination[0] is not None
    if any((source[0] is not None) == upload for source in sources):
        if upload:
            raise UsageError("cp copies between here and one target: the sources must be local")
        raise UsageError(
            "cp copies between here and a target: one side must be remote (TARGET:PATH)"
        )
    targets = {source[0] for source in sources} if not upload else {destination[0]}
    if len(targets) > 1:
        raise UsageError("cp copies from one target at a time")
    named = targets.pop()
    target = default_target(args, named or None)
    config = connection_config(args)
    stop = asyncio.Event()
    with handle_signals(STOP_SIGNALS, lambda signum: stop.set()):
        async with session_service(args, reporter) as aws:
            copy = _Copy(args, reporter, terminal, upload)

            async def start() -> RemoteHelper:
                target_id = await aws.resolve_target(target)
                if await aws.platform_type(target_id) == "Windows":
                    raise UsageError(f"{target} runs Windows: ssmsh cp needs sh on the target")
                copy.target_id = target_id
                return await open_helper(aws, target_id, config, args.reason)

            first = await unless_set(start(), stop)
            if first is None:
                return EXIT_INTERRUPTED
            pool = Pool(
                first,
                lambda: open_helper(aws, copy.target_id, config, args.reason),
                args.jobs,
                compress=args.compress,
            )
            try:
                result = await unless_set(copy.run(pool, sources, destination, target), stop)
            finally:
                copy.progress.clear()
                await pool.close()
            if result is None:
                return copy.interrupted()
            return result


class _Copy:
    """One ``cp`` run: plan, pool, progress and the closing lines."""

    def __init__(
        self, args: argparse.Namespace, reporter: Reporter, terminal: Terminal, upload: bool
    ) -> None:
        self.args = args
        self.reporter = reporter
        self.upload = upload
        self.progress = ProgressLine(terminal, reporter)
        self.target_id = ""
        self.target = ""
        self._resumed = 0
        self.plan: Plan | None = None
        self.pool: Pool | None = None
        self.started = time.monotonic()

    async def run(
        self,
        pool: Pool,
        sources: list[tuple[str | None, str]],
        destination: tuple[str | None, str],
        target: str,
    ) -> int:
        self.pool = pool
        self.target = target
        try:
            return await self._copy(pool, sources, destination, target)
        except DestinationError as exc:
            self.progress.say(str(exc))  # nothing can go there: as scp, 1
            return EXIT_SOME_FAILED

    async def _copy(
        self,
        pool: Pool,
        sources: list[tuple[str | None, str]],
        destination: tuple[str | None, str],
        target: str,
    ) -> int:
        args = self.args
        options = {"recursive": args.recursive, "preserve": args.preserve, "resume": args.resume}
        if self.upload:
            remote = os.fsencode(destination[1] or ".")
            local = [Path(path) for _, path in sources]
            self.plan = await plan_upload(pool.first, target, local, remote, **options)
        else:
            remotes = [os.fsencode(path or ".") for _, path in sources]
            self.plan = await plan_download(
                pool.first, target, remotes, Path(destination[1]), **options
            )
        plan = self.plan
        for what, why in plan.refused:
            self.progress.say(f"{what}: {why}")
        for job in plan.skipped:
            self.reporter.status(f"{job.label}: already the same on both sides")
        await pool.make_directories(plan)
        pool.on_file_done = self._file_done
        caps = pool.first.capabilities
        if args.compress and not self.upload and caps is not None and caps.compressor != "gzip":
            self.reporter.status("the target has no gzip: copying without -C")
        ticker = asyncio.ensure_future(self._tick())
        self._resumed = sum(job.moved for job in plan.jobs)
        try:
            await pool.run(plan.jobs)
        finally:
            ticker.cancel()
            self.progress.clear()
        await pool.date_directories(plan)
        failed = [job for job in plan.jobs if job.failed is not None]
        if self.reporter.verbose:
            self._summary()
        return EXIT_SOME_FAILED if failed or plan.refused else EXIT_OK

    def _file_done(self, job: FileJob) -> None:
        if job.failed is not None:
            # Where the copy failed to land (upload) or come from (download): the target.
            self.progress.say(f"{self.target}:{os.fsdecode(job.remote)}: {job.failed}")
        elif self.reporter.verbose or self.progress.live:
            self.progress.note(f"{job.label}  {_size(job.size)}  done")

    async def _tick(self) -> None:
        while True:
            self._draw()
            await asyncio.sleep(0.25)

    def _draw(self) -> None:
        if self.plan is None or self.pool is None or not self.progress.live:
            return
        total = self.plan.total
        done = sum(job.moved for job in self.plan.jobs) + self.pool.in_flight()
        elapsed = max(time.monotonic() - self.started, 1e-3)
        rate = (done - self._resumed) / elapsed  # this run's, chunks under way included
        left = total - done
        eta = f"ETA {duration(left / rate)}" if rate > 0 and left > 0 else ""
        percent = 100 * done // total if total else 100
        sessions = len([h for h in self.pool.helpers if not h.closed])
        self.progress.draw(
            f"{percent:3d}% {_size(done)} of {_size(total)}  {_size(rate)}/s  {eta}  "
            f"{sessions} session{'s' if sessions != 1 else ''}"
        )

    def _summary(self) -> None:
        assert self.plan is not None and self.pool is not None
        elapsed = max(time.monotonic() - self.started, 1e-3)
        self.reporter.status(
            f"{_count(len(self.plan.jobs), 'file')}, {_size(self.pool.moved)} moved in "
            f"{elapsed:.1f} s ({_size(self.pool.moved / elapsed)}/s) over "
            f"{_count(len(self.pool.helpers), 'session')}"
        )

    def interrupted(self) -> int:
        moved = self.pool.moved if self.pool is not None else 0
        with contextlib.suppress(Exception):
            self.progress.clear()
        self.reporter.say(
            f"interrupted after {_size(moved)}: what was moved is kept; "
            "the same command with --resume carries on"
        )
        return EXIT_INTERRUPTED


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
