#!/usr/bin/env python3
"""Hostile peers against the ssmsh client: peak memory and time to exit, with the targets.

A fake SSM endpoint (StartSession, TerminateSession, ResumeSession refused) and a
fake message gateway on loopback, which after the client's OpenDataChannel does one
of the things issue #15 measured. For each, a real ``ssmsh`` process runs against
them, and this script prints its peak RSS (VmHWM), how long it took to exit, its
exit status and its last line on stderr, next to the targets: peak RSS under
100 MB, every signal answered within 0.5 s, one line and no traceback.

Attacks:

* ``big-message``: one WebSocket message of 1 GiB, sent in 1 MiB fragments;
* ``ahead``: 10,000 messages of 100 KB ahead of the sequence (seq 0 never comes);
* ``syn-flood``: 6 million smux SYNs (48 MB) into a ``forward`` session;
* ``actions``: a HandshakeRequest of 20,001 unknown actions;
* ``exit-code``: a ``channel_closed`` whose text holds a 5,000-digit exit code;
* ``mute``: pings answered, no handshake ever (``--handshake-timeout 2``);
* ``signal-<cmd>-<sig>``: ``exec``, ``forward``, ``proxy`` and ``shell`` against a mute
  gateway, sent SIGINT, SIGTERM or SIGHUP 1 s after start;
* ``stalled-tunnel``: no attacker: ``ssmsh forward`` to ``ssmsh emulator --no-agent-pacing``,
  a download whose local reader stalls for 20 s, then drains 200 MB (target: peak RSS
  under 80 MB).

Usage: python scripts/stress_client.py [--only NAME,...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from ssmsh.protocol.constants import MessageType, PayloadType
from ssmsh.protocol.datachannel import ChannelConfig, DataChannel, Role
from ssmsh.protocol.events import PayloadReceived
from ssmsh.protocol.message import ClientMessage
from ssmsh.protocol.payloads import ChannelClosedPayload, HandshakeComplete, HandshakeRequest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = "i-0123456789abcdef0"
RSS_TARGET_MB = 100.0
STALL_RSS_TARGET_MB = 80.0
SIGNAL_TARGET_S = 0.5

Attack = Callable[[ServerConnection], Awaitable[None]]

#: Set by an attack once all of it is sent (the client may then be told to stop).
SENT = asyncio.Event()


# ------------------------------------------------------------------ the fake SSM API


class Api(BaseHTTPRequestHandler):
    gateway_port = 0

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        action = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
        if action == "StartSession":
            sid = f"stress-{uuid.uuid4().hex[:17]}"
            body: dict[str, Any] = {
                "SessionId": sid,
                "StreamUrl": f"ws://127.0.0.1:{self.gateway_port}/v1/data-channel/{sid}",
                "TokenValue": "token",
            }
            self._answer(200, body)
        elif action == "TerminateSession":
            self._answer(200, {"SessionId": "x"})
        else:
            self._answer(400, {"__type": "DoesNotExistException", "message": "no such session"})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


# ------------------------------------------------------------------ the gateway


class Agent:
    """Just enough of an agent: a DataChannel(Role.AGENT) over one WebSocket."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.channel = DataChannel(Role.AGENT, ChannelConfig(epoch_offset=time.time()))

    async def flush(self) -> None:
        for frame in self.channel.data_to_send():
            await self.ws.send(frame)

    async def send(self, ptype: int, payload: bytes) -> None:
        self.channel.send_data(ptype, payload, time.monotonic())
        await self.flush()

    async def handshake(self, session_type: str, properties: Any = None) -> None:
        request = HandshakeRequest.for_session("3.3.1142.0", session_type, properties or {}, None)
        await self.send(PayloadType.HANDSHAKE_REQUEST, request.encode())
        async for message in self.ws:
            data = message.encode() if isinstance(message, str) else message
            self.channel.receive_data(data, time.monotonic())
            events = self.channel.events_received()
            if any(
                isinstance(e, PayloadReceived) and e.payload_type == PayloadType.HANDSHAKE_RESPONSE
                for e in events
            ):
                break
        await self.send(PayloadType.HANDSHAKE_COMPLETE, HandshakeComplete(10, "").encode())

    async def drain(self) -> None:
        """Read (and ack) whatever the client sends, until it goes."""
        async for message in self.ws:
            data = message.encode() if isinstance(message, str) else message
            self.channel.receive_data(data, time.monotonic())
            self.channel.events_received()
            await self.flush()


def raw_output(seq: int, payload: bytes) -> bytes:
    return ClientMessage(
        message_type=MessageType.OUTPUT_STREAM_DATA,
        schema_version=1,
        created_date=int(time.time() * 1000),
        sequence_number=seq,
        flags=0,
        message_id=uuid.uuid4(),
        payload_type=PayloadType.OUTPUT,
        payload=payload,
    ).encode()


async def big_message(ws: ServerConnection) -> None:
    chunk = b"\0" * (1 << 20)

    async def fragments() -> AsyncIterator[bytes]:
        for _ in range(1024):
            yield chunk

    await ws.send(fragments())


async def ahead(ws: ServerConnection) -> None:
    agent = Agent(ws)
    await agent.handshake("Standard_Stream")
    payload = b"x" * 100_000
    for seq in range(2, 10_002):  # seq 0 and 1 went to the handshake; 2 never comes
        await ws.send(raw_output(seq + 1, payload))
    SENT.set()
    await agent.drain()


async def syn_flood(ws: ServerConnection) -> None:
    agent = Agent(ws)
    props = {"type": "LocalPortForwarding", "portNumber": "80"}
    await agent.handshake("Port", props)
    per_message = 128  # 1 KiB of SYN frames per message, as the agent's reads
    count = 0
    for base in range(2, 12_000_002, 2 * per_message):
        frames = b"".join(
            bytes([1, 0, 0, 0]) + (base + 2 * i).to_bytes(4, "little") for i in range(per_message)
        )
        agent.channel.send_data(PayloadType.OUTPUT, frames, time.monotonic())
        count += per_message
        if count % (per_message * 64) == 0:
            await agent.flush()
            # Acks: read what is there, without waiting.
            while True:
                try:
                    message = await asyncio.wait_for(ws.recv(), 0.0001)
                except TimeoutError:
                    break
                data = message.encode() if isinstance(message, str) else message
                agent.channel.receive_data(data, time.monotonic())
            agent.channel.events_received()
    await agent.flush()
    SENT.set()
    await agent.drain()


async def actions(ws: ServerConnection) -> None:
    agent = Agent(ws)
    request = {
        "AgentVersion": "3.3.1142.0",
        "RequestedClientActions": [{"ActionType": f"U{i}"} for i in range(20_001)],
    }
    await agent.send(PayloadType.HANDSHAKE_REQUEST, json.dumps(request).encode())
    await agent.drain()


async def exit_code(ws: ServerConnection) -> None:
    agent = Agent(ws)
    await agent.handshake("Standard_Stream")
    closed = ChannelClosedPayload(
        str(uuid.uuid4()), "", TARGET, "stress", "command exited with code " + "9" * 5000
    )
    await ws.send(
        ClientMessage(
            message_type=MessageType.CHANNEL_CLOSED,
            schema_version=1,
            created_date=int(time.time() * 1000),
            sequence_number=0,
            flags=0,
            message_id=uuid.uuid4(),
            payload_type=0,
            payload=closed.encode(),
        ).encode()
    )
    await agent.drain()


async def mute(ws: ServerConnection) -> None:
    await ws.wait_closed()


# ------------------------------------------------------------------ running one


@dataclass
class Outcome:
    name: str
    rss_mb: float
    seconds: float
    status: int | None
    last_line: str
    traceback: bool
    target: str
    ok: bool


def peak_rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


async def run_one(
    name: str,
    attack: Attack,
    argv: list[str],
    api_port: int,
    *,
    send: signal.Signals | None = None,
    stop_when_sent: bool = False,
    limit: float = 120.0,
) -> Outcome:
    SENT.clear()

    async def handler(ws: ServerConnection) -> None:
        try:
            await ws.recv()  # OpenDataChannel
            await attack(ws)
        except ConnectionClosed:
            pass

    async with serve(handler, "127.0.0.1", 0, max_size=None, compression=None) as server:
        Api.gateway_port = server.sockets[0].getsockname()[1]
        with tempfile.TemporaryDirectory() as home:
            env = dict(
                os.environ,
                HOME=home,
                AWS_ACCESS_KEY_ID="AKIDSTRESS",
                AWS_SECRET_ACCESS_KEY="stress",
                AWS_DEFAULT_REGION="us-east-1",
                PYTHONPATH=ROOT,
            )
            full = [sys.executable, "-m", "ssmsh", "--endpoint-url", f"http://127.0.0.1:{api_port}"]
            proc = await asyncio.create_subprocess_exec(
                *full,
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=ROOT,
                start_new_session=True,
            )
            rss = 0.0
            start = time.monotonic()
            if send is not None:
                await asyncio.sleep(1.0)
                rss = peak_rss_mb(proc.pid)
                start = time.monotonic()
                proc.send_signal(send)
            assert proc.stderr is not None
            stderr_task = asyncio.ensure_future(proc.stderr.read())
            try:
                while proc.returncode is None and time.monotonic() - start < limit:
                    rss = max(rss, peak_rss_mb(proc.pid))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(proc.wait(), 0.02)
                    if stop_when_sent and SENT.is_set() and send is None:
                        send = signal.SIGTERM  # all of it is in: now stop, as a user would
                        start = time.monotonic()
                        proc.send_signal(send)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            seconds = time.monotonic() - start
            err = (await stderr_task).decode(errors="replace")
    lines = [line for line in err.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    tb = "Traceback" in err
    if send is not None:
        target = f"exit < {SIGNAL_TARGET_S} s after {send.name}"
        if stop_when_sent:
            target = f"RSS < {RSS_TARGET_MB:g} MB, {target}"
        # docs/tunnels.md: forward and proxy end with 0 on a stop signal; the other
        # commands with 128 + its number while starting (docs/usage.md), 255 on failure.
        documented = 0 if argv[0] in ("forward", "proxy") else 128 + send
        ok = (
            seconds < SIGNAL_TARGET_S
            and not tb
            and proc.returncode in (documented, 255)
            and rss < RSS_TARGET_MB
        )
    else:
        target = f"RSS < {RSS_TARGET_MB:g} MB, one line"
        ok = rss < RSS_TARGET_MB and not tb and proc.returncode not in (None, 0)
    return Outcome(name, rss, seconds, proc.returncode, last, tb, target, ok)


#: name: the attack, the command, whether the client is sent SIGTERM once all is sent.
SCENARIOS: dict[str, tuple[Attack, list[str], bool]] = {
    "big-message": (big_message, ["exec", TARGET, "--", "true"], False),
    "ahead": (ahead, ["exec", TARGET, "--", "true"], True),
    "syn-flood": (syn_flood, ["forward", TARGET, "0:80"], True),
    "actions": (actions, ["exec", TARGET, "--", "true"], False),
    "exit-code": (exit_code, ["exec", TARGET, "--", "true"], False),
    "mute": (mute, ["--handshake-timeout", "2", "exec", TARGET, "--", "true"], False),
}


async def stalled_tunnel(stall: float = 20.0, size: int = 200_000_000) -> Outcome:
    """A download through ``ssmsh forward`` whose reader stalls, then drains everything."""
    block = os.urandom(256 * 1024)

    async def destination(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        left = size
        with contextlib.suppress(ConnectionError):
            while left > 0:
                writer.write(block[: min(left, len(block))])
                left -= min(left, len(block))
                await writer.drain()
            writer.close()

    server = await asyncio.start_server(destination, "127.0.0.1", 0)
    dest_port = server.sockets[0].getsockname()[1]
    env = dict(os.environ, PYTHONPATH=ROOT)
    emulator = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "ssmsh", "emulator", "--no-agent-pacing"],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
    )
    forward: asyncio.subprocess.Process | None = None
    try:
        assert emulator.stdout is not None
        url = (await asyncio.wait_for(emulator.stdout.readline(), 30)).decode().strip()
        env.update(
            AWS_ACCESS_KEY_ID="AKIDSTRESS",
            AWS_SECRET_ACCESS_KEY="s",
            AWS_DEFAULT_REGION="us-east-1",
        )
        forward = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "ssmsh", "--endpoint-url", url, "forward", TARGET],
            f"0:{dest_port}",
            stdin=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )
        assert forward.stderr is not None
        port = 0
        while not port:
            line = (await asyncio.wait_for(forward.stderr.readline(), 30)).decode()
            if not line:
                raise RuntimeError("ssmsh forward ended before it listened")
            if "listening on 127.0.0.1:" in line:
                port = int(line.split("127.0.0.1:")[1].split()[0])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        start = time.monotonic()
        await asyncio.sleep(stall)
        got = 0
        while got < size:
            data = await reader.read(1 << 20)
            if not data:
                break
            got += len(data)
        seconds = time.monotonic() - start
        writer.close()
        rss = peak_rss_mb(forward.pid)
        ok = got == size and rss < STALL_RSS_TARGET_MB
        last = f"{got / 1e6:.0f} MB after a {stall:g} s stall, drained in {seconds - stall:.1f} s"
        target = f"RSS < {STALL_RSS_TARGET_MB:g} MB, every byte"
        return Outcome("stalled-tunnel", rss, seconds, 0, last, False, target, ok)
    finally:
        for proc in (forward, emulator):
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGINT)
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
        server.close()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    args = parser.parse_args()
    only = {n for n in args.only.split(",") if n}

    api = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    api_port = api.server_address[1]

    runs: list[tuple[str, Attack, list[str], signal.Signals | None, bool]] = [
        (name, attack, argv, None, stop) for name, (attack, argv, stop) in SCENARIOS.items()
    ]
    commands = {
        "exec": ["exec", TARGET, "--", "true"],
        "forward": ["forward", TARGET, "0:80"],
        "proxy": ["proxy", TARGET, "22"],
        "shell": ["shell", TARGET],
    }
    for cmd, argv in commands.items():
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            runs.append((f"signal-{cmd}-{signum.name[3:].lower()}", mute, argv, signum, False))

    failed = 0
    print(f"{'scenario':<24} {'peak RSS':>9} {'exit after':>10} {'status':>6}  target / last line")
    for name, attack, argv, sig, stop in runs:
        if only and name not in only:
            continue
        out = await run_one(name, attack, argv, api_port, send=sig, stop_when_sent=stop)
        failed += not out.ok
        mark = "ok" if out.ok else "FAIL"
        print(
            f"{name:<24} {out.rss_mb:7.1f}MB {out.seconds:9.2f}s {out.status!s:>6}  "
            f"{mark}: {out.target}{' TRACEBACK' if out.traceback else ''}\n"
            f"{'':<24} {out.last_line[:110]}",
            flush=True,
        )
    api.shutdown()
    if not only or "stalled-tunnel" in only:
        out = await stalled_tunnel()
        failed += not out.ok
        print(
            f"{out.name:<24} {out.rss_mb:7.1f}MB {out.seconds:9.2f}s {'':>6}  "
            f"{'ok' if out.ok else 'FAIL'}: {out.target}\n{'':<24} {out.last_line}",
            flush=True,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
