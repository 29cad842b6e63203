"""``ssmsh sessions``: the account's sessions, active or ended (:mod:`ssmsh.cli.sessionlist`)."""

from __future__ import annotations

import argparse

from ..registry import Command
from ..sessionlist import SESSIONS_DESCRIPTION, configure_sessions, run_sessions

__all__ = ["COMMAND"]

COMMAND = Command(
    name="sessions",
    help="list active sessions (or ended ones, --history)",
    description=SESSIONS_DESCRIPTION,
    parser_options={"formatter_class": argparse.RawDescriptionHelpFormatter},
    configure=configure_sessions,
    run=run_sessions,
)
