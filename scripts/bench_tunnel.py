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

It does so twice, each run with its own emulator and tunnel:

* *unpaced*: the emulated agent sends as fast as it can (32 KiB messages);
* *paced*: the emulated agent behaves like the real one (1 KiB per message and a
  1 ms pause, ``ssmsh emulator --agent-pacing``), which caps downloads near
  1 MB/s. There the ceiling of a download is the agent's pace, measured on this
  machine (1 KiB per ``asyncio.sleep(0.001)``), not the loopback.

With ``--sessions N`` it measures the pooled listener instead (``ssmsh forward
--sessions N``): one paced emulator, tunnels side by side to the same destination
(one plain, one pooled, and N plain ones in N processes: what N independent sessions
get from this emulator), and the same many-connection download through each, in turn
``--repeat`` times; it prints the median rates, the ratio pooled / one session (the
issue's target: >= 3.5x at N = 4) and pooled / N processes, plus the ceiling, N times
one session's agent pace, and the emulator's CPU.

MB is 10^6 bytes. The issue's targets are printed with the figures.

Usage: python scripts/bench_tunnel.py [--size MB] [--paced-size MB] [--concurrency N]
                                      [--runs unpaced,paced] [--message-size BYTES]
       python scripts/bench_tunnel.py --sessions N [--pool-size MB] [--concurrency N] [--repeat R]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import statistics
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
    # The emulator paces like the real agent by default; the unpaced run says so. Half-close
    # as in the figures of earlier sessions (the transfers end with one).
    argv = [sys.executable, "-m", "ssmsh", "emulator", "--agent-fin", "half-close"]
    argv.append("--agent-pacing" if pacing else "--no-agent-pacing")
    manager = process(*argv)
    proc = await manager.__aenter__()
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    url = line.decode().strip()
    if not url.startswith("http"):
        raise RuntimeError(f"the emulator did not start: {line!r}")
    return proc, url, manager


async def start_forward(
    url: str, dest_port: int, message_size: int | None, extra: tuple[str, ...] = ()
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
    argv += [*extra, TARGET, f"0:{dest_port}"]
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


#: The official plugin's figure from the issue: 0.58 MB/s each way.
OFFICIAL_MBPS = 0.58
TARGET_CPU = 0.07  # s/MB, both directions
TARGET_RSS = 60.0  # MB


async def agent_ceiling() -> float:
    """MB/s of an agent sending 1 KiB per ``asyncio.sleep(0.001)`` on this machine."""
    rounds = 500
    started = time.perf_counter()
    for _ in range(rounds):
        await asyncio.sleep(0.001)
    return 1024 * rounds / (time.perf_counter() - started) / 1e6


async def run(
    paced: bool, size: int, concurrency: int, message_size: int | None, destination: Destination
) -> None:
    """One emulator + one tunnel; the four transfers; one table."""
    emulator, url, emulator_cm = await start_emulator(paced)
    forward, port, forward_cm = await start_forward(url, destination.port, message_size)
    pid = forward.pid
    try:
        await timed("up", port, 1 << 20, 1, pid)  # warm up (imports, first stream)
        ceiling = await agent_ceiling() if paced else None
        print()
        print(
            f"{'paced' if paced else 'unpaced'} agent"
            f"{' (1 KiB per message, 1 ms pause)' if paced else ''}; "
            f"{size / 1e6:g} MB per test; MB = 10^6 bytes"
        )
        header = (
            f"{'test':<14}{'tunnel MB/s':>12}{'ceiling MB/s':>14}{'ratio':>7}"
            f"{'CPU s/MB':>10}  ceiling"
        )
        print(header)
        print("-" * (len(header) + 14))
        worst_cpu = 0.0
        for n in (1, concurrency):
            for kind in ("up", "down"):
                tunnel = await timed(kind, port, size, n, pid)
                if paced and kind == "down":
                    assert ceiling is not None
                    top, what = ceiling, "agent pace"
                else:
                    top, what = (await timed(kind, destination.port, size, n)).rate(size), "direct"
                assert tunnel.cpu is not None
                cpu = tunnel.cpu / (size / 1e6)
                worst_cpu = max(worst_cpu, cpu)
                label = f"{'upload' if kind == 'up' else 'download'} x{n}"
                print(
                    f"{label:<14}{tunnel.rate(size):>12.2f}{top:>14.1f}"
                    f"{tunnel.rate(size) / top:>7.3f}{cpu:>10.4f}  {what}"
                )
        rss = peak_rss_mb(pid)
        print(f"peak RSS of ssmsh forward: {rss:.1f} MB")
        print(
            f"targets: CPU <= {TARGET_CPU} s/MB ({'met' if worst_cpu <= TARGET_CPU else 'NOT met'},"
            f" worst {worst_cpu:.4f}); peak RSS <= {TARGET_RSS:g} MB"
            f" ({'met' if rss <= TARGET_RSS else 'NOT met'}); upload >= "
            f"{10 * OFFICIAL_MBPS:g} MB/s (10x the official plugin's {OFFICIAL_MBPS})"
        )
    finally:
        await forward_cm.__aexit__(None, None, None)  # type: ignore[attr-defined]
        await emulator_cm.__aexit__(None, None, None)  # type: ignore[attr-defined]
    del emulator


#: The issue's target for the pooled listener at N = 4.
TARGET_POOL_RATIO = 3.5


async def run_pool(
    sessions: int,
    size: int,
    concurrency: int,
    message_size: int | None,
    destination: Destination,
    repeat: int,
) -> float:
    """Paced downloads over many connections: one session, a pool of N, and N separate
    ``ssmsh forward`` processes of one session each (what N independent sessions get
    from this emulator), ``repeat`` times in turn; prints the medians and the ratio."""
    emulator, url, emulator_cm = await start_emulator(True)
    managers: list[object] = []

    async def forward(*extra: str) -> tuple[int, int]:
        proc, port, manager = await start_forward(url, destination.port, message_size, extra)
        managers.append(manager)
        return proc.pid, port

    try:
        single = await forward()
        pooled = await forward("--sessions", str(sessions))
        separate = [await forward() for _ in range(sessions)]
        # Warm up: imports, first streams, and every session of the pool (opened as the
        # connections of a burst find the others busy).
        for _, port in (single, pooled):
            await timed("down", port, 64 * 1024 * concurrency, concurrency)
        for _, port in separate:
            await timed("down", port, 64 * 1024, 1)
        ceiling = await agent_ceiling()
        rates: dict[str, list[float]] = {"one": [], "pool": [], "separate": []}
        cpu: dict[str, list[float]] = {"one": [], "pool": [], "separate": []}
        agent: dict[str, list[float]] = {"one": [], "pool": [], "separate": []}
        share = max(1, concurrency // sessions)
        for _ in range(repeat):
            for name, pid, port in (("one", *single), ("pool", *pooled)):
                before = cpu_seconds(emulator.pid)
                result = await timed("down", port, size, concurrency, pid)
                assert result.cpu is not None
                rates[name].append(result.rate(size))
                cpu[name].append(result.cpu / (size / 1e6))
                agent[name].append((cpu_seconds(emulator.pid) - before) / result.seconds)
            before = cpu_seconds(emulator.pid)
            started = time.perf_counter()
            await asyncio.gather(
                *(timed("down", port, size // sessions, share) for _, port in separate)
            )
            elapsed = time.perf_counter() - started
            rates["separate"].append(size / 1e6 / elapsed)
            cpu["separate"].append(float("nan"))
            agent["separate"].append((cpu_seconds(emulator.pid) - before) / elapsed)
        print()
        print(
            f"paced agent (1 KiB per message, 1 ms pause); download x{concurrency}, "
            f"{size / 1e6:g} MB per test, median of {repeat}; MB = 10^6 bytes"
        )
        header = (
            f"{'tunnel':<34}{'MB/s':>8}{'ceiling MB/s':>14}{'CPU s/MB':>10}{'emulator CPU':>14}"
        )
        print(header)
        print("-" * len(header))
        rows = (
            ("one", "one session", ceiling),
            ("pool", f"--sessions {sessions}", ceiling * sessions),
            ("separate", f"{sessions} processes, one session each", ceiling * sessions),
        )
        for key, label, top in rows:
            own = statistics.median(cpu[key])
            shown = "-" if own != own else f"{own:.4f}"
            print(
                f"{label:<34}{statistics.median(rates[key]):>8.2f}{top:>14.2f}"
                f"{shown:>10}{statistics.median(agent[key]):>13.0%}"
            )
        ratio = statistics.median(p / o for p, o in zip(rates["pool"], rates["one"], strict=True))
        versus = statistics.median(
            p / s for p, s in zip(rates["pool"], rates["separate"], strict=True)
        )
        verdict = "met" if ratio >= TARGET_POOL_RATIO else "NOT met"
        print(
            f"ratio --sessions {sessions} / one session: {ratio:.2f}x "
            f"(target >= {TARGET_POOL_RATIO}x at N = 4: {verdict if sessions == 4 else 'n/a'}); "
            f"/ {sessions} separate processes: {versus:.2f}"
        )
        return ratio
    finally:
        for manager in reversed(managers):
            await manager.__aexit__(None, None, None)  # type: ignore[attr-defined]
        await emulator_cm.__aexit__(None, None, None)  # type: ignore[attr-defined]
        del emulator


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=float, default=64, help="MB per unpaced test (default 64)")
    parser.add_argument(
        "--paced-size", type=float, default=4, help="MB per paced test (default 4, ~5 s each)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="connections (default 32)")
    parser.add_argument(
        "--runs",
        default=None,
        help="which runs, comma-separated: unpaced, paced (default both; none with --sessions)",
    )
    parser.add_argument(
        "--sessions",
        type=int,
        default=None,
        metavar="N",
        help="measure ssmsh forward --sessions N against one session (paced, downloads)",
    )
    parser.add_argument(
        "--pool-size", type=float, default=8, help="MB per --sessions test (default 8)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="--sessions tests, in turn (default 3; medians)"
    )
    parser.add_argument(
        "--agent-pacing", action="store_true", help="only the paced run (same as --runs paced)"
    )
    parser.add_argument(
        "--message-size", type=int, default=None, help="ssmsh forward --message-size"
    )
    args = parser.parse_args()
    default_runs = "" if args.sessions else "unpaced,paced"
    text = args.runs if args.runs is not None else default_runs
    runs = ["paced"] if args.agent_pacing else [r.strip() for r in text.split(",") if r.strip()]
    if (not runs and not args.sessions) or any(r not in ("unpaced", "paced") for r in runs):
        parser.error("--runs takes unpaced, paced or both")
    if args.concurrency < 1 or args.size <= 0 or args.paced_size <= 0 or args.pool_size <= 0:
        parser.error("sizes and --concurrency must be positive")
    if args.sessions is not None and not 2 <= args.sessions <= 64:
        parser.error("--sessions takes 2 to 64")
    if args.repeat < 1:
        parser.error("--repeat must be positive")

    destination = Destination()
    await destination.start()
    print(f"ssmsh forward through the emulator; {args.concurrency} concurrent connections")
    for name in runs:
        paced = name == "paced"
        size = int((args.paced_size if paced else args.size) * 1e6)
        await run(paced, size, args.concurrency, args.message_size, destination)
    if args.sessions:
        size = int(args.pool_size * 1e6)
        await run_pool(
            args.sessions, size, args.concurrency, args.message_size, destination, args.repeat
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
