"""``ssmsh association ACTION``: State Manager associations, listed, run once and
followed, their history and per-target results (:mod:`ssmsh.cli.associations`)."""

from __future__ import annotations

import argparse

from ..associations import ASSOCIATION_DESCRIPTION, configure_association, run_association
from ..registry import Command

__all__ = ["COMMAND"]

COMMAND = Command(
    name="association",
    help="State Manager associations: ls, run [--wait], history, targets",
    description=ASSOCIATION_DESCRIPTION,
    parser_options={"formatter_class": argparse.RawDescriptionHelpFormatter},
    configure=configure_association,
    run=run_association,
)
