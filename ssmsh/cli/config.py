"""``~/.config/ssmsh/config.toml``: host aliases and defaults, as ``~/.ssh/config`` has them.

::

    [defaults]
    region = "eu-west-1"

    [hosts.web]
    target = "Env=prod,Role=web"   # anything a TARGET may be; default: the alias's name
    profile = "prod"
    region = "eu-west-1"
    user = "ec2-user"              # for ssmsh ssh and ssh-config
    document = "MyShellDocument"   # for ssmsh shell

The file is ``$SSMSH_CONFIG`` when set (it must then exist), else
``$XDG_CONFIG_HOME/ssmsh/config.toml`` (``~/.config/ssmsh/config.toml``), which may be
missing. Anything wrong in it is a :class:`~.errors.ConfigError`: one line naming the
file and the line, exit status 2.

Which setting wins (docs/usage.md, "The config file"): the command line, then the
alias, then the environment, then ``[defaults]``, then AWS's own (the profile's
region...). :func:`.common.default_target` applies an alias; :func:`.common.aws_settings`
applies ``[defaults]`` under the environment.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = [
    "ALIAS_RE",
    "Config",
    "HostConfig",
    "config_path",
    "load_config",
    "parse_config",
    "xdg_dir",
]

#: An alias: a word a shell leaves alone, that no port, SPEC or ``KEY=VALUE`` can be.
ALIAS_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*\Z")

#: Keys of ``[hosts.NAME]`` (``[defaults]`` takes the same keys).
KEYS = ("target", "profile", "region", "endpoint-url", "document", "user")


@dataclasses.dataclass(frozen=True, slots=True)
class HostConfig:
    """One ``[hosts.NAME]`` table, or ``[defaults]`` (named ``""``)."""

    name: str = ""
    target: str | None = None
    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    document: str | None = None
    user: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    path: str = ""
    defaults: HostConfig = HostConfig()
    hosts: dict[str, HostConfig] = dataclasses.field(default_factory=dict)

    def host(self, word: str) -> HostConfig | None:
        return self.hosts.get(word)


def xdg_dir(variable: str, default: str) -> Path:
    """ssmsh's folder of one XDG kind: ``$variable/ssmsh`` (``XDG_CONFIG_HOME``,
    ``XDG_CACHE_HOME``, ``XDG_STATE_HOME``) when it is an absolute path, as the XDG
    spec asks, else ``~/default/ssmsh``."""
    base = os.environ.get(variable) or ""
    return (Path(base) if os.path.isabs(base) else Path.home() / default) / "ssmsh"


def config_path() -> tuple[str, bool]:
    """(the config file's path, whether it must exist: it was named by SSMSH_CONFIG)."""
    named = os.environ.get("SSMSH_CONFIG")
    if named:
        return os.path.expanduser(named), True
    return str(xdg_dir("XDG_CONFIG_HOME", ".config") / "config.toml"), False


_cache: dict[str, tuple[tuple[int, int], Config]] = {}


def load_config() -> Config:
    """The config file, parsed (an empty :class:`Config` when it is missing)."""
    path, required = config_path()
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{_shown(path)}: no such file (SSMSH_CONFIG)") from None
        return Config(path=path)
    except OSError as exc:
        raise ConfigError(f"{_shown(path)}: {exc.strerror}") from None
    stamp = (info.st_mtime_ns, info.st_size)
    cached = _cache.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(f"{_shown(path)}: {exc.strerror}") from None
    config = parse_config(data, path)
    _cache[path] = (stamp, config)
    return config


def _shown(path: str) -> str:
    home = os.path.expanduser("~")
    if home not in ("", "/") and path.startswith(home + os.sep):
        return "~" + path[len(home) :]
    return path


def parse_config(data: bytes, path: str = "config.toml") -> Config:
    """``data`` (the file's bytes) -> :class:`Config`; :class:`ConfigError` for anything wrong."""
    shown = _shown(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{shown}: line {line}: not UTF-8") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = re.search(r"\s*\(at line (\d+), column \d+\)$", message)
        if found:
            message = f"line {found.group(1)}: {message[: found.start()]}"
        else:
            message = message.replace(" (at end of document)", " at the end")
        raise ConfigError(f"{shown}: {message[:1].lower()}{message[1:]}") from None

    def fail(where: tuple[str, ...], key: str | None, what: str) -> ConfigError:
        line = _line_of(text, where, key)
        at = f"line {line}: " if line else ""
        name = ".".join([*where, *([key] if key else [])])
        return ConfigError(f"{shown}: {at}{name}: {what}")

    for key in document:
        if key not in ("defaults", "hosts"):
            raise fail((), key, "unknown table (the file has [defaults] and [hosts.NAME])")
    defaults = _host(document.get("defaults", {}), ("defaults",), "", fail)
    hosts_table = document.get("hosts", {})
    if not isinstance(hosts_table, dict):
        raise fail((), "hosts", "must be a table of aliases: [hosts.NAME]")
    hosts: dict[str, HostConfig] = {}
    for name, table in hosts_table.items():
        if not ALIAS_RE.match(name) or name.isdigit():
            raise fail(
                ("hosts",),
                name,
                "an alias is letters, digits, '.', '_' and '-' (and not a number)",
            )
        hosts[name] = _host(table, ("hosts", name), name, fail)
    return Config(path=path, defaults=defaults, hosts=hosts)


def _host(table: Any, where: tuple[str, ...], name: str, fail: Any) -> HostConfig:
    if not isinstance(table, dict):
        raise fail(where[:-1], where[-1], "must be a table")
    values: dict[str, str] = {}
    for key, value in table.items():
        if key not in KEYS:
            raise fail(where, key, f"unknown key (known: {', '.join(KEYS)})")
        if not isinstance(value, str):
            raise fail(where, key, f"must be a string, not {_kind(value)}")
        if not value.strip():
            raise fail(where, key, "is empty")
        values[key.replace("-", "_")] = value.strip()
    if name and "target" not in values:
        values["target"] = name  # [hosts.web-1] profile = "prod": the Name tag web-1, in prod
    return HostConfig(name=name, **values)


def _kind(value: Any) -> str:
    kinds = {bool: "a boolean", int: "a number", float: "a number", list: "an array"}
    return kinds.get(type(value), "a table" if isinstance(value, dict) else "a date or time")


_HEADER_RE = re.compile(r"\s*\[\s*([^\[\]]+?)\s*\]")
_PART = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_KEY_RE = re.compile(rf"\s*({_PART}(?:\s*\.\s*{_PART})*)\s*=")


def _dotted(text: str) -> tuple[str, ...]:
    parts = re.findall(_PART, text)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


def _line_of(text: str, where: tuple[str, ...], key: str | None) -> int | None:
    """The line of ``key`` in table ``where`` (or of the table's header): best effort."""
    table: tuple[str, ...] = ()
    header: int | None = None
    wanted = (*where, key) if key is not None else where
    for number, line in enumerate(text.splitlines(), 1):
        found = _HEADER_RE.match(line)
        if found:
            table = _dotted(found.group(1))
            if table[: len(wanted)] == wanted:
                return number  # [hosts.web] for hosts.web, [host.x] for host
            if table == where:
                header = number
            continue
        found = _KEY_RE.match(line)
        if found and (*table, *_dotted(found.group(1)))[: len(wanted)] == wanted:
            return number
    return header
