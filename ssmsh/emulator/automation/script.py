"""``aws:executeScript`` with a Python runtime: the step's script run by this machine's Python.

The script (the ``Script`` input) runs in a fresh ``python -I`` process, in its own
process group, as the emulator's user: its ``Handler`` function is called with the
``InputPayload`` object as ``events`` and a context dict (the execution id, document
name, region and account under their ``automation:`` / ``global:`` variable names), and
what it returns is the step's ``Payload``. An exception fails the step with the end of
the traceback as its message, as AWS reports the script's error. Whatever Python version
``Runtime`` names (``python3.8``...), the emulator's own Python 3 runs it; PowerShell
runtimes and ``Attachment`` scripts are not supported (the step fails saying so).
Cancelling the task kills the process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
from collections.abc import Mapping
from typing import Any

__all__ = ["ScriptError", "run_python"]

#: Runs in the child: reads the job from stdin, writes the handler's result to a file.
_WRAPPER = """
import json, sys
job = json.load(sys.stdin)
namespace = {"__name__": "__automation__"}
exec(compile(job["script"], "<script>", "exec"), namespace)
handler = namespace.get(job["handler"])
if not callable(handler):
    sys.exit("Handler " + job["handler"] + " is not a function of the script.")
result = handler(job["events"], job["context"])
with open(job["result"], "w", encoding="utf-8") as out:
    json.dump(result, out, default=str)
"""
#: Characters of stderr kept for the failure message.
_KEEP = 4000


class ScriptError(Exception):
    """The script could not run or raised; the message says why."""


async def run_python(
    script: str,
    handler: str,
    events: Any,
    context: Mapping[str, str],
    environment: Mapping[str, str],
) -> Any:
    """The value ``handler(events, context)`` returns (ScriptError if it fails)."""
    with tempfile.TemporaryDirectory(prefix="ssmsh-executescript-") as workdir:
        result_path = os.path.join(workdir, "result.json")
        job = {
            "script": script,
            "handler": handler,
            "events": events,
            "context": dict(context),
            "result": result_path,
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-c",
            _WRAPPER,
            cwd=workdir,
            env={**os.environ, **environment},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, stderr = await process.communicate(json.dumps(job, default=str).encode())
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.shield(process.wait())
            raise
        if process.returncode != 0:
            text = stderr.decode("utf-8", "replace").strip()[-_KEEP:]
            raise ScriptError(text or f"The script exited with status {process.returncode}.")
        try:
            with open(result_path, encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError) as exc:
            raise ScriptError(f"The handler's result could not be read: {exc}") from None
