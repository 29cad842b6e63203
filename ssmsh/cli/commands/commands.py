"""``ssmsh commands``: the account's Run Command commands; ``commands show ID`` follows one
(:mod:`ssmsh.cli.runcommand`)."""

from __future__ import annotations

from ..registry import Command
from ..runcommand import COMMANDS_DESCRIPTION, configure_commands, run_commands

__all__ = ["COMMAND"]

COMMAND = Command(
    name="commands",
    help="list Run Command commands; 'commands show ID' follows one",
    description=COMMANDS_DESCRIPTION,
    configure=configure_commands,
    run=run_commands,
)
