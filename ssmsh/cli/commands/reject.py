"""``ssmsh reject ID [--comment TEXT]``: reject a waiting Automation execution
(:mod:`ssmsh.cli.automation`)."""

from __future__ import annotations

from ..automation import REJECT_DESCRIPTION, configure_signal, run_reject
from ..registry import Command

__all__ = ["COMMAND"]

COMMAND = Command(
    name="reject",
    help="reject an Automation execution waiting in an aws:approve step",
    description=REJECT_DESCRIPTION,
    configure=configure_signal,
    run=run_reject,
)
