"""Argument types of ``ssmsh emulator``'s command line: each turns one option's text into
a value or raises ``argparse.ArgumentTypeError`` (or :class:`_UsageError`) with a message
for the user. Kept apart from :mod:`.cli`, which wires the options and runs the emulator.
"""

from __future__ import annotations

import argparse
import re

from .state import TargetRecord

_TARGET_KEYS = {"name", "kms", "shell", "platform", "agent", "status"}


class _UsageError(Exception):
    pass


def _credentials(text: str) -> tuple[str, str]:
    key, sep, secret = text.partition(":")
    if not sep or not key or not secret:
        raise argparse.ArgumentTypeError("expected KEY:SECRET")
    return key, secret


_PRINCIPAL = re.compile(r"^arn:aws[\w-]*:(iam|sts)::\d{12}:[\w+=,.@/-]+$")


def _identity(text: str) -> tuple[str, str]:
    """``KEY=ARN``: the IAM principal behind an access key (--identity)."""
    key, sep, arn = text.partition("=")
    if not sep or not key or not _PRINCIPAL.match(arn):
        raise argparse.ArgumentTypeError(
            "expected ACCESS_KEY=ARN, the ARN an IAM user, role or assumed-role session's"
        )
    return key, arn


_INSTANCE_ID = re.compile(r"^(?:i-[0-9a-f]{8}(?:[0-9a-f]{9})?|mi-[0-9a-f]{17})$")


def _target(text: str) -> TargetRecord:
    instance_id, *options = text.split(",")
    instance_id = instance_id.strip()
    if not instance_id or "=" in instance_id:
        raise argparse.ArgumentTypeError("expected ID[,name=NAME][,kms=KEYID][,...]")
    if not _INSTANCE_ID.match(instance_id):
        raise argparse.ArgumentTypeError(
            f"{instance_id!r} is not an instance id (i-xxxxxxxx, i-xxxxxxxxxxxxxxxxx or mi-...)"
        )
    # Only the built-in target is Name=emulated: a second one would make the name ambiguous.
    target = TargetRecord(instance_id, name="")
    for option in options:
        key, sep, value = option.partition("=")
        key = key.strip()
        if not sep or key not in _TARGET_KEYS:
            raise argparse.ArgumentTypeError(
                f"unknown target option {option!r} (known: {', '.join(sorted(_TARGET_KEYS))})"
            )
        if key == "name":
            target.name = value
        elif key == "kms":
            target.kms_key_id = value or None
        elif key == "shell":
            target.shell = value or None
        elif key == "platform":
            target.platform_name = value
        elif key == "agent":
            target.agent_version = value
        elif value not in ("Online", "ConnectionLost", "Inactive"):
            raise argparse.ArgumentTypeError("status must be Online, ConnectionLost or Inactive")
        else:
            target.ping_status = value
    return target


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be a fraction between 0 and 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError("must be a whole number >= 0")
    return int(text)


def _numbers(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError("expected node numbers such as 3,17")
    return tuple(int(p) for p in parts)


def _slow(text: str) -> tuple[tuple[int, ...], float]:
    nodes, sep, seconds = text.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError("expected N[,N...]:SECONDS")
    return _numbers(nodes), _delay(seconds)


def _delay(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be a number of seconds >= 0")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError("must be a port number 0-65535")
    return int(text)
