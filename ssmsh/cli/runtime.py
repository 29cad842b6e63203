"""How every ``ssmsh`` command runs: one runner, one race, one way to catch signals, one reporter.

* :func:`run_command` runs a parsed command: a :class:`~ssmsh.terminal.tty.Terminal` and a
  :class:`Reporter` for it, the log (:func:`setup_logging`), then :func:`run`;
* :func:`run` runs a coroutine with :func:`asyncio.run`: Ctrl-C ends it with ``ssmsh:
  interrupted`` and 130, any other failure with one line (:func:`~.errors.describe`) and
  its exit status (:func:`~.errors.exit_status`), a traceback only with ``--debug``; the
  terminal is restored, whatever happens;
* :func:`handle_signals` routes signals to the event loop inside a block; a signal that is
  ignored (``nohup``'s SIGHUP, a background job's SIGINT) stays ignored, and the previous
  handlers come back on the way out;
* :func:`unless_set` races a step against an event (a signal came, the user left);
* :class:`Reporter` is what a command tells the user: lines on stderr.

The commands themselves are declared in :mod:`ssmsh.cli.commands` (see :mod:`.registry`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

from ..exceptions import UsageError
from ..terminal.hints import Hints
from ..terminal.tty import Terminal
from .errors import EXIT_FAILURE, EXIT_INTERRUPTED, describe, exit_status

__all__ = [
    "STOP_SIGNALS",
    "Entry",
    "Prepare",
    "Reporter",
    "handle_signals",
    "run",
    "run_command",
    "setup_logging",
    "unless_set",
    "verbosity",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

#: The signals that end a command cleanly (Ctrl-C, kill, a closed terminal or ssh).
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")

#: Loggers that would print request bodies, URLs with tokens or frames at DEBUG level.
_NOISY_LOGGERS = ("botocore", "boto3", "urllib3", "websockets", "asyncio", "s3transfer")


class Reporter:
    """What a command tells the user, on stderr (through the terminal: CR LF while raw).

    Status lines are silenced by ``--quiet``; ``ssmsh:`` lines (:meth:`say`,
    :meth:`error`) never are.
    """

    def __init__(self, terminal: Terminal, quiet: bool = False, verbose: int = 0) -> None:
        self.terminal = terminal
        self.quiet = quiet
        #: How many ``-v`` were given: 1 asks for more status lines (each forwarded
        #: connection...), 2 for the debug log too.
        self.verbose = verbose
        #: Hints during long waits: a line on a terminal, unless ``--quiet``.
        self.hints = Hints(terminal, lambda: not self.quiet)

    def status(self, text: str) -> None:
        """A status line (``Starting session with SessionId: ...``), unless ``--quiet``."""
        if not self.quiet:
            self.terminal.status(text)

    def say(self, text: str) -> None:
        """An ``ssmsh:`` line that ``--quiet`` leaves alone (a listener's address, a warning)."""
        self.terminal.status(f"ssmsh: {text}")

    def error(self, text: str) -> None:
        """An ``ssmsh:`` line saying what went wrong."""
        self.say(text)


#: A command's entry point: its exit status. Run by :func:`run_command`.
Entry = Callable[[argparse.Namespace, Terminal, Reporter], Awaitable[int]]
#: What a command may do before anything is set up: an exit status to end with at once,
#: or None to go on (it may fill in the namespace: ``quiet``, ``debug``, ``log_file``...).
Prepare = Callable[[argparse.Namespace], int | None]


def run_command(entry: Entry, args: argparse.Namespace, prepare: Prepare | None = None) -> int:
    """Run a parsed command: ``prepare``, the log, then ``entry`` through :func:`run`.

    ``args`` may carry ``quiet``, ``debug`` and ``log_file`` (the common options). A
    :class:`~ssmsh.exceptions.UsageError` from ``prepare`` is one line and its status.
    """
    terminal = Terminal()
    reporter = Reporter(terminal)
    if prepare is not None:
        try:
            answer = prepare(args)
        except UsageError as exc:
            reporter.error(describe(exc))
            return exit_status(exc)
        if answer is not None:
            return answer
    reporter.quiet = bool(getattr(args, "quiet", False))
    try:
        setup_logging(args, terminal)
    except OSError as exc:
        reporter.error(f"cannot open the log file: {describe(exc)}")
        return EXIT_FAILURE
    verbose, debug = verbosity(args)
    reporter.verbose = verbose
    # A traceback goes where the debug log goes.
    traceback_debug = debug or bool(getattr(args, "log_file", None))
    return run(lambda: entry(args, terminal, reporter), terminal, reporter, traceback_debug)


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def run(
    command: Callable[[], Awaitable[int]], terminal: Terminal, reporter: Reporter, debug: bool
) -> int:
    """Run a command's coroutine; any failure becomes one line on stderr and an exit status."""
    try:
        return int(asyncio.run(_await(command())))
    except KeyboardInterrupt:
        terminal.restore()
        reporter.error("interrupted")
        return EXIT_INTERRUPTED
    except BaseException as exc:  # every failure: one line, exit 255 (no traceback)
        terminal.restore()
        if isinstance(exc, SystemExit):
            raise
        if debug:  # the traceback, where the debug log goes (stderr or --log-file)
            logger.debug("failed: %s", describe(exc), exc_info=exc)
        reporter.error(describe(exc))
        return exit_status(exc)
    finally:
        terminal.restore()


def verbosity(args: argparse.Namespace) -> tuple[int, bool]:
    """(``-v`` count, debug) from the common options: ``-vv`` is ``--debug``."""
    verbose = int(getattr(args, "verbose", 0) or 0)
    debug = bool(getattr(args, "debug", False)) or verbose >= 2
    return verbose, debug


def setup_logging(args: argparse.Namespace, terminal: Terminal) -> None:
    """ssmsh's log: on stderr, and in ``--log-file`` when one is given.

    * stderr: warnings; with ``-v`` ssmsh's notices too (INFO: links lost, the session's
      start and end); with ``--debug`` (``-vv``) the whole debug log, unless it goes to
      ``--log-file``, which then has it instead.
    * ``--log-file PATH``: the debug log (it is for diagnosing; with or without ``--debug``).
    * Other libraries (botocore, websockets...) never log below WARNING, and their
      warnings reach stderr only in the debug log: ssmsh says what failed in its own
      line (botocore's credential warnings come with a traceback).
    """
    verbose, debug = verbosity(args)
    log_file = getattr(args, "log_file", None)
    handlers: list[logging.Handler] = []
    if log_file:
        file_handler = logging.FileHandler(log_file, encoding="utf-8", delay=False)
        file_handler.setFormatter(logging.Formatter(_DEBUG_FORMAT))
        file_handler.setLevel(logging.DEBUG)
        handlers.append(file_handler)
    terminal_debug = debug and not log_file
    handler = _TerminalHandler(terminal, debug=terminal_debug)
    handler.setLevel(
        logging.DEBUG if terminal_debug else logging.INFO if verbose else logging.WARNING
    )
    handlers.append(handler)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(min(h.level for h in handlers))
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


#: The debug log's lines: time, level, logger.
_DEBUG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _TerminalHandler(logging.Handler):
    """Log records as status lines (CR LF while the terminal is raw).

    In the debug log, every record with its time, level and logger. Otherwise only
    ssmsh's own records (and other libraries' errors), as ``ssmsh:`` lines, unless it
    was given a formatter (``ssmsh emulator`` wants its times).
    """

    def __init__(self, terminal: Terminal, debug: bool = False) -> None:
        super().__init__()
        self.terminal = terminal
        self.debug = debug
        if debug:
            self.setFormatter(logging.Formatter(_DEBUG_FORMAT))

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.debug and not _is_ours(record) and record.levelno < logging.ERROR:
            return False
        return bool(super().filter(record))

    def format(self, record: logging.LogRecord) -> str:
        if self.formatter is not None:
            return super().format(record)
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            text = f"{record.levelname.lower()}: {text}"
        return f"ssmsh: {text}"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.terminal.status(self.format(record))
        except Exception:
            self.handleError(record)


def _is_ours(record: logging.LogRecord) -> bool:
    return record.name == "ssmsh" or record.name.startswith("ssmsh.")


@contextlib.contextmanager
def handle_signals(
    names: Iterable[str], handler: Callable[[int], None]
) -> Iterator[tuple[int, ...]]:
    """Inside the block, the named signals call ``handler(signum)`` on the running loop.

    A signal that is ignored stays ignored: under ``nohup`` a hangup is not meant to
    end anything, nor is SIGINT in a background job. Names this platform does not
    have are skipped, and so is everything outside the main thread. Yields the
    signals it handles; on the way out their previous handlers come back (e.g.
    :func:`asyncio.run`'s own for SIGINT).
    """
    loop = asyncio.get_running_loop()
    installed: list[tuple[int, Any]] = []
    try:
        for name in names:
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            try:
                previous = signal.getsignal(signum)
                if previous == signal.SIG_IGN:
                    continue
                loop.add_signal_handler(signum, handler, signum)
            except (ValueError, RuntimeError, NotImplementedError):
                continue  # not the main thread, or no signals here
            installed.append((signum, previous))
        yield tuple(signum for signum, _ in installed)
    finally:
        for signum, previous in reversed(installed):
            loop.remove_signal_handler(signum)
            with contextlib.suppress(ValueError, TypeError):  # None: not set from Python
                signal.signal(signum, previous)


async def unless_set(work: Awaitable[_T], event: asyncio.Event) -> _T | None:
    """``work``'s result, or None when ``event`` is set before ``work`` is done.

    ``work`` is then cancelled and waited for, and whatever it ends with (cancelled,
    or an error while it was being cancelled) is dropped: the event decided. It is
    cancelled the same way when this wait is cancelled. Once ``work`` is done, its
    outcome stands even if ``event`` is set as well: its result, or its error raised.
    """
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(event.wait())
    stopped = False
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not task.done():
            stopped = True
            task.cancel()
            await asyncio.wait({task})
            if not task.cancelled() and task.exception() is not None:
                logger.debug("failure while cancelled", exc_info=task.exception())
    return None if stopped else task.result()
