"""``ssmsh help [TOPIC]``: the documentation that comes with ssmsh, on the terminal.

The topics are the Markdown files of ``docs/`` (``usage``, ``tunnels``, ``run``...).
There is one copy of them: ``docs/`` in the source tree, which the wheel installs as
``ssmsh/docs/`` (``setup.py``'s ``build_py``). :func:`docs_dir` finds either.

A topic goes through a pager when stdout is a terminal: ``$PAGER`` (run by the shell,
as git does; empty or ``cat`` for none), else ``less`` (with ``LESS=FRX`` unless
``LESS`` is set: it quits when the text fits and leaves it on the screen), else
``more``, else none. Piped, the text is written as it is. ``ssmsh help COMMAND``
(for a command that is no topic) is ``ssmsh COMMAND --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from ..terminal.tty import Terminal
from .errors import EXIT_OK, EXIT_USAGE
from .runtime import Reporter

__all__ = ["configure_help", "docs_dir", "page", "run_help", "topics"]


def docs_dir() -> Traversable:
    """The installed docs (``ssmsh/docs`` in a wheel), else the source tree's ``docs/``."""
    shipped = resources.files("ssmsh") / "docs"
    if shipped.is_dir():
        return shipped
    return Path(__file__).resolve().parents[2] / "docs"


def topics() -> dict[str, Traversable]:
    """Topic name -> its file, sorted by name."""
    folder = docs_dir()
    found = {}
    if folder.is_dir():
        found = {f.name[:-3]: f for f in folder.iterdir() if f.name.endswith(".md")}
    return dict(sorted(found.items()))


def _title(doc: Traversable) -> str:
    for line in doc.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].replace("`", "").strip()
    return ""


def configure_help(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "topic", nargs="?", metavar="TOPIC", help="a topic (the list without one) or a command"
    )


async def run_help(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    """Entry point of ``ssmsh help``."""
    found = topics()
    if args.topic is None:
        width = max((len(name) for name in found), default=0)
        lines = ["Topics (ssmsh help TOPIC):"]
        lines += [f"  {name.ljust(width)}  {_title(doc)}" for name, doc in found.items()]
        lines.append("A command's options: ssmsh COMMAND --help (or ssmsh help COMMAND).")
        sys.stdout.write("\n".join(lines) + "\n")
        return EXIT_OK
    doc = found.get(args.topic)
    if doc is None:
        from . import registry
        from .main import build_parser, command_parser

        if args.topic in registry.load():
            command_parser(build_parser([args.topic]), args.topic).print_help()
            return EXIT_OK
        reporter.error(f"no help topic {args.topic!r} (topics: {', '.join(found)})")
        return EXIT_USAGE
    return page(doc.read_text(encoding="utf-8"), terminal)


def _pager() -> str | None:
    """The pager's command line (for sh -c), or None for none."""
    chosen = os.environ.get("PAGER")
    if chosen is not None:
        return None if chosen.strip() in ("", "cat") else chosen
    for program in ("less", "more"):
        if shutil.which(program):
            return program
    return None


def page(text: str, terminal: Terminal) -> int:
    """``text`` on stdout, through the pager when stdout is a terminal."""
    command = _pager() if os.isatty(terminal.stdout) else None
    if command is None:
        with contextlib.suppress(BrokenPipeError):
            sys.stdout.write(text)
            sys.stdout.flush()
        return EXIT_OK
    env = dict(os.environ)
    env.setdefault("LESS", "FRX")
    sys.stdout.flush()
    # The terminal sends Ctrl-C to the pager and to us: the pager decides (as git does).
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        pager = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE, env=env)
        assert pager.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # q before the end
            pager.stdin.write(text.encode())
        with contextlib.suppress(BrokenPipeError):
            pager.stdin.close()
        pager.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    return EXIT_OK
