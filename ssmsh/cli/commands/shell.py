"""``ssmsh shell [TARGET]``: an interactive shell on a managed instance (:mod:`ssmsh.cli.shell`)."""

from __future__ import annotations

from ..registry import Command
from ..shell import configure_shell, run_shell

__all__ = ["COMMAND"]

COMMAND = Command(
    name="shell",
    help="interactive shell on a managed instance",
    description="Open an interactive shell on TARGET, like ssh. TARGET may be an alias of "
    "~/.config/ssmsh/config.toml; it defaults to $SSMSH_TARGET (with --local: the emulator's "
    "instance), else on a terminal it is picked from a list. Escapes, right after Enter: "
    "~. disconnect, ~? list them, ~~ send one ~, ~^Z suspend ssmsh (fg resumes).",
    configure=configure_shell,
    run=run_shell,
)
