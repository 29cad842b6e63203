"""The ``ssmsh`` commands, one module each, named after the command.

Each module declares its command as ``COMMAND``, a :class:`ssmsh.cli.registry.Command`:
its name, its ``--help`` line, a function that adds its arguments to its subparser,
and its entry point, an ``async`` function ``(args, terminal, reporter) -> exit
status`` that :func:`ssmsh.cli.runtime.run_command` runs (Ctrl-C, failures as one
line, the terminal restored). The module may do the work itself or wire a module
of :mod:`ssmsh.cli` that does.

To add a command: a module here, and its name in :data:`NAMES`.
"""

from __future__ import annotations

__all__ = ["NAMES"]

#: Every command, in the order ``ssmsh --help`` lists them.
NAMES: tuple[str, ...] = (
    "shell",
    "attach",
    "exec",
    "emulator",
    "forward",
    "socks",
    "proxy",
    "ssh",
    "ssh-config",
    "cp",
    "plugin",
    "sessions",
    "terminate",
    "ls",
    "status",
    "setup",
    "run",
    "commands",
    "automation",
    "approve",
    "reject",
    "association",
    "completion",
    "help",
)
