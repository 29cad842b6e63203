"""The copy engine without sessions: a fake helper that answers as the real one does,
from files here, with failures injected."""

from __future__ import annotations

import hashlib
import types
from pathlib import Path
from typing import Any

import pytest

from ssmsh.protocol.transfer import BLOCK, Reply
from ssmsh.transfer.copy import CHUNK, FileJob, Pool, plan_download

pytestmark = pytest.mark.timeout(30)


class FakeHelper:
    """Serves ``stat``, ``hash`` and ``read`` from local files; ``fail_read`` names the
    chunk (by start block) whose read fails, as a file made unreadable mid-copy."""

    def __init__(self, fail_read: int | None = None) -> None:
        self.conn = types.SimpleNamespace(bytes_sent=0, bytes_received=0, closed=False)
        self.closed = False
        self.capabilities = None
        self.fail_read = fail_read
        self.calls: list[str] = []

    async def call(
        self, operation: str, numbers: Any = (), paths: Any = (), data: Any = b""
    ) -> Reply:
        self.calls.append(operation)
        path = Path(paths[0].decode())
        if operation == "stat":
            return Reply(0, b"f %d 644 1600000000\n" % path.stat().st_size)
        if operation == "hash":
            return Reply(0, hashlib.sha256(path.read_bytes()).hexdigest().encode() + b"  -\n")
        if operation == "read":
            start, count = numbers
            if start == self.fail_read:
                return Reply(1, b"permission denied\n")
            return Reply(0, path.read_bytes()[start * BLOCK : (start + count) * BLOCK])
        raise AssertionError(operation)

    async def close(self) -> None:
        self.closed = True


async def download(tmp_path: Path, helper: FakeHelper, size: int) -> tuple[list[FileJob], Path]:
    source = tmp_path / "source"
    source.write_bytes(bytes(range(256)) * (size // 256))
    plan = await plan_download(
        helper, "t", [str(source).encode()], tmp_path / "out",  # type: ignore[arg-type]
        recursive=False, preserve=False, resume=False,
    )  # fmt: skip

    async def opener() -> Any:
        return FakeHelper(helper.fail_read)

    pool = Pool(helper, opener, 3)  # type: ignore[arg-type]
    done: list[FileJob] = []
    pool.on_file_done = done.append
    await pool.run(plan.jobs)
    return done, source


async def test_a_striped_download_lands_whole(tmp_path: Path) -> None:
    done, source = await download(tmp_path, FakeHelper(), 5 * CHUNK // 2)
    assert [job.failed for job in done] == [None]
    assert (tmp_path / "out").read_bytes() == source.read_bytes()
    assert not (tmp_path / "out.ssmsh-part").exists()


async def test_a_failed_chunk_fails_its_file_once_and_leaves_no_file(tmp_path: Path) -> None:
    done, _ = await download(tmp_path, FakeHelper(fail_read=CHUNK // BLOCK), 3 * CHUNK)
    assert [job.failed for job in done] == ["permission denied"]  # reported once
    assert not (tmp_path / "out").exists()
    assert done[0].moved < 3 * CHUNK
