"""``ssmsh proxy TARGET [PORT]``: stdin/stdout to a port on the target, for ssh
(:mod:`ssmsh.cli.proxy`)."""

from __future__ import annotations

from ..proxy import configure_proxy, run_proxy
from ..registry import Command

__all__ = ["COMMAND"]

COMMAND = Command(
    name="proxy",
    help="connect stdin/stdout to a port on a target (SSH ProxyCommand)",
    description="Connect stdin and stdout to PORT on the target through an "
    "AWS-StartSSHSession session. For ssh: "
    "-o ProxyCommand='ssmsh proxy %h %p'. Only tunnel bytes go to stdout.",
    configure=configure_proxy,
    run=run_proxy,
)
