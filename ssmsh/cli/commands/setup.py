"""``ssmsh setup``: ssmsh's own Session document for ``exec`` (:mod:`ssmsh.cli.setup`)."""

from __future__ import annotations

from ..registry import Command
from ..setup import SETUP_DESCRIPTION, configure_setup, run_setup

__all__ = ["COMMAND"]

COMMAND = Command(
    name="setup",
    help="create ssmsh's session document for exec (stderr apart)",
    description=SETUP_DESCRIPTION,
    configure=configure_setup,
    run=run_setup,
)
