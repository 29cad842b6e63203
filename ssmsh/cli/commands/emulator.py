"""``ssmsh emulator``: the local SSM emulator in the foreground (:mod:`ssmsh.emulator.cli`).

The emulator's modules (and cryptography, ~5 MB) are imported only when the command
line names ``emulator``: its options need them, the other commands do not. Without
the :mod:`ssmsh.emulator` package there is no such command; with it, a failure to
import it is an error, as for any other command.
"""

from __future__ import annotations

import argparse
import asyncio

from ...terminal.tty import Terminal
from ..registry import Command
from ..runtime import Reporter, handle_signals

__all__ = ["COMMAND"]


def configure(parser: argparse.ArgumentParser) -> None:
    from ...emulator.cli import configure_parser

    configure_parser(parser)


async def run(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    """Serve until Ctrl-C or SIGTERM: 0 (1: cannot listen, 2: a bad option)."""
    from ...emulator.cli import serve

    stop = asyncio.Event()
    with handle_signals(("SIGINT", "SIGTERM"), lambda signum: stop.set()):
        return await serve(args, stop)


COMMAND = Command(
    name="emulator",
    help="run a local Session Manager emulator",
    configure=configure,
    run=run,
    requires="ssmsh.emulator",
)
