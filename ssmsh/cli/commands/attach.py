"""``ssmsh attach [SESSION_ID]``: take over a shell whose ssmsh died (:mod:`ssmsh.cli.attach`)."""

from __future__ import annotations

from ..attach import ATTACH_DESCRIPTION, configure_attach, run_attach
from ..registry import Command

__all__ = ["COMMAND"]

COMMAND = Command(
    name="attach",
    help="take over a shell session whose ssmsh process died",
    description=ATTACH_DESCRIPTION,
    configure=configure_attach,
    run=run_attach,
)
