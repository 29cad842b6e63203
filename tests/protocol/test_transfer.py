"""The ``ssmsh cp`` helper, run by real shells in a real pty as the official agent runs an
InteractiveCommands command (``sh -c TEXT`` in a pty), driven through its protocol."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pty
import random
import select
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from ssmsh.protocol.status_trailer import new_marker
from ssmsh.protocol.transfer import (
    BLOCK,
    QUIT,
    HelperOutput,
    HelperReady,
    Reply,
    TransferProtocolError,
    helper_script,
    parse_entries,
    parse_hashes,
    parse_paths,
    parse_stat,
    request,
)

pytestmark = pytest.mark.timeout(60)

#: What the helper uses, for a PATH that holds only these.
TOOLS = (
    "sh", "head", "dd", "cat", "stty", "printf", "base64", "od", "tr", "sha256sum", "wc",
    "stat", "find", "mv", "chmod", "touch", "mkdir", "rm", "gzip",
)  # fmt: skip


def _toolbox(tmp: Path, source: str | None, leave_out: tuple[str, ...] = ()) -> dict[str, str]:
    """A PATH of symlinks to ``source`` (busybox) or to the system's own tools."""
    box = tmp / "bin"
    box.mkdir()
    for tool in TOOLS:
        if tool in leave_out:
            continue
        real = source or shutil.which(tool)
        if real:
            (box / tool).symlink_to(real)
    return {"PATH": str(box)}


class Helper:
    """The helper under a pty, driven as the client drives it."""

    def __init__(self, shell: str, env: dict[str, str], cwd: Path) -> None:
        self.marker = new_marker()
        self.output = HelperOutput(self.marker)
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child
            os.chdir(cwd)
            os.environ.update(env)
            os.environ["HOME"] = str(cwd)
            program = shutil.which(shell, path=env.get("PATH")) or shell
            os.execv(program, [program, "-c", helper_script(self.marker)])
        os.set_blocking(self.fd, False)
        self.events: list[HelperReady | Reply] = []
        self.ready = self._next()
        assert isinstance(self.ready, HelperReady)

    def _next(self, send: bytes = b"") -> HelperReady | Reply:
        pending = bytearray(send)
        while not self.events:
            readable, writable, _ = select.select([self.fd], [self.fd] if pending else [], [], 20)
            assert readable or writable, "stuck"
            if readable:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    raise EOFError(self.output.preamble)
                self.events += self.output.feed(data)
            if writable:
                with contextlib.suppress(BlockingIOError):
                    del pending[: os.write(self.fd, pending)]
        assert not pending, "replied before all was sent"
        return self.events.pop(0)

    def call(
        self, operation: str, numbers: tuple[int | str, ...], *paths: bytes, data: bytes = b""
    ) -> Reply:
        reply = self._next(request(operation, numbers, paths) + data)
        assert isinstance(reply, Reply)
        return reply

    def close(self) -> int:
        with contextlib.suppress(OSError):
            os.write(self.fd, QUIT)
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return status


@pytest.fixture(params=["sh", "bash", "busybox"])
def helper(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Helper]:
    if request.param == "busybox":
        busybox = shutil.which("busybox")
        if not busybox:
            pytest.skip("no busybox here")
        env = _toolbox(tmp_path, busybox)
    elif not shutil.which(request.param):
        pytest.skip(f"no {request.param} here")
    else:
        env = {}
    work = tmp_path / "work"
    work.mkdir()
    running = Helper("sh" if request.param == "busybox" else request.param, env, work)
    yield running
    assert running.close() == 0


def test_it_says_what_it_found(helper: Helper) -> None:
    caps = helper.ready.capabilities  # type: ignore[union-attr]
    assert caps.encoder == "base64" and caps.hasher == "sha256sum" and caps.compressor == "gzip"
    assert caps.reader in ("head", "dd") and caps.missing() is None


def test_every_byte_value_goes_up_and_comes_back(helper: Helper, tmp_path: Path) -> None:
    data = bytes(range(256)) * 300 + random.Random(3).randbytes(3 * BLOCK + 123)
    target = str(tmp_path / "work" / "up load 'q'").encode()
    assert helper.call("size", (len(data),), target).ok
    # Out of order, as parallel sessions write: the second block first.
    assert helper.call("write", (2, len(data) - 2 * BLOCK), target, data=data[2 * BLOCK :]).ok
    assert helper.call("write", (0, 2 * BLOCK), target, data=data[: 2 * BLOCK]).ok
    assert Path(target.decode()).read_bytes() == data
    whole = helper.call("read", (0, 100), target)
    assert whole.ok and whole.payload == data
    part = helper.call("read", (1, 2), target)
    assert part.payload == data[BLOCK : 3 * BLOCK]
    squeezed = helper.call("readz", (1, 2), target)
    assert zlib.decompress(squeezed.payload, wbits=31) == data[BLOCK : 3 * BLOCK]
    digest = helper.call("hash", (), target)
    assert parse_hashes(digest.payload) == [hashlib.sha256(data).hexdigest()]
    chunks = parse_hashes(helper.call("hashes", (2, 3), target).payload)
    assert chunks == [
        hashlib.sha256(data[i * 2 * BLOCK : (i + 1) * 2 * BLOCK]).hexdigest() for i in range(3)
    ]


def test_stat_list_and_commit(helper: Helper, tmp_path: Path) -> None:
    root = tmp_path / "work" / "tree"
    (root / "sub dir").mkdir(parents=True)
    (root / "sub dir" / "new\nline").write_bytes(b"12345")
    (root / "empty").write_bytes(b"")
    os.chmod(root / "empty", 0o640)
    entries = parse_entries(helper.call("list", (), b"tree").payload)
    assert entries[0].path == b"tree" and entries[0].kind == "d"
    found = {e.path: (e.kind, e.size, e.mode) for e in entries[1:]}
    assert found == {
        b"tree/sub dir": ("d", found[b"tree/sub dir"][1], 0o755 & ~0o022 | 0o755),
        b"tree/sub dir/new\nline": ("f", 5, found[b"tree/sub dir/new\nline"][2]),
        b"tree/empty": ("f", 0, 0o640),
    }
    entry = parse_stat(helper.call("stat", (), b"~/tree/empty").payload)
    assert (entry.kind, entry.size, entry.mode) == ("f", 0, 0o640)
    assert entry.mtime == int((root / "empty").stat().st_mtime)
    assert parse_stat(helper.call("stat", (), b"nothing").payload).kind == "n"
    assert helper.call("mkdir", ("700",), b"made/deep").ok
    assert (tmp_path / "work" / "made" / "deep").stat().st_mode & 0o777 == 0o700
    reply = helper.call("commit", ("600", "202001021504.05"), b"tree/empty", b"made/deep/moved")
    assert reply.ok, reply.message
    moved = (tmp_path / "work" / "made" / "deep" / "moved").stat()
    assert (moved.st_mode & 0o777, int(moved.st_mtime)) == (0o600, 1577977445)


def test_patterns_are_expanded_as_the_shell_does(helper: Helper, tmp_path: Path) -> None:
    for name in ("a 1.log", "b.log", "c.txt", "d.log.gz"):
        (tmp_path / "work" / name).write_bytes(b"x")
    assert parse_paths(helper.call("glob", (), b"*.log").payload) == [b"a 1.log", b"b.log"]
    home = str(tmp_path / "work").encode()
    assert parse_paths(helper.call("glob", (), b"~/c.*").payload) == [home + b"/c.txt"]
    assert parse_paths(helper.call("glob", (), b"*.nothing").payload) == []


def test_failures_are_one_line_and_the_helper_carries_on(helper: Helper, tmp_path: Path) -> None:
    missing = helper.call("read", (0, 1), b"no/such")
    assert (missing.status, missing.message) == (1, "no such file or directory")
    refused = helper.call("write", (0, 10), b"no/such/dir/f", data=b"0123456789")
    assert refused.status == 1 and "No such file or directory" in refused.message
    unknown = helper._next(b"00000004nope00000001x")
    assert isinstance(unknown, Reply) and unknown.message == "unknown operation"
    assert helper.call("stat", (), b"no/such").ok  # still in step after all that


@pytest.mark.parametrize("leave_out", [("base64", "stat", "gzip"), ("head",)])
def test_fallbacks_without_base64_stat_or_exact_head(
    tmp_path: Path, leave_out: tuple[str, ...]
) -> None:
    env = _toolbox(tmp_path, None, leave_out)
    (tmp_path / "work").mkdir()
    helper = Helper("sh", env, tmp_path / "work")
    caps = helper.ready.capabilities  # type: ignore[union-attr]
    assert caps.encoder == ("od" if "base64" in leave_out else "base64")
    assert caps.reader == ("dd" if "head" in leave_out else "head")
    assert caps.compressor == ("none" if "gzip" in leave_out else "gzip")
    data = random.Random(5).randbytes(5000)
    assert helper.call("size", (len(data),), b"f").ok
    assert helper.call("write", (0, len(data)), b"f", data=data).ok
    assert helper.call("read", (0, 1), b"f").payload == data
    entry = parse_stat(helper.call("stat", (), b"f").payload)
    assert entry.size == len(data)
    assert (entry.mode is None) == ("stat" in leave_out)
    assert helper.close() == 0


def test_a_target_without_a_hasher_says_so(tmp_path: Path) -> None:
    env = _toolbox(tmp_path, None, ("sha256sum",))
    (tmp_path / "work").mkdir()
    helper = Helper("sh", env, tmp_path / "work")
    if shutil.which("openssl", path=env["PATH"]) is None:
        assert helper.ready.capabilities.missing() == "sha256sum, openssl or shasum"  # type: ignore[union-attr]
    helper.close()


def test_output_parser_byte_at_a_time() -> None:
    marker = "ab" * 16
    stream = (
        b"motd\r\n\x1b]ssmsh-cp;" + marker.encode() + b";head,base64,sha256sum,gzip\x07"
        b"aGVs\nbG8=\n\n." + marker.encode() + b" 0\n"
        b"\n." + marker.encode() + b" 3\n"
    )
    output = HelperOutput(marker)
    events: list[HelperReady | Reply] = []
    for i in range(len(stream)):
        events += output.feed(stream[i : i + 1])
    assert events == [
        HelperReady(events[0].capabilities, b"motd\r\n"),  # type: ignore[union-attr]
        Reply(0, b"hello"),
        Reply(3, b""),
    ]


@pytest.mark.parametrize(
    "stream",
    [
        b"\x1b]ssmsh-cp;MARK;head\x07",
        b"\x1b]ssmsh-cp;MARK;head,base64,sha256sum,gzip\x07!!!\n.MARK 0\n",
        b"\x1b]ssmsh-cp;MARK;head,base64,sha256sum,gzip\x07\n.MARK zero\n",
    ],
)
def test_output_parser_refuses_garbage(stream: bytes) -> None:
    marker = "cd" * 16
    output = HelperOutput(marker)
    with pytest.raises(TransferProtocolError):
        output.feed(stream.replace(b"MARK", marker.encode()))


def test_requests_keep_paths_out_of_the_words() -> None:
    assert request("stat", (), [b"a b"]) == b"00000004stat00000003a b"
    for bad in (("rm -rf", ()), ("read", ("1;x",))):
        with pytest.raises(ValueError):
            request(bad[0], bad[1], [b"p"])
    with pytest.raises(ValueError):
        request("stat", (), [b"a\0b"])
