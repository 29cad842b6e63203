"""``ssmsh ssh [USER@]TARGET [SSH_ARGS]``: OpenSSH through Session Manager
(:mod:`ssmsh.cli.ssh`)."""

from __future__ import annotations

from ..registry import Command
from ..ssh import configure_ssh, run_ssh

__all__ = ["COMMAND"]

COMMAND = Command(
    name="ssh",
    help="run ssh to a managed instance through Session Manager",
    description="Run OpenSSH's ssh to TARGET with 'ssmsh proxy' as its ProxyCommand. "
    "Everything after TARGET goes to ssh as it is. With --push-key, a one-time key is "
    "pushed with EC2 Instance Connect first, so no key is needed on the instance.",
    configure=configure_ssh,
    run=run_ssh,
)
