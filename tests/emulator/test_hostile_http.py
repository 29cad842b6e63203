"""Hostile peers against the emulator's HTTP API (issue #15, E1-E6).

Each test attacks a real emulator on a loopback port 0 with raw sockets while a
well-behaved boto3 client (standard retries, as SDKs ship) calls it in a thread; the
client must keep being answered, quickly, during and after the attack, and the log
must stay quiet: no tracebacks, no ERROR records, pressure warnings rate-limited.
``scripts/stress.py`` runs the same attacks at scale against ``ssmsh emulator``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import hashlib
import json
import logging
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.auth
import botocore.config
import botocore.exceptions
import pytest
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ssmsh.emulator import DEFAULT_TARGET, EmulatorConfig
from ssmsh.emulator import gateway as gateway_module
from ssmsh.emulator.api.dispatch import MAX_JSON_DEPTH, parse_json
from ssmsh.emulator.errors import ServiceError
from ssmsh.emulator.httpserver import HttpLimits, HttpRequest, HttpResponse, HttpServer
from ssmsh.protocol.constants import PayloadType
from tests.conftest import scaled
from tests.emulator.conftest import ACCESS_KEY, SECRET_KEY, EmulatorThread, PlaceholderGateway
from tests.emulator.dcclient import DCClient, gateway_for, make_session
from tests.emulator.test_api import parse_response, raw_exchange, signed_request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STATUS_BODY = json.dumps({"Target": DEFAULT_TARGET}).encode()


# -- the well-behaved client and the log -------------------------------------------------


class WellBehaved:
    """boto3 calling GetConnectionStatus every 20 ms in a thread; every other call on a
    new connection (``Connection: close``), as new clients and processes do."""

    def __init__(self, endpoint_url: str) -> None:
        session: Any = boto3.session.Session()
        self.ssm = session.client(
            "ssm",
            endpoint_url=endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=botocore.config.Config(
                retries={"mode": "standard", "total_max_attempts": 3},
                connect_timeout=scaled(5),
                read_timeout=scaled(5),
            ),
        )
        self.ssm.meta.events.register("before-send.ssm", self._alternate)
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _alternate(self, request: Any, **kwargs: Any) -> None:
        self._sent += 1
        if self._sent % 2:
            request.headers["Connection"] = "close"

    def call(self) -> float:
        started = time.monotonic()
        assert self.ssm.get_connection_status(Target=DEFAULT_TARGET)["Status"] == "connected"
        return time.monotonic() - started

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.latencies.append(self.call())
            except Exception as exc:
                self.failures.append(repr(exc))
            self._stop.wait(0.02)

    def __enter__(self) -> WellBehaved:
        self.call()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        deadline = time.monotonic() + scaled(10)
        while len(self.latencies) + len(self.failures) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)  # a few calls at least, however quick the attack was
        self._stop.set()
        self._thread.join(scaled(30))
        assert not self.failures, self.failures[:3]
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        assert p99 < scaled(1.0), f"p99 {p99:.3f} s over {len(ordered)} calls"
        # ... and after the attack.
        assert max(self.call() for _ in range(5)) < scaled(1.0)


@pytest.fixture
def quiet(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture the log (DEBUG); afterwards no ERROR, no traceback, few WARNINGs."""
    caplog.set_level(logging.DEBUG, logger="ssmsh")
    caplog.set_level(logging.DEBUG, logger="asyncio")
    yield caplog
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad[:3]]
    assert "Task exception was never retrieved" not in caplog.text
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) <= 3, [r.getMessage() for r in warnings]


def serve(limits: HttpLimits | None = None, config: EmulatorConfig | None = None) -> EmulatorThread:
    return EmulatorThread(config or EmulatorConfig(), PlaceholderGateway, limits).start()


@pytest.fixture
def small() -> Iterator[EmulatorThread]:
    """An emulator with small limits, to reach them quickly."""
    limits = HttpLimits(
        max_connections=16,
        max_body=256 * 1024,
        max_buffered=512 * 1024,
        header_timeout=scaled(1.0),
        request_timeout=scaled(2.0),
        idle_timeout=scaled(1.0),
    )
    thread = serve(limits)
    try:
        yield thread
    finally:
        thread.stop()


def address(emu: EmulatorThread) -> tuple[str, int]:
    split = urlsplit(emu.endpoint_url)
    return split.hostname or "127.0.0.1", split.port or 0


def receive_all(sock: socket.socket, timeout: float) -> bytes:
    """What the server sends until it closes (or ``timeout`` passes)."""
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def answer(emu: EmulatorThread, data: bytes) -> tuple[int, str]:
    status, _, payload = parse_response(raw_exchange(emu.endpoint_url, data))
    return status, payload.get("__type", "") if payload else ""


# -- E1: Content-Length ------------------------------------------------------------------


@pytest.mark.parametrize(
    "length",
    [b"\xc2\xb2", b"9" * 5000, b"1" + b"0" * 20, b"-1", b"0x10", b"1e3", b"1, 2"],
    ids=["superscript-two", "5000-digits", "21-digits", "negative", "hex", "float", "list"],
)
def test_a_bad_content_length_is_a_400(
    emu: EmulatorThread, quiet: pytest.LogCaptureFixture, length: bytes
) -> None:
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n{}"
    with WellBehaved(emu.endpoint_url):
        for _ in range(20):
            raw = raw_exchange(emu.endpoint_url, request)
            status, headers, payload = parse_response(raw)
            assert (status, headers["connection"]) == (400, "close")
            assert payload["__type"] == "BadRequest" and payload["message"]


# -- E2: nesting -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b"[" * 300_000 + b"]" * 300_000,
        b'{"a":' * 50_000,
        b'{"Target": ' + b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1) + b"}",
    ],
    ids=["open", "balanced", "objects", "just-over"],
)
def test_deep_json_is_a_serialization_exception(
    emu: EmulatorThread, quiet: pytest.LogCaptureFixture, body: bytes
) -> None:
    request = signed_request(emu.endpoint_url, "AmazonSSM.StartSession", body)
    with WellBehaved(emu.endpoint_url):
        for _ in range(3):
            assert answer(emu, request) == (400, "SerializationException")
    assert not emu.state.sessions


def test_the_nesting_limit() -> None:
    at_limit = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert parse_json(at_limit) == parse_json(at_limit)  # parsed
    strings = b'{"a": "' + b"[" * 1000 + b'", "b": "\\"[["}'
    assert parse_json(strings)["a"] == "[" * 1000
    wide = b"[" + b"[[[]]]," * 10_000 + b"0]"
    assert len(parse_json(wide)) == 10_001
    for too_deep in (b"[" + at_limit + b"]", b"[" * 2000, b'{"x":' * 2000):
        with pytest.raises(ServiceError) as exc_info:
            parse_json(too_deep)
        assert exc_info.value.code == "SerializationException"


# -- E3: presigned requests and the clock ------------------------------------------------


def presigned(emu: EmulatorThread, expires: int, when: dt.datetime | None = None) -> bytes:
    """ListDocuments as a presigned POST with an empty body (signed by botocore, which
    would move a body into the query string)."""
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    headers["X-Amz-Target"] = "AmazonSSM.ListDocuments"
    url = emu.endpoint_url + "/"
    request = AWSRequest(method="POST", url=url, data=b"", headers=headers)
    auth = SigV4QueryAuth(Credentials(ACCESS_KEY, SECRET_KEY), "ssm", "us-east-1", expires)
    if when is None:
        auth.add_auth(request)
    else:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(botocore.auth, "get_current_datetime", lambda: when)
            auth.add_auth(request)
    target = str(request.url).split(urlsplit(emu.endpoint_url).netloc, 1)[1]
    lines = [f"POST {target} HTTP/1.1", f"Host: {urlsplit(emu.endpoint_url).netloc}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += ["Content-Length: 0", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.fixture
def secured() -> Iterator[EmulatorThread]:
    thread = serve(config=EmulatorConfig(credentials=[(ACCESS_KEY, SECRET_KEY)]))
    try:
        yield thread
    finally:
        thread.stop()


def test_presigned_limits_over_http(
    secured: EmulatorThread, quiet: pytest.LogCaptureFixture
) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    good = presigned(secured, 60)
    assert answer(secured, good) == (200, "")
    with WellBehaved(secured.endpoint_url):
        for value in (b"604801", b"100000000000000000000", b"1e20", b"-1", b"9" * 5000):
            bad = good.replace(b"X-Amz-Expires=60", b"X-Amz-Expires=" + value)
            assert answer(secured, bad) == (400, "AuthorizationQueryParametersError")
        assert answer(secured, presigned(secured, 604801)) == (
            400,
            "AuthorizationQueryParametersError",
        )
        for expires, when in (
            (3600, now - dt.timedelta(days=2)),
            (3600, now + dt.timedelta(days=1)),
            (604800, now - dt.timedelta(days=3650)),
            (604800, now.replace(year=9999)),
        ):
            assert answer(secured, presigned(secured, expires, when)) == (
                400,
                "InvalidSignatureException",
            )


def test_stale_header_signatures_are_refused_without_credentials(
    emu: EmulatorThread, quiet: pytest.LogCaptureFixture
) -> None:
    for shift in (dt.timedelta(hours=-1), dt.timedelta(hours=1)):
        moment = dt.datetime.now(dt.UTC).replace(tzinfo=None) + shift
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(botocore.auth, "get_current_datetime", lambda m=moment: m)
            request = signed_request(emu.endpoint_url, "AmazonSSM.GetConnectionStatus", b"{}")
        status, _, payload = parse_response(raw_exchange(emu.endpoint_url, request))
        assert (status, payload["__type"]) == (400, "InvalidSignatureException")
        assert "Signature expired" in payload["message"] or "not yet current" in payload["message"]


# -- E4: payload hashes ------------------------------------------------------------------


@pytest.mark.parametrize("claimed", ["UNSIGNED-PAYLOAD", "hash-of-the-original"])
def test_a_signed_body_cannot_be_swapped(
    secured: EmulatorThread, quiet: pytest.LogCaptureFixture, claimed: str
) -> None:
    original = json.dumps({"Target": DEFAULT_TARGET}).encode()
    if claimed != "UNSIGNED-PAYLOAD":
        claimed = hashlib.sha256(original).hexdigest()
    extra = {"X-Amz-Content-SHA256": claimed}
    request = signed_request(
        secured.endpoint_url, "AmazonSSM.StartSession", original, extra_headers=extra
    )
    if claimed != "UNSIGNED-PAYLOAD":  # the original itself, with its true hash, is fine
        assert answer(secured, request)[0] == 200
    swapped = json.dumps({"Target": DEFAULT_TARGET, "Reason": "not what was signed"}).encode()
    head, _, _ = request.partition(b"\r\n\r\n")
    head = head.replace(
        f"Content-Length: {len(original)}".encode(), b"Content-Length: %d" % len(swapped)
    )
    status, _, payload = parse_response(
        raw_exchange(secured.endpoint_url, head + b"\r\n\r\n" + swapped)
    )
    assert (status, payload["__type"]) == (400, "InvalidSignatureException")
    reasons = [s.reason for s in secured.state.sessions.values()]
    assert "not what was signed" not in reasons


# -- E5: ApiHandler.calls ----------------------------------------------------------------


def test_invented_targets_do_not_grow_calls(
    emu: EmulatorThread, quiet: pytest.LogCaptureFixture
) -> None:
    with WellBehaved(emu.endpoint_url):
        for i in range(200):
            target = f"AmazonSSM.{'x' * 1000}{i}"
            assert answer(emu, signed_request(emu.endpoint_url, target, b"{}")) == (
                400,
                "UnknownOperationException",
            )
    calls = emu.call(lambda: dict(emu.emulator.api.calls))
    assert calls["?"] == 200
    assert set(calls) == {"?", "AmazonSSM.GetConnectionStatus"}


# -- E6: connections ---------------------------------------------------------------------


def test_idle_connections_make_room_for_clients(
    small: EmulatorThread, quiet: pytest.LogCaptureFixture
) -> None:
    http = small.emulator.http
    sockets = []
    try:
        with WellBehaved(small.endpoint_url):
            for _ in range(80):  # five times the cap, and they never send a byte
                sockets.append(socket.create_connection(address(small), timeout=scaled(5)))
                time.sleep(0.005)
            time.sleep(0.2)
            assert small.call(lambda: http.connections) <= 16
        closed = sum(receive_all(s, 0.05) == b"" for s in sockets[:60])
        assert closed >= 50  # the oldest were closed quietly to make room
        assert small.call(lambda: http.evictions) >= 60
    finally:
        for s in sockets:
            s.close()
    warnings = [r for r in quiet.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "under pressure" in warnings[0].getMessage()


def test_idle_and_slow_connections_time_out(
    small: EmulatorThread, quiet: pytest.LogCaptureFixture
) -> None:
    idle = socket.create_connection(address(small), timeout=scaled(5))
    slow_head = socket.create_connection(address(small), timeout=scaled(5))
    slow_head.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Tar")
    slow_body = socket.create_connection(address(small), timeout=scaled(5))
    slow_body.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{")
    started = time.monotonic()
    with idle, slow_head, slow_body:
        assert receive_all(idle, scaled(5)) == b""  # closed quietly
        status, headers, payload = parse_response(receive_all(slow_head, scaled(5)))
        assert (status, headers["connection"]) == (408, "close")
        assert "headers" in payload["message"]
        status, _, payload = parse_response(receive_all(slow_body, scaled(5)))
        assert status == 408
    assert time.monotonic() - started < scaled(4)


def test_slowloris_connections_are_evicted_with_a_503(
    small: EmulatorThread, quiet: pytest.LogCaptureFixture
) -> None:
    sockets = []
    try:
        with WellBehaved(small.endpoint_url):
            for _ in range(40):
                sock = socket.create_connection(address(small), timeout=scaled(5))
                sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
                sockets.append(sock)
                time.sleep(0.005)
        status, headers, payload = parse_response(receive_all(sockets[0], scaled(5)))
        assert (status, payload["__type"]) == (503, "ServiceUnavailable")
        assert headers["connection"] == "close"
    finally:
        for s in sockets:
            s.close()


def test_stalled_bodies_are_bounded(small: EmulatorThread, quiet: pytest.LogCaptureFixture) -> None:
    sockets = []
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (256 * 1024)
    try:
        with WellBehaved(small.endpoint_url):
            for _ in range(3):  # 3 x 200 KiB > the 512 KiB budget
                sock = socket.create_connection(address(small), timeout=scaled(5))
                sock.sendall(head + b"[" * (200 * 1024))
                sockets.append(sock)
                time.sleep(0.2)
        status, _, payload = parse_response(receive_all(sockets[0], scaled(5)))
        assert (status, payload["__type"]) == (503, "ServiceUnavailable")
    finally:
        for s in sockets:
            s.close()


def test_busy_handlers_get_a_503_for_newcomers(quiet: pytest.LogCaptureFixture) -> None:
    emu = serve(HttpLimits(max_connections=4))
    release = asyncio.Event()

    async def slow(body: Any, request: HttpRequest) -> dict[str, str]:
        await release.wait()
        return {"Target": DEFAULT_TARGET, "Status": "connected"}

    api = emu.emulator.api
    try:
        emu.call(api._operations.__setitem__, "AmazonSSM.GetConnectionStatus", slow)
        request = signed_request(emu.endpoint_url, "AmazonSSM.GetConnectionStatus", STATUS_BODY)
        busy = [socket.create_connection(address(emu), timeout=scaled(5)) for _ in range(4)]
        for sock in busy:
            sock.sendall(request)
        time.sleep(0.3)
        status, _, payload = parse_response(raw_exchange(emu.endpoint_url, request))
        assert (status, payload["__type"]) == (503, "ServiceUnavailable")
        emu.call(release.set)
        for sock in busy:
            with sock:
                assert parse_response(receive_all(sock, scaled(5)))[0] == 200
    finally:
        emu.stop()


async def test_out_of_descriptors_closes_the_oldest_idle_connection(
    quiet: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def handler(request: HttpRequest) -> HttpResponse:
        return HttpResponse.json(200, {"ok": True})

    server = HttpServer(handler)
    await server.start("127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    real_accept = loop.sock_accept
    failures = {"left": 0}

    async def accept(sock: socket.socket) -> Any:
        if failures["left"]:
            failures["left"] -= 1
            await asyncio.sleep(0.01)
            raise OSError(errno.EMFILE, "Too many open files")
        return await real_accept(sock)

    try:
        idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(3)]
        await asyncio.sleep(0.1)
        assert server.connections == 3
        # From the next accept on, the process is out of descriptors for a while: the
        # server closes an idle connection per failure, then waits, then retries.
        monkeypatch.setattr(loop, "sock_accept", accept)
        failures["left"] = 5
        idle.append(await asyncio.open_connection("127.0.0.1", server.port))
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        async with asyncio.timeout(scaled(5)):
            assert (await reader.read()).startswith(b"HTTP/1.1 200 OK\r\n")
            for idle_reader, idle_writer in idle:
                assert await idle_reader.read() == b""  # closed to make room
                idle_writer.close()
        assert failures["left"] == 0 and server.evictions == 4
        writer.close()
    finally:
        await server.close()
    warnings = [r.getMessage() for r in quiet.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Too many open files" in warnings[0]


def test_an_oversized_body_gets_its_413(
    emu: EmulatorThread, quiet: pytest.LogCaptureFixture
) -> None:
    # The server answers before the body is in, then reads and drops the rest, so the
    # client reads the 413 rather than a connection reset.
    session: Any = boto3.session.Session()
    ssm = session.client(
        "ssm",
        endpoint_url=emu.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )
    with pytest.raises(botocore.exceptions.ClientError) as exc_info:
        ssm.create_document(Name="big", Content="x" * (3 * 1024 * 1024), DocumentType="Command")
    assert exc_info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


@pytest.mark.parametrize("port", ["api", "gateway"])
def test_the_issue_setup_ulimit_and_two_thousand_idle_connections(tmp_path: Any, port: str) -> None:
    """``ssmsh emulator`` under ``ulimit -n 256``: 2,000 idle connections to its API port
    (or to its gateway's, which shares the descriptors) while a client is answered; the
    log stays a few lines, without a traceback."""
    log = tmp_path / "emulator.log"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "ssmsh", "emulator", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": ROOT},
            preexec_fn=limit,
        )
    sockets: list[socket.socket] = []
    count = min(2000, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 300)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().decode().strip()
        target = urlsplit(url).port
        deadline = time.monotonic() + scaled(10)
        while "Press Ctrl-C" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        if port == "gateway":
            found = re.search(r"message gateway at ws://[^:]+:(\d+)", log.read_text())
            assert found is not None
            target = int(found.group(1))
        with WellBehaved(url):
            for _ in range(count):
                try:
                    sockets.append(socket.create_connection(("127.0.0.1", target), 5))
                except OSError:
                    break
            time.sleep(0.5)
        assert len(sockets) == count
    finally:
        for sock in sockets:
            sock.close()
        process.terminate()
        process.wait(scaled(10))
        if process.stdout is not None:
            process.stdout.close()
    text = log.read_text()
    assert "Traceback" not in text
    logged = text.split("Press Ctrl-C to stop.", 1)[1].strip().splitlines()
    assert len(logged) <= 5, logged


async def test_the_gateway_cuts_idle_connections_not_sessions(
    quiet: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway_module, "MAX_CONNECTIONS", 8)
    async with gateway_for() as gw:
        port = int(gw.url.rsplit(":", 1)[1])
        session = make_session(gw.state, gateway=gw)
        client = DCClient(session)
        await client.connect()
        client.send(PayloadType.OUTPUT, b"echo be''fore\n")
        await client.wait_output(b"before")
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(40)]
        await asyncio.sleep(0.2)
        # The oldest idle ones were cut; the session was not, and new ones still open.
        cut = 0
        for reader, _ in idle[:30]:
            async with asyncio.timeout(scaled(5)):
                cut += await reader.read() == b""
        assert cut == 30
        client.send(PayloadType.OUTPUT, b"echo dur''ing\n")
        await client.wait_output(b"during")
        second = DCClient(make_session(gw.state, gateway=gw))
        await second.connect()
        second.send(PayloadType.OUTPUT, b"echo sec''ond\n")
        await second.wait_output(b"second")
        await second.close()
        await client.close()
        for _, writer in idle:
            writer.close()
    warnings = [r.getMessage() for r in quiet.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "gateway at its cap" in warnings[0]
