"""forward, proxy and the listing commands do not load what only shells, KMS, boto3
resources or the emulator need."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from ssmsh.cli.main import build_parser
args = build_parser(sys.argv[1:]).parse_args(sys.argv[1:])
heavy = ("prompt_toolkit", "cryptography", "boto3", "ssmsh.emulator")
print(" ".join(sorted({m.split(".")[0] if not m.startswith("ssmsh") else m
                       for m in sys.modules if m.startswith(heavy)})))
"""


def loaded(*argv: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(
    "argv",
    [
        ["forward", "i-0123456789abcdef0", "0:22"],
        ["proxy", "i-0123456789abcdef0", "22"],
        ["sessions", "--history"],
        ["ls", "--online"],
        ["automation", "ls", "--waiting"],
        ["approve", "00000000-0000-0000-0000-000000000000"],
        ["association", "history", "fleet-health"],
    ],
)
def test_commands_stay_lean(argv: list[str]) -> None:
    assert loaded(*argv) == ""


def test_the_emulator_command_still_parses() -> None:
    assert "ssmsh.emulator" in loaded("emulator", "--port", "0")
