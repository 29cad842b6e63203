"""A small fleet on the emulator, and the real CLI run against it, for the tests of
``ssmsh sessions``, ``terminate``, ``ls`` and ``status``."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from ssmsh.emulator import DEFAULT_TARGET, Emulator, EmulatorConfig, TargetRecord

from .harness import PROMPT, run_cli

WEB_1 = DEFAULT_TARGET
DB_1 = "i-0123456789abcdef1"
WEB_2 = "i-0123456789abcdef2"
#: An instance without a Name tag.
BARE = "i-0123456789abcdef3"


@pytest.fixture
async def fleet() -> AsyncIterator[Emulator]:
    """web-1 and db-1 (env=prod), web-2 (env=dev, Windows), and one without a Name."""
    config = EmulatorConfig(
        environment={"PS1": PROMPT, "ENV": "/dev/null"},
        shell="/bin/sh",
        targets=[
            TargetRecord(WEB_1, name="web-1", tags={"env": "prod"}),
            TargetRecord(DB_1, name="db-1", tags={"env": "prod", "role": "db"}),
            TargetRecord(WEB_2, name="web-2", tags={"env": "dev"}, platform_name="Windows"),
            TargetRecord(BARE, name=""),
        ],
    )
    async with Emulator(config) as emu:
        yield emu


def closed_port_url() -> str:
    """An endpoint URL on loopback where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def ssmsh(
    endpoint: str | Emulator, *args: str, env: Mapping[str, str] | None = None
) -> tuple[int, str, str]:
    """``ssmsh ARGS --endpoint-url URL`` with pipes: (status, stdout, stderr); never a traceback."""
    url = endpoint if isinstance(endpoint, str) else endpoint.endpoint_url
    code, out, err = await run_cli([*args, "--endpoint-url", url], env=env)
    assert "Traceback" not in err.decode(), err.decode()
    return code, out.decode(), err.decode()


async def ssmsh_json(endpoint: str | Emulator, *args: str) -> list[dict[str, Any]]:
    """The JSON a listing command prints into a pipe (it must succeed quietly)."""
    code, out, err = await ssmsh(endpoint, *args)
    assert code == 0, err
    assert err == "", err
    result = json.loads(out)
    assert isinstance(result, list)
    return result


def one_line(err: str) -> str:
    """stderr holds exactly one ``ssmsh: ...`` line; that line."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ssmsh: "), lines
    return lines[0]
