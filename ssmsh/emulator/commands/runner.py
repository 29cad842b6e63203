"""Runs one ``aws:runShellScript`` plugin as a real process, as the agent's user.

Like amazon-ssm-agent, the commands are written to a script file (``_script.sh``) in an
orchestration directory and run with ``sh``, in their own process group, with
``AWS_SSM_INSTANCE_ID`` and ``AWS_SSM_REGION_NAME`` set. When the execution timeout
passes, or the invocation is cancelled, the whole group is killed (SIGKILL) and the
plugin reports exit code 137 (128 + SIGKILL), the agent's code for a command stopped
before it finished (``CommandStoppedPreemptivelyExitCode`` in the agent's Unix
executer). A script that exits non-zero gets the agent's line
``failed to run commands: exit status N`` added to its stderr.

Only asyncio subprocesses: nothing here outlives the task that runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..agent.shell import program_env
from .model import Detail, PluginRecord

__all__ = ["STOPPED_EXIT_CODE", "run_plugin"]

logger = logging.getLogger(__name__)

#: Exit code of a command stopped by a timeout or a cancel (128 + SIGKILL).
STOPPED_EXIT_CODE = 137
#: Output kept per stream; AWS reports at most 24,000 characters of it.
_KEEP = 64 * 1024


async def _drain(stream: asyncio.StreamReader | None, sink: bytearray) -> None:
    if stream is None:
        return
    while chunk := await stream.read(65536):
        if len(sink) < _KEEP:
            sink.extend(chunk[: _KEEP - len(sink)])


async def run_plugin(
    plugin: PluginRecord,
    *,
    instance_id: str,
    region: str,
    environment: Mapping[str, str],
    timeout_scale: float = 1.0,
    now: Callable[[], float] = time.time,
) -> None:
    """Run ``plugin`` to its end, filling in its status, code, times and output.

    Cancelling the task kills the process group and marks the plugin Cancelled before
    the cancellation propagates. ``now`` gives the start and end times it reports (the
    emulator's clock).
    """
    plugin.detail = Detail.IN_PROGRESS
    plugin.start = now()
    env = program_env(environment)
    env.update(AWS_SSM_INSTANCE_ID=instance_id, AWS_SSM_REGION_NAME=region)
    stdout, stderr = bytearray(), bytearray()
    with tempfile.TemporaryDirectory(prefix="ssmsh-runcommand-") as orchestration:
        script = os.path.join(orchestration, "_script.sh")
        with open(script, "w", encoding="utf-8") as handle:
            handle.write(plugin.script + "\n")
        cwd = plugin.working_directory or orchestration
        if not os.path.isdir(cwd):
            _finish(plugin, Detail.FAILED, 1, "", f"Invalid workingDirectory {cwd!r}.", now)
            return
        spawn = asyncio.ensure_future(
            asyncio.create_subprocess_exec(
                "sh",
                script,
                cwd=cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        )
        try:
            # Shielded: asyncio's answer to a cancel during the spawn is to kill the
            # shell alone and wait for its pipes, which the script's children (sleep 30)
            # keep open: the cancel would take as long as they run.
            process = await asyncio.shield(spawn)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                spawned = await spawn
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(spawned.pid, signal.SIGKILL)
                await spawned.wait()
            _finish(plugin, Detail.CANCELLED, STOPPED_EXIT_CODE, b"", b"", now)
            raise
        readers = asyncio.gather(_drain(process.stdout, stdout), _drain(process.stderr, stderr))
        try:
            async with asyncio.timeout(plugin.timeout * timeout_scale):
                await process.wait()
                await readers
        except TimeoutError:
            await _kill(process, readers)
            _finish(plugin, Detail.EXECUTION_TIMED_OUT, STOPPED_EXIT_CODE, stdout, stderr, now)
            return
        except asyncio.CancelledError:
            await _kill(process, readers)
            _finish(plugin, Detail.CANCELLED, STOPPED_EXIT_CODE, stdout, stderr, now)
            raise
    code = process.returncode if process.returncode is not None else -1
    if code < 0:  # killed by a signal from elsewhere
        code = 128 - code
    detail = Detail.SUCCESS if code == 0 else Detail.FAILED
    _finish(plugin, detail, code, stdout, stderr, now)


async def _kill(process: asyncio.subprocess.Process, readers: asyncio.Future[Any]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    # Shielded: a second cancel must not leave a zombie or an unread pipe behind.
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await asyncio.shield(process.wait())
    readers.cancel()
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await readers


def _finish(
    plugin: PluginRecord,
    detail: Detail,
    code: int,
    stdout: bytes | bytearray | str,
    stderr: bytes | bytearray | str,
    now: Callable[[], float],
) -> None:
    out = stdout if isinstance(stdout, str) else stdout.decode("utf-8", "replace")
    err = stderr if isinstance(stderr, str) else stderr.decode("utf-8", "replace")
    if detail == Detail.FAILED and code > 0:
        separator = "\n" if err and not err.endswith("\n") else ""
        err = f"{err}{separator}failed to run commands: exit status {code}"
    plugin.detail = detail
    plugin.response_code = code
    plugin.stdout, plugin.stderr = out, err
    plugin.end = now()
    logger.debug("plugin %s ended %s (%d)", plugin.name, detail, code)
