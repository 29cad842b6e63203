"""``ssmsh help [TOPIC]``: the documentation that comes with ssmsh (:mod:`ssmsh.cli.helpdocs`)."""

from __future__ import annotations

from ..helpdocs import configure_help, run_help
from ..registry import Command

__all__ = ["COMMAND"]

COMMAND = Command(
    name="help",
    help="show a documentation topic (ssmsh help: the list)",
    description="Show TOPIC of ssmsh's documentation (usage, tunnels, run, emulator...), "
    "through $PAGER (default less) on a terminal; without TOPIC, list the topics. "
    "ssmsh help COMMAND is ssmsh COMMAND --help.",
    configure=configure_help,
    run=run_help,
)
