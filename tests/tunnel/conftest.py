"""Fixtures for tunnel tests through the local emulator (real WebSockets, real sockets)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
from collections.abc import AsyncIterator

import pytest

from ssmsh.cli import forward as forward_cli
from ssmsh.cli.main import build_parser
from ssmsh.cli.runtime import Reporter
from ssmsh.emulator import Emulator, EmulatorConfig
from ssmsh.terminal.tty import Terminal
from tests.conftest import scaled


@pytest.fixture(autouse=True)
def aws_test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials for signing requests to the emulator; nothing reaches AWS."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSSMSHTEST0000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ssmsh-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SSM"):
        monkeypatch.delenv(name, raising=False)


@contextlib.asynccontextmanager
async def emulator(config: EmulatorConfig | None = None) -> AsyncIterator[Emulator]:
    async with Emulator(config or EmulatorConfig()) as emu:
        yield emu


def parse_cli(emu: Emulator, *argv: str) -> argparse.Namespace:
    """Arguments as ``ssmsh --endpoint-url URL ARGV...`` would produce them."""
    return build_parser().parse_args(["--endpoint-url", emu.endpoint_url, *argv])


class RunningForward:
    """``ssmsh forward`` running in-process; its stderr lines collected in ``lines``."""

    LISTEN = re.compile(r"^listening on (\S+?)(?:, \S+)* for ")

    def __init__(self, args: argparse.Namespace, monkeypatch: pytest.MonkeyPatch) -> None:
        self.args = args
        self.lines: list[str] = []
        self._new_line = asyncio.Event()
        self.reporter = Reporter(Terminal())
        monkeypatch.setattr(self.reporter, "say", self._report)
        self.task: asyncio.Task[int] | None = None

    def _report(self, line: str) -> None:
        self.lines.append(line)
        self._new_line.set()

    async def __aenter__(self) -> RunningForward:
        self.task = asyncio.create_task(forward_cli.forward(self.args, self.reporter))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_line(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """The first line matching ``pattern`` (waiting for it)."""
        regex = re.compile(pattern)
        async with asyncio.timeout(scaled(timeout)):
            while True:
                for line in self.lines:
                    if match := regex.search(line):
                        return match
                if self.task is not None and self.task.done():
                    raise AssertionError(f"forward ended: {self.task.result()} {self.lines}")
                self._new_line.clear()
                await self._new_line.wait()

    async def addresses(self, count: int = 1) -> list[str]:
        """The listening addresses, in spec order, once all are printed."""
        async with asyncio.timeout(scaled(10)):
            while True:
                found = [m.group(1) for line in self.lines if (m := self.LISTEN.match(line))]
                if len(found) >= count:
                    return found
                self._new_line.clear()
                await self._new_line.wait()

    async def ports(self, count: int = 1) -> list[int]:
        return [int(a.rsplit(":", 1)[1]) for a in await self.addresses(count)]

    async def ready(self, count: int = 1) -> None:
        """Wait until ``count`` sessions are established (needs -v)."""
        async with asyncio.timeout(scaled(10)):
            while sum("ready (" in line for line in self.lines) < count:
                if self.task is not None and self.task.done():
                    raise AssertionError(f"forward ended: {self.task.result()} {self.lines}")
                self._new_line.clear()
                await self._new_line.wait()

    async def stop(self) -> int | None:
        """Cancel (the same cleanup as Ctrl-C, minus the signal); the exit status if it ended."""
        if self.task is None:
            return None
        if not self.task.done():
            self.task.cancel()
        try:
            return await asyncio.wait_for(self.task, scaled(10))
        except asyncio.CancelledError:
            return None
