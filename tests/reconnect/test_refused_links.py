"""A gateway that accepts the WebSocket, answers the ping, then refuses the data channel.

Each new link gets a pong (pings are answered before OpenDataChannel is checked)
and then a close 1008. Such a link carried nothing: it must not end the outage,
reset the backoff or restart the reconnect budget, or the client would call
ResumeSession in a tight loop forever.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re

import pytest

from ssmsh.emulator.faults import FaultConfig
from ssmsh.exceptions import ReconnectFailed
from tests.conftest import scaled

from .harness import FAST, PROMPT, StateLog, read_output, rig


async def test_links_refused_after_their_pong_use_up_the_budget() -> None:
    config = dataclasses.replace(FAST, reconnect_budget=2.0, backoff_max=0.2)
    async with rig(FaultConfig(seed=8), shell="/bin/sh") as r:
        log = StateLog()
        info = await r.start()
        conn = await r.connect(info, config, log)
        await read_output(conn, re.escape(PROMPT))
        r.emulator.state.token_ttl = -1.0  # every token issued from now on is already expired
        loop = asyncio.get_running_loop()
        start = loop.time()
        r.cut(info.session_id)
        with pytest.raises(ReconnectFailed, match="could not reconnect within 2 s") as failure:
            async with asyncio.timeout(scaled(15)):
                await conn.wait_closed()
        took = loop.time() - start
        assert "1008" in str(failure.value)  # the last reason is in the message
        assert 2.0 - 0.3 <= took <= scaled(2.0 + 1.5)
        # Backing off: about budget / backoff_max attempts, not hundreds.
        resumes = r.emulator.api.calls.get("AmazonSSM.ResumeSession", 0)
        assert 5 <= resumes <= 30, resumes
        await conn.close()


async def test_a_link_that_carries_data_ends_the_outage() -> None:
    # Closes every 0.3 s with traffic flowing: each link is good, the budget restarts.
    config = dataclasses.replace(FAST, reconnect_budget=1.0)
    async with rig(FaultConfig(seed=9, close_every=0.3), shell="/bin/sh") as r:
        log = StateLog()
        info = await r.start()
        conn = await r.connect(info, config, log)
        await read_output(conn, re.escape(PROMPT))
        await conn.send_input(
            b"i=0; while [ $i -lt 40 ]; do echo tick-$i; sleep 0.1; i=$((i+1)); done\r"
        )
        await read_output(conn, r"tick-39\r\n", timeout=20)
        assert log.reconnects >= 8  # well over the 1 s budget in total
        assert not conn.closed
        await conn.close()
