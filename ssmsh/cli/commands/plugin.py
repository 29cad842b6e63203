"""``ssmsh plugin ARGS``: the AWS CLI's ``session-manager-plugin`` (:mod:`ssmsh.cli.plugin`).

Its arguments are the AWS CLI's, not ours: they reach it unparsed. Run under the
name ``session-manager-plugin`` (a symlink), ``ssmsh`` is ``ssmsh plugin``.
"""

from __future__ import annotations

import argparse

from ..plugin import configure_plugin, prepare_plugin, run_plugin_command
from ..plugin_args import USAGE, invoked_as_plugin
from ..registry import Command

__all__ = ["COMMAND"]

COMMAND = Command(
    name="plugin",
    help="act as the AWS CLI's session-manager-plugin",
    description=USAGE,
    parser_options={"formatter_class": argparse.RawDescriptionHelpFormatter, "add_help": False},
    configure=configure_plugin,
    run=run_plugin_command,
    passthrough="plugin_args",
    prepare=prepare_plugin,
    invoked_as=invoked_as_plugin,
)
