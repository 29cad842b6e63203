"""The ``ssmsh`` command line: from ``argv`` to a command, run by :mod:`.runtime`.

The commands are the modules of :mod:`ssmsh.cli.commands`, one per command and
named after it (``ssmsh shell``, ``exec``, ``forward``, ``proxy``, ``run``...);
each declares itself (:class:`~.registry.Command`), and this module knows none of
them: it builds the parser from their declarations, parses, and hands the parsed
command to :func:`.runtime.run_command`. The console script is :mod:`.entry`.

Status lines and errors go to stderr; stdout carries only remote output.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Mapping, Sequence

from .._version import __version__
from ..protocol import CLIENT_VERSION
from . import registry
from .common import add_common_options
from .errors import EXIT_USAGE
from .registry import Command
from .runtime import run_command

__all__ = ["build_parser", "main", "parse_args"]


def build_parser(
    argv: Sequence[str] | None = None, commands: Mapping[str, Command] | None = None
) -> argparse.ArgumentParser:
    """The ``ssmsh`` parser, with every command (:func:`.registry.load` unless given).

    Given the command line, it configures only the commands that line names: the
    others are listed in ``--help``, no more. A command's options may need modules
    that the others would otherwise carry for nothing (the emulator's: ~5 MB with
    cryptography, for ``forward`` or ``proxy``).
    """
    if commands is None:
        commands = registry.load()
    parser = argparse.ArgumentParser(
        prog="ssmsh",
        description="A client for AWS Systems Manager Session Manager.",
        epilog="Try it without AWS: ssmsh shell --local",
    )
    parser.add_argument(
        "--version", action="version", version=f"ssmsh {__version__} (protocol {CLIENT_VERSION})"
    )
    add_common_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in commands.values():
        sub = subparsers.add_parser(
            command.name,
            help=command.help,
            description=command.description,
            **command.parser_options,
        )
        if argv is None or command.name in argv:
            command.configure(sub)
    return parser


def parse_args(
    parser: argparse.ArgumentParser, argv: Sequence[str], commands: Mapping[str, Command]
) -> argparse.Namespace:
    """Parse ``argv``, with what argparse alone cannot do, as the commands declare it.

    A command with ``passthrough`` gets every word after its name unparsed (``ssmsh
    -v plugin --version``: ``-v`` is ours, ``--version`` the plugin's); one with
    ``after_dashes`` gets the words after the first ``--``, its remote command line
    (argparse cannot take options after a positional and a free-form tail).
    """
    argv = list(argv)
    for command in commands.values():
        if command.passthrough is not None and command.name in argv:
            cut = argv.index(command.name) + 1
            args = _parse_quietly(parser, argv[:cut])
            if args is not None and args.command == command.name:
                setattr(args, command.passthrough, argv[cut:])
                return args
            # else the name was an option's value (--profile plugin): parse it all
    if "--" in argv:
        cut = argv.index("--")
        args = parser.parse_args(argv[:cut])
        named = commands.get(args.command) if args.command else None
        if named is not None and named.after_dashes is not None:
            dest = named.after_dashes
            setattr(args, dest, [*(getattr(args, dest, None) or []), *argv[cut + 1 :]])
            return args
    return parser.parse_args(argv)


def _parse_quietly(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace | None:
    """The parse of ``argv``, or None when it is no valid command line (then the full
    parse reports it; nothing is printed twice)."""
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            return parser.parse_args(argv)
    except SystemExit:
        return None


def _program_command(argv0: str, commands: Mapping[str, Command]) -> list[str]:
    """``[NAME]`` when ssmsh runs under a program name that means command NAME."""
    for command in commands.values():
        if command.invoked_as is not None and command.invoked_as(argv0):
            return [command.name]
    return []


def main(argv: list[str] | None = None) -> int:
    commands = registry.load()
    if argv is None:
        argv = [*_program_command(sys.argv[0], commands), *sys.argv[1:]]
    parser = build_parser(argv, commands)
    args = parse_args(parser, argv, commands)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    command = commands[args.command]
    return run_command(command.run, args, command.prepare)


if __name__ == "__main__":
    sys.exit(main())
