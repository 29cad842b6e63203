"""``ssmsh ls`` and ``ssmsh status``: the managed instances, and whether they can be reached.

``ls`` is DescribeInstanceInformation (every page) with its filters: a table on
a terminal, JSON otherwise (see :mod:`.listing`). That API returns no tags; the
``Name`` tags come from DescribeInstanceProperties, asked at the same time (one
call per 1000 instances), unless a ``--tag Name=VALUE`` filter already says
what they are. An endpoint that does not serve it (the emulator) leaves them out.

``status`` is GetConnectionStatus for each target: exit status 0 when all are
``connected``, 1 when any is ``notconnected``, 255 when one could not be asked.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Sequence
from typing import Any

from ..aws import SsmSessions
from ..exceptions import AwsError, SsmshError, UsageError
from ..terminal.tty import Terminal
from .common import add_common_options, default_target
from .completion import remember_targets
from .errors import EXIT_FAILURE, EXIT_OK, describe
from .listing import add_output_options, emit, report_or_raise, table, to_json, wants_json
from .portsession import session_service
from .runtime import Reporter

__all__ = [
    "EXIT_NOT_CONNECTED",
    "LS_DESCRIPTION",
    "STATUS_DESCRIPTION",
    "configure_ls",
    "configure_status",
    "instance_filters",
    "list_instances",
    "name_tags",
    "run_ls",
    "run_status",
]

logger = logging.getLogger(__name__)

#: ``ssmsh status``: a target is not connected (as ``ping`` exits 1 without a reply).
EXIT_NOT_CONNECTED = 1

#: DescribeInstanceInformation's filter keys (botocore's SSM model) -> the field of
#: InstanceInformation each one matches, for applying them here when tag filters
#: are given too (AWS does not take tag filters together with other ones).
FILTER_FIELDS = {
    "ActivationIds": "ActivationId",
    "AgentVersion": "AgentVersion",
    "AssociationStatus": "AssociationStatus",
    "IamRole": "IamRole",
    "InstanceIds": "InstanceId",
    "PingStatus": "PingStatus",
    "PlatformTypes": "PlatformType",
    "ResourceType": "ResourceType",
    "SourceIds": "SourceId",
    "SourceTypes": "SourceType",
}

HEADERS = ("INSTANCE", "NAME", "PING", "PLATFORM", "AGENT", "IP", "COMPUTER")

#: How long ``ls`` waits for the Name tags once the list is in (they are optional).
NAMES_WAIT = 10.0

LS_DESCRIPTION = """\
List the managed instances (DescribeInstanceInformation), with their Name tags.
On a terminal: a table; otherwise, or with --json: a JSON list of the API's
InstanceInformation objects, each with "NameTag" added (null when unknown).
KEY is a DescribeInstanceInformation filter key: InstanceIds, PingStatus,
PlatformTypes, AgentVersion, ResourceType, AssociationStatus, ActivationIds,
IamRole, SourceIds, SourceTypes, tag:TAGKEY or tag-key. Repeat an option for
several values of one key (any of them matches); different keys must all match."""


STATUS_DESCRIPTION = (
    "Print whether each TARGET is connected to Session Manager "
    "(GetConnectionStatus): 'connected' or 'notconnected'. Exit status: 0 when all "
    "are connected, 1 when any is not, 255 when one could not be asked."
)


def configure_ls(ls: argparse.ArgumentParser) -> None:
    """``ssmsh ls``'s arguments."""
    ls.add_argument(
        "--filter",
        dest="filters",
        action="append",
        metavar="KEY=VALUE",
        help="only instances whose KEY is VALUE (repeatable)",
    )
    ls.add_argument(
        "--tag",
        dest="tags",
        action="append",
        metavar="TAG[=VALUE]",
        help="only instances with tag TAG (set to VALUE): --tag Name=web-1 (repeatable)",
    )
    ls.add_argument(
        "--online", action="store_true", help="only instances that are online (PingStatus)"
    )
    add_output_options(ls)
    add_common_options(ls, suppress=True)


def configure_status(status: argparse.ArgumentParser) -> None:
    """``ssmsh status``'s arguments."""
    status.add_argument(
        "targets",
        metavar="TARGET",
        nargs="*",
        help="instance id, Name tag or alias; default with --local or SSMSH_TARGET",
    )
    add_common_options(status, suppress=True)


# -- status ---------------------------------------------------------------------------


async def run_status(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    """``ssmsh status TARGET...``: one ``TARGET: connected|notconnected`` line each."""
    words = list(args.targets) or [None]
    failed = not_connected = False
    # Each alias may bring its own profile, region or endpoint: one service for each.
    services: dict[tuple[Any, ...], SsmSessions] = {}
    async with contextlib.AsyncExitStack() as stack:
        for word in words:
            own = argparse.Namespace(**vars(args))
            target = default_target(own, word)
            key = (own.profile, own.region, own.endpoint_url)
            if key not in services:
                services[key] = await stack.enter_async_context(session_service(own, reporter))
            aws = services[key]
            try:
                target_id = await aws.resolve_target(target)
                status = await aws.connection_status(target_id)
            except SsmshError as exc:
                report_or_raise(exc, reporter)
                failed = True
                continue
            shown = word or target
            label = target_id if shown.strip() == target_id else f"{shown} ({target_id})"
            written = emit(terminal, f"{label}: {status}\n")
            if written != EXIT_OK:
                return written
            not_connected = not_connected or status != "connected"
    if failed:
        return EXIT_FAILURE
    return EXIT_NOT_CONNECTED if not_connected else EXIT_OK


# -- ls ---------------------------------------------------------------------------------


def instance_filters(args: argparse.Namespace) -> dict[str, list[str]]:
    """``--filter``, ``--tag`` and ``--online`` as DescribeInstanceInformation filters:
    key -> values, in the order given."""
    filters: dict[str, list[str]] = {}

    def add(key: str, value: str) -> None:
        values = filters.setdefault(key, [])
        if value not in values:
            values.append(value)

    for item in args.filters or ():
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise UsageError(f"--filter expects KEY=VALUE, got {item!r}")
        if not (key in FILTER_FIELDS or key == "tag-key" or (key.startswith("tag:") and key[4:])):
            raise UsageError(
                f"--filter: unknown key {key!r} (one of {', '.join(FILTER_FIELDS)}, "
                "tag:TAGKEY, tag-key)"
            )
        add(key, value)
    for item in args.tags or ():
        key, sep, value = item.partition("=")
        key = key.strip()
        if not key or (sep and not value):
            raise UsageError(f"--tag expects TAG or TAG=VALUE, got {item!r}")
        if sep:
            add(f"tag:{key}", value)
        else:
            add("tag-key", key)
    if args.online:
        add("PingStatus", "Online")
    return filters


def _is_tag_filter(key: str) -> bool:
    return key == "tag-key" or key.startswith("tag:")


async def run_ls(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    """``ssmsh ls``."""
    filters = instance_filters(args)
    # AWS refuses tag filters together with others: those others are applied here.
    tagged = any(_is_tag_filter(key) for key in filters)
    sent = {k: v for k, v in filters.items() if _is_tag_filter(k) or not tagged}
    kept = {k: v for k, v in filters.items() if k not in sent}
    async with session_service(args, reporter) as aws:
        found = await list_instances(aws, reporter, sent, kept, filters.get("tag:Name", []))
    found.sort(key=lambda i: str(i.get("InstanceId")))
    if not filters:  # the whole inventory: what shell completion offers as targets
        remember_targets(found)
    if wants_json(args, terminal):
        return emit(terminal, to_json(found))
    if not found:
        reporter.status("No managed instances" + (" match." if filters else "."))
        return EXIT_OK
    return emit(terminal, table(HEADERS, (_row(i) for i in found)))


async def list_instances(
    aws: SsmSessions,
    reporter: Reporter,
    sent: dict[str, list[str]] | None = None,
    kept: dict[str, list[str]] | None = None,
    pinned: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """DescribeInstanceInformation with the ``sent`` filters (the ``kept`` ones applied
    here), each item with its Name tag as ``NameTag`` (None when unknown): ``ssmsh ls``'s
    list, and the target picker's. ``pinned``: the Name of every one, when known."""
    sent, kept = sent or {}, kept or {}
    names = None if len(pinned) == 1 else asyncio.ensure_future(aws.instance_names())
    try:
        found = await aws.describe_instances([{"Key": k, "Values": v} for k, v in sent.items()])
    except BaseException:
        if names is not None:
            await _discard(names)
        raise
    found = [i for i in found if _matches(i, kept)]
    if names is None:  # every one found has this Name
        tags = {str(i.get("InstanceId")): pinned[0] for i in found}
    elif found:
        tags = await name_tags(names, reporter)
    else:
        await _discard(names)
        tags = {}
    for item in found:
        item["NameTag"] = tags.get(str(item.get("InstanceId"))) or None
    return found


async def _discard(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and collect whatever it ended with (no "never retrieved" warning)."""
    task.cancel()
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await task


def _matches(item: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    return all(str(item.get(FILTER_FIELDS[key])) in values for key, values in filters.items())


async def name_tags(lookup: Awaitable[dict[str, str]], reporter: Reporter) -> dict[str, str]:
    """The Name tags, or none (with a note) when they cannot be had."""
    try:
        async with asyncio.timeout(NAMES_WAIT):
            return await lookup
    except AwsError as exc:
        if exc.code in ("UnknownOperationException", "InvalidAction"):
            logger.debug("no Name tags: the endpoint does not serve DescribeInstanceProperties")
        else:
            reporter.status(f"ssmsh: Name tags not shown: {describe(exc)}")
    except TimeoutError:
        reporter.status("ssmsh: Name tags not shown: DescribeInstanceProperties did not answer")
    return {}


def _row(item: dict[str, Any]) -> Sequence[str]:
    platform = " ".join(str(item.get(k) or "") for k in ("PlatformName", "PlatformVersion")).strip()
    return [
        str(item.get("InstanceId") or "-"),
        # the tag; else a hybrid node's registration name
        str(item.get("NameTag") or item.get("Name") or "-"),
        str(item.get("PingStatus") or "-"),
        platform or str(item.get("PlatformType") or "-"),
        str(item.get("AgentVersion") or "-"),
        str(item.get("IPAddress") or "-"),
        str(item.get("ComputerName") or "-"),
    ]
