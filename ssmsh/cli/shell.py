"""``ssmsh shell`` and ``ssmsh exec``: a session bridged to this terminal."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence

from ..channel import SessionConnection
from ..exceptions import AwsError, UsageError
from ..protocol.status_trailer import new_marker, wrap_command
from ..terminal.bridge import BridgeResult, TerminalBridge
from ..terminal.escape import parse_escape_char
from ..terminal.tty import Terminal
from .common import ParametersFor, add_common_options, open_session, parse_parameters
from .errors import EXIT_FAILURE, StartInterrupted
from .runtime import Reporter, handle_signals, unless_set
from .setup import forget_exec_document, remembered_exec_document

__all__ = [
    "bridge_session",
    "configure_exec",
    "configure_shell",
    "finish",
    "run_exec",
    "run_shell",
]

logger = logging.getLogger(__name__)

NON_INTERACTIVE_DOCUMENT = "AWS-StartNonInteractiveCommand"
INTERACTIVE_DOCUMENT = "AWS-StartInteractiveCommand"
#: Exit status when stdout's reader went away, as for a process killed by SIGPIPE.
EXIT_BROKEN_PIPE = 128 + 13

#: An exit status in a channel_closed message, for agents that put it there.
_CLOSED_EXIT_RE = re.compile(r"exit(?:ed)?(?: with)?(?: code| status)?[:= ]+(-?\d+)", re.I)


def configure_shell(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        nargs="?",
        help="instance id (i-..., mi-...) or Name tag; default with --local or SSMSH_TARGET",
    )
    parser.add_argument(
        "--document",
        "--document-name",
        metavar="NAME",
        help="session document (default: shell)",
    )
    parser.add_argument(
        "--parameter",
        action="append",
        metavar="KEY=VALUE",
        help="document parameter (repeatable; repeated keys make a list)",
    )
    parser.add_argument(
        "--parameters",
        metavar="JSON",
        help='document parameters as for the AWS CLI: \'{"command":["top"]}\'',
    )
    parser.add_argument("--reason", metavar="TEXT", help="reason recorded with the session")
    parser.add_argument(
        "--exit-status",
        action="store_true",
        help=f"exit with the remote shell's status, like ssh: runs sh through "
        f"{INTERACTIVE_DOCUMENT} (the account's shell profile is not applied)",
    )
    _escape_option(parser)
    add_common_options(parser, suppress=True)


def configure_exec(parser: argparse.ArgumentParser) -> None:
    # Optional as for shell: "exec --local -- CMD" (the first word after the options
    # is "--") has no target, and uses --local's or SSMSH_TARGET's.
    parser.add_argument(
        "target",
        nargs="?",
        help="instance id (i-..., mi-...) or Name tag; default with --local or SSMSH_TARGET",
    )
    parser.add_argument(
        "words",
        nargs="*",
        metavar="COMMAND",
        help="command to run: the words after TARGET (or after --), joined with spaces as ssh does",
    )
    parser.add_argument(
        "-t",
        "--tty",
        action="store_true",
        help=f"run in a terminal ({INTERACTIVE_DOCUMENT}) instead of with separate "
        f"stdout/stderr and an exit status ({NON_INTERACTIVE_DOCUMENT})",
    )
    parser.add_argument(
        "--no-shell",
        action="store_true",
        help="without -t, pass COMMAND to the agent as is (it splits the words and runs "
        "the program without a shell); by default it runs under sh -c, as with ssh "
        "(Windows targets always get it as is: PowerShell runs it there)",
    )
    parser.add_argument("--reason", metavar="TEXT", help="reason recorded with the session")
    _escape_option(parser)
    add_common_options(parser, suppress=True)


def _forget_own_document(args: argparse.Namespace, reporter: Reporter, error: AwsError) -> None:
    """ssmsh's exec document was refused: AWS's served; say so once, and forget it."""
    forget_exec_document(args)
    reporter.status(
        f"ssmsh: the document from `ssmsh setup` could not be used ({error.code}); "
        "stderr comes merged into stdout until it is set up again"
    )


def _escape_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-e",
        dest="escape",
        default="~",
        metavar="CHAR",
        help="escape character for ~. ~? ~~ (default ~; 'none' disables)",
    )


#: Documents that open a port session (a byte stream to a port), not a shell.
PORT_DOCUMENT_PREFIXES = ("AWS-StartPortForwardingSession", "AWS-StartSSHSession")


def refuse_port_document(document: str | None) -> None:
    """UsageError for a port-forwarding or SSH document given to shell / exec."""
    if not document:
        return
    name = document.rsplit("/", 1)[-1]  # also an ARN ...:document/NAME
    if not name.startswith(PORT_DOCUMENT_PREFIXES):
        return
    if name.startswith("AWS-StartSSHSession"):
        hint = "use ssmsh proxy (e.g. as ssh's ProxyCommand)"
    else:
        hint = "use ssmsh forward"
    raise UsageError(f"{name} opens a port session, not a shell: {hint}")


async def run_shell(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    refuse_port_document(args.document)
    parameters = parse_parameters(args.parameter, args.parameters)
    if args.exit_status:
        # The official agent reports no status for shells (protocol/traces/shell-exit-3);
        # an InteractiveCommands session running sh carries it back in the status trailer.
        if args.document or parameters:
            raise UsageError("--exit-status chooses the document: leave out --document/--parameter")
        marker = new_marker()
        return await _run(
            args,
            terminal,
            reporter,
            target=args.target,
            document=INTERACTIVE_DOCUMENT,
            parameters={"command": [wrap_command("exec sh", marker, tty=True)]},
            reason=args.reason,
            interactive=True,
            status_marker=marker,
            status_expected=True,
        )
    return await _run(
        args,
        terminal,
        reporter,
        target=args.target,
        document=args.document,
        parameters=parameters,
        reason=args.reason,
        interactive=True,
    )


class _CommandLine:
    """``exec``'s command line as the agent gets it, once the target's platform is known.

    The official agent reports no exit status with AWS's documents: the command's own
    output carries it back (:mod:`ssmsh.protocol.status_trailer`), through a wrapper
    written for ``sh``. On Windows the agent runs the line under PowerShell
    (``powershell`` with the line's words, amazon-ssm-agent's shell_windows.go), where
    that wrapper cannot run: the line goes as it is, as with ``--no-shell``.
    """

    def __init__(self, line: str, *, tty: bool, no_shell: bool) -> None:
        self.line = line
        self.tty = tty
        self.no_shell = no_shell
        #: The trailer's marker, once the line is wrapped (None: not wrapped).
        self.marker: str | None = None
        #: Why the line goes without the wrapper, for the "status unknown" line.
        self.unwrapped = "--no-shell leaves out ssmsh's status wrapper"

    def parameters(self, platform: str | None) -> dict[str, list[str]]:
        if self.no_shell:
            return {"command": [self.line]}
        if platform == "Windows":
            self.unwrapped = (
                "the target runs Windows, where the agent runs the line under PowerShell "
                "and ssmsh's status wrapper (for sh) cannot be used"
            )
            return {"command": [self.line]}
        # With -t the agent runs the line in a pty under sh -c; without, it splits the
        # line into words and executes them directly.
        self.marker = new_marker()
        return {"command": [wrap_command(self.line, self.marker, tty=self.tty)]}


async def run_exec(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    command = list(args.words)
    if not command:
        raise UsageError("exec needs a command: ssmsh exec [OPTIONS] TARGET COMMAND...")
    # joined with spaces, as ssh does
    line = _CommandLine(" ".join(command), tty=args.tty, no_shell=args.no_shell)
    document = INTERACTIVE_DOCUMENT if args.tty else NON_INTERACTIVE_DOCUMENT
    # ssmsh's own document, where ``ssmsh setup`` made one: stderr apart, the agent's status.
    own = None if args.tty else remembered_exec_document(args)
    return await _run(
        args,
        terminal,
        reporter,
        target=args.target,
        document=own or document,
        parameters=line.parameters,
        reason=args.reason,
        interactive=args.tty,
        command_line=line,
        status_expected=True,
        fallback_document=document if own else None,
        on_fallback=lambda error: _forget_own_document(args, reporter, error),
    )


async def _run(
    args: argparse.Namespace,
    terminal: Terminal,
    reporter: Reporter,
    *,
    target: str | None,
    document: str | None,
    parameters: Mapping[str, Sequence[str]] | ParametersFor,
    reason: str | None,
    interactive: bool,
    status_marker: str | None = None,
    command_line: _CommandLine | None = None,
    status_expected: bool = False,
    fallback_document: str | None = None,
    on_fallback: Callable[[AwsError], None] | None = None,
) -> int:
    try:
        escape_char = parse_escape_char(args.escape)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    async with open_session(
        args,
        reporter,
        target,
        document,
        parameters,
        reason,
        fallback_document=fallback_document,
        on_fallback=on_fallback,
    ) as (conn, info):
        if command_line is not None:  # wrapped, or not, for the target's platform
            status_marker = command_line.marker
        result = await bridge_session(
            conn,
            terminal,
            reporter,
            interactive=interactive,
            escape_char=escape_char,
            # A non-interactive command gets an empty stdin from the agent: send nothing.
            send_stdin=interactive,
            status_marker=status_marker,
        )
    if result is None:
        return EXIT_FAILURE
    unwrapped = command_line.unwrapped if command_line is not None else None
    return finish(
        result, info.session_id, reporter, status_expected=status_expected, unwrapped=unwrapped
    )


async def bridge_session(
    conn: SessionConnection,
    terminal: Terminal,
    reporter: Reporter,
    *,
    interactive: bool,
    escape_char: int | None,
    send_stdin: bool,
    status_marker: str | None = None,
) -> BridgeResult | None:
    """Bridge an open connection to this terminal until the session ends.

    SIGTERM and SIGHUP end it early: the terminal is restored, the error is
    reported and None is returned (the caller's exit status is then 255, as
    with ssh). Before the session is established (the handshake), they raise
    :class:`StartInterrupted` instead, as while the session was being opened.
    The connection is left open; the caller closes it (TerminateSession).
    """
    bridge = TerminalBridge(
        conn,
        terminal,
        interactive=interactive,
        escape_char=escape_char,
        status=reporter.status,
        send_stdin=send_stdin,
        status_marker=status_marker,
        hints=reporter.hints,
    )
    with _terminating_signals() as killed:
        result = await unless_set(bridge.run(), killed)
    if killed.is_set():
        terminal.restore()
        if not conn.protocol.established and not conn.closed:
            raise StartInterrupted(killed.signum)
        reporter.error(f"killed by signal {killed.signum}; session terminated")
        return None
    return result


def finish(
    result: BridgeResult,
    session_id: str,
    reporter: Reporter,
    *,
    status_expected: bool = False,
    unwrapped: str | None = None,
) -> int:
    """The exit status for how a bridged session ended; prints the closing line.

    The status is the one the command's trailer carried, else the agent's ExitCode.
    With ``status_expected`` (``exec``) and neither, the status is unknown: one line
    says so and the result is 255, never a made-up 0.
    """
    if result.broken_pipe:
        return EXIT_BROKEN_PIPE
    if result.disconnected:
        reporter.status(f"Connection to session {session_id} closed.")
        return EXIT_FAILURE
    # The trailer is the command's own status; the agent's is the wrapper's (the same,
    # as it exits with it) or, without the wrapper (--no-shell), the command's.
    code = result.trailer_status if result.trailer_status is not None else result.exit_code
    if code is None and result.closed_output:
        match = _CLOSED_EXIT_RE.search(result.closed_output)
        if match:
            code = _bounded_int(match.group(1))
    if result.closed_output and (code is None or code == 0):
        reporter.status(f"SessionId: {session_id} : {result.closed_output}")
    else:
        reporter.status(f"Exiting session with sessionId: {session_id}.")
    if code is None:
        if status_expected:
            if result.trailer_expected:
                why = "the session ended before the command reported it"
                if result.closed_output:
                    why += f" ({result.closed_output})"
            else:
                without = unwrapped or "--no-shell leaves out ssmsh's status wrapper"
                why = (
                    f"the document reports none and {without} "
                    "(ssmsh setup makes a document that reports it)"
                )
            reporter.error(f"the remote exit status is unknown: {why}")
            return EXIT_FAILURE
        return 0
    return code & 0xFF if code >= 0 else EXIT_FAILURE


def _bounded_int(text: str) -> int | None:
    """An exit status from text, or None when it is no plausible status."""
    return int(text) if len(text.lstrip("-")) <= 10 else None


class _Killed(asyncio.Event):
    signum: int = 0


@contextlib.contextmanager
def _terminating_signals() -> Iterator[_Killed]:
    """SIGTERM and SIGHUP end the session cleanly (terminal restored, TerminateSession),
    unless they are ignored (``nohup``)."""
    killed = _Killed()

    def on_signal(signum: int) -> None:
        killed.signum = signum
        killed.set()

    # An ignored SIGHUP (nohup) stays ignored: a hangup is not meant to end the session.
    with handle_signals(("SIGTERM", "SIGHUP"), on_signal):
        yield killed
