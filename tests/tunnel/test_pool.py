"""``ssmsh forward --sessions N`` through the emulator: one listener, a pool of sessions."""

from __future__ import annotations

import asyncio
import collections
import re

import pytest

from ssmsh.cli import forward as forward_cli
from ssmsh.cli.main import build_parser
from ssmsh.emulator import EmulatorConfig
from ssmsh.exceptions import AwsError, UsageError
from ssmsh.tunnel.spec import DOCUMENT_PORT
from tests.conftest import scaled

from .conftest import RunningForward, emulator, parse_cli
from .helpers import echo_server, exchange, pattern

TARGET = "i-0123456789abcdef0"
OPENED = re.compile(r"^127\.0\.0\.1:\d+\[(\d+)\] #\d+: open from ")


async def _hold_open(
    port: int, payload: bytes, echoed: asyncio.Event, release: asyncio.Event
) -> bytes:
    """Send ``payload``, read its echo, then keep the connection open until ``release``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        data = await reader.readexactly(len(payload))
        echoed.set()
        await release.wait()
        return data
    finally:
        writer.close()


async def test_pool_spreads_40_connections_over_4_sessions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    payloads = [pattern(3000 + 97 * i, 500 + i) for i in range(40)]
    async with emulator() as emu, echo_server() as dest:  # paced, as the real agent
        args = parse_cli(emu, "forward", TARGET, f"0:{dest}", "--sessions", "4", "-v")
        async with RunningForward(args, monkeypatch) as fwd:
            (port,) = await fwd.ports()
            release = asyncio.Event()
            echoed = [asyncio.Event() for _ in payloads]
            tasks = [
                asyncio.create_task(_hold_open(port, payload, flag, release))
                for payload, flag in zip(payloads, echoed, strict=True)
            ]
            async with asyncio.timeout(scaled(30)):
                await asyncio.gather(*(flag.wait() for flag in echoed))
                # All 40 are open at once; now let them go.
                release.set()
                results = await asyncio.gather(*tasks)
            sessions = emu.state.active_sessions()
            lines = list(fwd.lines)
    assert results == payloads  # every byte arrived, on every connection
    per_session = collections.Counter(m.group(1) for line in lines if (m := OPENED.match(line)))
    assert sorted(per_session) == ["1", "2", "3", "4"]
    assert sorted(per_session.values()) == [10, 10, 10, 10]
    assert len(sessions) == 4
    assert {s.document_name for s in sessions} == {DOCUMENT_PORT}


async def test_pool_opens_sessions_only_as_load_grows(monkeypatch: pytest.MonkeyPatch) -> None:
    async with emulator() as emu, echo_server() as dest:
        args = parse_cli(emu, "forward", TARGET, f"0:{dest}", "--sessions", "4", "-v")
        async with RunningForward(args, monkeypatch) as fwd:
            (port,) = await fwd.ports()
            await fwd.ready()
            # One connection at a time never needs a second session.
            async with asyncio.timeout(scaled(15)):
                for i in range(5):
                    assert await exchange("127.0.0.1", port, b"one %d" % i) == b"one %d" % i
                    await fwd.wait_line(rf"#{i + 1}: closed after")  # its end went round
            assert len(emu.state.sessions) == 1
            # Two at once: a second session for the second one.
            release = asyncio.Event()
            flags = [asyncio.Event(), asyncio.Event()]
            tasks = [asyncio.create_task(_hold_open(port, b"two", flag, release)) for flag in flags]
            async with asyncio.timeout(scaled(15)):
                await asyncio.gather(*(flag.wait() for flag in flags))
                release.set()
                assert await asyncio.gather(*tasks) == [b"two", b"two"]
            assert len(emu.state.sessions) == 2


async def test_pool_replaces_a_session_that_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    async with emulator() as emu, echo_server() as dest:
        args = parse_cli(emu, "forward", TARGET, f"0:{dest}", "--sessions", "2", "-v")
        async with RunningForward(args, monkeypatch) as fwd:
            (port,) = await fwd.ports()
            await fwd.ready()
            (first,) = emu.state.sessions.values()
            await emu.state.terminate_session(first.session_id, "terminated by an admin")
            await fwd.wait_line(f"session {first.session_id} ended")
            async with asyncio.timeout(scaled(15)):
                assert await exchange("127.0.0.1", port, b"again") == b"again"
            assert fwd.task is not None and not fwd.task.done()
            first, second = emu.state.sessions.values()
            assert first.ended and not second.ended


async def test_pool_idle_timeout_then_new_session(monkeypatch: pytest.MonkeyPatch) -> None:
    async with emulator(EmulatorConfig(idle_timeout=0.5)) as emu, echo_server() as dest:
        args = parse_cli(emu, "forward", TARGET, f"0:{dest}", "--sessions", "3")
        async with RunningForward(args, monkeypatch) as fwd:
            (port,) = await fwd.ports()
            async with asyncio.timeout(scaled(10)):
                assert await exchange("127.0.0.1", port, b"first") == b"first"
            await fwd.wait_line("ended: ")  # the idle timeout
            async with asyncio.timeout(scaled(10)):
                assert await exchange("127.0.0.1", port, b"second") == b"second"
            assert fwd.task is not None and not fwd.task.done()
            assert len(emu.state.sessions) == 2


async def test_pool_first_session_refused_ends_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    # A two-letter host does not match the document's host pattern: InvalidParameters.
    async with emulator() as emu:
        args = parse_cli(emu, "forward", TARGET, "0:db:80", "--sessions", "2")
        fwd = RunningForward(args, monkeypatch)
        with pytest.raises(AwsError, match="InvalidParameters"):
            await asyncio.wait_for(forward_cli.forward(args, fwd.reporter), scaled(10))
        assert not any("cannot start a session" in line for line in fwd.lines)  # said once


@pytest.mark.parametrize("value", ["0", "65"])
async def test_sessions_out_of_range(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    args = build_parser().parse_args(["forward", TARGET, "0:80", "--sessions", value])
    fwd = RunningForward(args, monkeypatch)
    with pytest.raises(UsageError, match=r"--sessions .* out of range"):
        await forward_cli.forward(args, fwd.reporter)
