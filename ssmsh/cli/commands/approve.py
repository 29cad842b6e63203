"""``ssmsh approve ID [--comment TEXT]``: approve a waiting Automation execution
(:mod:`ssmsh.cli.automation`)."""

from __future__ import annotations

from ..automation import APPROVE_DESCRIPTION, configure_signal, run_approve
from ..registry import Command

__all__ = ["COMMAND"]

COMMAND = Command(
    name="approve",
    help="approve an Automation execution waiting in an aws:approve step",
    description=APPROVE_DESCRIPTION,
    configure=configure_signal,
    run=run_approve,
)
