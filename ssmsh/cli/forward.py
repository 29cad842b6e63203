"""``ssmsh forward TARGET SPEC [SPEC ...]``: local ports to ports on or behind a target.

Each SPEC (``[BIND:]LOCALPORT:[HOST:]REMOTEPORT`` or ``LOCALSOCKET:[HOST:]REMOTEPORT``,
see :mod:`ssmsh.tunnel.spec`) gets its own listener and its own port session,
all running at once. The listeners are bound first, so a busy port fails fast
and ``LOCALPORT 0`` is known (and printed) before any AWS call.

Everything the command says goes to stderr, prefixed ``ssmsh:``. Ctrl-C (or
SIGTERM, SIGHUP) ends every session cleanly: Flag TerminateSession, the
TerminateSession API, listeners closed, socket files removed, exit status 0.
If any session ends on its own (closed by the remote end, agent gone, link
lost for good) the others are ended too and the status is 255, as for ssh.
With ``--persist``, a session that the remote end closed (idle timeout, maximum
duration, TerminateSession) is replaced instead: its listener stays, and the
next connection to it starts a new session.

What it shares with ``ssmsh proxy`` and plugin mode is in :mod:`.portsession`;
plugin mode also serves its listener with :func:`serve_sessions`. The command is
declared in :mod:`ssmsh.cli.commands.forward`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from ..channel import ConnectionConfig
from ..exceptions import ChannelClosed, SsmshError, TunnelError, UsageError
from ..terminal.tty import Terminal
from ..tunnel.config import TunnelConfig
from ..tunnel.gate import HandlerGate
from ..tunnel.listeners import Listener
from ..tunnel.session import ForwardSession, closed_message
from ..tunnel.spec import ForwardSpec, parse_spec
from .choose import choose_target
from .common import add_common_options, default_target
from .errors import EXIT_FAILURE, EXIT_OK
from .pooled import check_pool_size, serve_pools
from .portsession import (
    add_target_argument,
    add_tunnel_options,
    open_connection,
    open_listeners,
    port_connection_config,
    session_service,
    tunnel_config,
)
from .runtime import STOP_SIGNALS, Reporter, handle_signals, unless_set, verbosity
from .socks import forward_dynamic
from .waits import PortSessionNotices

__all__ = [
    "DESCRIPTION",
    "configure_forward",
    "forward",
    "run_forward",
    "serve_sessions",
    "target_and_specs",
]

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Forward local TCP ports or Unix sockets to ports on the target, or (with HOST) to
HOST:REMOTEPORT as reached from the target. SPEC is one of
  PORT                                 e.g. 5432: the same port, 5432:5432
  [BIND:]LOCALPORT:REMOTEPORT          e.g. 5432:5432, 0:80 (0 = any free port)
  [BIND:]LOCALPORT:HOST:REMOTEPORT     e.g. 5432:db.internal:5432
  LOCALSOCKET:[HOST:]REMOTEPORT        e.g. ./pg.sock:5432 (a path; mode 0600)
BIND defaults to 127.0.0.1; write * for every interface (IPv4 and IPv6), 0.0.0.0 or
[::] for one family. SPECs go after TARGET, or before it with -L as for ssh:
  ssmsh forward -L 8080:localhost:80 web-1
Each SPEC runs as its own session. Ctrl-C ends them all."""


def configure_forward(parser: argparse.ArgumentParser) -> None:
    """``ssmsh forward``'s arguments (``-v``, a common option, adds a line per connection)."""
    add_target_argument(parser)
    parser.add_argument("specs", metavar="SPEC", nargs="*", help="what to forward (see above)")
    parser.add_argument(
        "-L",
        dest="dashed_specs",
        action="append",
        default=[],
        metavar="SPEC",
        help="a SPEC, as ssh -L takes it (repeatable; with the SPECs after TARGET, if any)",
    )
    add_common_options(parser, suppress=True)
    parser.add_argument(
        "--persist",
        action="store_true",
        help="when the remote end closes a session (idle timeout, maximum session duration, "
        "terminated), keep listening and start a new session for the next connection",
    )
    parser.add_argument(
        "--sessions",
        type=int,
        default=None,
        metavar="N",
        help="spread each listener's connections over up to N sessions, least loaded "
        "first (opened as load grows, replaced when they end); the agent's pace is per "
        "session",
    )
    parser.add_argument(
        "-D",
        dest="dynamic",
        action="append",
        metavar="[BIND:]PORT",
        help="instead of SPECs: a SOCKS5 proxy on PORT, as ssh -D (see ssmsh socks)",
    )
    add_tunnel_options(parser)


async def run_forward(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    """Entry point of ``ssmsh forward``."""
    return await forward(args, reporter)


def target_and_specs(args: argparse.Namespace) -> tuple[str, list[ForwardSpec]]:
    """TARGET and the SPECs (``-L`` ones first); TARGET may be left out with --local or
    SSMSH_TARGET.

    argparse gives the first word to TARGET; a first word that is a valid SPEC (no
    instance id or Name tag is one; a lone port number is, ``80`` meaning ``80:80``) is a
    SPEC.
    """
    words = list(getattr(args, "specs", None) or [])
    dashed = list(getattr(args, "dashed_specs", None) or [])
    target = args.target
    if target is not None:
        try:
            parse_spec(target)
        except UsageError:
            pass
        else:
            words.insert(0, target)
            target = None
    if not words and not dashed:
        if target is None:
            raise UsageError("no SPEC given: ssmsh forward TARGET SPEC [SPEC ...]")
        if target.split(":", 1)[0].isdigit():
            parse_spec(target)  # meant as a SPEC: its own error says what is wrong
        raise UsageError(
            f"no SPEC given for target {target!r}: ssmsh forward TARGET SPEC [SPEC ...] "
            "(or -L SPEC)"
        )
    specs = [parse_spec(text) for text in [*dashed, *words]]
    return default_target(args, target), specs


async def forward(args: argparse.Namespace, reporter: Reporter) -> int:
    """Forward until a stop signal (0) or until a session ends on its own (255).

    What it has to say goes to ``reporter.say``: never silenced by ``--quiet``.
    """
    if getattr(args, "dynamic", None):
        return await forward_dynamic(args, reporter)
    check_pool_size(getattr(args, "sessions", None))
    target, specs = await choose_target(args, reporter, lambda: target_and_specs(args))
    config = tunnel_config(args)
    channel_config = port_connection_config(args, config)
    verbose = verbosity(args)[0] >= 1  # -v: a line when each connection opens and closes
    stop = asyncio.Event()
    with handle_signals(STOP_SIGNALS, lambda signum: stop.set()):
        return await _forward(args, target, specs, config, channel_config, verbose, stop, reporter)


async def _forward(
    args: argparse.Namespace,
    target: str,
    specs: Sequence[ForwardSpec],
    config: TunnelConfig,
    channel_config: ConnectionConfig,
    verbose: bool,
    stop: asyncio.Event,
    reporter: Reporter,
) -> int:
    listeners: list[Listener] = []
    gates: list[HandlerGate] = []
    try:
        await open_listeners(specs, listeners, gates, reporter, lambda spec: spec.remote_label)
        async with session_service(args, reporter) as aws:
            target_id = await unless_set(aws.resolve_target(target), stop)
            if target_id is None:
                return EXIT_OK
            if getattr(args, "sessions", None):
                return await serve_pools(
                    aws,
                    target_id,
                    specs,
                    listeners,
                    gates,
                    args.sessions,
                    channel_config,
                    config,
                    verbose,
                    stop,
                    reporter,
                )

            async def start(index: int) -> ForwardSession:
                spec, listener, gate = specs[index], listeners[index], gates[index]
                connection = await open_connection(
                    aws,
                    target_id,
                    spec.document_name,
                    spec.document_parameters(listener.port),
                    channel_config,
                    config,
                )
                PortSessionNotices(
                    connection, listener.label, reporter.status, reporter.hints
                ).attach()
                return ForwardSession(
                    connection,
                    listener,
                    gate,
                    remote_label=f"{spec.remote_label} via {target_id}",
                    report=reporter.say,
                    verbose=verbose,
                    config=config,
                )

            sessions = await unless_set(_start_all(start, len(specs)), stop)
            if sessions is None:
                return EXIT_OK
            renew = start if getattr(args, "persist", False) else None
            try:
                return await serve_sessions(sessions, stop, reporter, renew)
            finally:
                await asyncio.gather(*(s.terminate() for s in sessions), return_exceptions=True)
    finally:
        for gate in gates:
            gate.fail()
        for listener in listeners:
            await listener.close()


async def _start_all(
    start: Callable[[int], Awaitable[ForwardSession]], count: int
) -> list[ForwardSession]:
    """All sessions at once; if one cannot start, those that did are ended."""
    results = await asyncio.gather(*(start(i) for i in range(count)), return_exceptions=True)
    sessions = [r for r in results if isinstance(r, ForwardSession)]
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        await asyncio.gather(*(s.connection.close(terminate=True) for s in sessions))
        raise failures[0]
    return sessions


async def serve_sessions(
    sessions: list[ForwardSession],
    stop: asyncio.Event,
    reporter: Reporter,
    renew: Callable[[int], Awaitable[ForwardSession]] | None = None,
) -> int:
    """Run established-or-not forward sessions until ``stop`` (0) or one of them ends (255).

    Their ends are told with ``reporter.say``. With ``renew``, a session the remote
    end closed is replaced in ``sessions`` by ``renew(index)``, called when the next
    connection comes to its listener. The caller terminates the sessions afterwards
    (:meth:`ForwardSession.terminate`).
    """
    runners: dict[asyncio.Future[object], int] = {
        asyncio.ensure_future(_serve(sessions, index, reporter, renew)): index
        for index in range(len(sessions))
    }
    stopping: asyncio.Future[object] = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait({stopping, *runners}, return_when=asyncio.FIRST_COMPLETED)
        status = EXIT_OK
        for task in done:
            index = runners.get(task)
            if index is not None:
                status = EXIT_FAILURE
                _report_end(sessions[index], task.exception(), reporter)
        if status == EXIT_OK and any(s.log.verbose for s in sessions):
            reporter.say("stopping")
        return status
    finally:
        stopping.cancel()
        for task in runners:
            task.cancel()
        await asyncio.gather(stopping, *runners, return_exceptions=True)


async def _serve(
    sessions: list[ForwardSession],
    index: int,
    reporter: Reporter,
    renew: Callable[[int], Awaitable[ForwardSession]] | None,
) -> None:
    """Serve ``sessions[index]``; with ``renew``, replace it whenever the remote end closes it."""
    while True:
        session = sessions[index]
        try:
            await session.run()
        except ChannelClosed as exc:
            if renew is None:
                raise
            reason = closed_message(exc).rstrip(".")
        else:
            if renew is None:
                return
            reason = "the session ended"
        session.gate.reset()  # connections from now on wait for the next session
        reporter.say(
            f"{session.listener.label}: session {session.session_id} ended: {reason}; "
            "the next connection starts a new one"
        )
        await session.release()
        await session.gate.wait_demand()
        try:
            sessions[index] = await renew(index)
        except SsmshError as exc:
            raise TunnelError(f"cannot start a new session: {exc}") from None
        if not session.log.verbose:
            reporter.say(f"{session.listener.label}: new session {sessions[index].session_id}")


def _report_end(session: ForwardSession, exc: BaseException | None, reporter: Reporter) -> None:
    label = f"{session.listener.label}: session {session.session_id}"
    if isinstance(exc, ChannelClosed):
        reporter.say(f"{label} ended: {closed_message(exc)}")
    elif isinstance(exc, SsmshError):
        reporter.say(f"{label} failed: {exc}")
    elif exc is not None:
        reporter.say(f"{label} failed: {exc!r}")
        logger.debug("session runner failed", exc_info=exc)
    else:
        reporter.say(f"{label} ended")
