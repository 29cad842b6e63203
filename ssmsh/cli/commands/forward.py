"""``ssmsh forward TARGET SPEC...``: local ports to ports on or behind a target
(:mod:`ssmsh.cli.forward`)."""

from __future__ import annotations

import argparse

from ..forward import DESCRIPTION, configure_forward, run_forward
from ..registry import Command

__all__ = ["COMMAND"]

COMMAND = Command(
    name="forward",
    help="forward local ports to ports on (or behind) a target",
    description=DESCRIPTION,
    parser_options={"formatter_class": argparse.RawDescriptionHelpFormatter},
    configure=configure_forward,
    run=run_forward,
)
