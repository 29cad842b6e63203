"""A shell session across forced reconnects and silence, through the emulator.

The agent runs a real ``/bin/sh`` in a pty with the real agent's pacing (1 KiB
messages, 1 ms apart), so output is still flowing when the links are cut.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re

from ssmsh.channel import ConnectionState, OutputReceived, SessionConnection
from ssmsh.emulator.faults import FaultConfig
from tests.conftest import scaled

from .harness import FAST, PROMPT, Rig, StateLog, read_output, rig

PROMPT_RE = re.escape(PROMPT)
LINES = 200_000
CUTS = 20
#: Cuts during which keystrokes are typed (while the link is down).
TYPED_AT = (4, 9, 14, 19)

#: A small receive buffer: the client stops reading the WebSocket (and the agent
#: stops sending) while the test is not consuming, so cuts land mid-output.
SHELL = dataclasses.replace(FAST, max_receive_buffer=64 * 1024)


async def _open_shell(r: Rig, log: StateLog) -> tuple[SessionConnection, str]:
    info = await r.start()
    conn = await r.connect(info, SHELL, log)
    await read_output(conn, PROMPT_RE)
    # No echo: keystrokes typed while seq runs wait in the pty, unprinted, for the shell.
    await conn.send_input(b"stty -echo; echo READY\r")
    await read_output(conn, r"\nREADY\r\n" + PROMPT_RE)
    return conn, info.session_id


async def test_seq_200000_across_20_reconnects_every_line_once_in_order() -> None:
    async with rig(FaultConfig(seed=20), shell="/bin/sh", agent_pacing=True) as r:
        log = StateLog()
        conn, session_id = await _open_shell(r, log)
        expected = "".join(f"{n}\r\n" for n in range(1, LINES + 1)).encode()
        typed: list[tuple[int, ConnectionState]] = []

        async def type_during_outage(cut: int, losses: int) -> None:
            # Wait for the client to notice the loss, then type: it must be queued.
            await log.wait(lambda: log.losses > losses)
            assert conn.state is ConnectionState.RECONNECTING
            await conn.send_input(f"echo typed-{cut}-$(({cut}*1000+1))\r".encode())
            typed.append((cut, conn.state))

        typists: list[asyncio.Task[None]] = []
        await conn.send_input(f"seq 1 {LINES}; echo SEQ-DONE\r".encode())
        output = bytearray()
        cuts = 0
        async with asyncio.timeout(scaled(40)):
            while b"SEQ-DONE\r\n" not in output:
                event = await conn.receive()
                assert event is not None, "the session ended"
                if type(event) is not OutputReceived:
                    continue
                output += event.data
                due = (cuts + 1) * len(expected) // (CUTS + 2)
                if cuts < CUTS and len(output) >= due and conn.state is ConnectionState.CONNECTED:
                    if cuts in TYPED_AT:
                        typists.append(asyncio.create_task(type_during_outage(cuts, log.losses)))
                    assert r.cut(session_id, abrupt=cuts % 2 == 1) == 1
                    cuts += 1
            text = bytes(output)
            done = text.index(b"SEQ-DONE\r\n")
            # Every line exactly once and in order (nothing else in between).
            assert text[:done] == expected
            await asyncio.gather(*typists)
            # The keystrokes typed during the outages ran after seq, once each, in order.
            wanted = [f"typed-{c}-{c * 1000 + 1}" for c in TYPED_AT]
            rest = text[done:].decode()
            while not all(w in rest for w in wanted):
                event = await conn.receive()
                if type(event) is OutputReceived:
                    rest += event.data.decode()
        found = re.findall(r"typed-\d+-\d+", rest)
        assert found == wanted
        assert [state for _, state in typed] == [ConnectionState.RECONNECTING] * len(TYPED_AT)
        assert cuts == CUTS
        await log.wait(lambda: log.reconnects == CUTS)
        assert log.losses == CUTS
        assert r.counters["closed"] == CUTS // 2 and r.counters["reset"] == CUTS // 2
        await conn.close()


async def test_silence_is_detected_within_the_deadline_and_recovered() -> None:
    config = dataclasses.replace(FAST, ping_interval=0.3, ping_timeout=0.6)
    deadline = config.ping_interval + config.ping_timeout  # type: ignore[operator]
    async with rig(FaultConfig(seed=3), shell="/bin/sh") as r:
        log = StateLog()
        info = await r.start()
        conn = await r.connect(info, config, log)
        await read_output(conn, PROMPT_RE)
        loop = asyncio.get_running_loop()
        r.gateway.set_silent(True)  # nothing delivered either way, no pongs
        silent_at = loop.time()
        await conn.send_input(b"echo said-$((6*7))-in-silence\r")
        await log.wait(lambda: log.losses == 1, timeout=deadline + 5)
        detected = log.times[-1] - silent_at
        assert "no reply to keepalive" in log.changes[-1].reason
        assert detected <= scaled(deadline + 0.25), detected
        # While the silence lasts, new links get no pong either: still reconnecting.
        await log.wait(lambda: log.changes[-1].attempt >= 3, timeout=3 * deadline + 5)
        assert log.reconnects == 0
        assert conn.state is ConnectionState.RECONNECTING
        r.gateway.set_silent(False)
        lifted_at = loop.time()
        # What was typed into the silence is delivered after the recovery, once.
        got = await read_output(conn, r"said-42-in-silence\r\n" + PROMPT_RE)
        assert got.count(b"said-42-in-silence") == 1
        assert log.reconnects == 1
        (outage,) = log.outages()
        assert outage >= lifted_at - (silent_at + detected)  # the whole silence counts
        assert r.counters["silenced"] > 0
        await conn.close()
