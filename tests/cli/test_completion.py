"""``ssmsh completion``: the bash function completes commands, options and the targets
``ssmsh ls`` last listed; zsh and fish get the same from the same parser."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ssmsh.emulator import Emulator, EmulatorConfig, TargetRecord

from .harness import cli_env, run_cli


def script(shell: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "ssmsh", "completion", shell],
        capture_output=True,
        text=True,
        check=True,
        env=cli_env(),
    )
    return out.stdout


def complete(words: list[str], cache: Path, config: Path | None = None) -> list[str]:
    """What bash offers for the last of ``words`` (Tab after ``ssmsh words...``)."""
    code = (
        "source /dev/stdin; COMP_WORDS=(" + " ".join(f"'{w}'" for w in words) + ");"
        f" COMP_CWORD={len(words) - 1}; _ssmsh_complete; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    )
    out = subprocess.run(
        ["bash", "--norc", "-c", code],
        input=script("bash"),
        capture_output=True,
        text=True,
        check=True,
        env={
            "PATH": "/usr/bin:/bin",
            "XDG_CACHE_HOME": str(cache),
            "XDG_CONFIG_HOME": str(config or cache),
        },
    )
    return out.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is needed")
async def test_bash_completes_commands_options_and_listed_targets(tmp_path: Path) -> None:
    assert complete(["ssmsh", "ss"], tmp_path) == ["ssh", "ssh-config"]
    assert "--handshake-timeout" in complete(["ssmsh", "exec", "--hand"], tmp_path)
    assert complete(["ssmsh", "shell", "we"], tmp_path) == []  # nothing listed yet
    assert complete(["ssmsh", "shell", "--document", "AWS-StartP"], tmp_path) == [
        "AWS-StartPortForwardingSession",
        "AWS-StartPortForwardingSessionToRemoteHost",
        "AWS-StartPortForwardingSessionToSocket",
    ]
    assert complete(["ssmsh", "run", "--document", "AWS-RunS"], tmp_path) == ["AWS-RunShellScript"]

    config = EmulatorConfig(
        targets=[
            TargetRecord("i-0123456789abcdef0", name="web-1"),
            TargetRecord("i-0123456789abcdef1", name="web-2"),
        ]
    )
    async with Emulator(config) as emu:
        status, _, err = await run_cli(
            ["ls", "--endpoint-url", emu.endpoint_url], env={"XDG_CACHE_HOME": str(tmp_path)}
        )
    assert status == 0, err
    assert (tmp_path / "ssmsh" / "targets").read_text().split() == [
        "i-0123456789abcdef0",
        "i-0123456789abcdef1",
        "web-1",
        "web-2",
    ]
    assert complete(["ssmsh", "shell", "we"], tmp_path) == ["web-1", "web-2"]
    assert complete(["ssmsh", "-q", "exec", "i-0123456789abcdef1"], tmp_path) == [
        "i-0123456789abcdef1"
    ]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is needed")
def test_bash_completes_the_aliases_of_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "ssmsh").mkdir()
    (tmp_path / "ssmsh" / "config.toml").write_text(
        '[defaults]\nregion = "x"\n[hosts.web]\nprofile = "p"\n  [ hosts."web-db" ]\n[hosts.ops]\n'
    )
    assert complete(["ssmsh", "ssh", "we"], tmp_path, tmp_path) == ["web", "web-db"]
    assert sorted(complete(["ssmsh", "shell", ""], tmp_path, tmp_path)) == ["ops", "web", "web-db"]


def test_zsh_and_fish_scripts_come_from_the_same_parser() -> None:
    zsh = script("zsh")
    assert zsh.startswith("autoload -U +X bashcompinit && bashcompinit\n")
    assert "complete -o default -F _ssmsh_complete ssmsh" in zsh
    fish = script("fish")
    assert "complete -c ssmsh -n '__fish_seen_subcommand_from forward' -l sessions" in fish
    assert "ssh-config" in fish.splitlines()[2]


async def test_an_unknown_shell_is_a_usage_error() -> None:
    status, _, err = await run_cli(["completion", "tcsh"], stdin=None)
    assert status == 2 and b"invalid choice" in err
