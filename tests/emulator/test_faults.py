"""Fault injection: the seeded decision maker, and each fault on real gateway traffic."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid

import pytest
from websockets.asyncio.client import connect

from ssmsh.emulator.config import EmulatorConfig
from ssmsh.emulator.errors import ServiceError
from ssmsh.emulator.faults import Delivery, Direction, FaultConfig, FaultInjector
from ssmsh.emulator.gateway import Gateway
from ssmsh.protocol.constants import PayloadType
from ssmsh.protocol.message import ClientMessage
from tests.conftest import scaled
from tests.emulator.dcclient import DCClient, gateway, gateway_for, make_session

__all__ = ["gateway"]


def frame(mtype: str, seq: int = 0, payload: bytes = b"x") -> bytes:
    return ClientMessage(
        mtype, 1, int(time.time() * 1000), seq, 0, uuid.uuid4(), 1, payload
    ).encode()


DATA_IN = [frame("input_stream_data", i, b"%d" % i) for i in range(200)]
ACK = frame("acknowledge", 0, b"{}")


# -------------------------------------------------------------- the injector


def test_defaults_pass_everything_through() -> None:
    injector = FaultInjector()
    for data in [*DATA_IN[:5], ACK]:
        assert injector.process(Direction.TO_AGENT, data) == [Delivery(data)]
        assert injector.process(Direction.TO_CLIENT, data) == [Delivery(data)]
    assert not injector.counters


def test_decisions_are_reproducible_from_the_seed() -> None:
    def run(seed: int) -> list[list[Delivery]]:
        injector = FaultInjector(FaultConfig(drop=0.2, duplicate=0.2, reorder=0.2, seed=seed))
        return [injector.process(Direction.TO_AGENT, data) for data in DATA_IN]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_each_per_frame_fault() -> None:
    injector = FaultInjector(FaultConfig(drop=1.0))
    assert injector.process(Direction.TO_CLIENT, DATA_IN[0]) == []
    assert injector.process(Direction.TO_CLIENT, ACK) == [Delivery(ACK)]  # not a data message
    assert injector.counters["dropped"] == 1

    injector = FaultInjector(FaultConfig(duplicate=1.0))
    assert injector.process(Direction.TO_AGENT, DATA_IN[0]) == [Delivery(DATA_IN[0])] * 2
    assert injector.counters["duplicated"] == 1

    injector = FaultInjector(FaultConfig(delay_ms=250))
    assert injector.process(Direction.TO_AGENT, DATA_IN[0]) == [Delivery(DATA_IN[0], 0.25)]
    assert injector.counters["delayed"] == 1


def test_reorder_holds_a_frame_until_the_next_one() -> None:
    injector = FaultInjector(FaultConfig(reorder=1.0))
    first, second, third = DATA_IN[:3]
    assert injector.process(Direction.TO_AGENT, first) == []
    assert injector.held(Direction.TO_AGENT)
    # The next frame goes first, then the held one; it is not itself held back.
    assert injector.process(Direction.TO_AGENT, second) == [Delivery(second), Delivery(first)]
    assert injector.process(Direction.TO_AGENT, third) == []
    assert injector.release_held(Direction.TO_AGENT) == third
    assert injector.counters["reordered"] == 2


def test_directions_limit_the_per_frame_faults() -> None:
    injector = FaultInjector(FaultConfig(drop=1.0, directions=frozenset({Direction.TO_CLIENT})))
    assert injector.process(Direction.TO_AGENT, DATA_IN[0]) == [Delivery(DATA_IN[0])]
    assert injector.process(Direction.TO_CLIENT, frame("output_stream_data")) == []


def test_stop_acking_and_silence() -> None:
    injector = FaultInjector(FaultConfig(stop_acking=True))
    assert injector.process(Direction.TO_CLIENT, ACK) == []
    assert injector.process(Direction.TO_AGENT, ACK) == [Delivery(ACK)]  # only the agent's
    injector.silent = True
    assert injector.process(Direction.TO_AGENT, DATA_IN[0]) == []
    assert injector.counters == {"acks_withheld": 1, "silenced": 1}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"drop": 1.5},
        {"duplicate": -0.1},
        {"reorder": float("nan")},
        {"close_every": 0},
        {"reset_every": -3},
        {"delay_ms": -1},
        {"directions": frozenset({"sideways"})},
    ],
)
def test_bad_settings_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FaultConfig(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------- on real traffic


async def test_lossy_link_still_delivers_everything_in_order() -> None:
    faults = FaultConfig(drop=0.15, duplicate=0.15, reorder=0.15, delay_ms=2, seed=1234)
    async with gateway_for(faults=faults) as gw:
        session = make_session(gw.state, gateway=gw)
        client = DCClient(session)
        await client.connect()
        # The remote pty echoes typed-ahead input as it arrives, and the kernel may
        # put a command's output in the middle of such an echoed line: only the
        # commands' own output says in which order they ran. So: no echo.
        client.send(PayloadType.OUTPUT, b"stty -echo; echo RE''ADY\n")
        await client.wait_output(b"READY\r\n", timeout=30)
        start = len(client.output)
        for i in range(40):
            client.send(PayloadType.OUTPUT, b"echo line-%d\n" % i)
        client.send(PayloadType.OUTPUT, b"seq 1 3000; echo DO''NE\n")
        await client.wait_output(b"DONE", timeout=30)
        text = bytes(client.output[start:])
        assert b"echo" not in text  # nothing echoed
        expected = b"\r\n".join(b"%d" % i for i in range(1, 3001)) + b"\r\nDONE"
        assert expected in text
        # Every command ran once, in the order sent: input delivered in order and
        # exactly once, output likewise.
        lines = re.findall(rb"line-(\d+)\r\n", text)
        assert lines == [b"%d" % i for i in range(40)]
        counters = gw.faults.counters
        assert min(counters["dropped"], counters["duplicated"], counters["reordered"]) > 0
        assert counters["delayed"] > 0
        await client.close()


async def test_close_every_closes_with_bye_and_the_session_resumes() -> None:
    period = scaled(1.5)  # after the shell's first output (the agent's 1 s)
    async with gateway_for(faults=FaultConfig(close_every=period)) as gw:
        session = make_session(gw.state, gateway=gw)
        client = DCClient(session)
        await client.connect()
        client.send(PayloadType.OUTPUT, b"echo one''-\n")
        await client.wait_output(b"one-")
        await client.wait_disconnected(timeout=period + 5)
        assert (client.close_code, client.close_reason) == (1000, "Bye")
        assert gw.faults.counters["closed"] == 1
        agent = gw.agent(session.session_id)
        await client.connect(token=gw.state.issue_token(session))
        client.send(PayloadType.OUTPUT, b"echo two''-\n")
        await client.wait_output(b"two-")
        assert gw.agent(session.session_id) is agent
        await client.close()


async def test_reset_every_aborts_the_tcp_connection() -> None:
    async with gateway_for(faults=FaultConfig(reset_every=scaled(0.2))) as gw:
        session = make_session(gw.state, gateway=gw)
        client = DCClient(session)
        await client.connect()
        await client.wait_disconnected()
        assert client.close_code == 1006  # no close frame: an abnormal closure
        assert gw.faults.counters["reset"] == 1
        assert gw.agent(session.session_id) is not None
        await client.close()


async def test_stop_acking_makes_the_client_retransmit() -> None:
    async with gateway_for(faults=FaultConfig(stop_acking=True)) as gw:
        session = make_session(gw.state, gateway=gw)
        client = DCClient(session)
        await client.connect()
        client.send(PayloadType.OUTPUT, b"echo still''-works\n")
        await client.wait_output(b"still-works")
        await client.wait_for(lambda: client.channel.stats["retransmitted"] > 0)
        assert client.channel.unacked == 1
        # The agent re-acks each retransmission, and each ack is withheld again.
        await client.wait_for(lambda: gw.faults.counters["acks_withheld"] >= 2)
        gw.faults.stop_acking = False
        await client.wait_for(lambda: client.channel.unacked == 0)
        assert client.output.count(b"still-works") == 1
        await client.close()


async def test_silence_swallows_everything_and_answers_no_pings(gateway: Gateway) -> None:
    session = make_session(gateway.state, gateway=gateway)
    client = DCClient(session)
    await client.connect()
    client.send(PayloadType.OUTPUT, b"echo befo''re\n")
    await client.wait_output(b"before")
    gateway.set_silent(True)
    client.send(PayloadType.OUTPUT, b"echo dur''ing\n")
    assert client.ws is not None
    pong = await client.ws.ping()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(scaled(0.3)):
            await asyncio.shield(pong)
    assert b"during" not in client.output
    gateway.set_silent(False)
    await client.wait_output(b"during")  # retransmission after the silence
    await pong
    await client.close()


async def test_pause_and_resume_publication(gateway: Gateway) -> None:
    session = make_session(gateway.state, gateway=gateway)
    client = DCClient(session)
    await client.connect()
    client.send(PayloadType.OUTPUT, b"echo a''-\n")
    await client.wait_output(b"a-")
    gateway.pause_publication(session.session_id)
    await client.wait_for(lambda: client.channel.paused)
    client.send(PayloadType.OUTPUT, b"echo b''-\n")  # held by the paused client
    await asyncio.sleep(scaled(0.1))
    assert b"b-" not in client.output
    gateway.resume_publication(session.session_id)
    await client.wait_output(b"b-")
    types = [m.message_type for m in client.received if m is not None]
    assert types.count("start_publication") == 2 and types.count("pause_publication") == 1
    assert gateway.faults.counters["paused"] == gateway.faults.counters["resumed"] == 1
    await client.close()


async def test_refuse_resume() -> None:
    config = EmulatorConfig(shell="/bin/sh", faults=FaultConfig(refuse_resume=True))
    async with gateway_for(config) as gw:
        session = make_session(gw.state, gateway=gw)
        with pytest.raises(ServiceError) as exc_info:
            gw.state.resume_session(session.session_id, base_url=gw.url)
        assert exc_info.value.code == "AccessDeniedException"
        assert gw.faults.counters["resume_refused"] == 1
        gw.faults.refuse_resume = False
        assert gw.state.resume_session(session.session_id, base_url=gw.url).token


async def test_websocket_connect_while_silent_gets_nothing(gateway: Gateway) -> None:
    session = make_session(gateway.state, gateway=gateway)
    gateway.set_silent(True)
    async with connect(session.stream_url, ping_interval=None) as ws:
        await ws.send(json.dumps({"TokenValue": session.token}))
        pong = await ws.ping()  # sent right behind OpenDataChannel, as clients do
        assert isinstance(pong, asyncio.Future)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(scaled(0.2)):
                await ws.recv()
        assert not pong.done()
        assert not gateway.connected(session.session_id)  # not even OpenDataChannel is read
        gateway.set_silent(False)
        async with asyncio.timeout(scaled(2)):
            await pong
            greeting = await ws.recv()
            assert isinstance(greeting, bytes)
            assert ClientMessage.decode(greeting).message_type == "start_publication"
        assert gateway.connected(session.session_id)


async def test_close_connections_on_request(gateway: Gateway) -> None:
    session = make_session(gateway.state, gateway=gateway)
    client = DCClient(session)
    await client.connect()
    await client.wait_for(lambda: gateway.connected(session.session_id))
    assert gateway.close_connections(session.session_id) == 1
    await client.wait_disconnected()
    assert (client.close_code, client.close_reason) == (1000, "Bye")
    await client.connect(token=gateway.state.issue_token(session))
    await client.wait_for(lambda: gateway.connected(session.session_id))
    assert gateway.close_connections(abrupt=True) == 1
    await client.wait_disconnected()
    assert client.close_code == 1006
    assert gateway.faults.counters["closed"] == gateway.faults.counters["reset"] == 1
    assert gateway.agent(session.session_id) is not None  # the session lives on
    assert gateway.close_connections("no-such-session") == 0
    await client.close()
