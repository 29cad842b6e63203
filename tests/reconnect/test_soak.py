"""scripts/soak.py runs, reports its figures and would fail on a lost byte."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tests.conftest import scaled

SOAK = Path(__file__).resolve().parents[2] / "scripts" / "soak.py"

pytestmark = pytest.mark.timeout(90)


async def _soak(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SOAK),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(scaled(60)):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_short_soak_moves_data_through_reconnects_and_loses_nothing() -> None:
    code, out, err = await _soak(
        "--duration", "4", "--close-every", "0.5", "--transfer-size", "2MiB", "--json"
    )
    assert code == 0, out + err
    summary = json.loads(out)
    assert summary["ok"] is True
    assert summary["bytes_lost"] == summary["bytes_duplicated"] == summary["bytes_corrupted"] == 0
    assert summary["errors"] == []
    assert summary["reconnects"] >= 4
    assert summary["reconnects_by_session"]["shell"] >= 1
    assert summary["reconnects_by_session"]["tunnel"] >= 1
    assert summary["tunnel_transfers"] > 0 and summary["shell_commands"] > 0
    assert summary["loss_to_data_seconds"]["count"] > 0
    assert summary["faults"]["dropped"] > 0 and summary["faults"]["closed"] >= 4


async def test_bad_options_are_refused_in_one_line() -> None:
    code, out, err = await _soak("--drop", "2")
    assert (code, out) == (2, "")
    assert err.strip().startswith("soak: drop must be a fraction")
    assert "Traceback" not in err
