"""``ssmsh run`` and ``ssmsh commands``: Run Command from the command line.

``run TARGET... -- COMMAND`` sends COMMAND through AWS-RunShellScript (or another
Command document) with SendCommand and follows it to the end (:mod:`.follow`),
printing each instance's output as it finishes (:mod:`.runoutput`). TARGETs are what
people type: instance ids and Name tags (resolved as ``shell`` resolves them) go in
``InstanceIds``; ``tag:KEY=VALUE`` (``tag:KEY`` for any value) in ``Targets``, so that
AWS's rate controls work over a fleet. ``--dry-run`` asks DescribeInstanceInformation
for the same selection and sends nothing. ``run --wait ID`` and ``commands show ID``
follow an earlier command; ``commands`` lists them (ListCommands).

Exit status: 0 when every invocation succeeded; with one instance, its ResponseCode;
with several, 1 when any did not succeed; 130 after Ctrl-C (which cancels the command);
255 for ssmsh's own failures (docs/run.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from ..aws import INSTANCE_ID_RE
from ..aws.commands import SsmCommands, polling_settings, ssm_enum
from ..exceptions import AwsError, UsageError
from ..terminal.tty import Terminal
from .common import (
    add_common_options,
    aws_settings,
    default_target,
    local_endpoint,
    parse_parameters,
)
from .errors import EXIT_INTERRUPTED, EXIT_OK
from .follow import Follower, Interrupted, Interrupts
from .listing import (
    add_output_options,
    api_time,
    emit,
    local_time,
    parse_when,
    table,
    to_json,
    wants_json,
)
from .runoutput import Printer, run_exit_status
from .runtime import Reporter
from .shell import EXIT_BROKEN_PIPE

__all__ = [
    "COMMANDS_DESCRIPTION",
    "RUN_DESCRIPTION",
    "RUN_DOCUMENT",
    "Selection",
    "configure_commands",
    "configure_run",
    "parse_targets",
    "run_commands",
    "run_run",
]

RUN_DOCUMENT = "AWS-RunShellScript"
#: SendCommand's limits (botocore's SSM model): InstanceIds, Targets.
MAX_INSTANCE_IDS = 50
MAX_TARGET_KEYS = 5

RUN_DESCRIPTION = """\
Run COMMAND on managed instances with Run Command (SendCommand, AWS-RunShellScript),
follow it until every instance is done, and print each instance's output as it
finishes: lines prefixed with the instance's name, or with --group a header per
instance. TARGET: an instance id, a Name tag, tag:KEY=VALUE[,VALUE...] (instances with
that tag), or tag:KEY (with that tag at all). Tag targets must all match; ids and names
cannot be mixed with them. Exit status: 0 when all succeeded; with one instance, its
exit status; with several, 1 when any did not succeed; 130 after Ctrl-C (the command
is cancelled); 255 when ssmsh itself failed. See: ssmsh help run."""


COMMANDS_DESCRIPTION = (
    "List the account's Run Command commands (ListCommands), newest first: "
    "a table on a terminal, JSON otherwise. 'ssmsh commands show ID' shows one "
    "command's output as 'ssmsh run --wait ID' does."
)


def configure_run(run: argparse.ArgumentParser) -> None:
    """``ssmsh run``'s arguments; COMMAND (after ``--``) goes to ``words``."""
    run.add_argument("targets", nargs="*", metavar="TARGET", help="see above; COMMAND after --")
    run.add_argument(
        "--document", "--document-name", metavar="NAME", help=f"(default {RUN_DOCUMENT})"
    )
    run.add_argument("--document-version", metavar="VERSION", help="$DEFAULT, $LATEST or a number")
    run.add_argument(
        "--parameter", action="append", metavar="KEY=VALUE", help="document parameter (repeatable)"
    )
    run.add_argument(
        "--parameters", metavar="JSON", help='as for the AWS CLI: \'{"commands":["uptime"]}\''
    )
    run.add_argument(
        "--timeout-seconds", type=int, metavar="N", help="delivery timeout (30 or more)"
    )
    run.add_argument(
        "--execution-timeout",
        type=int,
        metavar="N",
        help="seconds the command may run (executionTimeout)",
    )
    run.add_argument("--comment", metavar="TEXT", help="recorded with the command")
    run.add_argument("--max-concurrency", metavar="N|N%", help="instances at once (AWS default 50)")
    run.add_argument(
        "--max-errors", metavar="N|N%", help="errors before the rest is not sent (default 0)"
    )
    run.add_argument(
        "--output-s3-bucket-name", metavar="BUCKET", help="the agent uploads the whole output"
    )
    run.add_argument("--output-s3-key-prefix", metavar="PREFIX")
    run.add_argument("--output-s3-region", metavar="REGION")
    run.add_argument("--notification-arn", metavar="SNS_TOPIC_ARN")
    run.add_argument("--notification-events", action="append", metavar="EVENT[,EVENT]")
    run.add_argument("--notification-type", metavar="Command|Invocation")
    run.add_argument(
        "--service-role-arn", metavar="ARN", help="role SNS notifications are sent with"
    )
    run.add_argument(
        "--cloudwatch-output",
        nargs="?",
        const="",
        metavar="LOG_GROUP",
        help="send the output to CloudWatch Logs (optionally to this log group)",
    )
    shown = run.add_mutually_exclusive_group()
    shown.add_argument(
        "--group", action="store_true", help="a header per instance, its output whole"
    )
    shown.add_argument("--json", action="store_true", help="one JSON document at the end")
    run.add_argument("--dry-run", action="store_true", help="list the instances it would run on")
    run.add_argument("--wait", metavar="COMMAND_ID", help="follow an earlier command instead")
    add_common_options(run, suppress=True)
    run.set_defaults(words=None)


def configure_commands(commands: argparse.ArgumentParser) -> None:
    """``ssmsh commands``' arguments."""
    commands.add_argument("words", nargs="*", metavar="show ID", help="follow command ID")
    commands.add_argument("--since", metavar="WHEN", help="sent at WHEN or later (2h, 2024-08-29)")
    commands.add_argument("--status", metavar="STATUS", help="Pending, InProgress, Success, ...")
    commands.add_argument("--limit", type=int, metavar="N", help="at most N commands")
    commands.add_argument("--group", action="store_true", help="with show: grouped output")
    add_output_options(commands)
    add_common_options(commands, suppress=True)


# -- targets ----------------------------------------------------------------------------


@dataclasses.dataclass
class Selection:
    """What TARGETs select: instance ids (with the names typed for them), or Targets."""

    instance_ids: list[str] = dataclasses.field(default_factory=list)
    names: list[str] = dataclasses.field(default_factory=list)
    targets: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    #: Instance id -> the name it was given by.
    labels: dict[str, str] = dataclasses.field(default_factory=dict)

    def describe(self) -> str:
        return " ".join(
            [*self.instance_ids, *self.names]
            + [f"{t['Key']}={','.join(t['Values'])}" for t in self.targets]
        )


def parse_targets(words: list[str]) -> Selection:
    """TARGET words -> a :class:`Selection` (names still to be resolved)."""
    selection = Selection()
    tags: dict[str, list[str]] = {}
    for word in (w.strip() for w in words):
        if not word:
            raise UsageError("a TARGET is empty")
        if word.startswith("tag:"):
            key, sep, values = word[4:].partition("=")
            if not key:
                raise UsageError(f"{word!r}: expected tag:KEY=VALUE or tag:KEY")
            if not sep:
                tags.setdefault("tag-key", []).append(key)
                continue
            found = [v for v in values.split(",") if v]
            if not found:
                raise UsageError(f"{word!r} has no value (tag:KEY for any value)")
            tags.setdefault(f"tag:{key}", []).extend(found)
        elif INSTANCE_ID_RE.match(word):
            if word not in selection.instance_ids:
                selection.instance_ids.append(word)
        elif word not in selection.names:
            selection.names.append(word)
    selection.targets = [{"Key": k, "Values": list(dict.fromkeys(v))} for k, v in tags.items()]
    if selection.targets and (selection.instance_ids or selection.names):
        raise UsageError("give instance ids and names, or tag: targets, not both (SendCommand)")
    if len(selection.targets) > MAX_TARGET_KEYS:
        raise UsageError(f"at most {MAX_TARGET_KEYS} different tag keys (SendCommand)")
    if len(selection.instance_ids) + len(selection.names) > MAX_INSTANCE_IDS:
        raise UsageError(f"at most {MAX_INSTANCE_IDS} instances by id or name; use tag: targets")
    return selection


async def resolve_names(aws: SsmCommands, selection: Selection) -> None:
    """Name tags -> instance ids, as ``shell`` resolves them (all at once)."""
    found = await asyncio.gather(*(aws.resolve_target(name) for name in selection.names))
    for name, instance_id in zip(selection.names, found, strict=True):
        selection.labels.setdefault(instance_id, name)
        if instance_id not in selection.instance_ids:
            selection.instance_ids.append(instance_id)


# -- the request ------------------------------------------------------------------------


def _choice(value: str, shape: str, option: str) -> str:
    choices = ssm_enum(shape)
    for choice in choices:
        if choice.lower() == value.strip().lower():
            return choice
    raise UsageError(f"{option} must be one of {', '.join(choices)}, not {value!r}")


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    """SendCommand's members from the options (not the targets); UsageError when wrong."""
    document = args.document or RUN_DOCUMENT
    parameters = parse_parameters(args.parameter, args.parameters)
    words = list(args.words or [])
    if words:
        if "commands" in parameters:
            raise UsageError("give the command after -- or as the commands parameter, not both")
        parameters["commands"] = [" ".join(words)]
    elif document == RUN_DOCUMENT and "commands" not in parameters:
        raise UsageError("run needs a command: ssmsh run TARGET... -- COMMAND")
    if args.execution_timeout is not None:
        parameters["executionTimeout"] = [str(args.execution_timeout)]
    request: dict[str, Any] = {"DocumentName": document, "Parameters": parameters}
    simple = {
        "DocumentVersion": args.document_version,
        "TimeoutSeconds": args.timeout_seconds,
        "Comment": args.comment,
        "MaxConcurrency": args.max_concurrency,
        "MaxErrors": args.max_errors,
        "OutputS3BucketName": args.output_s3_bucket_name,
        "OutputS3KeyPrefix": args.output_s3_key_prefix,
        "OutputS3Region": args.output_s3_region,
        "ServiceRoleArn": args.service_role_arn,
    }
    request.update({k: v for k, v in simple.items() if v is not None})
    notification: dict[str, Any] = {}
    if args.notification_arn is not None:
        notification["NotificationArn"] = args.notification_arn
    if args.notification_events:
        events = [e for item in args.notification_events for e in item.split(",") if e.strip()]
        notification["NotificationEvents"] = [
            _choice(e, "NotificationEvent", "--notification-events") for e in events
        ]
    if args.notification_type is not None:
        notification["NotificationType"] = _choice(
            args.notification_type, "NotificationType", "--notification-type"
        )
    if notification:
        request["NotificationConfig"] = notification
    if args.cloudwatch_output is not None:
        cloudwatch: dict[str, Any] = {"CloudWatchOutputEnabled": True}
        if args.cloudwatch_output:
            cloudwatch["CloudWatchLogGroupName"] = args.cloudwatch_output
        request["CloudWatchOutputConfig"] = cloudwatch
    return request


@contextlib.asynccontextmanager
async def command_service(args: argparse.Namespace) -> AsyncIterator[SsmCommands]:
    """The AWS side (or ``--local``'s in-process emulator), with polling's retry mode."""
    async with local_endpoint(args) as endpoint:
        yield SsmCommands(polling_settings(aws_settings(args, endpoint)))


# -- ssmsh run --------------------------------------------------------------------------


async def run_run(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    """``ssmsh run``."""
    if args.wait is not None:
        if args.targets or args.words or args.dry_run:
            raise UsageError("--wait takes a command id alone: ssmsh run --wait COMMAND_ID")
        return await watch(args, terminal, reporter, args.wait)
    targets = list(args.targets) or [default_target(args, None)]
    selection = parse_targets(targets)
    request = build_request(args)
    mode = "json" if args.json else "group" if args.group else "prefix"
    printer = Printer(terminal, reporter, mode)
    async with command_service(args) as aws:
        await resolve_names(aws, selection)
        if args.dry_run:
            return await dry_run(aws, selection, args, terminal, reporter)
        if selection.instance_ids:
            request["InstanceIds"] = selection.instance_ids
        else:
            request["Targets"] = selection.targets
        with Interrupts(cancels=True) as interrupts:
            command = await aws.send_command(request)
            command_id = str(command.get("CommandId") or "")
            if not command_id:
                raise AwsError("SendCommand returned no CommandId", "InvalidResponse")
            reporter.status(f"Command ID: {command_id}")
            follower = Follower(aws, command_id, printer, selection.labels, interrupts)
            return await _follow(follower, printer, reporter, selection.describe())


async def _follow(follower: Follower, printer: Printer, reporter: Reporter, what: str) -> int:
    try:
        results = await follower.run()
    except Interrupted:
        printer.summary(list(follower.done.values()), _expected(follower))
        reporter.error(f"interrupted; command {follower.command_id} may still run")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_BROKEN_PIPE
    expected = _expected(follower)
    if expected == 0 and what:
        raise UsageError(f"no managed instance matches {what}")
    try:
        if printer.mode == "json":
            printer.document(follower.command, results)
        else:
            printer.summary(results, expected)
    except BrokenPipeError:
        return EXIT_BROKEN_PIPE
    if follower.cancelled:
        reporter.error(f"interrupted; command {follower.command_id} cancelled")
        return EXIT_INTERRUPTED
    return run_exit_status(results, expected)


def _expected(follower: Follower) -> int:
    return int(follower.command.get("TargetCount") or 0)


async def watch(
    args: argparse.Namespace, terminal: Terminal, reporter: Reporter, command_id: str
) -> int:
    """Follow an earlier command (Ctrl-C leaves it running)."""
    command_id = command_id.strip()
    if not command_id:
        raise UsageError("the command id is empty")
    mode = "json" if getattr(args, "json", False) else "group" if args.group else "prefix"
    printer = Printer(terminal, reporter, mode)
    async with command_service(args) as aws:
        with Interrupts(cancels=False) as interrupts:
            follower = Follower(aws, command_id, printer, None, interrupts)
            return await _follow(follower, printer, reporter, "")


HOSTS = ("INSTANCE", "NAME", "PING", "PLATFORM", "COMPUTER")


async def dry_run(
    aws: SsmCommands,
    selection: Selection,
    args: argparse.Namespace,
    terminal: Terminal,
    reporter: Reporter,
) -> int:
    """List what the command would run on (DescribeInstanceInformation); send nothing."""
    if selection.instance_ids:
        filters = [{"Key": "InstanceIds", "Values": selection.instance_ids}]
    else:
        filters = selection.targets
    found = await aws.describe_instances(filters)
    known = {str(i.get("InstanceId")) for i in found}
    missing = [i for i in selection.instance_ids if i not in known]
    if missing:
        raise UsageError(f"not a managed instance: {', '.join(missing)}")
    if not found:
        raise UsageError(f"no managed instance matches {selection.describe()}")
    found.sort(key=lambda i: str(i.get("InstanceId")))
    reporter.status(f"Would run on {len(found)} instance{'s' if len(found) != 1 else ''}.")
    if wants_json(args, terminal):
        return emit(terminal, to_json(found))
    rows = (
        [
            str(i.get("InstanceId")),
            selection.labels.get(str(i.get("InstanceId")), "-"),
            str(i.get("PingStatus") or "-"),
            str(i.get("PlatformName") or i.get("PlatformType") or "-"),
            str(i.get("ComputerName") or "-"),
        ]
        for i in found
    )
    return emit(terminal, table(HOSTS, rows))


# -- ssmsh commands ---------------------------------------------------------------------

COMMAND_HEADERS = ("COMMAND ID", "REQUESTED", "STATUS", "DOCUMENT", "DONE", "ERRORS", "COMMENT")


async def run_commands(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    """``ssmsh commands`` (ListCommands), or ``ssmsh commands show ID``."""
    words = list(args.words)
    if words:
        if words[0] != "show" or len(words) != 2:
            raise UsageError("expected 'ssmsh commands' or 'ssmsh commands show COMMAND_ID'")
        return await watch(args, terminal, reporter, words[1])
    filters: list[dict[str, str]] = []
    if args.since is not None:
        filters.append(
            {"key": "InvokedAfter", "value": api_time(parse_when(args.since, "--since"))}
        )
    if args.status is not None:
        filters.append(
            {"key": "Status", "value": _choice(args.status, "CommandStatus", "--status")}
        )
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be 1 or more, not {args.limit}")
    async with command_service(args) as aws:
        found = await aws.list_commands(filters, args.limit)
    if wants_json(args, terminal):
        return emit(terminal, to_json(found))
    if not found:
        reporter.status("No commands.")
        return EXIT_OK
    return emit(terminal, table(COMMAND_HEADERS, (_command_row(c) for c in found)))


def _command_row(command: dict[str, Any]) -> list[str]:
    requested = command.get("RequestedDateTime")
    return [
        str(command.get("CommandId") or "-"),
        local_time(requested if isinstance(requested, dt.datetime) else None),
        str(command.get("Status") or "-"),
        str(command.get("DocumentName") or "-"),
        f"{command.get('CompletedCount', 0)}/{command.get('TargetCount', 0)}",
        str(command.get("ErrorCount", 0)),
        str(command.get("Comment") or "-"),
    ]
