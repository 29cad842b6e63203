"""Local listeners: TCP port choice, bind reporting, Unix socket permissions and cleanup."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from pathlib import Path

import pytest

from ssmsh.exceptions import TunnelError
from ssmsh.tunnel.listeners import open_listener
from ssmsh.tunnel.spec import parse_spec


async def _hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"hello")
    await writer.drain()
    writer.close()


async def test_tcp_port_zero_picks_a_free_port_and_serves() -> None:
    listener = await open_listener(parse_spec("0:80"), _hello)
    try:
        assert listener.port and listener.port > 0
        assert listener.addresses == [f"127.0.0.1:{listener.port}"]
        assert listener.public == []
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        assert await reader.read() == b"hello"
        writer.close()
    finally:
        await listener.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", listener.port)


async def test_tcp_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        message = f"cannot listen on 127.0.0.1:{port}: address already"
        with pytest.raises(TunnelError, match=message):
            await open_listener(parse_spec(f"{port}:80"), _hello)


async def test_non_loopback_bind_is_reported_as_public() -> None:
    listener = await open_listener(parse_spec("0.0.0.0:0:80"), _hello)
    try:
        assert listener.public == [f"0.0.0.0:{listener.port}"]
    finally:
        await listener.close()


async def test_localhost_binds_every_loopback_address_on_one_port() -> None:
    listener = await open_listener(parse_spec("localhost:0:80"), _hello)
    try:
        assert listener.addresses[0] == f"127.0.0.1:{listener.port}"
        assert all(a.endswith(f":{listener.port}") for a in listener.addresses)
        assert listener.public == []
    finally:
        await listener.close()


async def test_unknown_bind_host_is_a_clear_error() -> None:
    with pytest.raises(TunnelError, match="cannot resolve bind address"):
        await open_listener(parse_spec("no-such-host.invalid:0:80"), _hello)


async def test_unix_socket_mode_0600_served_and_removed(tmp_path: Path) -> None:
    path = str(tmp_path / "fwd.sock")
    old = os.umask(0o000)  # even a permissive umask must not leak a readable socket
    try:
        listener = await open_listener(parse_spec(f"{path}:80"), _hello)
    finally:
        os.umask(old)
    try:
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o600
        reader, writer = await asyncio.open_unix_connection(path)
        assert await reader.read() == b"hello"
        writer.close()
    finally:
        await listener.close()
    assert not os.path.exists(path)


async def test_stale_unix_socket_is_replaced(tmp_path: Path) -> None:
    path = str(tmp_path / "stale.sock")
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(path)
    dead.close()  # the file stays, nobody listens
    listener = await open_listener(parse_spec(f"{path}:80"), _hello)
    await listener.close()
    assert not os.path.exists(path)


async def test_live_unix_socket_and_plain_file_are_not_touched(tmp_path: Path) -> None:
    path = str(tmp_path / "live.sock")
    live = socket.socket(socket.AF_UNIX)
    live.bind(path)
    live.listen()
    try:
        with pytest.raises(TunnelError, match="another process is listening"):
            await open_listener(parse_spec(f"{path}:80"), _hello)
        assert os.path.exists(path)
    finally:
        live.close()
    plain = tmp_path / "plain"
    plain.write_text("data")
    with pytest.raises(TunnelError, match="not a socket"):
        await open_listener(parse_spec(f"{plain}:80"), _hello)
    assert plain.read_text() == "data"


async def test_unix_socket_in_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(TunnelError, match="cannot listen on"):
        await open_listener(parse_spec(f"{tmp_path}/nope/x.sock:80"), _hello)


async def test_replaced_socket_file_is_not_removed(tmp_path: Path) -> None:
    path = str(tmp_path / "fwd.sock")
    listener = await open_listener(parse_spec(f"{path}:80"), _hello)
    os.unlink(path)
    Path(path).write_text("someone else's")
    await listener.close()
    assert Path(path).read_text() == "someone else's"
