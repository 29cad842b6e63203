"""Run Command records: commands, their invocations and plugins, and the status rules.

Pure data and arithmetic, no I/O: the scheduler (``scheduler.py``) moves these records
through their states, the API (``api/commands.py``) renders them.

Statuses follow AWS's "Understanding command statuses" (Systems Manager user guide,
monitor-commands.html) and the StatusDetails lists in the API reference (Command,
CommandInvocation, CommandPlugin, GetCommandInvocation):

- a plugin and an invocation report a *detailed* status (``StatusDetails``) and the coarser
  ``Status`` enum of botocore's model. Delivery Timed Out and Execution Timed Out both show
  ``Status`` TimedOut (a real GetCommandInvocation answer for an execution timeout reads
  ``"Status": "TimedOut", "StatusDetails": "ExecutionTimedOut"``); Terminated (the parent
  command passed MaxErrors and the system canceled the invocations it had not yet sent)
  shows Cancelled. The wire strings have no spaces ("DeliveryTimedOut").
- ``ErrorCount`` counts Failed and Execution Timed Out; ``DeliveryTimedOutCount`` counts
  Delivery Timed Out, which does not count against MaxErrors; ``CompletedCount`` counts
  every terminal state.
- the command ends Success when every invocation succeeded; Failed / Execution Timed Out /
  Delivery Timed Out when more than MaxErrors invocations ended that way; Cancelled after
  CancelCommand; otherwise Incomplete.

Output limits, from the API reference and the agent's behaviour:

- ``GetCommandInvocation``: ``StandardOutputContent`` is "the first 24,000 characters
  written by the plugin to stdout", ``StandardErrorContent`` the first 8,000 written to
  stderr, and both are empty until the invocation has finished.
- ``ListCommandInvocations`` with ``Details``: each plugin's ``Output`` (at most 2,500
  characters in the model) is stdout and stderr in one text, stderr after a
  ``----------ERROR-------`` line, shortened to fit as amazon-ssm-agent's iohandler does
  (``agent/framework/processor/executer/iohandler``): what does not fit is cut and marked
  ``---Output truncated---`` / ``---Error truncated----`` (see :func:`plugin_output`).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any

__all__ = [
    "ERROR_DETAILS",
    "MAX_PLUGIN_OUTPUT",
    "MAX_STDERR",
    "MAX_STDOUT",
    "TERMINAL_DETAILS",
    "CommandRecord",
    "Detail",
    "InvocationRecord",
    "PluginRecord",
    "coarse_status",
    "plugin_output",
    "rate_limit",
]

#: ``CommandPlugin.Output``: at most this many characters (botocore model, CommandPluginOutput).
MAX_PLUGIN_OUTPUT = 2500
#: ``GetCommandInvocation.StandardOutputContent`` / ``StandardErrorContent``.
MAX_STDOUT = 24000
MAX_STDERR = 8000

_ERROR_TITLE = "\n----------ERROR-------\n"
_OUTPUT_CUT = "\n---Output truncated---"
_ERROR_CUT = "\n---Error truncated----"


class Detail(enum.StrEnum):
    """``StatusDetails`` of a plugin, an invocation or a command."""

    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    DELAYED = "Delayed"
    SUCCESS = "Success"
    DELIVERY_TIMED_OUT = "DeliveryTimedOut"
    EXECUTION_TIMED_OUT = "ExecutionTimedOut"
    FAILED = "Failed"
    CANCELLING = "Cancelling"
    CANCELLED = "Cancelled"
    TERMINATED = "Terminated"
    INCOMPLETE = "Incomplete"


_STATUS = {
    Detail.PENDING: "Pending",
    Detail.IN_PROGRESS: "InProgress",
    Detail.DELAYED: "Delayed",
    Detail.SUCCESS: "Success",
    Detail.DELIVERY_TIMED_OUT: "TimedOut",
    Detail.EXECUTION_TIMED_OUT: "TimedOut",
    Detail.FAILED: "Failed",
    Detail.CANCELLING: "Cancelling",
    Detail.CANCELLED: "Cancelled",
    Detail.TERMINATED: "Cancelled",
    Detail.INCOMPLETE: "Failed",
}

TERMINAL_DETAILS = frozenset(
    {
        Detail.SUCCESS,
        Detail.DELIVERY_TIMED_OUT,
        Detail.EXECUTION_TIMED_OUT,
        Detail.FAILED,
        Detail.CANCELLED,
        Detail.TERMINATED,
        Detail.INCOMPLETE,
    }
)
#: What counts against MaxErrors (and in ErrorCount).
ERROR_DETAILS = frozenset({Detail.FAILED, Detail.EXECUTION_TIMED_OUT})


def coarse_status(detail: Detail, *, plugin: bool = False) -> str:
    """The ``Status`` enum value for a detailed status (plugins have no Cancelling)."""
    status = _STATUS[detail]
    if plugin and status in ("Cancelling", "Delayed"):
        return "InProgress" if status == "Cancelling" else "Pending"
    return status


def rate_limit(value: str, total: int, *, at_least: int = 0) -> int:
    """A MaxConcurrency / MaxErrors value ("10" or "10%") as a count of ``total`` targets.

    A percentage is rounded down (AWS's example: MaxErrors 10% of 50 targets stops at the
    sixth error, i.e. 5 allowed); MaxConcurrency passes ``at_least=1`` so that a small
    percentage of a small fleet still runs.
    """
    count = math.floor(int(value[:-1]) * total / 100) if value.endswith("%") else int(value)
    return max(at_least, count)


def plugin_output(stdout: str, stderr: str, capacity: int = MAX_PLUGIN_OUTPUT) -> str:
    """A plugin's ``Output``: stdout, then stderr under a title, cut to ``capacity``.

    The same layout and cuts as the agent: the title only appears with some stderr; when
    both streams are long each keeps half the room; otherwise the long one is cut so the
    short one fits whole. A cut stream ends with its marker.
    """
    title = _ERROR_TITLE if stderr else ""
    room = capacity - len(title)
    if len(stdout) + len(stderr) < room:
        return stdout + title + stderr
    half = room // 2
    if len(stdout) > half and len(stderr) > half:
        keep = (room - len(_OUTPUT_CUT) - len(_ERROR_CUT)) // 2
        return stdout[:keep] + _OUTPUT_CUT + title + stderr[:keep] + _ERROR_CUT
    if len(stdout) < half:
        keep = room - len(_ERROR_CUT) - len(stdout)
        return stdout + title + stderr[:keep] + _ERROR_CUT
    keep = room - len(_OUTPUT_CUT) - len(stderr)
    return stdout[:keep] + _OUTPUT_CUT + title + stderr


class _Progress:
    """``status`` and ``finished`` from a record's ``detail`` (plugins, invocations, commands)."""

    __slots__ = ()
    detail: Detail

    @property
    def status(self) -> str:
        return coarse_status(self.detail)

    @property
    def finished(self) -> bool:
        return self.detail in TERMINAL_DETAILS


@dataclasses.dataclass(slots=True)
class PluginRecord(_Progress):
    """One plugin (a step) of an invocation: what it runs and how it ended."""

    #: ``aws:runShellScript`` for a schemaVersion 1.2 document, else the step's name.
    name: str
    action: str
    script: str
    working_directory: str
    #: Execution timeout in seconds.
    timeout: float
    detail: Detail = Detail.PENDING
    #: -1 until the plugin has run (as AWS reports for invocations that never ran).
    response_code: int = -1
    start: float | None = None
    end: float | None = None
    stdout: str = ""
    stderr: str = ""

    @property
    def status(self) -> str:
        return coarse_status(self.detail, plugin=True)

    @property
    def output(self) -> str:
        return plugin_output(self.stdout, self.stderr)


@dataclasses.dataclass(slots=True)
class InvocationRecord(_Progress):
    """A command on one managed instance."""

    command_id: str
    instance_id: str
    instance_name: str
    requested: float
    plugins: list[PluginRecord]
    detail: Detail = Detail.PENDING

    @property
    def response_code(self) -> int:
        """The first non-zero plugin code, else 0 (-1 while nothing ran)."""
        codes = [p.response_code for p in self.plugins if p.response_code != -1]
        if not codes:
            return -1
        return next((c for c in codes if c != 0), 0)

    @property
    def start(self) -> float | None:
        starts = [p.start for p in self.plugins if p.start is not None]
        return min(starts) if starts else None

    @property
    def end(self) -> float | None:
        ends = [p.end for p in self.plugins if p.end is not None]
        return max(ends) if ends and self.finished else None


@dataclasses.dataclass(slots=True)
class CommandRecord(_Progress):
    """A SendCommand request and everything it started."""

    command_id: str
    document_name: str
    document_version: str
    requested: float
    expires_after: float
    timeout_seconds: int
    parameters: dict[str, list[str]]
    instance_ids: list[str]
    targets: list[dict[str, Any]]
    max_concurrency: str
    max_errors: str
    comment: str = ""
    output_s3_region: str = ""
    output_s3_bucket: str = ""
    output_s3_prefix: str = ""
    service_role: str = ""
    notification_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    cloudwatch_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    alarm_config: dict[str, Any] | None = None
    #: Invocations by instance id, in the order they are sent.
    invocations: dict[str, InvocationRecord] = dataclasses.field(default_factory=dict)
    detail: Detail = Detail.PENDING
    #: False during the visibility delay after SendCommand: no invocations are listed.
    visible: bool = False
    #: Set when MaxErrors was passed: no further invocations are sent.
    stopped: bool = False

    @property
    def target_count(self) -> int:
        return len(self.invocations)

    def count(self, *details: Detail) -> int:
        return sum(1 for i in self.invocations.values() if i.detail in details)

    @property
    def completed_count(self) -> int:
        return self.count(*TERMINAL_DETAILS)

    @property
    def error_count(self) -> int:
        return self.count(*ERROR_DETAILS)

    @property
    def delivery_timed_out_count(self) -> int:
        return self.count(Detail.DELIVERY_TIMED_OUT)

    @property
    def allowed_errors(self) -> int:
        return rate_limit(self.max_errors, self.target_count)

    @property
    def concurrency(self) -> int:
        return rate_limit(self.max_concurrency, self.target_count, at_least=1)

    def final_detail(self) -> Detail:
        """The command's StatusDetails once every invocation is terminal."""
        if self.detail in (Detail.CANCELLING, Detail.CANCELLED):
            return Detail.CANCELLED
        allowed = self.allowed_errors
        if self.count(Detail.FAILED) > allowed:
            return Detail.FAILED
        if self.count(Detail.EXECUTION_TIMED_OUT) > allowed:
            return Detail.EXECUTION_TIMED_OUT
        if self.error_count > allowed:
            return Detail.FAILED
        if self.delivery_timed_out_count > allowed:
            return Detail.DELIVERY_TIMED_OUT
        if all(i.detail == Detail.SUCCESS for i in self.invocations.values()):
            return Detail.SUCCESS
        return Detail.INCOMPLETE
