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

The helpers here (AWS settings from the parsed arguments, the stderr reporter,
stop signals, opening a session connection) are shared with ``ssmsh proxy``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from typing import Any

from ..aws import SsmSessions
from ..channel import ConnectionConfig, SessionConnection
from ..exceptions import ChannelClosed, SsmshError, UsageError
from ..protocol.datachannel import ChannelConfig
from ..protocol.session import ClientSession
from ..tunnel.channel import TunnelConfig
from ..tunnel.listeners import Listener, open_listener
from ..tunnel.session import ForwardSession, HandlerGate, closed_message
from ..tunnel.spec import ForwardSpec, parse_spec
from .common import (
    add_common_options,
    aws_settings,
    connection_config,
    default_target,
    local_endpoint,
)
from .errors import EXIT_FAILURE, EXIT_OK, describe, exit_status

__all__ = [
    "add_parser",
    "forward",
    "open_connection",
    "port_connection_config",
    "report",
    "run",
    "run_command",
    "serve_sessions",
    "session_service",
    "stop_signals",
    "tunnel_config",
]

logger = logging.getLogger(__name__)

DEFAULT_MESSAGE_SIZE = TunnelConfig().max_message_size
DEFAULT_AGENT_TIMEOUT = TunnelConfig().agent_timeout

DESCRIPTION = """\
Forward local TCP ports or Unix sockets to ports on the target, or (with HOST) to
HOST:REMOTEPORT as reached from the target. SPEC is one of
  [BIND:]LOCALPORT:REMOTEPORT          e.g. 5432:5432, 0:80 (0 = any free port)
  [BIND:]LOCALPORT:HOST:REMOTEPORT     e.g. 5432:db.internal:5432
  LOCALSOCKET:[HOST:]REMOTEPORT        e.g. ./pg.sock:5432 (a path; mode 0600)
BIND defaults to 127.0.0.1; write 0.0.0.0 (or *, [::]) to accept other machines.
Each SPEC runs as its own session. Ctrl-C ends them all."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``forward`` on the main parser's subcommands."""
    parser = subparsers.add_parser(
        "forward",
        help="forward local ports to ports on (or behind) a target",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        conflict_handler="resolve",  # our -v (connection lines) replaces the common -v (--debug)
    )
    parser.add_argument(
        "target",
        metavar="TARGET",
        nargs="?",
        help="instance id or Name tag; default with --local or SSMSH_TARGET",
    )
    parser.add_argument("specs", metavar="SPEC", nargs="+", help="what to forward (see above)")
    add_common_options(parser, suppress=True)
    parser.add_argument(
        "-v",
        "--verbose",
        dest="tunnel_verbose",
        action="store_true",
        help="print a line when each connection opens and closes (bytes, duration)",
    )
    add_tunnel_options(parser)
    parser.set_defaults(func=run)


def add_tunnel_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--message-size",
        type=int,
        default=DEFAULT_MESSAGE_SIZE,
        metavar="BYTES",
        help="largest data message sent to the agent (default %(default)s; "
        "the official plugin sends 1024)",
    )
    parser.add_argument(
        "--agent-timeout",
        type=float,
        default=DEFAULT_AGENT_TIMEOUT,
        metavar="SECONDS",
        help="end the session when the agent acknowledges nothing for this long while "
        "data waits (default %(default)g)",
    )


# --------------------------------------------------------------------- shared helpers


def report(line: str) -> None:
    """A user-facing line on stderr."""
    print(f"ssmsh: {line}", file=sys.stderr, flush=True)


def tunnel_config(args: argparse.Namespace) -> TunnelConfig:
    size = int(getattr(args, "message_size", DEFAULT_MESSAGE_SIZE))
    if not 1 <= size <= 1024 * 1024:
        raise UsageError(f"--message-size {size} is out of range (1-1048576)")
    timeout = float(getattr(args, "agent_timeout", DEFAULT_AGENT_TIMEOUT))
    if not timeout > 0:
        raise UsageError("--agent-timeout must be positive")
    return TunnelConfig(max_message_size=size, agent_timeout=timeout)


def port_connection_config(args: argparse.Namespace, config: TunnelConfig) -> ConnectionConfig:
    """The channel driver's settings for a port session: the common ones, larger messages."""
    return dataclasses.replace(
        connection_config(args),
        max_payload_size=config.max_message_size,
        max_receive_buffer=config.channel_receive_buffer,
    )


def port_protocol(config: TunnelConfig) -> ClientSession:
    """The Sans-I/O session for a port session, its send window bounded in bytes."""
    window = config.window_messages
    epoch = time.time() - asyncio.get_running_loop().time()
    return ClientSession(ChannelConfig(epoch_offset=epoch, max_in_flight=window, high_water=window))


@contextlib.asynccontextmanager
async def session_service(args: argparse.Namespace) -> AsyncIterator[SsmSessions]:
    """The AWS side (or, with ``--local``, an in-process emulator) for the command."""
    async with local_endpoint(args) as endpoint:
        yield SsmSessions(aws_settings(args, endpoint))


async def open_connection(
    sessions: SsmSessions,
    target_id: str,
    document: str,
    parameters: dict[str, list[str]],
    config: ConnectionConfig,
    tunnel: TunnelConfig,
) -> SessionConnection:
    """StartSession and open its data channel (the handshake follows in the background)."""
    info = await sessions.start_session(target_id, document, parameters)
    logger.debug("session %s started with %s", info.session_id, document)
    connection = SessionConnection(info, sessions, config=config, protocol=port_protocol(tunnel))
    try:
        await connection.start()
    except BaseException:
        await connection.close(terminate=True)
        raise
    return connection


@contextlib.contextmanager
def stop_signals(stop: asyncio.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT, SIGTERM and SIGHUP while inside the block."""
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        try:
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            pass
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def run_command(coro_factory: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run an async command; a failure becomes one line on stderr and an exit status."""
    try:
        return asyncio.run(coro_factory())
    except (SsmshError, OSError, KeyboardInterrupt) as exc:
        report(describe(exc) if isinstance(exc, KeyboardInterrupt) else f"error: {describe(exc)}")
        logger.debug("command failed", exc_info=exc)
        return exit_status(exc)


# --------------------------------------------------------------------- forward


def run(args: argparse.Namespace) -> int:
    """Entry point of ``ssmsh forward``."""
    return run_command(lambda: forward(args))


def target_and_specs(args: argparse.Namespace) -> tuple[str, list[ForwardSpec]]:
    """TARGET and the SPECs; TARGET may be left out with --local or SSMSH_TARGET.

    argparse gives the first word to TARGET whenever there are two or more; a
    first word that is a valid SPEC (no instance id or Name tag is one) is a SPEC.
    """
    words = list(args.specs)
    target = args.target
    if target is not None:
        try:
            parse_spec(target)
        except UsageError:
            pass
        else:
            words.insert(0, target)
            target = None
    if target is None and len(words) == 1:
        try:
            parse_spec(words[0])
        except UsageError:
            if not words[0].split(":", 1)[0].isdigit():
                raise UsageError(
                    f"no SPEC given for target {words[0]!r}: ssmsh forward TARGET SPEC [SPEC ...]"
                ) from None
            raise
    specs = [parse_spec(text) for text in words]
    return default_target(args, target), specs


async def forward(args: argparse.Namespace) -> int:
    target, specs = target_and_specs(args)
    config = tunnel_config(args)
    channel_config = port_connection_config(args, config)
    verbose = bool(getattr(args, "tunnel_verbose", False))
    stop = asyncio.Event()
    with stop_signals(stop):
        return await _forward(args, target, specs, config, channel_config, verbose, stop)


async def _forward(
    args: argparse.Namespace,
    target: str,
    specs: Sequence[ForwardSpec],
    config: TunnelConfig,
    channel_config: ConnectionConfig,
    verbose: bool,
    stop: asyncio.Event,
) -> int:
    listeners: list[Listener] = []
    gates: list[HandlerGate] = []
    sessions: list[ForwardSession] = []
    try:
        for spec in specs:
            gate = HandlerGate()
            listener = await open_listener(spec, gate)
            listeners.append(listener)
            gates.append(gate)
            report(f"listening on {', '.join(listener.addresses)} for {spec.remote_label}")
            for address in listener.public:
                report(f"warning: {address} accepts connections from other machines")
        async with session_service(args) as aws:
            starting = asyncio.ensure_future(
                _start_all(aws, target, specs, listeners, gates, config, channel_config, verbose)
            )
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError, SsmshError):
                    await starting
                return EXIT_OK
            stopping.cancel()
            sessions = starting.result()
            try:
                return await serve_sessions(sessions, stop)
            finally:
                await asyncio.gather(*(s.terminate() for s in sessions), return_exceptions=True)
    finally:
        for gate in gates:
            gate.fail()
        for listener in listeners:
            await listener.close()


async def _start_all(
    aws: SsmSessions,
    target: str,
    specs: Sequence[ForwardSpec],
    listeners: Sequence[Listener],
    gates: Sequence[HandlerGate],
    config: TunnelConfig,
    channel_config: ConnectionConfig,
    verbose: bool,
) -> list[ForwardSession]:
    target_id = await aws.resolve_target(target)
    results = await asyncio.gather(
        *(
            open_connection(
                aws,
                target_id,
                spec.document_name,
                spec.document_parameters(listener.port),
                channel_config,
                config,
            )
            for spec, listener in zip(specs, listeners, strict=True)
        ),
        return_exceptions=True,
    )
    connections = [r for r in results if isinstance(r, SessionConnection)]
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        await asyncio.gather(*(c.close(terminate=True) for c in connections))
        raise failures[0]
    return [
        ForwardSession(
            connection,
            listener,
            gate,
            remote_label=f"{spec.remote_label} via {target_id}",
            report=report,
            verbose=verbose,
            config=config,
        )
        for connection, listener, gate, spec in zip(
            connections, listeners, gates, specs, strict=True
        )
    ]


async def serve_sessions(sessions: Sequence[ForwardSession], stop: asyncio.Event) -> int:
    """Run established-or-not forward sessions until ``stop`` (0) or one of them ends (255).

    The caller terminates the sessions afterwards (:meth:`ForwardSession.terminate`).
    """
    runners: dict[asyncio.Future[object], ForwardSession] = {
        asyncio.ensure_future(session.run()): session for session in sessions
    }
    stopping: asyncio.Future[object] = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait({stopping, *runners}, return_when=asyncio.FIRST_COMPLETED)
        status = EXIT_OK
        for task in done:
            session = runners.get(task)
            if session is not None:
                status = EXIT_FAILURE
                _report_end(session, task.exception())
        if status == EXIT_OK and any(s.log.verbose for s in sessions):
            report("stopping")
        return status
    finally:
        stopping.cancel()
        for task in runners:
            task.cancel()
        await asyncio.gather(stopping, *runners, return_exceptions=True)


def _report_end(session: ForwardSession, exc: BaseException | None) -> None:
    label = f"{session.listener.label}: session {session.session_id}"
    if isinstance(exc, ChannelClosed):
        report(f"{label} ended: {closed_message(exc)}")
    elif isinstance(exc, SsmshError):
        report(f"{label} failed: {exc}")
    elif exc is not None:
        report(f"{label} failed: {exc!r}")
        logger.debug("session runner failed", exc_info=exc)
    else:
        report(f"{label} ended")
