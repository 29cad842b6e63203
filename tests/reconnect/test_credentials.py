"""Credentials rotated between StartSession and ResumeSession: the session still resumes.

The emulator verifies every SigV4 signature (API calls and the WebSocket upgrade)
against its known key pairs. The client gets its credentials from a shared
credentials file, as boto3 users usually do; the file is rewritten with a new
pair mid-session and the old pair is then revoked, so a client that kept using
the credentials it started with could not resume.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import boto3
import botocore.exceptions
import pytest

from ssmsh.channel import ConnectionState
from ssmsh.emulator.faults import FaultConfig

from .harness import PROMPT, StateLog, read_output, rig

OLD = ("AKIDSSMSHROTATEOLD00", "old-secret-before-rotation")
NEW = ("AKIDSSMSHROTATENEW00", "new-secret-after-rotation")


def _write_credentials(path: Path, pair: tuple[str, str]) -> None:
    path.write_text(
        f"[default]\naws_access_key_id = {pair[0]}\naws_secret_access_key = {pair[1]}\n"
    )


def _call_with(endpoint: str, pair: tuple[str, str]) -> None:
    ssm = boto3.client(
        "ssm",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=pair[0],
        aws_secret_access_key=pair[1],
    )
    ssm.describe_sessions(State="Active")


async def test_rotated_credentials_still_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials_file = tmp_path / "credentials"
    _write_credentials(credentials_file, OLD)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials_file))
    accepted = dict([OLD, NEW])  # the emulator's key pairs (checked on every request)
    async with rig(
        FaultConfig(seed=5), client_credentials=None, shell="/bin/sh", credentials=accepted
    ) as r:
        log = StateLog()
        info = await r.start()  # signed with OLD
        conn = await r.connect(info, log=log)
        await read_output(conn, re.escape(PROMPT))

        _write_credentials(credentials_file, NEW)  # the provider now hands out NEW...
        del accepted[OLD[0]]  # ...and OLD is deactivated
        with pytest.raises(botocore.exceptions.ClientError, match="UnrecognizedClient"):
            await asyncio.to_thread(_call_with, r.emulator.endpoint_url, OLD)

        r.cut(info.session_id)
        await log.wait(lambda: log.reconnects == 1)
        await conn.send_input(b"echo resumed-$((40+2))\r")
        await read_output(conn, r"resumed-42\r\n")
        assert conn.state is ConnectionState.CONNECTED
        await conn.close()  # TerminateSession, signed with NEW
        assert r.emulator.state.sessions[info.session_id].ended
