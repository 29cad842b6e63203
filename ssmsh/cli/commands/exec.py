"""``ssmsh exec [TARGET] [-t] -- COMMAND...``: run one command (:mod:`ssmsh.cli.shell`)."""

from __future__ import annotations

from ..registry import Command
from ..shell import configure_exec, run_exec

__all__ = ["COMMAND"]

COMMAND = Command(
    name="exec",
    help="run a command on a managed instance",
    description="Run COMMAND and exit with its status. stdout and stderr stay separate "
    "unless -t is given.",
    configure=configure_exec,
    run=run_exec,
    after_dashes="words",
)
