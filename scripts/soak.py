#!/usr/bin/env python3
"""Soak ssmsh's reconnect logic: mixed shell and tunnel traffic under injected faults.

Everything runs in this process, on loopback: the emulator (API, gateway and agent,
with its fault injection), the production client (``SsmSessions`` over boto3,
``SessionConnection``, ``ForwardSession``), an echo server behind the tunnel and the
workloads. For ``--duration`` seconds:

* tunnel: ``--streams`` connections at a time through one port session, each echoing
  a seeded random payload of up to ``--transfer-size`` bytes, compared byte for byte;
* shell: one shell session running ``seq A B`` commands one after another (typed
  whatever the connection state, so many are typed during outages), every output
  line checked: each number once, in order;
* faults: the gateway closes each WebSocket every ``--close-every`` seconds (1000
  "Bye") or resets it every ``--reset-every``, drops / duplicates / reorders data
  messages both ways, and on top of that goes silent (no data, no pongs) every
  ``--silence-every`` seconds and pauses publication every ``--pause-every``.

It prints the reconnect count, the median / p95 / worst time from a lost link to
the first data received after it came back, the bytes moved, and the bytes lost,
duplicated or corrupted, then exits 1 if any byte was lost, duplicated or corrupted
or a session failed, else 0.

Usage: python scripts/soak.py [--duration 300] [--seed 1] [--close-every 2] ...
       (``--help`` for all options; sizes accept KiB/MiB/GiB suffixes)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ssmsh.aws import AwsSettings, SsmSessions, StaticCredentials  # noqa: E402
from ssmsh.channel import (  # noqa: E402
    ConnectionConfig,
    ConnectionState,
    OutputReceived,
    SessionConnection,
    StateChange,
)
from ssmsh.emulator import DEFAULT_TARGET, Emulator, EmulatorConfig  # noqa: E402
from ssmsh.emulator.faults import FaultConfig  # noqa: E402
from ssmsh.tunnel.config import TunnelConfig  # noqa: E402
from ssmsh.tunnel.gate import HandlerGate  # noqa: E402
from ssmsh.tunnel.listeners import open_listener  # noqa: E402
from ssmsh.tunnel.session import ForwardSession  # noqa: E402
from ssmsh.tunnel.spec import parse_spec  # noqa: E402

PROMPT = "soak$ "
CREDENTIALS = StaticCredentials("AKIDSSMSHSOAK0000000", "ssmsh-soak-secret")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]i?B?|B)?\s*$", re.I)
_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def parse_size(text: str) -> int:
    match = _SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 8MiB, 65536)")
    unit = (match.group(2) or "").upper()[:1]
    return int(float(match.group(1)) * _UNITS[unit])


def human(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"  # pragma: no cover


# ------------------------------------------------------------------ accounting


@dataclasses.dataclass
class Tally:
    """Bytes moved and damaged, and what went wrong."""

    moved: int = 0
    lost: int = 0
    duplicated: int = 0
    corrupted: int = 0
    operations: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)

    def check(self, what: str, expected: bytes, got: bytes) -> None:
        """Account one result against what was expected."""
        self.operations += 1
        self.moved += len(got)
        if got == expected:
            return
        if len(got) < len(expected):
            self.lost += len(expected) - len(got)
        elif len(got) > len(expected):
            self.duplicated += len(got) - len(expected)
        else:
            self.corrupted += sum(a != b for a, b in zip(got, expected, strict=True))
        self.errors.append(f"{what}: expected {len(expected)} bytes, got {len(got)} (differ)")


class Recovery:
    """Time from each lost link to the first data received after it came back."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop = asyncio.get_running_loop()
        self.conn: SessionConnection | None = None
        self.lost_at: float | None = None
        self.losses = 0
        self.reconnects = 0
        self.samples: list[float] = []

    def on_state(self, change: StateChange) -> None:
        if change.old is ConnectionState.CONNECTED and change.new is ConnectionState.RECONNECTING:
            self.losses += 1
            if self.lost_at is None:
                self.lost_at = self.loop.time()
        elif change.old is ConnectionState.RECONNECTING and change.new is ConnectionState.CONNECTED:
            self.reconnects += 1

    def on_data(self) -> None:
        if self.lost_at is None or self.conn is None:
            return
        if self.conn.state is ConnectionState.CONNECTED:
            self.samples.append(self.loop.time() - self.lost_at)
            self.lost_at = None


# ------------------------------------------------------------------ workloads


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 18):
            writer.write(data)
            await writer.drain()
        writer.write_eof()
        await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def echo_once(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 18)

    async def send() -> None:
        view = memoryview(payload)
        for start in range(0, len(view), 1 << 16):
            writer.write(view[start : start + (1 << 16)])
            await writer.drain()
        writer.write_eof()

    sender = asyncio.create_task(send())
    parts: list[bytes] = []
    try:
        while data := await reader.read(1 << 18):
            parts.append(data)
        await sender
    finally:
        sender.cancel()
        writer.close()
    return b"".join(parts)


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.stop = asyncio.Event()
        self.tunnel = Tally()
        self.shell = Tally()
        self.recoveries: list[Recovery] = []
        self.connection_config = ConnectionConfig(
            ping_interval=args.keepalive,
            ping_timeout=args.keepalive,
            backoff_initial=0.05,
            backoff_max=1.0,
            reconnect_budget=120.0,
            max_payload_size=TunnelConfig().max_message_size,
        )

    def faults(self) -> FaultConfig:
        a = self.args
        return FaultConfig(
            close_every=a.close_every or None,
            reset_every=a.reset_every or None,
            drop=a.drop,
            duplicate=a.duplicate,
            reorder=a.reorder,
            delay_ms=a.delay_ms,
            seed=a.seed,
        )

    async def connect(
        self, sessions: SsmSessions, name: str, document: str | None, params: dict[str, list[str]]
    ) -> tuple[SessionConnection, Recovery]:
        info = await sessions.start_session(DEFAULT_TARGET, document, params)
        recovery = Recovery(name)
        conn = SessionConnection(
            info, sessions, config=self.connection_config, on_state_change=recovery.on_state
        )
        recovery.conn = conn
        self.recoveries.append(recovery)
        await conn.start()
        return conn, recovery

    # -------------------------------------------------------------- tunnel

    async def run_tunnel(self, sessions: SsmSessions, dest_port: int) -> None:
        spec = parse_spec(f"0:{dest_port}")
        gate = HandlerGate()
        listener = await open_listener(spec, gate)
        conn, recovery = await self.connect(
            sessions, "tunnel", spec.document_name, spec.document_parameters(listener.port)
        )
        receive = conn.receive

        async def timed_receive() -> Any:
            event = await receive()
            recovery.on_data()
            return event

        conn.receive = timed_receive  # type: ignore[method-assign]
        forward = ForwardSession(conn, listener, gate, remote_label="soak", report=lambda _: None)
        runner = asyncio.create_task(forward.run())
        assert listener.port is not None
        port = listener.port
        try:
            streams = [
                asyncio.create_task(self._stream(port, n, runner)) for n in range(self.args.streams)
            ]
            await asyncio.gather(*streams)
        finally:
            runner.cancel()
            with contextlib.suppress(BaseException):
                await runner
            await forward.terminate()

    async def _stream(self, port: int, number: int, runner: asyncio.Task[None]) -> None:
        rng = random.Random(self.args.seed * 1000 + number)
        top = self.args.transfer_size
        count = 0
        while not self.stop.is_set():
            count += 1
            size = rng.randint(max(1, top // 4), top)
            payload = hashlib.shake_256(f"{self.args.seed}/{number}/{count}".encode()).digest(size)
            if runner.done():
                self.tunnel.errors.append(f"tunnel ended: {runner.exception()!r}")
                return
            try:
                got = await asyncio.wait_for(echo_once(port, payload), self.args.op_timeout)
            except (OSError, TimeoutError) as exc:
                self.tunnel.lost += size * 2
                self.tunnel.errors.append(f"stream {number} transfer {count}: {exc!r}")
                return
            self.tunnel.moved += size  # the upload; check() adds the echo
            self.tunnel.check(f"stream {number} transfer {count}", payload, got)

    # -------------------------------------------------------------- shell

    async def run_shell(self, sessions: SsmSessions) -> None:
        conn, recovery = await self.connect(sessions, "shell", None, {})
        output = bytearray()

        async def read_until(marker: bytes) -> bytes:
            while marker not in output:
                event = await conn.receive()
                if event is None:
                    raise RuntimeError("the shell session ended")
                if type(event) is OutputReceived:
                    recovery.on_data()
                    output.extend(event.data)
            end = output.index(marker) + len(marker)
            taken = bytes(output[:end])
            del output[:end]
            return taken

        rng = random.Random(self.args.seed + 7)
        prompt = PROMPT.encode()
        try:
            async with asyncio.timeout(self.args.op_timeout):
                await read_until(prompt)
                await conn.send_input(b"stty -echo; echo READY\r")
                await read_until(b"READY\r\n" + prompt)
            count = 0
            while not self.stop.is_set():
                count += 1
                first = rng.randint(1, 1_000_000)
                last = first + rng.randint(1, self.args.shell_lines)
                await conn.send_input(f"seq {first} {last}; echo END-{count}\r".encode())
                async with asyncio.timeout(self.args.op_timeout):
                    text = await read_until(f"END-{count}\r\n".encode() + prompt)
                body = text[: -len(f"END-{count}\r\n".encode() + prompt)]
                expected = "".join(f"{n}\r\n" for n in range(first, last + 1)).encode()
                self.shell.check(f"seq {first} {last}", expected, body)
        except (TimeoutError, RuntimeError, OSError) as exc:
            self.shell.errors.append(f"shell: {exc!r}")
        finally:
            await conn.close()

    # -------------------------------------------------------------- chaos

    async def every(self, period: float, action: Callable[[], Awaitable[None]]) -> None:
        """Run ``action`` at seeded random times, ``period`` seconds apart on average."""
        rng = random.Random(self.args.seed + int(period * 1000))
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(rng.uniform(0.5, 1.5) * period):
                    await self.stop.wait()
            if not self.stop.is_set():
                await action()

    # -------------------------------------------------------------- main

    async def run(self) -> int:
        a = self.args
        config = EmulatorConfig(
            shell="/bin/sh",
            environment={"PS1": PROMPT, "ENV": "/dev/null"},
            faults=self.faults(),
            agent_pacing=a.agent_pacing,
            # The transfers end with a half-close, which the official agent does not keep.
            agent_fin="half-close",
            # Megabytes through drops: the official agent's one-per-tick resending is slow.
            agent_resend="selective",
        )
        started = time.monotonic()
        async with Emulator(config) as emulator:
            gateway: Any = emulator.gateway
            sessions = SsmSessions(
                AwsSettings(
                    region="us-east-1", endpoint_url=emulator.endpoint_url, credentials=CREDENTIALS
                )
            )
            server = await asyncio.start_server(_echo, "127.0.0.1", 0, limit=1 << 18)
            dest_port = int(server.sockets[0].getsockname()[1])

            async def silence() -> None:
                gateway.set_silent(True)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(a.silence_for):
                        await self.stop.wait()
                gateway.set_silent(False)

            async def pause() -> None:
                gateway.pause_publication()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(a.pause_for):
                        await self.stop.wait()
                gateway.resume_publication()

            chaos = []
            if a.silence_every:
                chaos.append(asyncio.create_task(self.every(a.silence_every, silence)))
            if a.pause_every:
                chaos.append(asyncio.create_task(self.every(a.pause_every, pause)))
            work = []
            if a.streams:
                work.append(asyncio.create_task(self.run_tunnel(sessions, dest_port)))
            if a.shell:
                work.append(asyncio.create_task(self.run_shell(sessions)))
            progress = asyncio.create_task(self.progress(emulator, started))
            # Workloads only return early when they fail.
            await asyncio.wait(work, timeout=a.duration, return_when=asyncio.FIRST_COMPLETED)
            self.stop.set()  # no new operations; the ones under way finish
            await asyncio.gather(*chaos)
            gateway.set_silent(False)
            gateway.resume_publication()
            _, late = await asyncio.wait(work, timeout=a.op_timeout)
            for task in late:
                task.cancel()
            for task in work:
                if task.cancelled():
                    self.tunnel.errors.append("a workload did not finish in time")
                elif (error := task.exception()) is not None:
                    self.tunnel.errors.append(f"workload failed: {error!r}")
            progress.cancel()
            counters = dict(emulator.faults.counters)
            server.close()
        return self.report(counters, time.monotonic() - started)

    async def progress(self, emulator: Emulator, started: float) -> None:
        if not self.args.verbose:
            return
        while True:
            await asyncio.sleep(10)
            moved = self.tunnel.moved + self.shell.moved
            reconnects = sum(r.reconnects for r in self.recoveries)
            print(
                f"soak: {time.monotonic() - started:5.0f} s  moved {human(moved)}  "
                f"reconnects {reconnects}",
                file=sys.stderr,
                flush=True,
            )

    def report(self, counters: dict[str, int], elapsed: float) -> int:
        a = self.args
        samples = sorted(s for r in self.recoveries for s in r.samples)
        reconnects = sum(r.reconnects for r in self.recoveries)
        losses = sum(r.losses for r in self.recoveries)
        lost = self.tunnel.lost + self.shell.lost
        duplicated = self.tunnel.duplicated + self.shell.duplicated
        corrupted = self.tunnel.corrupted + self.shell.corrupted
        errors = self.tunnel.errors + self.shell.errors
        ok = not (lost or duplicated or corrupted or errors)

        def q(p: float) -> float:
            return samples[min(len(samples) - 1, int(p * len(samples)))] if samples else 0.0

        summary = {
            "seconds": round(elapsed, 1),
            "seed": a.seed,
            "faults": {k: v for k, v in sorted(counters.items())},
            "links_lost": losses,
            "reconnects": reconnects,
            "reconnects_by_session": {r.name: r.reconnects for r in self.recoveries},
            "loss_to_data_seconds": {
                "count": len(samples),
                "median": round(statistics.median(samples), 4) if samples else None,
                "p95": round(q(0.95), 4) if samples else None,
                "worst": round(samples[-1], 4) if samples else None,
            },
            "bytes_moved": self.tunnel.moved + self.shell.moved,
            "tunnel_bytes": self.tunnel.moved,
            "tunnel_transfers": self.tunnel.operations,
            "shell_bytes": self.shell.moved,
            "shell_commands": self.shell.operations,
            "bytes_lost": lost,
            "bytes_duplicated": duplicated,
            "bytes_corrupted": corrupted,
            "errors": errors,
            "ok": ok,
        }
        if a.json:
            print(json.dumps(summary, indent=2))
            return 0 if ok else 1
        injected = ", ".join(f"{k} {v}" for k, v in summary["faults"].items()) or "none"
        print(f"soak: {elapsed:.0f} s, seed {a.seed}")
        print(f"faults injected: {injected}")
        print(f"links lost: {losses}, reconnects: {reconnects} ", end="")
        print("(" + ", ".join(f"{r.name} {r.reconnects}" for r in self.recoveries) + ")")
        if samples:
            print(
                f"loss -> resumed data: median {statistics.median(samples) * 1000:.0f} ms, "
                f"p95 {q(0.95) * 1000:.0f} ms, worst {samples[-1] * 1000:.0f} ms "
                f"(n={len(samples)})"
            )
        print(
            f"moved: {human(self.tunnel.moved + self.shell.moved)} "
            f"(tunnel {human(self.tunnel.moved)} in {self.tunnel.operations} echoed transfers, "
            f"shell {human(self.shell.moved)} in {self.shell.operations} commands)"
        )
        print(
            f"lost: {lost} B, duplicated: {duplicated} B, corrupted: {corrupted} B, "
            f"errors: {len(errors)}"
        )
        for error in errors[:10]:
            print(f"  {error}")
        print("result: " + ("OK" if ok else "FAILED"))
        return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Soak test: shell + tunnel traffic through the emulator under faults."
    )
    p.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    p.add_argument("--seed", type=int, default=1, help="seed of every random choice (default 1)")
    f = p.add_argument_group("faults")
    f.add_argument("--close-every", type=float, default=2.0, metavar="S", help="default 2; 0 off")
    f.add_argument("--reset-every", type=float, default=0.0, metavar="S", help="default off")
    f.add_argument("--drop", type=float, default=0.05, metavar="RATE", help="default 0.05")
    f.add_argument("--duplicate", type=float, default=0.05, metavar="RATE", help="default 0.05")
    f.add_argument("--reorder", type=float, default=0.05, metavar="RATE", help="default 0.05")
    f.add_argument("--delay-ms", type=float, default=0.0, metavar="MS", help="default 0")
    f.add_argument("--silence-every", type=float, default=0.0, metavar="S", help="default off")
    f.add_argument("--silence-for", type=float, default=1.5, metavar="S", help="default 1.5")
    f.add_argument("--pause-every", type=float, default=0.0, metavar="S", help="default off")
    f.add_argument("--pause-for", type=float, default=3.0, metavar="S", help="default 3")
    w = p.add_argument_group("traffic")
    w.add_argument("--streams", type=int, default=2, help="concurrent tunnel connections")
    w.add_argument(
        "--transfer-size", type=parse_size, default=parse_size("8MiB"), help="largest echo"
    )
    w.add_argument("--no-shell", dest="shell", action="store_false", help="tunnel traffic only")
    w.add_argument("--shell-lines", type=int, default=20_000, help="largest seq per command")
    w.add_argument("--agent-pacing", action="store_true", help="the real agent's 1 KiB / 1 ms")
    c = p.add_argument_group("client")
    c.add_argument("--keepalive", type=float, default=1.0, help="ping interval and deadline")
    c.add_argument("--op-timeout", type=float, default=120.0, help="longest one operation")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="progress every 10 s")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.duration <= 0 or args.streams < 0 or args.transfer_size < 1:
        print("soak: --duration, --streams and --transfer-size must be positive", file=sys.stderr)
        return 2
    try:
        FaultConfig(
            drop=args.drop, duplicate=args.duplicate, reorder=args.reorder, delay_ms=args.delay_ms
        )
    except ValueError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(Soak(args).run())
    except KeyboardInterrupt:
        print("soak: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
