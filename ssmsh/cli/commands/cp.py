"""``ssmsh cp [-r] [-p] [-j N] [--resume] SOURCE... DEST``: files to and from a target,
as scp copies them (:mod:`ssmsh.cli.cp`)."""

from __future__ import annotations

import argparse

from ..cp import DESCRIPTION, configure_cp, run_cp
from ..registry import Command

__all__ = ["COMMAND"]

COMMAND = Command(
    name="cp",
    help="copy files to and from a managed instance (as scp)",
    description=DESCRIPTION,
    parser_options={
        "formatter_class": argparse.RawDescriptionHelpFormatter,
        "usage": "%(prog)s [-r] [-p] [-j N] [-C] [--resume] [OPTIONS] SOURCE... DEST",
    },
    configure=configure_cp,
    run=run_cp,
)
