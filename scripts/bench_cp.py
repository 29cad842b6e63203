#!/usr/bin/env python3
"""Benchmark ``ssmsh cp`` against the local emulator at the official agent's pace.

One ``ssmsh emulator --agent-pacing`` process (1 KiB per message and a 1 ms pause,
as the official agent sends a terminal's output) and ``ssmsh cp`` runs against it:
the same random file (``--size`` MiB, 64 by default) downloaded and uploaded with
``-j 1`` (the baseline, measured in the same run) and each ``--jobs`` value, each
checked by SHA-256. Then a resume: a download interrupted (SIGINT) once about a
third is moved, carried on with ``--resume``; the script prints how much the second
run moved against what was missing.

Prints MB/s (10^6 bytes) per run, the ratio to the ``-j 1`` rate, the client's CPU
seconds per MB, and the issue's target (>= 4x at -j 8 for downloads). The emulator
runs every session's agent on one asyncio loop in one process, where the official
agent runs a process per session: its emulator CPU is printed too, as the limit to
look at when the ratio falls short.

Usage: python scripts/bench_cp.py [--size MiB] [--jobs 2,4,8] [--directions down,up]
                                  [--no-resume]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = "i-0123456789abcdef0"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its waited-for children."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = sum(int(x) for x in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def env() -> dict[str, str]:
    out = dict(os.environ)
    out.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )
    out["PYTHONPATH"] = str(ROOT) + os.pathsep + out.get("PYTHONPATH", "")
    return out


async def start_emulator() -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ssmsh", "emulator", "--agent-pacing",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env(),
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    return proc, line.decode().strip()


async def cp(endpoint: str, *words: str) -> tuple[float, float, str]:
    """Run ``ssmsh cp``; (seconds, CPU seconds, stderr)."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ssmsh", "cp", "-v", "--endpoint-url", endpoint, *words,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env(),
    )  # fmt: skip
    _, err = await proc.communicate()
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"ssmsh cp {' '.join(words)} failed ({proc.returncode}): {err.decode()}")
    return elapsed, _child_cpu(), err.decode()


_last_children = [0.0]


def _child_cpu() -> float:
    """CPU of children waited for since the last call (the cp process just ended)."""
    times = os.times()
    total = times.children_user + times.children_system
    used, _last_children[0] = total - _last_children[0], total
    return used


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=64, help="MiB to copy each way (default 64)")
    parser.add_argument("--jobs", default="2,4,8", help="-j values besides 1 (default 2,4,8)")
    parser.add_argument("--directions", default="down,up", help="down, up or both (default)")
    parser.add_argument("--no-resume", action="store_true", help="skip the interrupted copy")
    args = parser.parse_args()
    jobs = [1, *(int(j) for j in args.jobs.split(",") if j)]
    size = args.size << 20
    emulator, endpoint = await start_emulator()
    print(f"emulator {endpoint} (--agent-pacing); file {args.size} MiB; -j {jobs}")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-cp-") as tmp:
            work = Path(tmp)
            source = work / "source"
            with source.open("wb") as f:
                for _ in range(args.size):
                    f.write(os.urandom(1 << 20))
            want = digest(source)
            for direction in args.directions.split(","):
                base = None
                for j in jobs:
                    out = work / f"{direction}-{j}"
                    out.mkdir()
                    emulator_cpu = cpu_seconds(emulator.pid)
                    if direction == "down":
                        seconds, cpu, _ = await cp(
                            endpoint, "-j", str(j), f"{TARGET}:{source}", str(out)
                        )
                    else:
                        seconds, cpu, _ = await cp(
                            endpoint, "-j", str(j), str(source), f"{TARGET}:{out}"
                        )
                    emulator_cpu = cpu_seconds(emulator.pid) - emulator_cpu
                    got = digest(out / "source")
                    assert got == want, f"{direction} -j {j}: SHA-256 differs"
                    rate = size / seconds / 1e6
                    base = base or rate
                    per_mb = cpu / (size / 1e6)
                    print(
                        f"{direction:4} -j {j}: {seconds:6.1f} s  {rate:6.2f} MB/s"
                        f"  x{rate / base:4.2f}  client {per_mb:.3f} CPU s/MB"
                        f"  emulator {emulator_cpu:5.1f} CPU s  sha256 ok"
                    )
                    (out / "source").unlink()
                if direction == "down" and len(jobs) > 1:
                    top = jobs[-1]
                    print(
                        f"     target: >= 4x at -j 8 (the official agent's pace per session);"
                        f" -j {top} above"
                    )
            if not args.no_resume:
                await resume(endpoint, work, source, size, want)
    finally:
        emulator.send_signal(signal.SIGTERM)
        await emulator.wait()
    return 0


async def resume(endpoint: str, work: Path, source: Path, size: int, want: str) -> None:
    out = work / "resumed"
    part = work / "resumed.ssmsh-part"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ssmsh", "cp", "-j", "4", "--endpoint-url", endpoint,
        f"{TARGET}:{source}", str(out),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env(),
    )  # fmt: skip
    original = source.read_bytes()
    chunk = 1 << 20

    def moved() -> int:
        try:
            data = part.read_bytes()
        except OSError:
            return 0
        return sum(
            chunk
            for i in range(0, len(data), chunk)
            if data[i : i + chunk] == original[i : i + chunk]
        )

    while moved() < size // 3 and proc.returncode is None:
        await asyncio.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    await proc.communicate()
    missing = size - moved()
    seconds, _, err = await cp(endpoint, "-j", "4", "--resume", f"{TARGET}:{source}", str(out))
    found = re.search(r"([0-9.]+) (MiB|KiB|B) moved", err)
    assert digest(out) == want, "resumed copy: SHA-256 differs"
    print(
        f"resume: interrupted with {missing / (1 << 20):.1f} MiB missing; the resumed run moved "
        f"{found.group(1) + ' ' + found.group(2) if found else '?'} in {seconds:.1f} s; sha256 ok"
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
