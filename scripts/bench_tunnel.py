#!/usr/bin/env python3
"""Benchmark ``ssmsh forward`` against the local emulator.

Three processes on loopback: the emulator (``ssmsh emulator``), the tunnel
(``ssmsh forward``) and this script, which runs the TCP source/sink the agent
connects to and the local clients. For one connection and for N concurrent ones
it moves the same amount of data up (client -> destination) and down
(destination -> client), through the tunnel and, as the ceiling, over a direct
loopback connection to the same server, and prints:

* MB/s for each direction, tunnel and direct, and their ratio;
* CPU seconds per MB of the ``ssmsh forward`` process (user + system, from
  /proc), for each direction;
* the peak RSS of the ``ssmsh forward`` process (VmHWM).

MB is 10^6 bytes. ``--agent-pacing`` makes the emulated agent send like the
real one (1 KiB per message, 1 ms pause), which caps downloads at ~1 MB/s.

Usage: python scripts/bench_tunnel.py [--size MB] [--concurrency N] [--agent-pacing]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import struct
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = "i-0123456789abcdef0"
CHUNK = 256 * 1024
BLOCK = os.urandom(CHUNK)  # incompressible, reused


# ------------------------------------------------------------------ the destination


class Destination:
    """``U`` + data: count until EOF, answer 8-byte count. ``D`` + size: send size bytes."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, limit=CHUNK * 2)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            mode = await reader.readexactly(1)
            if mode == b"U":
                total = 0
                while data := await reader.read(CHUNK * 2):
                    total += len(data)
                writer.write(struct.pack(">Q", total))
            else:
                (size,) = struct.unpack(">Q", await reader.readexactly(8))
                view = memoryview(BLOCK)
                while size > 0:
                    piece = view[: min(size, CHUNK)]
                    writer.write(piece)
                    size -= len(piece)
                    await writer.drain()
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def upload(port: int, size: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=CHUNK * 2)
    writer.write(b"U")
    view = memoryview(BLOCK)
    left = size
    while left > 0:
        piece = view[: min(left, CHUNK)]
        writer.write(piece)
        left -= len(piece)
        await writer.drain()
    writer.write_eof()
    (count,) = struct.unpack(">Q", await reader.readexactly(8))
    writer.close()
    if count != size:
        raise RuntimeError(f"upload: destination got {count} bytes, expected {size}")


async def download(port: int, size: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=CHUNK * 2)
    writer.write(b"D" + struct.pack(">Q", size))
    got = 0
    while got < size:
        data = await reader.read(CHUNK * 2)
        if not data:
            raise RuntimeError(f"download: EOF after {got} of {size} bytes")
        got += len(data)
    writer.close()


# ------------------------------------------------------------------ processes


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.asynccontextmanager
async def process(
    *argv: str, env: dict[str, str] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def start_emulator(pacing: bool) -> tuple[asyncio.subprocess.Process, str, object]:
    argv = [sys.executable, "-m", "ssmsh", "emulator"]
    if pacing:
        argv.append("--agent-pacing")
    manager = process(*argv)
    proc = await manager.__aenter__()
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    url = line.decode().strip()
    if not url.startswith("http"):
        raise RuntimeError(f"the emulator did not start: {line!r}")
    return proc, url, manager


async def start_forward(
    url: str, dest_port: int, message_size: int | None
) -> tuple[asyncio.subprocess.Process, int, object]:
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID="AKIDSSMSHBENCH000000",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    argv = [sys.executable, "-m", "ssmsh", "--endpoint-url", url, "forward", "-v"]
    if message_size:
        argv += ["--message-size", str(message_size)]
    argv += [TARGET, f"0:{dest_port}"]
    manager = process(*argv, env=env)
    proc = await manager.__aenter__()
    assert proc.stderr is not None
    port = 0
    async with asyncio.timeout(30):
        while True:
            line = (await proc.stderr.readline()).decode()
            if not line:
                raise RuntimeError("ssmsh forward ended before it was ready")
            if match := re.search(r"listening on 127\.0\.0\.1:(\d+)", line):
                port = int(match.group(1))
            if "ready (" in line:
                break
    # Keep draining stderr (the -v lines) so the pipe never fills up.
    asyncio.get_running_loop().create_task(_drain(proc.stderr))
    return proc, port, manager


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


# ------------------------------------------------------------------ measuring


@dataclass
class Result:
    seconds: float
    cpu: float | None = None

    def rate(self, size: int) -> float:
        return size / 1e6 / self.seconds


async def timed(
    kind: str, port: int, size: int, concurrency: int, pid: int | None = None
) -> Result:
    each = size // concurrency
    action = upload if kind == "up" else download
    cpu_before = cpu_seconds(pid) if pid else 0.0
    started = time.perf_counter()
    await asyncio.gather(*(action(port, each) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu_before if pid else None
    return Result(elapsed, cpu)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=float, default=64, help="MB per test (default 64)")
    parser.add_argument("--concurrency", type=int, default=32, help="connections (default 32)")
    parser.add_argument(
        "--agent-pacing", action="store_true", help="emulate the real agent's 1 KiB / 1 ms sends"
    )
    parser.add_argument(
        "--message-size", type=int, default=None, help="ssmsh forward --message-size"
    )
    args = parser.parse_args()
    size = int(args.size * 1e6)

    destination = Destination()
    await destination.start()
    emulator, url, emulator_cm = await start_emulator(args.agent_pacing)
    forward, port, forward_cm = await start_forward(url, destination.port, args.message_size)
    pid = forward.pid
    try:
        await timed("up", port, 1 << 20, 1, pid)  # warm up (imports, first stream)
        print(
            f"ssmsh forward through the emulator ({'paced' if args.agent_pacing else 'unpaced'}"
            f" agent); {size / 1e6:g} MB per test; MB = 10^6 bytes"
        )
        header = (
            f"{'test':<18}{'tunnel MB/s':>12}{'direct MB/s':>13}{'ratio':>8}{'ssmsh CPU s/MB':>16}"
        )
        print(header)
        print("-" * len(header))
        for concurrency in (1, args.concurrency):
            for kind in ("up", "down"):
                tunnel = await timed(kind, port, size, concurrency, pid)
                direct = await timed(kind, destination.port, size, concurrency)
                label = f"{'upload' if kind == 'up' else 'download'} x{concurrency}"
                assert tunnel.cpu is not None
                print(
                    f"{label:<18}{tunnel.rate(size):>12.1f}{direct.rate(size):>13.1f}"
                    f"{tunnel.rate(size) / direct.rate(size):>8.3f}"
                    f"{tunnel.cpu / (size / 1e6):>16.4f}"
                )
        print(f"peak RSS of ssmsh forward: {peak_rss_mb(pid):.1f} MB")
    finally:
        await forward_cm.__aexit__(None, None, None)  # type: ignore[attr-defined]
        await emulator_cm.__aexit__(None, None, None)  # type: ignore[attr-defined]
    del emulator
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
