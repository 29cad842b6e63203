"""No TARGET given, and a person at the terminal: ask them (:func:`choose_target`).

When a command that needs a TARGET has none (no word, no ``--local``, no
``SSMSH_TARGET``, no ``[defaults] target``) and both stdin and stderr are terminals,
the picker (:mod:`.picker`) lists the config file's aliases at once and the managed
instances as soon as they are listed (what ``ssmsh ls`` lists), online ones first;
the choice then goes through :func:`.common.default_target` as if it had been typed
(an alias brings its settings). Without a terminal the one-line ``no target given``
stays.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ..terminal.tty import Terminal
from .config import load_config
from .errors import NoTargetChosen, NoTargetGiven
from .runtime import Reporter

__all__ = ["alias_choices", "can_pick", "choose_target", "instance_choices", "pick_target"]

_T = TypeVar("_T")


def can_pick(terminal: Terminal) -> bool:
    """Whether someone can answer: stdin and stderr are terminals."""
    return terminal.stdin_is_tty and terminal.stderr_is_tty


async def choose_target(
    args: argparse.Namespace, reporter: Reporter, resolve: Callable[[], _T]
) -> _T:
    """``resolve()`` (which calls :func:`.common.default_target`); when it finds no target
    and someone can answer, what they pick (``args.picked_target``), resolved again."""
    try:
        return resolve()
    except NoTargetGiven:
        if not can_pick(reporter.terminal):
            raise
    args.picked_target = await pick_target(args, reporter)
    return resolve()


def alias_choices() -> list[Any]:
    from .picker import Choice

    choices = []
    for name, host in sorted(load_config().hosts.items()):
        where = "/".join(v for v in (host.profile, host.region) if v)
        choices.append(Choice(name, (name, host.target or name, "alias", where, "")))
    return choices


def instance_choices(instances: Sequence[dict[str, Any]]) -> list[Any]:
    """One row per instance: id, Name, ping status, platform, IP; online ones first."""
    from .picker import Choice

    def key(item: dict[str, Any]) -> tuple[bool, str, str]:
        name = str(item.get("NameTag") or item.get("Name") or "")
        return item.get("PingStatus") != "Online", name or "~", str(item.get("InstanceId"))

    choices = []
    for item in sorted(instances, key=key):
        platform = " ".join(str(item.get(k) or "") for k in ("PlatformName", "PlatformVersion"))
        choices.append(
            Choice(
                str(item.get("InstanceId")),
                (
                    str(item.get("InstanceId") or "-"),
                    str(item.get("NameTag") or item.get("Name") or "-"),
                    str(item.get("PingStatus") or "-"),
                    platform.strip() or str(item.get("PlatformType") or "-"),
                    str(item.get("IPAddress") or "-"),
                ),
            )
        )
    return choices


async def pick_target(args: argparse.Namespace, reporter: Reporter) -> str:
    """An instance id or an alias, picked; :class:`NoTargetChosen` when none was."""
    from .inventory import list_instances
    from .picker import pick
    from .portsession import session_service

    aliases = alias_choices()

    async def instances() -> list[Any]:
        quiet = Reporter(reporter.terminal, quiet=True)  # nothing drawn over the picker
        async with session_service(args) as aws:
            return instance_choices(await list_instances(aws, quiet))

    reporter.terminal.restore()
    chosen = await pick(aliases, instances(), loading="listing instances...")
    if chosen is None:
        raise NoTargetChosen()
    return chosen
