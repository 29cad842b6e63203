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

__all__ = ["build_parser", "command_parser", "main", "parse_args"]


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
        epilog="Try it without AWS: ssmsh shell --local. The documentation: ssmsh help.",
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
        if command.command_after_target is not None and command.name in argv:
            cut = argv.index(command.name) + 1
            args = _parse_quietly(parser, argv[:cut])
            if args is not None and args.command == command.name:
                options = _option_actions(command_parser(parser, command.name))
                words, line = split_command_line(argv[cut:], options)
                args = _parse_strictly(parser, [*argv[:cut], *words])
                setattr(args, command.command_after_target, line)
                return args
    if "--" in argv:
        cut = argv.index("--")
        args = _parse_strictly(parser, argv[:cut])
        named = commands.get(args.command) if args.command else None
        if named is not None and named.after_dashes is not None:
            dest = named.after_dashes
            setattr(args, dest, [*(getattr(args, dest, None) or []), *argv[cut + 1 :]])
            return args
    return _parse_strictly(parser, argv)


def split_command_line(
    words: Sequence[str], options: Mapping[str, argparse.Action]
) -> tuple[list[str], list[str]]:
    """(the words for the parser, the remote command line) of the words after a command's
    name, as ssh reads them: options (``options``: option string -> its action) and one
    TARGET, up to the first other word or ``--``, which is dropped. Without a TARGET
    before ``--`` there is none (``exec --local -- uptime``)."""
    words = list(words)
    target_seen = False
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--":
            return words[:index], words[index + 1 :]
        if word.startswith("-") and word != "-":
            index += 1 + _values_taken(word, options)
        elif not target_seen:
            target_seen = True
            index += 1
        else:
            return words[:index], words[index:]
    return words, []


def _values_taken(word: str, options: Mapping[str, argparse.Action]) -> int:
    """How many of the following words ``word`` (an option) takes as its value."""

    def takes(action: argparse.Action) -> int:
        if action.nargs is None:
            return 1
        return action.nargs if isinstance(action.nargs, int) else 0

    if word.startswith("--"):
        if "=" in word:
            return 0
        action = options.get(word)
        if action is None:  # argparse takes unique prefixes of long options
            found = {a for name, a in options.items() if name.startswith(word)}
            action = found.pop() if len(found) == 1 else None
        return takes(action) if action is not None else 0
    for position in range(1, len(word)):  # -tq, -e^B, -e X
        action = options.get(f"-{word[position]}")
        if action is None:
            return 0  # unknown: the parser will say so
        if takes(action):
            return 0 if position + 1 < len(word) else takes(action)
    return 0


def command_parser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            sub: argparse.ArgumentParser = action.choices[name]
            return sub
    raise KeyError(name)


def _option_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return dict(parser._option_string_actions)


def _parse_strictly(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """``parser.parse_args``, except that words the command does not know are reported with
    the command's own usage (``ssmsh forward: error: ...``), not the top level's."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        command = getattr(args, "command", None)
        where = command_parser(parser, command) if command else parser
        where.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


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
