"""``ssmsh ssh-config``: a ``~/.ssh/config`` block for ssh through Session Manager
(:mod:`ssmsh.cli.ssh`)."""

from __future__ import annotations

from ..registry import Command
from ..ssh import configure_ssh_config, run_ssh_config

__all__ = ["COMMAND"]

COMMAND = Command(
    name="ssh-config",
    help="print a ~/.ssh/config block: ssh, scp, rsync to instances by id",
    description="Print a ~/.ssh/config block whose ProxyCommand is 'ssmsh proxy', so that "
    "plain ssh, scp and rsync reach managed instances by id (with the --profile and "
    "--region given here).",
    configure=configure_ssh_config,
    run=run_ssh_config,
)
