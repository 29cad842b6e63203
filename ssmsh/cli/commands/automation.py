"""``ssmsh automation ACTION``: Automation executions, listed, shown, followed, started,
stopped, resumed (:mod:`ssmsh.cli.automation`)."""

from __future__ import annotations

import argparse

from ..automation import AUTOMATION_DESCRIPTION, configure_automation, run_automation
from ..registry import Command

__all__ = ["COMMAND"]

COMMAND = Command(
    name="automation",
    help="Automation executions: ls [--waiting], show, follow, start, stop, resume",
    description=AUTOMATION_DESCRIPTION,
    parser_options={"formatter_class": argparse.RawDescriptionHelpFormatter},
    configure=configure_automation,
    run=run_automation,
)
