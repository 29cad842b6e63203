"""What ``ssmsh run`` prints: each instance's output, the progress line, the report, JSON.

Output comes as each instance finishes: by default every line prefixed with the
instance's name (``web-1 | ...``, like ``pssh -P``), with ``--group`` a header per
instance and its output whole. stdout lines go to stdout and stderr lines to stderr,
always. Notes for people (an instance that failed, output AWS truncated, the summary)
are status lines on stderr; the progress line is drawn only on a terminal.

AWS keeps the first 24,000 characters of stdout and 8,000 of stderr
(GetCommandInvocation), and a listing with ``Details`` 2,500 of both together; output cut
there is marked as truncated, with where the whole of it is when an S3 bucket was given.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..terminal.tty import Terminal, write_all
from .listing import duration, iso_time
from .runtime import Reporter

__all__ = [
    "DETAILS_LIMIT",
    "EXIT_SOME_FAILED",
    "STDERR_LIMIT",
    "STDOUT_LIMIT",
    "InvocationResult",
    "PluginResult",
    "Printer",
    "natural_key",
    "run_exit_status",
    "split_details",
]

#: AWS's limits: a listing's plugin Output; GetCommandInvocation's stdout and stderr.
DETAILS_LIMIT = 2500
STDOUT_LIMIT = 24000
STDERR_LIMIT = 8000
#: How the agent lays out a plugin's Output (stdout, the title, stderr) and marks cuts.
_ERROR_TITLE = "\n----------ERROR-------\n"
_OUTPUT_CUT = "\n---Output truncated---"
_ERROR_CUT = "\n---Error truncated----"

#: Several instances, not all of which succeeded (docs/run.md).
EXIT_SOME_FAILED = 1

_CLEAR_LINE = "\r\x1b[K"


@dataclasses.dataclass(slots=True)
class PluginResult:
    """One step of a finished invocation."""

    name: str
    status: str
    details: str
    response_code: int
    stdout: str
    stderr: str
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    #: The number of characters AWS cut the stream at (0 when whole).
    stdout_limit: int = 0
    stderr_limit: int = 0
    stdout_url: str = ""
    stderr_url: str = ""


@dataclasses.dataclass(slots=True)
class InvocationResult:
    """A finished invocation: one instance."""

    instance_id: str
    label: str
    status: str
    details: str
    plugins: list[PluginResult]

    @property
    def response_code(self) -> int:
        """The first failed step's ResponseCode (else the last step's; -1: never ran)."""
        for plugin in self.plugins:
            if plugin.status != "Success":
                return plugin.response_code
        return self.plugins[-1].response_code if self.plugins else -1

    def to_json(self) -> dict[str, Any]:
        first = self.plugins[0] if self.plugins else PluginResult("", "", "", -1, "", "")
        result: dict[str, Any] = {
            "InstanceId": self.instance_id,
            "InstanceName": self.label,
            "Status": self.status,
            "StatusDetails": self.details,
            "ResponseCode": self.response_code,
            "StandardOutputContent": "".join(p.stdout for p in self.plugins),
            "StandardErrorContent": "".join(p.stderr for p in self.plugins),
            "StandardOutputTruncated": any(p.stdout_truncated for p in self.plugins),
            "StandardErrorTruncated": any(p.stderr_truncated for p in self.plugins),
            "StandardOutputUrl": first.stdout_url,
            "StandardErrorUrl": first.stderr_url,
        }
        if len(self.plugins) > 1:
            result["Plugins"] = [_plugin_json(p) for p in self.plugins]
        return result


def _plugin_json(plugin: PluginResult) -> dict[str, Any]:
    return {
        "Name": plugin.name,
        "Status": plugin.status,
        "StatusDetails": plugin.details,
        "ResponseCode": plugin.response_code,
        "StandardOutputContent": plugin.stdout,
        "StandardErrorContent": plugin.stderr,
        "StandardOutputTruncated": plugin.stdout_truncated,
        "StandardErrorTruncated": plugin.stderr_truncated,
        "StandardOutputUrl": plugin.stdout_url,
        "StandardErrorUrl": plugin.stderr_url,
    }


def split_details(output: str) -> tuple[str, str, bool, bool]:
    """A listing's plugin Output -> (stdout, stderr, stdout cut, stderr cut)."""
    stdout, title, stderr = output.partition(_ERROR_TITLE)
    if not title:
        stderr = ""
    out_cut = stdout.endswith(_OUTPUT_CUT)
    err_cut = stderr.endswith(_ERROR_CUT)
    if out_cut:
        stdout = stdout[: -len(_OUTPUT_CUT)]
    if err_cut:
        stderr = stderr[: -len(_ERROR_CUT)]
    return stdout, stderr, out_cut, err_cut


def run_exit_status(results: Sequence[InvocationResult], expected: int) -> int:
    """0 when every invocation succeeded; with one instance its ResponseCode (1 when it
    gave none in 1-255, e.g. it never ran); with several, 1 when any did not succeed."""
    if len(results) == expected and all(r.status == "Success" for r in results):
        return 0
    if expected == 1 and len(results) == 1:
        code = results[0].response_code
        return code if 0 < code < 256 else EXIT_SOME_FAILED
    return EXIT_SOME_FAILED


class Printer:
    """Writes what ``ssmsh run`` shows, in one of three modes: prefix, group or json."""

    def __init__(self, terminal: Terminal, reporter: Reporter, mode: str = "prefix") -> None:
        self.terminal = terminal
        self.reporter = reporter
        self.mode = mode
        self._live = terminal.stderr_is_tty and not reporter.quiet
        self._drawn = False

    # -- the progress line (stderr, a terminal only) --------------------------------

    def progress(self, command: Mapping[str, Any], finished: int, elapsed: float) -> None:
        if not self._live:
            return
        total = int(command.get("TargetCount") or 0)
        errors = int(command.get("ErrorCount") or 0)
        undelivered = int(command.get("DeliveryTimedOutCount") or 0)
        text = f"{command.get('Status', '?')}: {finished}/{total or '?'} done"
        if errors:
            text += f", {errors} failed"
        if undelivered:
            text += f", {undelivered} not delivered"
        text += f" - {duration(elapsed)}"
        self._draw(_CLEAR_LINE + text)
        self._drawn = True

    def progress_done(self) -> None:
        if self._drawn:
            self._draw(_CLEAR_LINE)
            self._drawn = False

    def _draw(self, text: str) -> None:
        """The progress line: drawn over itself, so it leaves no line behind."""
        with contextlib.suppress(OSError):
            write_all(self.terminal.stderr, text.encode(errors="replace"))

    def note(self, text: str) -> None:
        """A status line for people (cleared of the progress line first)."""
        self.progress_done()
        self.reporter.status(text)

    # -- instances --------------------------------------------------------------------

    def invocation(self, result: InvocationResult) -> None:
        """Show one finished instance (nothing in JSON mode: that comes at the end)."""
        if self.mode == "json":
            return
        self.progress_done()
        if self.mode == "group":
            self._write(self.terminal.stdout, f"=== {self._headline(result)}\n")
            for plugin in result.plugins:
                self._write(self.terminal.stdout, _ended(plugin.stdout))
                self._write(self.terminal.stderr, _ended(plugin.stderr))
        else:
            lead = f"{result.label} | "
            for plugin in result.plugins:
                self._write(self.terminal.stdout, _prefixed(lead, plugin.stdout))
                self._write(self.terminal.stderr, _prefixed(lead, plugin.stderr))
            if result.status != "Success":
                self.reporter.status(self._headline(result))
        for plugin in result.plugins:
            self._truncation_notes(result.label, plugin)

    @staticmethod
    def _headline(result: InvocationResult) -> str:
        text = f"{result.label} ({result.instance_id}): {result.status}"
        if result.details and result.details != result.status:
            text += f" ({result.details})"
        code = result.response_code
        return text + (f", exit status {code}" if code >= 0 else ", did not run")

    def _truncation_notes(self, label: str, plugin: PluginResult) -> None:
        for stream, cut, limit, url in (
            ("stdout", plugin.stdout_truncated, plugin.stdout_limit, plugin.stdout_url),
            ("stderr", plugin.stderr_truncated, plugin.stderr_limit, plugin.stderr_url),
        ):
            if not cut:
                continue
            where = f"the whole of it: {url}" if url else "--output-s3-bucket-name keeps it whole"
            self.reporter.status(
                f"{label}: {stream} truncated by AWS at {limit:,} characters ({where})"
            )

    # -- the end --------------------------------------------------------------------

    def summary(self, results: Sequence[InvocationResult], expected: int) -> None:
        """One status line: how many instances ended how (for several instances)."""
        self.progress_done()
        if expected <= 1 and len(results) == expected:
            return
        counts: dict[str, int] = {}
        for result in results:
            counts[result.status] = counts.get(result.status, 0) + 1
        parts = [f"{n} {status}" for status, n in sorted(counts.items())]
        if len(results) < expected:
            parts.append(f"{expected - len(results)} unfinished")
        failed = [r.label for r in results if r.status != "Success"]
        text = f"{expected} instance{'s' if expected != 1 else ''}: {', '.join(parts)}"
        if failed:
            ordered = sorted(failed, key=natural_key)
            shown = ", ".join(ordered[:10]) + (", ..." if len(failed) > 10 else "")
            text += f" (not successful: {shown})"
        self.reporter.status(text)

    def document(self, command: Mapping[str, Any], results: Sequence[InvocationResult]) -> None:
        """``--json``: the command and its invocations, one document on stdout."""
        self.progress_done()
        doc = {
            "Command": dict(command),
            "Invocations": [r.to_json() for r in sorted(results, key=lambda r: r.instance_id)],
        }
        text = json.dumps(doc, indent=2, default=_json_value) + "\n"
        self._write(self.terminal.stdout, text)

    def _write(self, fd: int, text: str) -> None:
        if not text:
            return
        data = text.encode(errors="replace")
        write_all(fd, data)  # BrokenPipeError: the caller stops (exit 141)
        self.terminal.wrote(data, fd)


def _ended(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


def _prefixed(lead: str, text: str) -> str:
    if not text:
        return ""
    return "".join(lead + line + "\n" for line in text.rstrip("\n").split("\n"))


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return iso_time(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def natural_key(label: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that puts node-2 before node-10 (numbers compared as numbers)."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part)
        for part in re.split(r"(\d+)", label)
        if part
    )
