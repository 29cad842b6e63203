"""Library users can observe a SessionConnection's connection state across reconnects."""

from __future__ import annotations

import asyncio
import re

from ssmsh.channel import ConnectionState, SessionConnection, StateChange
from ssmsh.emulator.faults import FaultConfig
from tests.conftest import scaled

from .harness import FAST, PROMPT, StateLog, read_output, rig

C = ConnectionState


def state_of(conn: SessionConnection) -> ConnectionState:
    return conn.state


def _collapse(states: list[ConnectionState]) -> list[ConnectionState]:
    """Consecutive repeats removed (a reconnect may take several attempts)."""
    return [s for i, s in enumerate(states) if i == 0 or states[i - 1] is not s]


async def test_connected_reconnecting_connected_is_observable() -> None:
    async with rig(FaultConfig(seed=1), shell="/bin/sh") as r:
        info = await r.start()
        conn = SessionConnection(info, r.sessions, config=FAST)
        iterated: list[StateChange] = []
        listened: list[StateChange] = []
        remove = conn.add_state_listener(listened.append)
        log = StateLog()
        conn.add_state_listener(log)

        async def watch() -> None:
            async for change in conn.state_changes():
                iterated.append(change)

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0)
        assert state_of(conn) is C.CONNECTING
        async with conn:
            assert state_of(conn) is C.CONNECTED
            await read_output(conn, re.escape(PROMPT))
            for n, abrupt in enumerate((False, True), start=1):
                r.cut(info.session_id, abrupt=abrupt)
                await log.wait_reconnects(n)
                assert (log.losses, log.reconnects) == (n, n)
                assert conn.state is C.CONNECTED
                await conn.send_input(f"echo still-{n}-$((1+{n}))\r".encode())
                await read_output(conn, f"still-{n}-{n + 1}")
            remove()
        await asyncio.wait_for(watcher, scaled(5))
        assert conn.state is C.CLOSED

    states = [c.new for c in iterated]
    assert _collapse(states) == [C.CONNECTED, C.RECONNECTING, C.CONNECTED] * 1 + [
        C.RECONNECTING,
        C.CONNECTED,
        C.CLOSED,
    ]
    assert [c.new for c in listened] == states[:-1]  # removed before CLOSED
    for change in iterated:
        assert change.old is not change.new or change.attempt > 1
    losses = [c for c in iterated if c.old is C.CONNECTED and c.new is C.RECONNECTING]
    assert "1000" in losses[0].reason and "Bye" in losses[0].reason
    assert losses[1].reason  # a reset says why too
    assert all(c.attempt >= 1 for c in losses)
    recovered = [c for c in iterated if c.old is C.RECONNECTING and c.new is C.CONNECTED]
    assert len(recovered) == 2
    for change in recovered:
        assert change.outage is not None and 0 < change.outage < scaled(10)
        assert "reconnected after" in change.reason
