"""Several sessions through one faulty gateway: faults never mix their traffic.

A frame held back for reordering belongs to its own connection; releasing it into
another session's WebSocket would put one session's bytes into another's stream
(found by ``scripts/soak.py``: shell digits inside a tunnel's smux stream).
"""

from __future__ import annotations

import asyncio
import re
import uuid

from ssmsh.emulator.faults import Delivery, Direction, FaultConfig, FaultInjector
from ssmsh.protocol.message import ClientMessage
from tests.conftest import scaled

from .harness import PROMPT, StateLog, echo_server, pattern, read_output, rig, sha256, transfer
from .harness import tunnel as open_tunnel

MiB = 1024 * 1024


def _frame(sequence_number: int, payload: bytes) -> bytes:
    return ClientMessage(
        message_type="output_stream_data",
        schema_version=1,
        created_date=1,
        sequence_number=sequence_number,
        flags=0,
        message_id=uuid.uuid4(),
        payload_type=1,
        payload=payload,
    ).encode()


def test_a_held_frame_is_released_only_on_its_own_link() -> None:
    injector = FaultInjector(FaultConfig(reorder=1.0, seed=1))
    a, b = object(), object()
    a0, b0, a1 = _frame(0, b"a0"), _frame(0, b"b0"), _frame(1, b"a1")
    assert injector.process(Direction.TO_CLIENT, a0, a) == []  # held for link a
    assert injector.process(Direction.TO_CLIENT, b0, b) == []  # held for link b, not a0 released
    assert injector.process(Direction.TO_CLIENT, a1, a) == [Delivery(a1), Delivery(a0)]
    assert injector.held(Direction.TO_CLIENT, b)
    assert not injector.held(Direction.TO_CLIENT, a)
    assert injector.release_held(Direction.TO_CLIENT, b) == b0
    injector.process(Direction.TO_AGENT, a0, a)
    injector.forget_held(a)
    assert not injector.held(Direction.TO_AGENT, a)


async def test_shell_and_tunnel_side_by_side_under_reordering_stay_separate() -> None:
    faults = FaultConfig(drop=0.05, duplicate=0.05, reorder=0.2, seed=12, close_every=0.4)
    size = 8 * MiB
    payload = pattern(size, 12)
    async with rig(faults, shell="/bin/sh") as r, echo_server() as dest, open_tunnel(r, dest) as t:
        log = StateLog()
        info = await r.start()
        shell = await r.connect(info, log=log)
        await read_output(shell, re.escape(PROMPT))
        lines = 30_000

        async def run_shell() -> bytes:
            await shell.send_input(f"seq 1 {lines}; echo SEQ-END\r".encode())
            return await read_output(shell, r"\nSEQ-END\r\n", timeout=30)

        async with asyncio.timeout(scaled(30)):
            echoed, output = await asyncio.gather(
                transfer(t.port, payload, rate=size / 1.5), run_shell()
            )
        assert t.failure() is None
        assert len(echoed) == size and sha256(echoed) == sha256(payload)
        numbers = re.findall(rb"^(\d+)\r$", output, re.M)
        assert numbers == [str(n).encode() for n in range(1, lines + 1)]
        assert r.counters["reordered"] > 100 and r.counters["closed"] >= 2
        await shell.close()
