"""The ``ssmsh`` command line."""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..protocol import CLIENT_VERSION


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssmsh", description="A client for AWS Systems Manager Session Manager."
    )
    parser.add_argument(
        "--version", action="version", version=f"ssmsh {__version__} (protocol {CLIENT_VERSION})"
    )
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
