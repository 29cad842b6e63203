"""``ssmsh setup``: ssmsh's own exec document, made once, used by exec, and let go of."""

from __future__ import annotations

import json
from pathlib import Path

from ssmsh.cli.setup import EXEC_DOCUMENT, EXEC_DOCUMENT_CONTENT
from ssmsh.emulator import DEFAULT_TARGET, Emulator

from .harness import run_cli

SCRIPT = "echo out; echo err >&2; exit 5"


def cli_env(tmp_path: Path) -> dict[str, str]:
    return {"XDG_CACHE_HOME": str(tmp_path / "cache")}


async def exec_script(emulator: Emulator, env: dict[str, str]) -> tuple[int, bytes, bytes]:
    return await run_cli(
        ["exec", DEFAULT_TARGET, "--endpoint-url", emulator.endpoint_url, "-q", "--", SCRIPT],
        env=env,
        stdin=None,  # no stdin: a piped one goes through AWS-StartInteractiveCommand
    )


async def test_setup_then_exec_keeps_stderr_apart(emulator: Emulator, tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    # Before: AWS's document, merged streams, the status from ssmsh's wrapper.
    assert await exec_script(emulator, env) == (5, b"out\nerr\n", b"")

    code, out, err = await run_cli(["setup", "--endpoint-url", emulator.endpoint_url], env=env)
    assert code == 0, err
    assert out.startswith(f"{EXEC_DOCUMENT}: created".encode())
    stored = emulator.state.documents.find(EXEC_DOCUMENT)
    assert stored is not None
    assert json.loads(stored.version("$DEFAULT").content_as("JSON")) == EXEC_DOCUMENT_CONTENT

    code, out, err = await exec_script(emulator, env)
    assert (code, out, err) == (5, b"out\n", b"err\n")
    history = emulator.state.sessions.values()
    assert {s.document_name for s in history} == {"AWS-StartNonInteractiveCommand", EXEC_DOCUMENT}

    code, out, _ = await run_cli(["setup", "--endpoint-url", emulator.endpoint_url], env=env)
    assert (code, out.split(b";")[0]) == (0, f"{EXEC_DOCUMENT}: unchanged in us-east-1".encode())


async def test_exec_falls_back_when_the_document_is_gone(
    emulator: Emulator, tmp_path: Path
) -> None:
    env = cli_env(tmp_path)
    code, _, err = await run_cli(["setup", "--endpoint-url", emulator.endpoint_url], env=env)
    assert code == 0, err
    emulator.state.documents.delete(EXEC_DOCUMENT)
    assert await exec_script(emulator, env) == (5, b"out\nerr\n", b"")
    note = json.loads((tmp_path / "cache" / "ssmsh" / "exec-documents.json").read_text())
    assert note == {}  # forgotten: the next exec goes straight to AWS's document


async def test_setup_print_and_bad_uses(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    code, out, _ = await run_cli(["setup", "--print"], env=env)
    assert code == 0 and json.loads(out) == EXEC_DOCUMENT_CONTENT
    code, out, err = await run_cli(["setup", "--local"], env=env)
    assert (code, out) == (255, b"")
    assert err.count(b"\n") == 1 and b"--local" in err
