"""``ssmsh terminate SESSION_ID...``: TerminateSession for each (:mod:`ssmsh.cli.sessionlist`)."""

from __future__ import annotations

from ..registry import Command
from ..sessionlist import TERMINATE_DESCRIPTION, configure_terminate, run_terminate

__all__ = ["COMMAND"]

COMMAND = Command(
    name="terminate",
    help="end sessions (TerminateSession)",
    description=TERMINATE_DESCRIPTION,
    configure=configure_terminate,
    run=run_terminate,
)
