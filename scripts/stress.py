#!/usr/bin/env python3
"""Hostile peers against the emulator's HTTP API, each against a fresh ``ssmsh emulator``.

For every attack a new ``ssmsh emulator --port 0 --credentials ...`` subprocess is
started on 127.0.0.1 (loopback only) with ``ulimit -n 1024``. While the attack runs,
and for a while after it, a well-behaved boto3 client (standard retries) calls
GetConnectionStatus every 20 ms. Then the emulator is sent SIGTERM with the
attacker's sockets still open. For each attack it prints:

* the peak RSS of the emulator process (VmHWM from /proc/PID/status);
* p99 latency of the well-behaved client during and after the attack, and its failures;
* what the attacker's requests got (e.g. every bad Content-Length a 400);
* the log it wrote (lines, tracebacks) and the time from SIGTERM to exit;

each with its target, and exits 1 if any target is missed (0 otherwise).

Attacks (issue #15): ``content-length`` (E1: ``Content-Length: ²`` and 5,000 digits),
``deep-json`` (E2), ``presign`` (E3: X-Amz-Expires beyond a week or 1e20, dates far in
the past or future), ``payload-hash`` (E4: a signed body swapped for another, with
UNSIGNED-PAYLOAD or a stale hash), ``targets`` (E5: 3,000 distinct 60 KB X-Amz-Target
values), ``idle-flood`` (E6: 2,000 idle connections), ``gateway-flood`` (the same on the
message gateway's port, which shares the process's descriptors), ``slowloris`` (headers
a byte a second) and ``stalled-bodies`` (bodies that stop 1 byte short of their 1 MiB).

Usage: python scripts/stress.py [--duration 6] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import boto3
import botocore.auth
import botocore.config
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY, SECRET = "AKIDSSMSHSTRESS00000", "ssmsh-stress-secret"
TARGET = "i-0123456789abcdef0"
#: The emulator runs with this many file descriptors, as in the issue's report.
NOFILE = 1024

# Targets.
P99_TARGET = 1.0
RSS_TARGET_MIB = 200.0
EXIT_TARGET = 5.0
LOG_LINES_TARGET = 20


@dataclasses.dataclass
class Emulator:
    process: subprocess.Popen[bytes]
    url: str
    log_path: str

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 0

    def status(self, field: str) -> float:
        """A /proc/PID/status field in MiB (VmHWM, VmRSS)."""
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
        return 0.0


def start_emulator(log_path: str) -> Emulator:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))

    env = {**os.environ, "PYTHONPATH": ROOT}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "ssmsh", "emulator", "--host", "127.0.0.1"),
                *("--port", "0", "--credentials", f"{KEY}:{SECRET}"),
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=limit,
        )
    assert process.stdout is not None
    line = process.stdout.readline().decode().strip()
    if not line.startswith("http://"):
        process.kill()
        raise RuntimeError(f"the emulator did not start: {line!r}")
    return Emulator(process, line, log_path)


# ------------------------------------------------------------ the well-behaved client


class Client:
    """boto3 calling GetConnectionStatus every 20 ms in a thread; latencies by phase.

    Every other call asks for ``Connection: close``, so half of them open a new
    connection (as new clients and processes do) and half reuse a pooled one.
    """

    def __init__(self, url: str) -> None:
        session: Any = boto3.session.Session()
        self.ssm = session.client(
            "ssm",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            config=botocore.config.Config(
                retries={"mode": "standard", "total_max_attempts": 3},
                connect_timeout=5,
                read_timeout=5,
            ),
        )
        self.ssm.meta.events.register("before-send.ssm", self._alternate)
        self._calls = 0
        self.phase = "during"
        self.latencies: dict[str, list[float]] = {"during": [], "after": []}
        self.failures: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _alternate(self, request: Any, **kwargs: Any) -> None:
        self._calls += 1
        if self._calls % 2:
            request.headers["Connection"] = "close"

    def start(self) -> None:
        self.ssm.get_connection_status(Target=TARGET)  # warm up before the attack
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            phase = self.phase
            started = time.monotonic()
            try:
                status = self.ssm.get_connection_status(Target=TARGET)["Status"]
                ok = status == "connected"
            except Exception as exc:
                ok = False
                self.failures[f"{phase}: {type(exc).__name__}"] += 1
            elapsed = time.monotonic() - started
            self.latencies[phase].append(elapsed if ok else float("inf"))
            self._stop.wait(0.02)

    def p99(self, phase: str) -> float:
        values = sorted(self.latencies[phase])
        if not values:
            return float("inf")
        return values[min(len(values) - 1, int(len(values) * 0.99))]


# ------------------------------------------------------------------------ raw HTTP


def signed(
    body: bytes,
    target: str = "AmazonSSM.GetConnectionStatus",
    extra: dict[str, str] | None = None,
    host: str = "x",
) -> tuple[dict[str, str], bytes]:
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target}
    headers.update(extra or {})
    request = AWSRequest(method="POST", url=f"http://{host}/", data=body, headers=headers)
    SigV4Auth(Credentials(KEY, SECRET), "ssm", "us-east-1").add_auth(request)
    return dict(request.headers.items()), body


def render(headers: dict[str, str], body: bytes, target: str = "/", host: str = "x") -> bytes:
    lines = [f"POST {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("host",)]
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def exchange(emu: Emulator, data: bytes, timeout: float = 5.0) -> tuple[str, bytes]:
    """Send ``data`` on a new connection; (status or what happened, response body)."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(emu.host, emu.port), timeout
        )
    except (OSError, TimeoutError) as exc:
        return f"connect: {type(exc).__name__}", b""
    try:
        writer.write(data)
        raw = await asyncio.wait_for(reader.read(), timeout)
    except TimeoutError:
        return "no response (timeout)", b""
    except OSError as exc:
        return f"no response ({type(exc).__name__})", b""
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    if not raw:
        return "no response (closed)", b""
    head, _, body = raw.partition(b"\r\n\r\n")
    parts = head.split(b"\r\n", 1)[0].split()
    return (parts[1].decode() if len(parts) > 1 else "garbage"), body


def error_type(body: bytes) -> str:
    try:
        return str(json.loads(body).get("__type", "?"))
    except ValueError:
        return "?"


async def repeat(
    deadline: float, workers: int, one: Callable[[int], Awaitable[None]], limit: int = 10**9
) -> None:
    counter = iter(range(limit))

    async def worker() -> None:
        for i in counter:
            if time.monotonic() >= deadline:
                return
            await one(i)

    await asyncio.gather(*(worker() for _ in range(workers)))


# ------------------------------------------------------------------------- attacks


@dataclasses.dataclass
class Outcome:
    """What the attacker saw; ``ok`` is the attack-specific verdict."""

    seen: Counter[str] = dataclasses.field(default_factory=Counter)
    ok: bool = True
    expect: str = ""
    held: list[asyncio.StreamWriter] = dataclasses.field(default_factory=list)
    tasks: list[asyncio.Task[None]] = dataclasses.field(default_factory=list)


async def attack_content_length(emu: Emulator, duration: float, out: Outcome) -> None:
    out.expect = "every request answered 400"
    requests = [
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \xc2\xb2\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1" + b"0" * 5000 + b"\r\n\r\n",
    ]

    async def one(i: int) -> None:
        status, _ = await exchange(emu, requests[i % len(requests)])
        out.seen[status] += 1

    await repeat(time.monotonic() + duration, 4, one)
    out.ok = set(out.seen) == {"400"}


async def attack_deep_json(emu: Emulator, duration: float, out: Outcome) -> None:
    out.expect = "every request 400 SerializationException"
    bodies = [b"[" * 1000, b"[" * 100_000, b'{"a":' * 50_000, b"[" * (1024 * 1024 - 1024)]
    requests = [render(*signed(body)) for body in bodies]

    async def one(i: int) -> None:
        status, body = await exchange(emu, requests[i % len(requests)])
        out.seen[f"{status} {error_type(body)}" if body else status] += 1

    await repeat(time.monotonic() + duration, 2, one)
    out.ok = set(out.seen) == {"400 SerializationException"}


def _presigned(expires: int, when: dt.datetime | None = None) -> tuple[str, dict[str, str]]:
    """ListDocuments as a presigned POST with no body (botocore would move a body into
    the query string)."""
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    headers["X-Amz-Target"] = "AmazonSSM.ListDocuments"
    request = AWSRequest(method="POST", url="http://x/", data=b"", headers=headers)
    auth = SigV4QueryAuth(Credentials(KEY, SECRET), "ssm", "us-east-1", expires=expires)
    if when is None:
        auth.add_auth(request)
    else:
        with mock.patch.object(botocore.auth, "get_current_datetime", lambda: when):
            auth.add_auth(request)
    return str(request.url).split("http://x", 1)[1], dict(request.headers.items())


def _header_signed_at(when: dt.datetime) -> bytes:
    body = b'{"Target": "' + TARGET.encode() + b'"}'
    with mock.patch.object(botocore.auth, "get_current_datetime", lambda: when):
        headers, body = signed(body)
    return render(headers, body)


def presign_requests() -> list[bytes]:
    """Bad presigned and header-signed requests, signed before the client starts."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    body = b""
    requests = []
    good, headers = _presigned(60)
    for value in ("604801", "100000000000000000000", "1e20", "-1", "9" * 5000):
        target = good.replace("X-Amz-Expires=60", f"X-Amz-Expires={value}")
        requests.append(render(headers, body, target))
    for expires, when in (
        (604801, None),
        (3600, now - dt.timedelta(days=2)),
        (3600, now + dt.timedelta(days=1)),
        (604800, now - dt.timedelta(days=3650)),
        (604800, now + dt.timedelta(days=3650)),
    ):
        target, headers = _presigned(expires, when)
        requests.append(render(headers, body, target))
    requests.append(_header_signed_at(now - dt.timedelta(hours=1)))
    requests.append(_header_signed_at(now + dt.timedelta(hours=1)))
    return requests


async def attack_presign(emu: Emulator, duration: float, out: Outcome) -> None:
    out.expect = "every request refused with a 4xx auth error, none accepted, no 5xx"
    requests = presign_requests()

    async def one(i: int) -> None:
        status, body = await exchange(emu, requests[i % len(requests)])
        out.seen[f"{status} {error_type(body)}" if body else status] += 1

    await repeat(time.monotonic() + duration, 2, one)
    allowed = {"AuthorizationQueryParametersError", "InvalidSignatureException"}
    out.ok = all(k.startswith("400 ") and k.split()[1] in allowed for k in out.seen)


def payload_requests() -> list[bytes]:
    """StartSession signed for one body, sent with another."""
    original = b'{"Target": "' + TARGET.encode() + b'"}'
    swapped = b'{"Target": "i-0fffffffffffffff0", "Reason": "swapped"}'
    requests = []
    for content_hash in ("UNSIGNED-PAYLOAD", hashlib.sha256(original).hexdigest()):
        extra = {"X-Amz-Content-SHA256": content_hash}
        headers, _ = signed(original, "AmazonSSM.StartSession", extra)
        requests.append(render(headers, swapped))
    return requests


async def attack_payload_hash(emu: Emulator, duration: float, out: Outcome) -> None:
    out.expect = "every swapped body refused (400 InvalidSignatureException)"
    requests = payload_requests()

    async def one(i: int) -> None:
        status, body = await exchange(emu, requests[i % len(requests)])
        out.seen[f"{status} {error_type(body)}" if body else status] += 1

    await repeat(time.monotonic() + duration, 2, one)
    out.ok = set(out.seen) == {"400 InvalidSignatureException"}


async def attack_targets(emu: Emulator, duration: float, out: Outcome) -> None:
    out.expect = "3,000 distinct 60 KB targets all refused (400), RSS bounded"
    pad = "x" * (60 * 1024)
    before = emu.status("VmRSS")
    body = b"{}"

    async def one(i: int) -> None:
        headers, _ = signed(body, f"AmazonSSM.{pad}{i}")
        status, answer = await exchange(emu, render(headers, body))
        out.seen[f"{status} {error_type(answer)}" if answer else status] += 1

    await repeat(time.monotonic() + max(duration, 30), 4, one, limit=3000)
    grown = emu.status("VmRSS") - before
    out.seen[f"RSS +{grown:.0f} MiB"] += 1
    out.ok = grown < 40 and sum(out.seen.values()) - 1 == 3000


async def _hold(
    emu: Emulator, out: Outcome, count: int, deadline: float, first: bytes, port: int = 0
) -> None:
    """Keep ``count`` connections open until ``deadline``, reopening closed ones."""
    out.held = []
    readers: list[asyncio.StreamReader] = []
    opened = 0
    while time.monotonic() < deadline:
        for i in range(count):
            if i < len(readers) and not readers[i].at_eof():
                continue
            if i < len(readers):
                out.seen["closed by the server"] += 1
                out.held[i].close()
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(emu.host, port or emu.port), 2
                )
            except (OSError, TimeoutError):
                out.seen["connect failed"] += 1
                await asyncio.sleep(0.05)
                continue
            if first:
                writer.write(first)
            if i < len(readers):
                readers[i], out.held[i] = reader, writer
            else:
                readers.append(reader)
                out.held.append(writer)
            opened += 1
            # Read whatever the server says, so at_eof() turns true when it closes.
            out.tasks.append(asyncio.create_task(_drain(reader)))
            if time.monotonic() >= deadline:
                break
        await asyncio.sleep(0.2)
    out.seen["opened"] = opened


async def _drain(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(Exception):
        while await reader.read(65536):
            pass


async def attack_idle_flood(emu: Emulator, duration: float, out: Outcome) -> None:
    out.expect = "2,000 idle connections held (reopened when closed); client unaffected"
    await _hold(emu, out, 2000, time.monotonic() + duration, b"")


async def attack_gateway_flood(emu: Emulator, duration: float, out: Outcome) -> None:
    out.expect = "2,000 idle connections on the gateway's port; API client unaffected"
    with open(emu.log_path, "rb") as f:
        found = re.search(rb"message gateway at ws://[^:]+:(\d+)", f.read())
    if found is None:
        raise RuntimeError("no gateway URL in the emulator's banner")
    await _hold(emu, out, 2000, time.monotonic() + duration, b"", int(found.group(1)))


async def attack_slowloris(emu: Emulator, duration: float, out: Outcome) -> None:
    out.expect = "500 connections sending a header byte a second; client unaffected"
    deadline = time.monotonic() + duration
    await asyncio.gather(
        _hold(emu, out, 500, deadline, b"POST / HTTP/1.1\r\n"), _dribble(out, deadline)
    )


async def _dribble(out: Outcome, deadline: float) -> None:
    while time.monotonic() < deadline:
        await asyncio.sleep(1)
        for writer in out.held:
            with contextlib.suppress(Exception):
                writer.write(b"X")


async def attack_stalled_bodies(emu: Emulator, duration: float, out: Outcome) -> None:
    out.expect = "300 connections each 1 byte short of a 1 MiB body; RSS bounded"
    size = 1024 * 1024
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size
    await _hold(emu, out, 300, time.monotonic() + duration, head + b"{" * (size - 1))


ATTACKS: dict[str, Callable[[Emulator, float, Outcome], Awaitable[None]]] = {
    "content-length": attack_content_length,
    "deep-json": attack_deep_json,
    "presign": attack_presign,
    "payload-hash": attack_payload_hash,
    "targets": attack_targets,
    "idle-flood": attack_idle_flood,
    "gateway-flood": attack_gateway_flood,
    "slowloris": attack_slowloris,
    "stalled-bodies": attack_stalled_bodies,
}


# ------------------------------------------------------------------------- running


@dataclasses.dataclass
class Result:
    name: str
    rss: float
    p99_during: float
    p99_after: float
    calls: int
    failures: Counter[str]
    outcome: Outcome
    log_lines: int
    tracebacks: int
    log_bytes: int
    exit_time: float
    seconds: float

    def misses(self) -> list[str]:
        missed = []
        if self.rss > RSS_TARGET_MIB:
            missed.append("peak RSS")
        if self.p99_during > P99_TARGET or self.p99_after > P99_TARGET:
            missed.append("client p99")
        if self.failures:
            missed.append("client failures")
        if not self.outcome.ok:
            missed.append("attack answers")
        if self.tracebacks or self.log_lines > LOG_LINES_TARGET:
            missed.append("log")
        if self.exit_time > EXIT_TARGET:
            missed.append("time to exit")
        return missed


async def run_attack(name: str, duration: float) -> Result:
    started = time.monotonic()
    with tempfile.NamedTemporaryFile(prefix=f"stress-{name}-", suffix=".log") as log:
        emu = await asyncio.to_thread(start_emulator, log.name)
        out = Outcome()
        client = Client(emu.url)
        try:
            await asyncio.to_thread(client.start)
            try:
                await ATTACKS[name](emu, duration, out)
            except Exception as exc:
                out.ok = False
                out.seen[f"attack crashed: {exc!r}"[:100]] += 1
            client.phase = "after"
            await asyncio.sleep(3)
            await asyncio.to_thread(client.stop)
            rss = emu.status("VmHWM")
            stopping = time.monotonic()
            emu.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(emu.process.wait, 30)
            except subprocess.TimeoutExpired:
                emu.process.kill()
                await asyncio.to_thread(emu.process.wait)
            exit_time = time.monotonic() - stopping
        finally:
            if emu.process.poll() is None:
                emu.process.kill()
                emu.process.wait()
            for writer in out.held:
                writer.close()
            for task in out.tasks:
                task.cancel()
            await asyncio.gather(*out.tasks, return_exceptions=True)
            if emu.process.stdout is not None:
                emu.process.stdout.close()
        with open(log.name, "rb") as f:
            text = f.read()
    lines = [line for line in text.decode(errors="replace").splitlines() if line.strip()]
    # The emulator's own banner (its hints on stderr) is not log output.
    banner = [i for i, line in enumerate(lines) if line.startswith("Press Ctrl-C")]
    logged = lines[banner[0] + 1 :] if banner else lines
    logged = [line for line in logged if not line.startswith("ssmsh emulator: stopping")]
    return Result(
        name=name,
        rss=rss,
        p99_during=client.p99("during"),
        p99_after=client.p99("after"),
        calls=sum(len(v) for v in client.latencies.values()),
        failures=client.failures,
        outcome=out,
        log_lines=len(logged),
        tracebacks=sum(line.startswith("Traceback") for line in logged),
        log_bytes=len(text),
        exit_time=exit_time,
        seconds=time.monotonic() - started,
    )


def show(result: Result) -> None:
    def seconds(value: float) -> str:
        return "failed" if value == float("inf") else f"{value * 1000:.0f} ms"

    verdict = "ok" if not result.misses() else "MISSED: " + ", ".join(result.misses())
    print(f"== {result.name} ({result.seconds:.0f} s): {verdict}")
    print(f"   peak RSS       {result.rss:7.1f} MiB     (target <= {RSS_TARGET_MIB:.0f} MiB)")
    print(
        f"   client p99     {seconds(result.p99_during)} during, {seconds(result.p99_after)} "
        f"after, {result.calls} calls, failures {dict(result.failures) or 0} "
        f"(target <= {P99_TARGET * 1000:.0f} ms, 0 failures)"
    )
    seen = ", ".join(f"{k}: {v}" for k, v in result.outcome.seen.most_common(8))
    print(f"   attacker saw   {seen}")
    print(f"                  (target: {result.outcome.expect})")
    print(
        f"   log            {result.log_lines} lines, {result.tracebacks} tracebacks, "
        f"{result.log_bytes} bytes (target <= {LOG_LINES_TARGET} lines, 0 tracebacks)"
    )
    print(f"   time to exit   {result.exit_time:.2f} s       (target <= {EXIT_TARGET:.0f} s)")
    sys.stdout.flush()


async def main() -> int:
    # The attacker writes to sockets the server closed; asyncio would say so each time.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per attack")
    parser.add_argument("--only", nargs="+", choices=sorted(ATTACKS), help="attacks to run")
    args = parser.parse_args()
    names = args.only or list(ATTACKS)
    failed = []
    for name in names:
        result = await run_attack(name, args.duration)
        show(result)
        if result.misses():
            failed.append(name)
    print(f"{len(names) - len(failed)} of {len(names)} attacks within targets", end="")
    print(f"; missed: {', '.join(failed)}" if failed else "")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
