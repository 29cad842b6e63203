"""Fixtures for the emulator tests: a real emulator on loopback, and boto3 clients.

boto3 is synchronous, so :class:`EmulatorThread` runs the emulator's event loop in a
background thread; tests call boto3 directly and reach into the emulator's state with
:meth:`EmulatorThread.call`, which runs a function on the emulator's loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

import boto3
import botocore.config
import pytest

from ssmsh.emulator import Emulator, EmulatorConfig
from ssmsh.emulator.httpserver import HttpLimits
from ssmsh.emulator.server import GatewayFactory
from ssmsh.emulator.state import EmulatorState, SessionRecord
from tests.conftest import scaled

T = TypeVar("T")

ACCESS_KEY = "AKIDEMULATORTEST"
SECRET_KEY = "emulator-test-secret"


class PlaceholderGateway:
    """A stand-in for the message gateway for API-only tests.

    It listens on a real loopback port (so StreamUrls point somewhere real), closes
    every connection it gets, and records which sessions TerminateSession ended.
    """

    def __init__(self, state: EmulatorState, config: EmulatorConfig) -> None:
        self.state = state
        self.terminated: list[str] = []
        self._server: asyncio.Server | None = None
        self.url = ""

    async def start(self, host: str) -> None:
        async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        self._server = await asyncio.start_server(refuse, host, 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://{host}:{port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def terminate(self, session: SessionRecord) -> None:
        self.terminated.append(session.session_id)


class EmulatorThread:
    """An :class:`Emulator` served from its own event loop in a daemon thread."""

    def __init__(
        self,
        config: EmulatorConfig,
        gateway_factory: GatewayFactory | None = None,
        http_limits: HttpLimits | None = None,
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self.emulator = Emulator(config, gateway_factory=gateway_factory, http_limits=http_limits)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> EmulatorThread:
        self._thread.start()
        self.run(self.emulator.start())
        return self

    def run(self, coro: Awaitable[T]) -> T:
        """Run a coroutine on the emulator's loop and wait for its result."""

        async def wrapper() -> T:
            return await coro

        future = asyncio.run_coroutine_threadsafe(wrapper(), self.loop)
        return future.result(timeout=scaled(10))

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a plain function on the emulator's loop and return its result."""
        future: Future[T] = Future()

        def runner() -> None:
            try:
                future.set_result(fn(*args))
            except BaseException as exc:
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(runner)
        return future.result(timeout=scaled(10))

    def stop(self) -> None:
        try:
            self.run(self.emulator.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=scaled(10))
            self.loop.close()

    @property
    def endpoint_url(self) -> str:
        return self.emulator.endpoint_url

    @property
    def state(self) -> EmulatorState:
        return self.emulator.state


def make_client(
    service: str,
    endpoint_url: str,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
    region: str = "us-east-1",
) -> Any:
    """A boto3 client for the emulator: no retries, short timeouts."""
    session: Any = boto3.session.Session()
    return session.client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=botocore.config.Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=scaled(5),
            read_timeout=scaled(10),
        ),
    )


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Override in a test module to change the configuration."""
    return EmulatorConfig()


@pytest.fixture
def emu(emulator_config: EmulatorConfig) -> Iterator[EmulatorThread]:
    """A running emulator (placeholder gateway) in a background thread."""
    thread = EmulatorThread(emulator_config, PlaceholderGateway).start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture
def ssm(emu: EmulatorThread) -> Any:
    return make_client("ssm", emu.endpoint_url)


@pytest.fixture
def kms(emu: EmulatorThread) -> Any:
    return make_client("kms", emu.endpoint_url)
