#!/usr/bin/env python3
"""Keystroke-to-echo latency and time to the first prompt of ``ssmsh shell``.

Everything on loopback: ``ssmsh emulator`` (its agent paced like the official one, and
its pty read 1 s after start, as the official agent's), and ``ssmsh shell`` in a pty
that this script drives as a terminal would. For each of N keystrokes (a letter, after
the previous echo came back), it takes the time from writing the key to the pty until
its echo is read back, and prints p50 / p90 / p99. As the baseline, measured in the same
run: the same keystrokes to ``sh`` in a local pty (no network, no agent), so the ratio
shows what the session adds.

Time to the first prompt: from starting ``ssmsh shell`` to the prompt on its pty, with
the baseline of the agent's own 1 s start delay (what no client can avoid).

If ``SSMSH_OFFICIAL_PLUGIN`` names a session-manager-plugin binary, the same
measurement runs for it through the AWS CLI (``aws ssm start-session``) against the
emulator, when ``aws`` is on PATH.

The official agent pauses 1 ms after each message it sends, and the emulator's agent
does the same by default: a key typed right after the previous echo may wait for that
pause. ``--no-agent-pacing`` leaves it out, to show what ssmsh and the emulator add.

Measured here (2 cores, loopback): ssmsh p50 1.8 ms / p99 2.3 ms paced, 0.6 / 1.1 ms
unpaced; the local pty 0.01 ms. Before receive holds ended on input (see
``ReadGate.input_sent``) every echo of fast typing waited up to 30 ms.

Usage: python scripts/bench_latency.py [--keys N] [--runs R] [--no-agent-pacing]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pty
import select
import shutil
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = "i-0123456789abcdef0"


class Pty:
    """A child process on a pty, read and written like a terminal."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child
            try:
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        self.seen = bytearray()

    def read_until(self, needle: bytes, timeout: float) -> float:
        """Read until ``needle`` appears in what came since the last call; returns when."""
        deadline = time.monotonic() + timeout
        start = len(self.seen)
        while needle not in self.seen[start:]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {needle!r} in {bytes(self.seen[-200:])!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    raise EOFError(bytes(self.seen[-200:])) from None
                if not data:
                    raise EOFError(bytes(self.seen[-200:]))
                self.seen += data
        return time.monotonic()

    def read_until_prompt(self, timeout: float) -> float:
        """Until a shell prompt (``$ `` or, as root, ``# ``) comes; returns when."""
        start = len(self.seen)
        deadline = time.monotonic() + timeout
        while True:
            try:
                when = self.read_until(b" ", max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise TimeoutError(f"no prompt in {bytes(self.seen[-200:])!r}") from None
            if self.seen[start:].rstrip().endswith((b"$", b"#")):
                return when

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.02)
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


def echo_latencies(term: Pty, keys: int) -> list[float]:
    """Type ``keys`` letters one at a time, each after the previous echo; the delays."""
    times = []
    letters = b"abcdefghijklmnopqrstuvwxyz"
    for i in range(keys):
        key = letters[i % len(letters) : i % len(letters) + 1]
        start = time.monotonic()
        term.write(key)
        end = term.read_until(key, 10)
        times.append(end - start)
        if i % 40 == 39:  # keep the line short: erase what was typed
            term.write(b"\x15")  # Ctrl-U
            time.sleep(0.01)
    term.write(b"\x15")
    return times


def summary(times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    q = statistics.quantiles(ms, n=100)
    return f"p50 {q[49]:6.2f} ms  p90 {q[89]:6.2f} ms  p99 {q[98]:6.2f} ms  (n={len(ms)})"


def start_emulator(env: dict[str, str], extra: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ssmsh", "emulator", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().decode().strip()
    if not url.startswith("http"):
        raise RuntimeError(f"the emulator did not start: {url!r}")
    return proc, url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=300, help="keystrokes per run (300)")
    parser.add_argument("--runs", type=int, default=3, help="sessions to time the start of (3)")
    parser.add_argument(
        "--no-agent-pacing",
        action="store_true",
        help="the emulator's agent without the official agent's 1 ms pause after each "
        "message: what ssmsh and the emulator add on their own",
    )
    args = parser.parse_args()

    env = dict(
        os.environ,
        PYTHONPATH=ROOT,
        AWS_ACCESS_KEY_ID="AKIDBENCH",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        TERM="xterm",
        PS1="$ ",
        ENV="",
    )
    shell_env = dict(env)

    print("keystroke to echo (each key after the previous echo):")
    local = Pty(["sh"], shell_env)
    try:
        local.read_until_prompt(10)
        base = echo_latencies(local, args.keys)
    finally:
        local.close()
    print(f"  local pty (sh)        {summary(base)}")

    extra = ["--no-agent-pacing"] if args.no_agent_pacing else []
    emulator, url = start_emulator(env, extra)
    try:
        starts = []
        times: list[float] = []
        for run in range(args.runs):
            begin = time.monotonic()
            term = Pty(
                [sys.executable, "-m", "ssmsh", "-q", "--endpoint-url", url, "shell", TARGET], env
            )
            try:
                starts.append(term.read_until_prompt(30) - begin)
                if run == 0:
                    time.sleep(0.2)
                    times = echo_latencies(term, args.keys)
                term.write(b"exit\r")
            finally:
                term.close()
        print(f"  ssmsh shell           {summary(times)}")
        p50 = statistics.median(times) / statistics.median(base)
        print(f"  ratio to the local pty: p50 x{p50:.1f}")
        official = os.environ.get("SSMSH_OFFICIAL_PLUGIN")
        if official and shutil.which("aws"):
            plugin_dir = os.path.dirname(os.path.abspath(official))
            penv = dict(env, PATH=plugin_dir + os.pathsep + env.get("PATH", ""))
            argv = ["aws", "ssm", "start-session", "--endpoint-url", url, "--target", TARGET]
            term = Pty(argv, penv)
            try:
                term.read_until_prompt(30)
                time.sleep(0.2)
                print(f"  official plugin       {summary(echo_latencies(term, args.keys))}")
            finally:
                term.close()
        print("\ntime to the first prompt:")
        print(
            f"  ssmsh shell           median {statistics.median(starts):.3f} s "
            f"(min {min(starts):.3f}, max {max(starts):.3f}, n={len(starts)})"
        )
        print("  the agent's own pty start delay: 1.000 s (--pty-start-delay; official agent)")
    finally:
        emulator.send_signal(signal.SIGINT)
        emulator.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
