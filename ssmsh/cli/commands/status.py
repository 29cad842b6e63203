"""``ssmsh status TARGET...``: is each target connected? (:mod:`ssmsh.cli.inventory`)."""

from __future__ import annotations

from ..inventory import STATUS_DESCRIPTION, configure_status, run_status
from ..registry import Command

__all__ = ["COMMAND"]

COMMAND = Command(
    name="status",
    help="is a target connected to Session Manager? (exit 0 if so, 1 if not)",
    description=STATUS_DESCRIPTION,
    configure=configure_status,
    run=run_status,
)
