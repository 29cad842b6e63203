"""Tunnel transfers through the emulator's fault injection: nothing lost, nothing doubled.

The issue's figure is 100 MiB with the WebSocket closed every 2 s. The default
suite moves 16 MiB each way and closes every 0.15 s (the same closes per byte
and more); set ``SSMSH_RELIABILITY_FULL=1`` to also run the full 100 MiB with
a close every 2 s (or use ``scripts/soak.py --transfer-size 100MiB``).
"""

from __future__ import annotations

import asyncio
import os

import pytest

from ssmsh.channel import ConnectionState
from ssmsh.emulator.faults import FaultConfig
from ssmsh.tunnel.config import TunnelConfig
from tests.conftest import scaled

from .harness import echo_server, pattern, rig, sha256, transfer, tunnel

FULL = os.environ.get("SSMSH_RELIABILITY_FULL", "") not in ("", "0")
MiB = 1024 * 1024


def _faults(seed: int, close_every: float | None = None, reset_every: float | None = None):  # type: ignore[no-untyped-def]
    return FaultConfig(
        close_every=close_every,
        reset_every=reset_every,
        drop=0.05,
        duplicate=0.05,
        reorder=0.05,
        seed=seed,
    )


async def _echo_through_faults(
    faults: FaultConfig, size: int, seconds: float, timeout: float
) -> dict[str, int]:
    """Echo ``size`` bytes through a tunnel, sent over at least ``seconds``."""
    payload = pattern(size, faults.seed or 0)
    async with rig(faults) as r, echo_server() as dest, tunnel(r, dest) as t:
        async with asyncio.timeout(scaled(timeout)):
            echoed = await transfer(t.port, payload, rate=size / seconds)
        assert t.failure() is None
        stats = t.connection.protocol.channel.stats
        agent = r.gateway.agent(t.info.session_id)
        assert agent is not None
        agent_stats = agent.channel.stats
        counters = r.counters
        # No byte lost, none doubled, none out of place.
        assert len(echoed) == len(payload)
        assert sha256(echoed) == sha256(payload)
        # Every kind of fault really happened, in both directions, and was repaired.
        assert counters["dropped"] > 0 and counters["duplicated"] > 0
        assert counters["reordered"] > 0
        assert stats["duplicates"] > 0 and agent_stats["duplicates"] > 0
        assert stats["reordered"] > 0 and agent_stats["reordered"] > 0
        assert stats["retransmitted"] > 0 and agent_stats["retransmitted"] > 0
        # Closes go on after the transfer: the last loss may still be under repair.
        assert t.connection.state is not ConnectionState.CLOSED
        assert t.log.losses - t.log.reconnects in (0, 1)
        return counters | {"reconnects": t.log.reconnects}


async def test_16_mib_each_way_closed_every_150_ms_with_drops_duplicates_reordering() -> None:
    faults = _faults(seed=6, close_every=0.15)
    counters = await _echo_through_faults(faults, 16 * MiB, seconds=1.5, timeout=25)
    assert counters["closed"] >= 5
    assert counters["reconnects"] >= 5


async def test_8_mib_each_way_with_tcp_resets() -> None:
    faults = _faults(seed=7, reset_every=0.15)
    counters = await _echo_through_faults(faults, 8 * MiB, seconds=1.0, timeout=25)
    assert counters["reset"] >= 3
    assert counters["reconnects"] >= 3


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(not FULL, reason="set SSMSH_RELIABILITY_FULL=1 for the 100 MiB run")
async def test_100_mib_each_way_closed_every_2_s() -> None:
    faults = _faults(seed=100, close_every=2.0)
    counters = await _echo_through_faults(faults, 100 * MiB, seconds=10, timeout=240)
    assert counters["closed"] >= 3


async def test_pause_publication_for_3_s_mid_transfer_loses_nothing() -> None:
    size = 16 * MiB
    payload = pattern(size, 33)
    async with rig(FaultConfig(seed=33)) as r, echo_server() as dest, tunnel(r, dest) as t:
        loop = asyncio.get_running_loop()
        channel = t.connection.protocol.channel
        progress: list[tuple[float, int]] = []
        quarter = asyncio.Event()

        def on_progress(received: int) -> None:
            progress.append((loop.time(), received))
            if received >= size // 4:
                quarter.set()

        async with asyncio.timeout(scaled(30)):
            moving = asyncio.create_task(transfer(t.port, payload, on_progress=on_progress))
            await quarter.wait()
            r.gateway.pause_publication(t.info.session_id)
            paused_at = loop.time()
            await asyncio.sleep(1.0)  # frames already on their way settle
            assert channel.paused  # the client holds its sends...
            sent_before = channel.stats["sent"]
            received_before = progress[-1][1]
            await asyncio.sleep(2.0)
            assert channel.stats["sent"] == sent_before  # ...and sent nothing
            assert progress[-1][1] == received_before  # nor did the agent
            assert channel.unacked > 0  # what the tunnel sent meanwhile is held, not dropped
            assert moving.done() is False
            r.gateway.resume_publication(t.info.session_id)
            resumed_at = loop.time()
            echoed = await moving
        assert resumed_at - paused_at >= 3.0
        assert len(echoed) == size and sha256(echoed) == sha256(payload)
        assert progress[-1][0] > resumed_at  # the transfer finished after the pause
        assert t.log.losses == 0  # a pause is not a lost link
        assert t.connection.state is ConnectionState.CONNECTED
        assert r.counters["paused"] == 1 and r.counters["resumed"] == 1
        assert t.failure() is None


async def test_a_pause_longer_than_the_agent_timeout_is_not_a_dead_agent() -> None:
    size = 4 * MiB
    payload = pattern(size, 44)
    short = TunnelConfig(agent_timeout=0.5)
    async with rig(FaultConfig(seed=44)) as r, echo_server() as dest:
        async with tunnel(r, dest, tunnel_config=short) as t:
            moving = asyncio.create_task(transfer(t.port, payload, rate=size / 1.0))
            await asyncio.sleep(0.3)
            r.gateway.pause_publication(t.info.session_id)
            await asyncio.sleep(1.5)  # three agent timeouts, all of them paused
            r.gateway.resume_publication(t.info.session_id)
            async with asyncio.timeout(scaled(15)):
                echoed = await moving
            assert t.failure() is None
        assert sha256(echoed) == sha256(payload)
