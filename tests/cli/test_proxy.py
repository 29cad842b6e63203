"""Through an HTTP proxy (HTTPS_PROXY / HTTP_PROXY / NO_PROXY, as corporate networks need).

A CONNECT proxy on loopback stands in for the corporate one. The SSM API goes
direct (``localhost`` is in NO_PROXY); the WebSocket to the message gateway
(``127.0.0.1``) goes through the proxy, as it would to ``ssmmessages``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from ssmsh.emulator import DEFAULT_TARGET, Emulator

from .harness import run_cli

pytestmark = pytest.mark.timeout(60)


class ConnectProxy:
    """An HTTP CONNECT proxy on 127.0.0.1; ``refuse`` answers 407 instead."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.targets: list[str] = []
        self.port = 0

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        method, target, _ = request.decode("latin-1").split(" ", 2)
        self.targets.append(f"{method} {target}")
        if method != "CONNECT" or self.refuse:
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        host, port = target.rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield f"http://user:secret@127.0.0.1:{self.port}"
        finally:
            server.close()


def through(proxy_url: str) -> dict[str, str]:
    return {"HTTPS_PROXY": proxy_url, "HTTP_PROXY": proxy_url, "NO_PROXY": "localhost"}


def api_url(emulator: Emulator) -> str:
    return emulator.endpoint_url.replace("127.0.0.1", "localhost")


async def test_the_session_goes_through_the_proxy(emulator: Emulator) -> None:
    proxy = ConnectProxy()
    async with proxy.running() as url:
        code, out, err = await run_cli(
            ["exec", DEFAULT_TARGET, "--endpoint-url", api_url(emulator), "--", "echo via-proxy"],
            env=through(url),
        )
    assert (code, out) == (0, b"via-proxy\n"), err
    assert len(proxy.targets) == 1 and proxy.targets[0].startswith("CONNECT 127.0.0.1:")


async def test_a_refusing_proxy_is_one_line_naming_it(emulator: Emulator) -> None:
    proxy = ConnectProxy(refuse=True)
    async with proxy.running() as url:
        # A 407 will not change by itself: no retrying for the default five minutes.
        args = ["--endpoint-url", api_url(emulator)]
        code, out, err = await run_cli(
            ["exec", DEFAULT_TARGET, *args, "--", "true"], env=through(url)
        )
    lines = err.decode().strip().splitlines()
    assert code == 255 and out == b""
    assert "the proxy refused the connection" in lines[-1], lines
    assert f"through the proxy http://127.0.0.1:{proxy.port}" in lines[-1]
    assert "407" in lines[-1]
    assert "secret" not in err.decode()  # the proxy's credentials are never shown
    assert "Traceback" not in err.decode()


async def test_local_never_goes_through_a_proxy() -> None:
    # The in-process emulator is on loopback, where no proxy can reach it.
    dead = "http://127.0.0.1:9"
    code, out, err = await run_cli(
        ["exec", "--local", "--", "echo local"],
        env={"HTTPS_PROXY": dead, "HTTP_PROXY": dead, "ALL_PROXY": dead},
    )
    assert (code, out) == (0, b"local\n"), err
