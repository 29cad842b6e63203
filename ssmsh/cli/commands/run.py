"""``ssmsh run TARGET... -- COMMAND``: Run Command on many instances
(:mod:`ssmsh.cli.runcommand`)."""

from __future__ import annotations

import argparse

from ..registry import Command
from ..runcommand import RUN_DESCRIPTION, configure_run, run_run

__all__ = ["COMMAND"]

COMMAND = Command(
    name="run",
    help="run a command on many instances (Run Command)",
    description=RUN_DESCRIPTION,
    parser_options={"formatter_class": argparse.RawDescriptionHelpFormatter},
    configure=configure_run,
    run=run_run,
    after_dashes="words",
)
