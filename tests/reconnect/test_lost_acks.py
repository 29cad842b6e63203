"""A shell through an emulated agent that drops duplicate input without an ack.

``agent_version`` 3.2.923.0 makes the emulator's agent receive as amazon-ssm-agent did
before 3.2.1041.0 (``datachannel.go``, ``handleStreamDataMessage``): input it processed
already is dropped unacked. An ack lost with a link must not kill the session.
"""

from __future__ import annotations

import asyncio
import re

from ssmsh.emulator.faults import FaultConfig
from tests.conftest import scaled

from .harness import PROMPT, StateLog, read_output, rig

PROMPT_RE = re.escape(PROMPT)
LEGACY = "3.2.923.0"


async def test_ack_lost_with_the_link_the_shell_carries_on() -> None:
    async with rig(FaultConfig(seed=3), shell="/bin/sh", agent_version=LEGACY) as r:
        log = StateLog()
        info = await r.start()
        conn = await r.connect(info, log=log)
        await read_output(conn, PROMPT_RE)
        await conn.send_size(100, 30)  # as ssmsh shell does; the probe repeats it
        channel = conn.protocol.channel
        assert channel.presume_lost_acks  # a shell does not handshake: version unknown
        r.emulator.faults.stop_acking = True  # the agent's acks no longer reach us
        await conn.send_input(b"echo one-$((1+1))\r")
        await read_output(conn, r"one-2\r\n" + PROMPT_RE)  # processed, ack withheld
        assert r.cut(info.session_id, abrupt=True) == 1
        r.emulator.faults.stop_acking = False
        await log.wait_reconnects(1)
        async with asyncio.timeout(scaled(15)):
            while channel.unacked:
                await asyncio.sleep(0.1)
        assert channel.stats["presumed_delivered"] >= 1
        await conn.send_input(b"echo two-$((2+1))\r")
        got = await read_output(conn, r"two-3\r\n" + PROMPT_RE)
        assert b"one-2" not in got  # the retransmissions were not run again
        await conn.close()


async def test_a_shell_keeps_working_across_resets() -> None:
    faults = FaultConfig(seed=4, reset_every=0.4)
    async with rig(faults, shell="/bin/sh", agent_version=LEGACY) as r:
        log = StateLog()
        info = await r.start()
        conn = await r.connect(info, log=log)
        await read_output(conn, PROMPT_RE)
        await conn.send_size(100, 30)
        out = bytearray()
        for i in range(12):
            await conn.send_input(f"echo n-$(({i}*7))\r".encode())
            out += await read_output(conn, rf"n-{i * 7}\r\n" + PROMPT_RE, timeout=20)
            await asyncio.sleep(0.1)
        assert log.reconnects >= 2
        text = out.decode()
        for i in range(12):
            assert text.count(f"n-{i * 7}\r\n") == 1  # once each, none run twice
        assert conn.protocol.channel.unacked == 0 or await _drains(conn)
        await conn.close()


async def _drains(conn) -> bool:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(scaled(15)):
        while conn.protocol.channel.unacked:
            await asyncio.sleep(0.1)
    return True
