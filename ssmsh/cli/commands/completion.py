"""``ssmsh completion bash|zsh|fish``: a shell completion script (:mod:`ssmsh.cli.completion`)."""

from __future__ import annotations

from ..completion import configure_completion, run_completion
from ..registry import Command

__all__ = ["COMMAND"]

COMMAND = Command(
    name="completion",
    help="print a completion script for bash, zsh or fish",
    description="Print a completion script for SHELL: commands, their options, and the "
    "instance ids and Name tags 'ssmsh ls' last listed. bash: add "
    "'source <(ssmsh completion bash)' to ~/.bashrc; zsh: 'source <(ssmsh completion zsh)' "
    "in ~/.zshrc; fish: 'ssmsh completion fish > ~/.config/fish/completions/ssmsh.fish'.",
    configure=configure_completion,
    run=run_completion,
)
