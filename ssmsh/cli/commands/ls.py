"""``ssmsh ls``: the managed instances, with their Name tags (:mod:`ssmsh.cli.inventory`)."""

from __future__ import annotations

import argparse

from ..inventory import LS_DESCRIPTION, configure_ls, run_ls
from ..registry import Command

__all__ = ["COMMAND"]

COMMAND = Command(
    name="ls",
    help="list managed instances",
    description=LS_DESCRIPTION,
    parser_options={"formatter_class": argparse.RawDescriptionHelpFormatter},
    configure=configure_ls,
    run=run_ls,
)
