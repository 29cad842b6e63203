"""``ssmsh shell`` and ``ssmsh exec``: a session bridged to this terminal."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence

from ..channel import SessionConnection, SessionInfo
from ..exceptions import AwsError, ReconnectFailed, UsageError
from ..protocol.piped_stdin import wrap_piped
from ..protocol.status_trailer import new_marker, wrap_command
from ..terminal.bridge import BridgeResult, TerminalBridge
from ..terminal.escape import parse_escape_char
from ..terminal.tty import Terminal
from .choose import choose_target
from .common import (
    ParametersFor,
    add_common_options,
    aws_settings,
    connection_config,
    default_target,
    open_session,
    parse_parameters,
    setting,
)
from .errors import EXIT_FAILURE, StartInterrupted
from .resumable import RecordWriter, new_header, record_path
from .runtime import Reporter, handle_signals, unless_set, verbosity
from .setup import forget_exec_document, remembered_exec_document

__all__ = [
    "add_escape_option",
    "bridge_session",
    "configure_exec",
    "configure_shell",
    "finish",
    "run_exec",
    "run_shell",
    "stdin_kind",
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
        help="instance id (i-..., mi-...), Name tag or alias; default with --local or "
        "SSMSH_TARGET, else picked from a list on a terminal",
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
    add_escape_option(parser)
    add_common_options(parser, suppress=True)


def configure_exec(parser: argparse.ArgumentParser) -> None:
    # Optional as for shell: "exec --local -- CMD" (the first word after the options
    # is "--") has no target, and uses --local's or SSMSH_TARGET's.
    parser.add_argument(
        "target",
        nargs="?",
        help="instance id (i-..., mi-...), Name tag or alias; default with --local or "
        "SSMSH_TARGET, else picked from a list on a terminal",
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
        action="count",
        default=0,
        help=f"run in a terminal ({INTERACTIVE_DOCUMENT}) when stdin is one; with piped "
        "stdin there is no terminal, as with ssh -t (-tt: a terminal anyway, stdin typed "
        "into it)",
    )
    parser.add_argument(
        "-n",
        dest="no_stdin",
        action="store_true",
        help="do not read stdin (as if from /dev/null), like ssh -n",
    )
    parser.add_argument(
        "--no-shell",
        action="store_true",
        help="without -t, pass COMMAND to the agent as is (it splits the words and runs "
        "the program without a shell); by default it runs under sh -c, as with ssh "
        "(Windows targets always get it as is: PowerShell runs it there)",
    )
    parser.add_argument("--reason", metavar="TEXT", help="reason recorded with the session")
    add_escape_option(parser)
    add_common_options(parser, suppress=True)


def _forget_own_document(args: argparse.Namespace, reporter: Reporter, error: AwsError) -> None:
    """ssmsh's exec document was refused: AWS's served; say so once, and forget it."""
    forget_exec_document(args)
    reporter.status(
        f"ssmsh: the document from `ssmsh setup` could not be used ({error.code}); "
        "stderr comes merged into stdout until it is set up again"
    )


def add_escape_option(parser: argparse.ArgumentParser) -> None:
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


def stdin_kind(terminal: Terminal) -> str:
    """What stdin is: ``tty``, ``none`` (/dev/null, an empty file, closed) or ``data``."""
    if terminal.stdin_is_tty:
        return "tty"
    try:
        info = os.fstat(terminal.stdin)
    except OSError:
        return "none"
    if stat.S_ISREG(info.st_mode) and info.st_size == 0:
        return "none"
    if stat.S_ISCHR(info.st_mode):
        with contextlib.suppress(OSError):
            null = os.stat(os.devnull)
            if info.st_rdev == null.st_rdev:
                return "none"
    return "data"


async def _choose_target(args: argparse.Namespace, reporter: Reporter) -> None:
    """The options checked, then the target chosen (the picker's turn, when none was
    given): no one picks a target to hear then that an option was wrong."""
    try:
        parse_escape_char(args.escape)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    connection_config(args)
    args.target = await choose_target(args, reporter, lambda: default_target(args, args.target))


async def run_shell(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    refuse_port_document(args.document)
    parameters = parse_parameters(args.parameter, args.parameters)
    if args.exit_status and (args.document or parameters):
        raise UsageError("--exit-status chooses the document: leave out --document/--parameter")
    await _choose_target(args, reporter)
    if args.document is None and not args.exit_status:
        args.document = setting(args, "document")  # the alias's, or [defaults]'
        refuse_port_document(args.document)
    own_document = bool(args.document or parameters)
    if not terminal.stdin_is_tty and not own_document:
        # A script on stdin, as `ssh host < script`: sh reads it as its stdin, without
        # a terminal; clean output, and the script's status (ssmsh.protocol.piped_stdin).
        return await _run_piped(args, terminal, reporter, "exec sh", announce=True)
    if args.exit_status:
        # The official agent reports no status for shells (protocol/traces/shell-exit-3);
        # an InteractiveCommands session running sh carries it back in the status trailer.
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
            waits_for_size=True,
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
        # ssmsh attach can take it over should this process die (ssmsh.cli.resumable);
        # not with --local, whose emulator dies with it.
        attachable=terminal.stdin_is_tty and not args.local,
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
    joined = " ".join(command)  # joined with spaces, as ssh does
    # Like ssh: nothing about the session on stderr unless asked (-v); failures still are.
    verbose, debug = verbosity(args)
    announce = verbose >= 1 or debug
    piped = not args.no_stdin and stdin_kind(terminal) == "data"
    if piped and args.tty < 2 and args.no_shell:
        raise UsageError(
            "--no-shell cannot pass stdin to the command (that needs sh on the "
            "target): add -n to run it without stdin"
        )
    await _choose_target(args, reporter)
    if piped and args.tty < 2:
        # As ssh -t with piped stdin: no terminal; the command reads the pipe.
        return await _run_piped(args, terminal, reporter, joined, announce=announce)
    tty = args.tty > 0
    # The official agent reports no exit status with these documents: the command's own
    # output carries it back (see ssmsh.protocol.status_trailer), wrapped or not for the
    # target's platform (_CommandLine).
    line = _CommandLine(joined, tty=tty, no_shell=args.no_shell)
    # With -t the agent runs the line in a pty under sh -c; without, it splits the
    # line into words and executes them directly.
    document = INTERACTIVE_DOCUMENT if tty else NON_INTERACTIVE_DOCUMENT
    # ssmsh's own document, where ``ssmsh setup`` made one: stderr apart, the agent's status.
    own = None if tty else remembered_exec_document(args)
    return await _run(
        args,
        terminal,
        reporter,
        target=args.target,
        document=own or document,
        parameters=line.parameters,
        reason=args.reason,
        interactive=tty,
        # -t: keys from a terminal, or (-tt) piped stdin typed into the pty; -n: nothing.
        send_stdin=tty and not args.no_stdin,
        command_line=line,
        status_expected=True,
        # (the -t wrapper waits for the size; no wrapper, as on Windows: nothing waits)
        waits_for_size=tty,
        fallback_document=document if own else None,
        on_fallback=lambda error: _forget_own_document(args, reporter, error),
        announce=announce,
    )


def _piped_parameters(line: str, marker: str, platform: str | None) -> dict[str, list[str]]:
    """The piped-stdin wrapper around ``line``: it needs ``sh`` on the target."""
    if platform == "Windows":
        raise UsageError(
            "piped stdin needs sh on the target, and it runs Windows: give -n to run "
            "the command without stdin"
        )
    return {"command": [wrap_piped(line, marker)]}


async def _run_piped(
    args: argparse.Namespace, terminal: Terminal, reporter: Reporter, line: str, *, announce: bool
) -> int:
    """``line`` with stdin as its stdin: the wrapper of :mod:`ssmsh.protocol.piped_stdin`
    through AWS-StartInteractiveCommand (the only documents whose commands get input)."""
    marker = new_marker()
    return await _run(
        args,
        terminal,
        reporter,
        target=args.target,
        document=INTERACTIVE_DOCUMENT,
        parameters=lambda platform: _piped_parameters(line, marker, platform),
        reason=args.reason,
        interactive=False,
        send_stdin=False,
        framed_stdin=True,
        status_marker=marker,
        status_expected=True,
        announce=announce,
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
    send_stdin: bool | None = None,
    status_marker: str | None = None,
    command_line: _CommandLine | None = None,
    status_expected: bool = False,
    waits_for_size: bool = False,
    framed_stdin: bool = False,
    fallback_document: str | None = None,
    on_fallback: Callable[[AwsError], None] | None = None,
    announce: bool = True,
    attachable: bool = False,
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
        announce=announce,
    ) as (conn, info):
        if command_line is not None:  # wrapped, or not, for the target's platform
            status_marker = command_line.marker
            waits_for_size = waits_for_size and status_marker is not None
        record = keep_record(args, conn, info, reporter) if attachable else None
        left = False
        try:
            result = await bridge_session(
                conn,
                terminal,
                reporter,
                interactive=interactive,
                escape_char=escape_char,
                # A non-interactive command gets an empty stdin from the agent: send nothing.
                send_stdin=interactive if send_stdin is None else send_stdin,
                status_marker=status_marker,
                waits_for_size=waits_for_size,
                framed_stdin=framed_stdin,
                announce=announce,
            )
        except ReconnectFailed as exc:
            if not (exc.session_may_live and record is not None and record.attachable):
                raise
            # The network is gone, not the session: it lives on at the service until its
            # idle timeout, and the record lets a later process take it over.
            left = conn.leave_running = True
            raise ReconnectFailed(
                f"{exc}; the session may live on until its idle timeout: "
                f"ssmsh attach {info.session_id} takes it over once the network is back",
                session_may_live=True,
            ) from None
        finally:
            if record is not None and left:
                record.close()
            elif record is not None:
                record.remove()  # ended here (TerminateSession follows): nothing to attach to
    if result is None:
        return EXIT_FAILURE
    unwrapped = command_line.unwrapped if command_line is not None else None
    return finish(
        result,
        info.session_id,
        reporter,
        status_expected=status_expected,
        announce=announce,
        strict=True,
        unwrapped=unwrapped,
    )


def keep_record(
    args: argparse.Namespace, conn: SessionConnection, info: SessionInfo, reporter: Reporter
) -> RecordWriter:
    """Keep the session's record for ``ssmsh attach`` from now on (:mod:`.resumable`)."""
    aws = aws_in_use(args, getattr(conn.service, "region", None))
    record = RecordWriter(
        record_path(info.session_id),
        lambda protocol: new_header(
            protocol,
            session_id=info.session_id,
            target_id=info.target_id,
            stream_url=info.stream.stream_url,
            client_id=conn.client_id,
            aws=aws,
        ),
        warn=reporter.status,
    )
    conn.set_recorder(record)
    return record


def aws_in_use(args: argparse.Namespace, region: str | None) -> dict[str, str | None]:
    """The profile, region and endpoint the session was started with, wherever they
    came from (command line, alias, environment, ``[defaults]``; ``region``: the one the
    calls went to): ``attach`` must reach the same account and region from a shell
    whose environment says otherwise, or it would take the session for ended."""
    env = os.environ
    settings = aws_settings(args)
    return {
        "region": region or settings.region,
        "profile": settings.profile or env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE"),
        "endpoint_url": settings.endpoint_url
        or env.get("AWS_ENDPOINT_URL_SSM")
        or env.get("AWS_ENDPOINT_URL"),
    }


async def bridge_session(
    conn: SessionConnection,
    terminal: Terminal,
    reporter: Reporter,
    *,
    interactive: bool,
    escape_char: int | None,
    send_stdin: bool,
    status_marker: str | None = None,
    waits_for_size: bool = False,
    framed_stdin: bool = False,
    announce: bool = True,
) -> BridgeResult | None:
    """Bridge an open connection to this terminal until the session ends.

    SIGTERM and SIGHUP end it early: the terminal is restored, the error is
    reported and None is returned (the caller's exit status is then 255, as
    with ssh). Before the session is established (the handshake), they raise
    :class:`StartInterrupted` instead, as while the session was being opened.
    SIGINT (Ctrl-C, which the terminal still turns into a signal until then)
    raises it at any time: ssmsh was interrupted, 130. The connection is left
    open; the caller closes it (TerminateSession).
    """
    bridge = TerminalBridge(
        conn,
        terminal,
        interactive=interactive,
        escape_char=escape_char,
        status=reporter.status,
        send_stdin=send_stdin,
        status_marker=status_marker,
        waits_for_size=waits_for_size,
        framed_stdin=framed_stdin,
        announce=announce,
        hints=reporter.hints,
    )
    with _terminating_signals() as killed:
        result = await unless_set(bridge.run(), killed)
    if killed.is_set():
        terminal.restore()
        if killed.signum == signal.SIGINT or (not conn.protocol.established and not conn.closed):
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
    announce: bool = True,
    strict: bool = False,
    unwrapped: str | None = None,
) -> int:
    """The exit status for how a bridged session ended; prints the closing line.

    The status is the one the command's trailer carried, else the agent's ExitCode.
    With ``status_expected`` (``exec``) and neither, the status is unknown: one line
    says so and the result is 255, never a made-up 0. With ``strict`` (ssmsh's own
    commands, not the plugin's stand-in), a session the service ended (its
    channel_closed says why: an idle timeout, the maximum duration) is a failure too,
    as for ssh a connection the other side closed: one ``ssmsh:`` line, 255.
    Without ``announce`` (``exec``), the ``Exiting session`` line is left out.
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
    why = result.closed_output
    if code is None and strict and why and not status_expected:
        # A shell the service ended: not the end the user chose.
        reporter.error(f"the session was ended by the service: {why}")
        return EXIT_FAILURE
    if announce and not (strict and code is None and status_expected):
        if why and (code is None or code == 0):
            reporter.status(f"SessionId: {session_id} : {why}")
        else:
            reporter.status(f"Exiting session with sessionId: {session_id}.")
    if code is None:
        if status_expected:
            if result.trailer_expected:
                ended = f"the service ended it: {why}" if why else _ENDED_UNSEEN
                reporter.error(
                    f"the session ended before the command did ({ended}); "
                    "its exit status is unknown"
                )
            else:
                without = unwrapped or "--no-shell leaves out ssmsh's status wrapper"
                reporter.error(
                    f"the remote exit status is unknown: the document reports none and "
                    f"{without} (ssmsh setup makes a document that reports it)"
                )
            return EXIT_FAILURE
        return 0
    return code & 0xFF if code >= 0 else EXIT_FAILURE


#: Why a session ended early, when its channel_closed says nothing: the official
#: agent and the gateway send the same empty one for an end by TerminateSession as
#: for a normal one (protocol/traces/shell-terminate-session-api, shell-exit-3).
_ENDED_UNSEEN = "terminated elsewhere, or the agent stopped"


def _bounded_int(text: str) -> int | None:
    """An exit status from text, or None when it is no plausible status."""
    return int(text) if len(text.lstrip("-")) <= 10 else None


class _Killed(asyncio.Event):
    signum: int = 0


@contextlib.contextmanager
def _terminating_signals() -> Iterator[_Killed]:
    """SIGTERM, SIGHUP and SIGINT end the session cleanly (terminal restored,
    TerminateSession), unless they are ignored (``nohup``, a background job)."""
    killed = _Killed()

    def on_signal(signum: int) -> None:
        killed.signum = signum
        killed.set()

    # An ignored SIGHUP (nohup) stays ignored: a hangup is not meant to end the session.
    with handle_signals(("SIGTERM", "SIGHUP", "SIGINT"), on_signal):
        yield killed
