"""``ssmsh socks [TARGET] [BIND:]PORT``: a SOCKS5 proxy whose connections leave from
the target (:mod:`ssmsh.cli.socks`)."""

from __future__ import annotations

import argparse

from ..registry import Command
from ..socks import DESCRIPTION, configure_socks, run_socks

__all__ = ["COMMAND"]

COMMAND = Command(
    name="socks",
    help="a SOCKS5 proxy through a target (as ssh -D)",
    description=DESCRIPTION,
    parser_options={
        "formatter_class": argparse.RawDescriptionHelpFormatter,
        # its -v (connection lines) replaces the common -v (--debug)
        "conflict_handler": "resolve",
    },
    configure=configure_socks,
    run=run_socks,
)
