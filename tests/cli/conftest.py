"""What the shell and plugin CLI tests share: an emulator with a known prompt, Ctrl-C checks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from ssmsh.emulator import DEFAULT_TARGET, Emulator, EmulatorConfig, TargetRecord
from tests.conftest import scaled

from .harness import PROMPT, PtyProcess

#: A target whose sessions are encrypted with KMS_KEY.
KMS_TARGET = "i-0123456789abcdef1"
KMS_KEY = "alias/ssmsh-test"


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """``DEFAULT_TARGET`` (Name web-1) and ``KMS_TARGET``; /bin/sh with the harness's PROMPT."""
    config = EmulatorConfig(
        # a fixed, recognisable prompt for the emulated shell
        environment={"PS1": PROMPT, "ENV": "/dev/null"},
        shell="/bin/sh",
        targets=[
            TargetRecord(DEFAULT_TARGET, name="web-1"),
            TargetRecord(KMS_TARGET, name="secure-1", kms_key_id=KMS_KEY),
        ],
    )
    async with Emulator(config) as emu:
        yield emu


async def interrupt_with_ctrl_c(
    proc: PtyProcess, started: Callable[[], bool] | None = None
) -> None:
    """Ctrl-C once the session has started: ssmsh says so, exits 130, restores the terminal.

    For a session that keeps the terminal cooked (no remote pty), where Ctrl-C is
    SIGINT for ssmsh itself. ``started`` tells when the session has started (for a
    command that says nothing about it: ``exec``); by default its status line does.
    Closes ``proc``.
    """
    try:
        if started is None:
            await proc.expect("Starting session")
        else:
            async with asyncio.timeout(scaled(15)):
                while not started():
                    await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        proc.send(b"\x03")
        assert await proc.wait() == 130
        assert "ssmsh: interrupted" in proc.text
        assert proc.slave_attrs() == proc.initial_attrs
    finally:
        proc.close()
