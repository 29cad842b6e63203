"""What ``--debug`` shows about a session: handshake, end-of-session counters, pongs.

Real sessions against the fake agent on loopback, the log captured with caplog;
the lines are parsed and their numbers checked against both ends' counters.
No token or key may appear anywhere in the log.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re

import pytest

from ssmsh.channel import ConnectionConfig, ConnectionState, OutputReceived, SessionConnection
from ssmsh.channel.link import Liveness
from ssmsh.protocol.constants import CLIENT_VERSION
from tests.conftest import scaled

from .fakeagent import DATA_KEY, AgentSession, FakeAgent
from .test_connection import read_until

pytestmark = pytest.mark.timeout(60)

FAST = ConnectionConfig(
    ping_interval=0.05,
    ping_timeout=scaled(1),
    backoff_initial=0.02,
    backoff_max=0.1,
    reconnect_budget=scaled(10),
    connect_budget=scaled(2),
    open_timeout=scaled(2),
)

ESTABLISHED_RE = re.compile(
    r"session (?P<id>\S+) established: type=(?P<type>\S+) agent=(?P<agent>\S+) "
    r"client=(?P<client>\S+) kms=(?P<kms>on|off) handshake=(?P<handshake>full|none|skipped) "
    r"handshake_time=(?P<handshake_time>[\d.]+)ms connect_time=(?P<connect_time>[\d.]+)ms$"
)
ENDED_RE = re.compile(r"session (?P<id>\S+) ended: (?P<fields>.*)$")


class MuteAgent(FakeAgent):
    """An agent that never says a word: no HandshakeRequest, no output."""

    def _begin(self, session: AgentSession) -> None:
        pass


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def established_line(caplog: pytest.LogCaptureFixture) -> dict[str, str]:
    found = [m for msg in messages(caplog) if (m := ESTABLISHED_RE.search(msg))]
    assert len(found) == 1, messages(caplog)
    return found[0].groupdict()


def ended_fields(caplog: pytest.LogCaptureFixture) -> dict[str, str]:
    found = [m for msg in messages(caplog) if (m := ENDED_RE.search(msg))]
    assert len(found) == 1, messages(caplog)
    fields = dict(item.split("=", 1) for item in found[0]["fields"].split())
    return fields


def assert_no_secrets(caplog: pytest.LogCaptureFixture, secrets: list[str]) -> None:
    text = caplog.text + "\n".join(messages(caplog))
    for secret in secrets:
        assert secret not in text, f"{secret[:6]}... appears in the log"


def key_forms(key: bytes) -> list[str]:
    return [key.hex(), base64.b64encode(key).decode(), repr(key)[2:40]]


async def echo_round_trips(conn: SessionConnection, count: int) -> None:
    """Send ``count`` inputs one by one and read each echo back (after the prompt)."""
    async with asyncio.timeout(scaled(10)):
        await read_until(conn, b"$ ")
        for index in range(count):
            line = f"line {index}\r".encode()
            await conn.send_input(line)
            await read_until(conn, line)
        assert await conn.drain(scaled(5))


@pytest.mark.parametrize(
    ("handshake", "kms"), [(True, None), (True, "alias/ssm"), (False, None)], ids=str
)
async def test_handshake_and_end_of_session_lines(
    caplog: pytest.LogCaptureFixture, handshake: bool, kms: str | None
) -> None:
    caplog.set_level(logging.DEBUG)
    inputs = 7
    async with FakeAgent(handshake=handshake, kms_key=kms) as agent:
        info = agent.start_session()
        session = agent.sessions[info.session_id]
        async with SessionConnection(info, agent, config=FAST) as conn:
            await conn.wait_established()
            await echo_round_trips(conn, inputs)
        stats = conn.protocol.channel.stats

    line = established_line(caplog)
    assert line["id"] == info.session_id
    assert line["type"] == "Standard_Stream"
    assert line["client"] == CLIENT_VERSION
    assert line["kms"] == ("on" if kms else "off")
    if handshake:
        assert line["handshake"] == "full"
        assert line["agent"] == "3.3.1142.0"
    else:
        assert line["handshake"] == "none"
        assert line["agent"] == "-"
    assert 0 <= float(line["handshake_time"]) < scaled(5) * 1000
    assert 0 <= float(line["connect_time"]) < scaled(5) * 1000

    fields = ended_fields(caplog)
    # What the agent sent, each message once: handshake request (+ encryption
    # challenge) + complete, the prompt, one echo per input.
    agent_messages = (3 + (1 if kms else 0) if handshake else 1) + inputs
    assert session.channel.next_sequence_number == agent_messages
    assert int(fields["delivered"]) == agent_messages == stats["delivered"]
    # What the client sent: the handshake response (+ challenge answer), the inputs.
    client_messages = (1 + (1 if kms else 0) if handshake else 0) + inputs
    sent, retransmitted = int(fields["sent"]), int(fields["retransmitted"])
    assert sent - retransmitted == client_messages == conn.protocol.channel.next_sequence_number
    assert int(fields["acked"]) == client_messages
    assert session.channel.stats["delivered"] == client_messages
    assert int(fields["unacked"]) == 0
    for name in ("sent", "retransmitted", "acked", "duplicates", "reordered", "dropped"):
        assert int(fields[name]) == stats[name], name
    assert fields["links"] == "1" and fields["reconnects"] == "0"
    assert int(fields["receive_holds"]) == conn.receive_holds
    assert int(fields["bytes_in"]) == conn.bytes_received
    assert int(fields["bytes_out"]) == conn.bytes_sent
    # Every frame has a 116-byte header at least; the client also sent an ack per message.
    assert conn.bytes_received >= 116 * agent_messages
    assert conn.bytes_sent >= 116 * (client_messages + agent_messages)
    rtt = conn.protocol.channel.rtt
    assert int(fields["rtt_samples"]) == rtt.samples >= 1
    assert fields["srtt"] == f"{rtt.srtt * 1000:.1f}ms"
    assert fields["rto"] == f"{rtt.rto * 1000:.1f}ms"

    assert_no_secrets(caplog, [info.stream.token_value, *key_forms(DATA_KEY)])
    assert "blob:" not in caplog.text  # the KMS ciphertext blob


async def test_skipped_handshake_is_named(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with MuteAgent(handshake=False) as agent:
        info = agent.start_session()
        async with SessionConnection(info, agent, config=FAST) as conn:
            await asyncio.sleep(0.05)
            assert conn.skip_handshake()
            await conn.wait_established()
    line = established_line(caplog)
    assert (line["handshake"], line["agent"], line["kms"]) == ("skipped", "-", "off")
    fields = ended_fields(caplog)
    assert fields["delivered"] == "0" and fields["sent"] == "0"
    assert fields["srtt"] == "-"  # no sample: the initial value would mislead


async def test_reconnect_counts_links_and_logs_each_links_first_pong(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with FakeAgent() as agent:
        info = agent.start_session()
        session = agent.sessions[info.session_id]
        async with SessionConnection(info, agent, config=FAST) as conn:
            await conn.wait_established()
            await echo_round_trips(conn, 2)
            first_token = session.token
            await agent.drop(session)
            async with asyncio.timeout(scaled(10)):
                while conn._reconnector.reconnects < 1:
                    await asyncio.sleep(0.01)
            await echo_round_trips_after_reconnect(conn)
            async with asyncio.timeout(scaled(5)):
                while sum("first on this link" in m for m in messages(caplog)) < 2:
                    await asyncio.sleep(0.01)
            assert conn.state is ConnectionState.CONNECTED
        second_token = session.token

    fields = ended_fields(caplog)
    assert (fields["links"], fields["reconnects"]) == ("2", "1")
    assert float(fields["outages"].rstrip("s")) >= 0
    firsts = [m for m in messages(caplog) if m.startswith("pong in ") and "first on" in m]
    assert len(firsts) == 2, firsts
    assert first_token != second_token
    assert_no_secrets(caplog, [info.stream.token_value, first_token, second_token])


async def echo_round_trips_after_reconnect(conn: SessionConnection) -> None:
    await conn.send_input(b"again\r")
    await read_until(conn, b"again\r", timeout=10)


async def test_late_pong_while_paused_is_excused_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    config = ConnectionConfig(
        ping_interval=0.05, ping_timeout=0.2, max_receive_buffer=4096, receive_coalesce=0
    )
    async with FakeAgent() as agent:
        info = agent.start_session()
        session = agent.sessions[info.session_id]
        async with SessionConnection(info, agent, config=config) as conn:
            await conn.wait_established()
            for _ in range(64):  # 64 KiB the consumer does not read: reading pauses
                agent.send_output(session, b"x" * 1024)
            async with asyncio.timeout(scaled(10)):
                while not any("excused" in m for m in messages(caplog)):
                    await asyncio.sleep(0.02)
            assert conn.state is ConnectionState.CONNECTED and conn.links == 1
            total = 0
            async with asyncio.timeout(scaled(10)):
                while total < 2 + 64 * 1024:  # the prompt, then everything
                    event = await conn.receive()
                    assert isinstance(event, OutputReceived)
                    total += len(event.data)
    excused = [m for m in messages(caplog) if "excused" in m]
    assert excused[0] == (
        "pong late (none within 0.2 s) but the link is excused: "
        "reading is paused (the consumer is behind)"
    )
    assert not any("link silent" in m for m in messages(caplog))
    assert ended_fields(caplog)["links"] == "1"


def test_pong_round_trips_are_logged_sparingly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ssmsh.channel.link")
    # pong_received uses nothing of the link: no connection is needed to check the policy.
    liveness = Liveness(None, FAST, lambda: 0.0, lambda: False, lambda: None)  # type: ignore[arg-type]
    every = Liveness.PONG_LOG_EVERY
    rtts = [0.001] * (2 * every + 5) + [0.050, 0.060, 0.020, 0.015, 0.001, 0.004, 0.002]
    logged = [index + 1 for index, rtt in enumerate(rtts) if liveness.pong_received(rtt)]
    # first; every Nth while steady; 50 ms (x50); not 60 (x1.2); 20 ms (/3); not 15
    # (/1.3 from 20); 1 ms (/20); not 4 ms (x4 but only 3 ms away); not 2 ms.
    steady = 2 * every + 5
    assert logged == [1, 1 + every, 1 + 2 * every, steady + 1, steady + 3, steady + 5]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("pong in")]
    assert lines[0] == "pong in 1.0 ms (first on this link)"
    assert lines[1] == f"pong in 1.0 ms ({1 + every} pongs on this link)"
    assert lines[3] == "pong in 50.0 ms (was 1.0 ms)"
    assert liveness.pongs == len(rtts) and liveness.last_rtt == 0.002
