"""The ``ssmsh`` command line: argument parsing, logging, and exit statuses.

Commands:

* ``ssmsh shell [TARGET]`` — an interactive shell (``--local`` for the emulator);
* ``ssmsh exec [TARGET] [-t] -- COMMAND...`` — run one command;
* ``ssmsh run TARGET... -- COMMAND`` — Run Command on many instances (``ssmsh commands``
  lists the commands);
* ``ssmsh emulator`` — run the local emulator (when it is installed);
* ``ssmsh plugin ARGS`` — act as the AWS CLI's ``session-manager-plugin``, as
  does ``ssmsh`` run under that name (a symlink): see :mod:`ssmsh.cli.plugin`.

Status lines and errors go to stderr; stdout carries only remote output.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import inspect
import logging
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .._version import __version__
from ..protocol import CLIENT_VERSION
from ..terminal.tty import Terminal
from .common import Reporter, add_common_options
from .errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, describe, exit_status
from .shell import configure_exec, configure_shell, run_exec, run_shell

__all__ = ["build_parser", "main", "run_async", "setup_logging"]

Runner = Callable[[argparse.Namespace, Terminal, Reporter], Awaitable[int]]

#: Loggers that would print request bodies, URLs with tokens or frames at DEBUG level.
_NOISY_LOGGERS = ("botocore", "boto3", "urllib3", "websockets", "asyncio", "s3transfer")


def _optional_command(module: str) -> Any:
    """A command module that other parts of ssmsh may or may not provide."""
    try:
        return importlib.import_module(module, __package__)
    except ImportError:
        return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``ssmsh`` parser. Given the command line, it leaves out what that line
    cannot use: the emulator's options need its modules (and cryptography), ~5 MB
    that ``forward`` or ``proxy`` would otherwise carry for nothing."""
    parser = argparse.ArgumentParser(
        prog="ssmsh",
        description="A client for AWS Systems Manager Session Manager.",
        epilog="Try it without AWS: ssmsh shell --local",
    )
    parser.add_argument(
        "--version", action="version", version=f"ssmsh {__version__} (protocol {CLIENT_VERSION})"
    )
    add_common_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    shell = commands.add_parser(
        "shell",
        help="interactive shell on a managed instance",
        description="Open an interactive shell, like ssh. Escapes after Enter: "
        "~. disconnect, ~? help, ~~ a literal ~.",
    )
    configure_shell(shell)
    shell.set_defaults(runner=run_shell)

    exec_ = commands.add_parser(
        "exec",
        help="run a command on a managed instance",
        description="Run COMMAND and exit with its status. stdout and stderr stay separate "
        "unless -t is given.",
    )
    configure_exec(exec_)
    exec_.set_defaults(runner=run_exec)

    emulator_help = "run a local Session Manager emulator"
    if argv is None or "emulator" in argv:
        emulator = _optional_command("ssmsh.emulator.cli")
        if emulator is not None:
            sub = commands.add_parser("emulator", help=emulator_help, description=emulator.__doc__)
            emulator.configure_parser(sub)
            sub.set_defaults(func=emulator.run)
    elif importlib.util.find_spec("ssmsh.emulator") is not None:
        commands.add_parser("emulator", help=emulator_help)  # listed in --help only

    for name in (
        ".forward",
        ".proxy",
        ".plugin",
        ".sessionlist",
        ".inventory",
        ".setup",
        ".runcommand",
    ):
        module = _optional_command(name)
        if module is not None:
            module.add_parser(commands)
    return parser


def setup_logging(args: argparse.Namespace, terminal: Terminal) -> None:
    """ssmsh's log to stderr (or ``--log-file``); third-party debug output stays off."""
    debug = bool(getattr(args, "debug", False))
    log_file = getattr(args, "log_file", None)
    handler: logging.Handler
    if log_file:
        handler = logging.FileHandler(log_file, encoding="utf-8")
    else:
        handler = _TerminalHandler(terminal)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


class _TerminalHandler(logging.Handler):
    """Log records as status lines (CR LF while the terminal is raw)."""

    def __init__(self, terminal: Terminal) -> None:
        super().__init__()
        self.terminal = terminal

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.terminal.status(self.format(record))
        except Exception:
            self.handleError(record)


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse; for ``exec`` and ``run``, everything after the first ``--`` is the remote command.

    (argparse alone cannot take options after a positional and a free-form tail.)
    """
    if "--" in argv:
        cut = argv.index("--")
        args = parser.parse_args(argv[:cut])
        if getattr(args, "command", None) == "exec":
            args.words = [*args.words, *argv[cut + 1 :]]
            return args
        if getattr(args, "command", None) == "run":
            args.words = argv[cut + 1 :]
            return args
    return parser.parse_args(argv)


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
        if _plugin_name(sys.argv[0]):
            from .plugin import main as plugin_main

            return plugin_main(argv)
    if argv and argv[0] == "plugin":  # its arguments are not ours to parse (--version...)
        from .plugin import main as plugin_main

        return plugin_main(argv[1:])
    parser = build_parser(argv)
    if "plugin" in argv:  # "ssmsh -v plugin ARGS"
        from .plugin import command_after_options

        plugin_command = command_after_options(parser, argv)
        if plugin_command is not None:
            return plugin_command()
    args = parse_args(parser, argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    terminal = Terminal()
    reporter = Reporter(terminal, quiet=args.quiet)
    try:
        setup_logging(args, terminal)
    except OSError as exc:
        reporter.error(f"cannot open the log file: {describe(exc)}")
        return EXIT_FAILURE
    if hasattr(args, "func"):  # commands with their own entry point (emulator, forward...)
        result = args.func(args)
        if inspect.isawaitable(result):
            result = asyncio.run(_await(result))
        return int(result or 0)
    runner: Runner = args.runner
    return run_async(lambda: runner(args, terminal, reporter), terminal, reporter, args.debug)


def _plugin_name(argv0: str) -> bool:
    from .plugin_args import invoked_as_plugin

    return invoked_as_plugin(argv0)


def run_async(
    command: Callable[[], Awaitable[int]], terminal: Terminal, reporter: Reporter, debug: bool
) -> int:
    """Run a session command; any failure becomes one line on stderr and an exit status."""
    try:
        return int(asyncio.run(_await(command())))
    except KeyboardInterrupt:
        terminal.restore()
        reporter.error("interrupted")
        return EXIT_INTERRUPTED
    except BaseException as exc:  # every failure: one line, exit 255 (no traceback)
        terminal.restore()
        if isinstance(exc, SystemExit):
            raise
        if debug:
            traceback.print_exception(exc)
        reporter.error(describe(exc))
        return exit_status(exc)
    finally:
        terminal.restore()


if __name__ == "__main__":
    sys.exit(main())
