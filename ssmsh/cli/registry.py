"""What a command declares (:class:`Command`), and finding every one of them (:func:`load`).

Each command is a module of :mod:`ssmsh.cli.commands` named after it, whose
``COMMAND`` is a :class:`Command`; :data:`ssmsh.cli.commands.NAMES` lists them.
:mod:`.main` builds the parser from the declarations and hands the one the
command line names to :func:`.runtime.run_command`: it knows no command itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
from collections.abc import Callable, Mapping
from typing import Any

from . import commands
from .runtime import Entry, Prepare

__all__ = ["Command", "installed", "load"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Command:
    """One ``ssmsh`` command: its place on the command line and its entry point."""

    #: The word on the command line; also the name of the module that declares it.
    name: str
    #: Its line in ``ssmsh --help``.
    help: str
    #: Adds its arguments to its subparser (only when the command line names it).
    configure: Callable[[argparse.ArgumentParser], None]
    #: The entry point, run by :func:`.runtime.run_command`.
    run: Entry
    #: Its ``ssmsh COMMAND --help`` text.
    description: str | None = None
    #: More keywords for ``add_parser`` (``formatter_class``, ``add_help``...).
    parser_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: The attribute that takes the words after the first ``--`` (a remote command
    #: line, which argparse cannot take after options and positionals).
    after_dashes: str | None = None
    #: The attribute that takes a remote command line as ssh reads one: every word after
    #: TARGET (the first word that is not an option) that is not an option of the
    #: command. Options come before TARGET or between it and the command line; ``--``
    #: ends them (with no TARGET before it, there is none: ``--local``'s, SSMSH_TARGET).
    #: ``ssmsh exec web-1 ls -ld /tmp`` runs ``ls -ld /tmp``.
    command_after_target: str | None = None
    #: The attribute that takes every word after the command's name, unparsed.
    passthrough: str | None = None
    #: Runs before anything is set up (see :data:`.runtime.Prepare`).
    prepare: Prepare | None = None
    #: True for a program name (``argv[0]``, e.g. a symlink) that means this command.
    invoked_as: Callable[[str], bool] | None = None
    #: A package the command needs that may not be installed: without it, no command.
    #: (Installed but failing to import is an error when the command is used.)
    requires: str | None = None


def installed(name: str) -> bool:
    """Whether module ``name`` can be found (it is not imported; its parents are)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(f"{exc.name}.")):
            return False  # a parent package is missing
        raise


def load(names: tuple[str, ...] = commands.NAMES) -> dict[str, Command]:
    """Every command, in ``names`` order (as ``--help`` lists them).

    A module that fails to import is an error (its ImportError), never a missing
    command; only a command whose ``requires`` is not installed is left out.
    """
    found: dict[str, Command] = {}
    for name in names:
        # "ssh-config" is declared in commands/ssh_config.py
        module = importlib.import_module(f"{commands.__name__}.{name.replace('-', '_')}")
        command = getattr(module, "COMMAND", None)
        if not isinstance(command, Command) or command.name != name:
            raise TypeError(f"{module.__name__}.COMMAND must be the Command named {name!r}")
        if command.requires is not None and not installed(command.requires):
            continue
        found[name] = command
    return found
