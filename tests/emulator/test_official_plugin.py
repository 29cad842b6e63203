"""Compatibility with the official ``session-manager-plugin`` (the emulator's acceptance bar).

These tests run only when ``SSMSH_OFFICIAL_PLUGIN`` names the official plugin binary
(built from github.com/aws/session-manager-plugin; see docs/compatibility.md). They
start a real emulator on loopback, call StartSession with boto3, and run the binary
with the argv contract the AWS CLI uses: response JSON, region, ``StartSession``,
profile, request JSON, endpoint URL. Shells run in a pseudo-terminal; port sessions
carry real TCP traffic to a local echo server.

The KMS test also needs the plugin's KMS calls to reach the emulator: the plugin
always calls KMS at its default AWS endpoint, so the test runs it behind a loopback
HTTPS proxy that terminates the CONNECT tunnel itself (with a throw-away certificate
trusted through ``AWS_CA_BUNDLE``) and hands the requests to the emulator. Nothing
is sent anywhere but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import re
import select
import signal
import socket
import socketserver
import ssl
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ssmsh.emulator import EmulatorConfig
from ssmsh.emulator.agent.agent import Agent
from ssmsh.emulator.agent.port import BasicPortPlugin
from ssmsh.emulator.agent.port_mux import MuxPortPlugin
from ssmsh.emulator.faults import FaultConfig
from ssmsh.emulator.gateway import Gateway
from ssmsh.emulator.state import DEFAULT_TARGET, SessionStatus, TargetRecord
from ssmsh.protocol.versions import client_wants_agent_keepalive_off
from tests.conftest import scaled
from tests.emulator.conftest import ACCESS_KEY, SECRET_KEY, EmulatorThread, make_client

PLUGIN_ENV = "SSMSH_OFFICIAL_PLUGIN"
REGION = "us-east-1"
KMS_TARGET = "i-0aaaaaaaaaaaaaaa1"
OLD_AGENT_TARGET = "i-0bbbbbbbbbbbbbbb2"
#: /bin/sh's prompt, for root or not.
PROMPT = re.compile(r"[$#] $")


@pytest.fixture(scope="module")
def plugin() -> str:
    path = os.environ.get(PLUGIN_ENV, "")
    if not path:
        pytest.skip(f"set {PLUGIN_ENV} to the official session-manager-plugin binary to run")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"{PLUGIN_ENV}={path!r} is not an executable file")
    return path


@pytest.fixture
def emu() -> Iterator[EmulatorThread]:
    with running_emulator(EmulatorConfig()) as thread:
        yield thread


@contextlib.contextmanager
def running_emulator(config: EmulatorConfig) -> Iterator[EmulatorThread]:
    """A full emulator (real gateway and agent) with a plain /bin/sh and extra targets."""
    config.shell = "/bin/sh"
    config.targets = [
        TargetRecord(DEFAULT_TARGET),
        TargetRecord(KMS_TARGET, name="kms", kms_key_id="alias/ssm-sessions"),
        TargetRecord(OLD_AGENT_TARGET, name="old-agent", agent_version="3.0.161.0"),
    ]
    thread = EmulatorThread(config).start()
    try:
        yield thread
    finally:
        thread.stop()


# ------------------------------------------------------------------ helpers


def plugin_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"))
    }
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    env.update(extra)
    return env


def plugin_version(plugin: str) -> str:
    done = subprocess.run(
        [plugin, "--version"], capture_output=True, text=True, timeout=scaled(10), check=True
    )
    return done.stdout.strip()


def start_session(
    emu: EmulatorThread, plugin: str, target: str, document: str | None = None, **params: str
) -> tuple[str, list[str]]:
    """StartSession through boto3; returns the session id and the plugin's argv."""
    request: dict[str, Any] = {"Target": target}
    if document:
        request["DocumentName"] = document
    if params:
        request["Parameters"] = {k: [v] for k, v in params.items()}
    response = make_client("ssm", emu.endpoint_url).start_session(**request)
    response.pop("ResponseMetadata", None)
    argv = [
        plugin,
        json.dumps(response),
        REGION,
        "StartSession",
        "",
        json.dumps(request),
        emu.endpoint_url,
    ]
    return str(response["SessionId"]), argv


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def gateway(emu: EmulatorThread) -> Gateway:
    gw = emu.emulator.gateway
    assert isinstance(gw, Gateway)
    return gw


def connected(emu: EmulatorThread, session_id: str) -> bool:
    value: bool = emu.call(lambda: gateway(emu).connected(session_id))
    return value


def live_agent(emu: EmulatorThread, session_id: str) -> Agent:
    agent: Agent | None = emu.call(lambda: gateway(emu).agent(session_id))
    assert agent is not None, "the session has no agent"
    return agent


def session_status(emu: EmulatorThread, session_id: str) -> SessionStatus:
    status: SessionStatus = emu.call(lambda: emu.state.sessions[session_id].status)
    return status


class Output:
    """Everything a process writes to one file descriptor, collected by a thread."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.data = bytearray()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # EIO once the pty's other side is gone
                return
            if not chunk:
                return
            with self._lock:
                self.data += chunk

    def text(self) -> str:
        """What was written so far, without carriage returns (ttys add them to newlines)."""
        with self._lock:
            return self.data.decode(errors="replace").replace("\r", "")

    def wait_for(self, needle: str | re.Pattern[str], timeout: float = 10.0) -> str:
        def found() -> bool:
            text = self.text()
            return needle in text if isinstance(needle, str) else bool(needle.search(text))

        try:
            wait_until(found, timeout, repr(needle))
        except AssertionError:
            tail = self.text()[-3000:]
            raise AssertionError(f"{needle!r} not seen; output ends with:\n{tail}") from None
        return self.text()


class PtyPlugin:
    """The plugin on a pseudo-terminal, as a person would run it."""

    def __init__(
        self, argv: list[str], env: dict[str, str] | None = None, rows: int = 30, cols: int = 100
    ) -> None:
        self.master, slave = os.openpty()
        self.resize(rows, cols, fd=slave)
        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=plugin_env(**(env or {})),
            start_new_session=True,
            close_fds=True,
        )
        os.close(slave)
        self.out = Output(self.master)

    def resize(self, rows: int, cols: int, fd: int | None = None) -> None:
        size = struct.pack("HHHH", rows, cols, 0, 0)
        fcntl.ioctl(self.master if fd is None else fd, termios.TIOCSWINSZ, size)

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait(self, timeout: float = 10.0) -> int:
        return self.proc.wait(timeout=scaled(timeout))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=scaled(10))
        with contextlib.suppress(OSError):
            os.close(self.master)


@contextlib.contextmanager
def pty_plugin(argv: list[str], env: dict[str, str] | None = None) -> Iterator[PtyPlugin]:
    proc = PtyPlugin(argv, env)
    try:
        yield proc
    finally:
        proc.close()


@contextlib.contextmanager
def pipe_plugin(argv: list[str]) -> Iterator[tuple[subprocess.Popen[bytes], Output]]:
    """The plugin with pipes for stdin/stdout (as ssh's ProxyCommand or a script runs it)."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=plugin_env(),
        start_new_session=True,
    )
    assert proc.stdout is not None
    try:
        yield proc, Output(proc.stdout.fileno())
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=scaled(10))
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@contextlib.contextmanager
def echo_server() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _EchoHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def echo_through(port: int, payload: bytes) -> bytes:
    """Send ``payload`` through 127.0.0.1:port while reading the echo; return the echo."""
    received = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(30)) as sock:
        sock.setblocking(False)
        view = memoryview(payload)
        deadline = time.monotonic() + scaled(60)
        while len(received) < len(payload) and time.monotonic() < deadline:
            want_write = [sock] if view else []
            readable, writable, _ = select.select([sock], want_write, [], 0.5)
            if writable:
                sent = sock.send(view[:16384])
                view = view[sent:]
            if readable:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
    return bytes(received)


def listening_port(out: Output) -> int:
    match = re.search(r"Port (\d+) opened for sessionId", out.wait_for("opened for sessionId"))
    assert match is not None
    return int(match.group(1))


@contextlib.contextmanager
def port_forwarding(
    emu: EmulatorThread, plugin: str, target: str = DEFAULT_TARGET
) -> Iterator[tuple[str, PtyPlugin, int]]:
    """The plugin forwarding a local port to an echo server: (session id, plugin, local port)."""
    with echo_server() as echo_port:
        session_id, argv = start_session(
            emu,
            plugin,
            target,
            "AWS-StartPortForwardingSession",
            portNumber=str(echo_port),
            localPortNumber="0",
        )
        with pty_plugin(argv) as proc:
            yield session_id, proc, listening_port(proc.out)


def mux_socket_path(session_id: str) -> Path:
    """Where the plugin puts its internal smux socket (Go's os.TempDir())."""
    tmp = Path(os.environ.get("TMPDIR") or "/tmp")
    return tmp / f"{fnv32a(session_id)}_session_manager_plugin_mux.sock"


def fnv32a(text: str) -> int:
    value = 0x811C9DC5
    for byte in text.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


# ------------------------------------------------------------------ shell


def test_shell_echo_size_resize_exit(emu: EmulatorThread, plugin: str) -> None:
    session_id, argv = start_session(emu, plugin, DEFAULT_TARGET)
    with pty_plugin(argv) as proc:
        proc.out.wait_for(f"Starting session with SessionId: {session_id}")
        proc.out.wait_for(PROMPT)
        proc.type("echo hel''lo-$((6*7))\n")
        proc.out.wait_for("hello-42")
        # The plugin polls its terminal size every 500 ms and sends it as a Size message.
        proc.type("stty size\n")
        proc.out.wait_for("30 100")
        proc.resize(40, 120)
        time.sleep(scaled(1.2))
        proc.type("stty size\n")
        proc.out.wait_for("40 120")
        proc.type("exit\n")
        assert proc.wait() == 0
        proc.out.wait_for(f"Exiting session with sessionId: {session_id}.")
    assert session_status(emu, session_id) == SessionStatus.TERMINATED


def test_shell_bulk_output_arrives_complete(emu: EmulatorThread, plugin: str) -> None:
    _, argv = start_session(emu, plugin, DEFAULT_TARGET)
    expected = hashlib.md5(b"".join(b"%d\n" % i for i in range(1, 20001))).hexdigest()
    with pty_plugin(argv) as proc:
        proc.out.wait_for(PROMPT)
        # Output through the terminal, then a digest computed remotely of the same data.
        proc.type("seq 1 20000; echo EN''D\n")
        text = proc.out.wait_for("\nEND\n", timeout=30)
        assert "\n".join(str(i) for i in range(1, 20001)) + "\nEND\n" in text
        proc.type("seq 1 20000 | md5sum\n")
        proc.out.wait_for(expected)
        proc.type("exit\n")
        assert proc.wait() == 0


def test_terminate_session_api_ends_the_plugin(emu: EmulatorThread, plugin: str) -> None:
    session_id, argv = start_session(emu, plugin, DEFAULT_TARGET)
    with pty_plugin(argv) as proc:
        proc.out.wait_for(PROMPT)
        make_client("ssm", emu.endpoint_url).terminate_session(SessionId=session_id)
        assert proc.wait() == 0
        proc.out.wait_for(f"Exiting session with sessionId: {session_id}.")


def test_shell_survives_gateway_closes_by_resuming(plugin: str) -> None:
    # The gateway closes each WebSocket 2 s after it opens ("Bye"); the plugin must
    # call ResumeSession on the emulator and carry on with the same shell.
    with running_emulator(EmulatorConfig(faults=FaultConfig(close_every=2.0))) as emu:
        session_id, argv = start_session(emu, plugin, DEFAULT_TARGET)

        def token() -> str | None:
            value: str | None = emu.call(lambda: emu.state.sessions[session_id].token)
            return value

        with pty_plugin(argv) as proc:
            proc.out.wait_for(PROMPT)
            proc.type("X=kept\n")
            for round_ in range(2):
                old = token()

                def resumed(old: str | None = old) -> bool:
                    return token() != old

                wait_until(resumed, 10, "a ResumeSession call")
                wait_until(lambda: connected(emu, session_id), 10, "the plugin to reconnect")
                # The official plugin dies if it writes while its socket is down, so
                # type only once it is back (and well before the next close).
                time.sleep(scaled(0.3))
                proc.type(f"echo round{round_}-$X\n")
                proc.out.wait_for(f"round{round_}-kept")
            proc.type("exit\n")
            assert proc.wait() == 0
        assert emu.call(lambda: emu.emulator.faults.counters["closed"]) >= 2


def test_killed_plugin_leaves_the_session_resumable(emu: EmulatorThread, plugin: str) -> None:
    # Only an explicit end (exit, TerminateSession flag or API) ends a session; a
    # client that vanishes can come back with ResumeSession, as with the real service.
    with port_forwarding(emu, plugin) as (session_id, proc, _):
        wait_until(lambda: connected(emu, session_id), 10, "the plugin to connect")
        proc.proc.kill()
        proc.wait()
        mux_socket_path(session_id).unlink(missing_ok=True)  # a killed plugin leaves it
        wait_until(lambda: not connected(emu, session_id), 10, "the gateway to notice")
    time.sleep(scaled(0.5))
    assert session_status(emu, session_id) != SessionStatus.TERMINATED
    resumed = make_client("ssm", emu.endpoint_url).resume_session(SessionId=session_id)
    assert resumed["TokenValue"]


# ------------------------------------------------------------------ port forwarding


def test_port_forwarding_multiplexed_concurrent_connections(
    emu: EmulatorThread, plugin: str
) -> None:
    with port_forwarding(emu, plugin) as (session_id, proc, local_port):
        proc.out.wait_for("Waiting for connections...")
        payloads = [os.urandom(48 * 1024 + i) for i in range(8)]
        results: list[bytes | None] = [None] * len(payloads)

        def run(i: int) -> None:
            results[i] = echo_through(local_port, payloads[i])

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(payloads))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=scaled(90))
        assert results == payloads
        agent = live_agent(emu, session_id)
        assert isinstance(agent.plugin, MuxPortPlugin)
        assert agent.plugin.opened == len(payloads)
        # The agent keeps its smux keepalive only for plugins up to 1.2.331.0.
        version = plugin_version(plugin)
        assert agent.plugin.keepalive == (not client_wants_agent_keepalive_off(version))
        mux_socket = mux_socket_path(session_id)
        assert mux_socket.exists()
        # Ctrl-C: the plugin sends the TerminateSession flag and exits.
        os.kill(proc.proc.pid, signal.SIGINT)
        assert proc.wait() == 0
        proc.out.wait_for("Terminate signal received, exiting.")
        proc.out.wait_for(f"Exiting session with sessionId: {session_id}.")
        assert not mux_socket.exists()
    wait_until(
        lambda: session_status(emu, session_id) == SessionStatus.TERMINATED,
        10,
        "the TerminateSession flag to end the session",
    )


def test_port_forwarding_refused_destination(emu: EmulatorThread, plugin: str) -> None:
    _, argv = start_session(
        emu,
        plugin,
        DEFAULT_TARGET,
        "AWS-StartPortForwardingSessionToRemoteHost",
        host="127.0.0.1",
        portNumber=str(closed_port()),
        localPortNumber="0",
    )
    with pty_plugin(argv) as proc:
        local_port = listening_port(proc.out)
        assert echo_through(local_port, b"hello") == b""
        proc.out.wait_for("Connection to destination port failed, check SSM Agent logs.")
        assert proc.proc.poll() is None  # the session survives a refused stream
        os.kill(proc.proc.pid, signal.SIGINT)
        assert proc.wait() == 0


def test_port_forwarding_basic_with_an_old_agent(emu: EmulatorThread, plugin: str) -> None:
    # Agents up to 3.0.196.0 had no smux: the plugin forwards one connection at a time.
    with port_forwarding(emu, plugin, OLD_AGENT_TARGET) as (session_id, proc, local_port):
        for size in (10, 70_000, 3):
            payload = os.urandom(size)
            assert echo_through(local_port, payload) == payload
        agent = live_agent(emu, session_id)
        assert isinstance(agent.plugin, BasicPortPlugin)
        os.kill(proc.proc.pid, signal.SIGINT)
        assert proc.wait() == 0
        proc.out.wait_for(f"Exiting session with sessionId: {session_id}.")


def test_ssh_session_stdio(emu: EmulatorThread, plugin: str) -> None:
    with echo_server() as echo_port:
        _, argv = start_session(
            emu, plugin, DEFAULT_TARGET, "AWS-StartSSHSession", portNumber=str(echo_port)
        )
        with pipe_plugin(argv) as (proc, out):
            assert proc.stdin is not None
            out.wait_for("Starting session with SessionId: ")
            payload = os.urandom(20_000).hex().encode()
            proc.stdin.write(payload)
            proc.stdin.flush()
            wait_until(lambda: payload.decode() in out.text(), 30, "the echoed bytes")
            proc.stdin.close()  # EOF: the plugin exits at once, status 0
            assert proc.wait(timeout=scaled(10)) == 0


# ------------------------------------------------------------------ commands


def test_non_interactive_command_split_output_and_exit_code(
    emu: EmulatorThread, plugin: str
) -> None:
    session_id, argv = start_session(
        emu,
        plugin,
        DEFAULT_TARGET,
        "AWS-StartNonInteractiveCommand",
        command="sh -c 'echo to-stdout; echo to-stderr >&2; exit 3'",
    )
    # stdin must stay open: the plugin ends with "Cannot perform start session: EOF" on EOF.
    with pipe_plugin(argv) as (proc, out):
        assert proc.wait(timeout=scaled(15)) == 0  # the remote status is never the plugin's
        text = out.text()
    assert "to-stdout\n" in text and "to-stderr\n" in text
    assert "EXIT_CODE: 3" in text
    assert f"Exiting session with sessionId: {session_id}." in text
    assert session_status(emu, session_id) == SessionStatus.TERMINATED


def test_interactive_command_in_a_pty(emu: EmulatorThread, plugin: str) -> None:
    _, argv = start_session(
        emu,
        plugin,
        DEFAULT_TARGET,
        "AWS-StartInteractiveCommand",
        command="echo ready; read -r answer; echo got-$answer; stty size",
    )
    with pty_plugin(argv) as proc:
        # No handshake for InteractiveCommands (as in the official agent): the plugin
        # only starts its terminal handling when the first output arrives.
        proc.out.wait_for("ready\n")
        time.sleep(scaled(0.7))  # let the first Size message go out
        proc.type("yes\n")
        proc.out.wait_for("got-yes")
        proc.out.wait_for("30 100")
        assert proc.wait() == 0


# ------------------------------------------------------------------ KMS


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kms proxy")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(f"kms.{REGION}.amazonaws.com")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _KmsProxy:
    """HTTPS proxy on 127.0.0.1 that serves ``CONNECT kms.*:443`` from the emulator."""

    def __init__(self, upstream: tuple[str, int], cert: Path, key: Path) -> None:
        self.upstream = upstream
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.tunnels: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.ExitStack() as stack:
            stack.enter_context(conn)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            method, target, *_ = head.split(b"\r\n", 1)[0].decode().split()
            if method != "CONNECT" or not target.startswith("kms."):
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n")
                return
            self.tunnels.append(target)
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            tls = stack.enter_context(self.context.wrap_socket(conn, server_side=True))
            upstream = stack.enter_context(socket.create_connection(self.upstream))
            threading.Thread(target=self._copy, args=(upstream, tls), daemon=True).start()
            self._copy(tls, upstream)

    @staticmethod
    def _copy(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()


def test_kms_encrypted_shell(emu: EmulatorThread, plugin: str, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    host, port = emu.endpoint_url.removeprefix("http://").rsplit(":", 1)
    proxy = _KmsProxy((host, int(port)), cert, key)
    try:
        session_id, argv = start_session(emu, plugin, KMS_TARGET)
        env = {"HTTPS_PROXY": f"http://127.0.0.1:{proxy.port}", "AWS_CA_BUNDLE": str(cert)}
        with pty_plugin(argv, env) as proc:
            proc.out.wait_for("This session is encrypted using AWS KMS.", timeout=20)
            proc.out.wait_for(PROMPT)
            proc.type("echo secret-$((6*7))\n")
            proc.out.wait_for("secret-42")
            agent = live_agent(emu, session_id)
            assert agent.channel.cipher is not None  # the agent really encrypts
            proc.type("exit\n")
            assert proc.wait() == 0
        assert proxy.tunnels and all(t == f"kms.{REGION}.amazonaws.com:443" for t in proxy.tunnels)
    finally:
        proxy.close()
