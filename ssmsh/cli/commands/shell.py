"""``ssmsh shell [TARGET]``: an interactive shell on a managed instance (:mod:`ssmsh.cli.shell`)."""

from __future__ import annotations

from ..registry import Command
from ..shell import configure_shell, run_shell

__all__ = ["COMMAND"]

COMMAND = Command(
    name="shell",
    help="interactive shell on a managed instance",
    description="Open an interactive shell, like ssh. Escapes after Enter: "
    "~. disconnect, ~? help, ~~ a literal ~.",
    configure=configure_shell,
    run=run_shell,
)
