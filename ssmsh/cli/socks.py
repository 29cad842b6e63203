"""``ssmsh socks [TARGET] [BIND:]PORT`` (and ``ssmsh forward TARGET -D PORT``): a SOCKS5
proxy whose connections leave from the target.

The listener is bound before any AWS call (a busy port fails fast; PORT 0 is
printed); then the target is resolved and every CONNECT goes through a session to
its destination (:class:`~ssmsh.tunnel.socks.SocksServer`). Ctrl-C (SIGTERM,
SIGHUP) ends every session cleanly and exits 0. Sessions that end on their own are
replaced when a connection needs them: the proxy itself ends only on a signal.
The command is declared in :mod:`ssmsh.cli.commands.socks`.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from ..channel import SessionConnection
from ..exceptions import UsageError
from ..terminal.tty import Terminal
from ..tunnel.gate import HandlerGate
from ..tunnel.listeners import Listener
from ..tunnel.socks import SocksServer, parse_listen
from ..tunnel.spec import ForwardSpec
from .choose import choose_target
from .common import add_common_options, default_target
from .errors import EXIT_OK
from .pooled import check_pool_size
from .portsession import (
    add_tunnel_options,
    open_connection,
    open_listeners,
    port_connection_config,
    session_service,
    tunnel_config,
)
from .runtime import STOP_SIGNALS, Reporter, handle_signals, unless_set

__all__ = [
    "DESCRIPTION",
    "configure_socks",
    "forward_dynamic",
    "run_socks",
    "socks",
    "target_and_listen",
]

DEFAULT_MAX_SESSIONS = 32
DEFAULT_IDLE_TIMEOUT = 120.0

DESCRIPTION = """\
A SOCKS5 proxy on a local port (as ssh -D): CONNECT to any HOST:PORT the target can
reach; names are resolved on the target. For example
  ssmsh socks web-1 1080
  curl --socks5-hostname 127.0.0.1:1080 http://db.internal:8080/
BIND defaults to 127.0.0.1 (0.0.0.0, * or [::] accept other machines; PORT 0 picks
a free port). Each destination gets its own session, opened by its first connection,
reused by the next ones, closed after --idle-timeout without connections. Ctrl-C
ends them all."""


def configure_socks(parser: argparse.ArgumentParser) -> None:
    """``ssmsh socks``'s arguments (its parser resolves conflicts: see -v)."""
    parser.add_argument(
        "target",
        metavar="TARGET",
        nargs="?",
        help="instance id, Name tag or alias; default with --local or SSMSH_TARGET",
    )
    parser.add_argument("listen", metavar="[BIND:]PORT", help="where to listen (e.g. 1080)")
    add_common_options(parser, suppress=True)
    parser.add_argument(
        "-v",
        "--verbose",
        dest="tunnel_verbose",
        action="store_true",
        help="print a line for each connection (destination, bytes, duration) and session",
    )
    add_socks_options(parser)
    add_tunnel_options(parser)


def add_socks_options(parser: argparse.ArgumentParser) -> None:
    """The proxy's own options (``forward -D`` takes forward's ``--sessions`` and the
    defaults of the others)."""
    parser.add_argument(
        "--sessions",
        type=int,
        default=None,
        metavar="N",
        help="sessions per destination, opened as its connections grow (default 1)",
    )
    parser.add_argument(
        "--max-sessions",
        type=int,
        default=DEFAULT_MAX_SESSIONS,
        metavar="N",
        help="sessions open at once, all destinations together (default %(default)s)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULT_IDLE_TIMEOUT,
        metavar="SECONDS",
        help="end a destination's sessions after this long without connections "
        "(default %(default)g)",
    )
    parser.add_argument(
        "--connect-wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long to wait for the agent to report a refused connection before "
        "answering success (default: a round trip to the agent plus 50 ms)",
    )


async def run_socks(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    """Entry point of ``ssmsh socks``."""
    target, spec = await choose_target(args, reporter, lambda: target_and_listen(args))
    return await socks(args, target, [spec], reporter)


def _listen_or_none(text: str | None) -> ForwardSpec | None:
    if text is None:
        return None
    try:
        return parse_listen(text)
    except UsageError:
        return None


def target_and_listen(args: argparse.Namespace) -> tuple[str, ForwardSpec]:
    """TARGET and where to listen; the two may come in either order (``socks 1080 web-1``)."""
    target, listen = args.target, args.listen
    if target is not None and _listen_or_none(target) and not _listen_or_none(listen):
        target, listen = listen, target
    return default_target(args, target), parse_listen(listen)


async def forward_dynamic(args: argparse.Namespace, reporter: Reporter) -> int:
    """``ssmsh forward TARGET -D [BIND:]PORT [-D ...]``: :func:`socks` on each address."""
    words = [w for w in (args.target, *args.specs) if w is not None]
    if len(words) > 1:
        raise UsageError(
            "-D does not combine with SPECs: run ssmsh socks beside ssmsh forward "
            "(ssmsh forward TARGET -D [BIND:]PORT)"
        )
    specs = [parse_listen(text) for text in args.dynamic]
    word = words[0] if words else None
    target = await choose_target(args, reporter, lambda: default_target(args, word))
    return await socks(args, target, specs, reporter)


def _socks_settings(args: argparse.Namespace) -> tuple[int, int, float, float | None]:
    sessions = check_pool_size(getattr(args, "sessions", None)) or 1
    max_sessions = int(getattr(args, "max_sessions", DEFAULT_MAX_SESSIONS))
    if max_sessions < 1:
        raise UsageError("--max-sessions must be at least 1")
    idle = float(getattr(args, "idle_timeout", DEFAULT_IDLE_TIMEOUT))
    if not idle > 0:
        raise UsageError("--idle-timeout must be positive")
    wait = getattr(args, "connect_wait", None)
    if wait is not None and not 0 <= wait <= 60:
        raise UsageError("--connect-wait must be between 0 and 60 seconds")
    return sessions, max_sessions, idle, wait


async def socks(
    args: argparse.Namespace, target: str, specs: Sequence[ForwardSpec], reporter: Reporter
) -> int:
    """Serve SOCKS5 on every address in ``specs`` until a stop signal (0)."""
    settings = _socks_settings(args)
    config = tunnel_config(args)
    channel_config = port_connection_config(args, config)
    verbose = bool(getattr(args, "tunnel_verbose", False))
    sessions, max_sessions, idle, wait = settings
    stop = asyncio.Event()
    with handle_signals(STOP_SIGNALS, lambda signum: stop.set()):
        listeners: list[Listener] = []
        gates: list[HandlerGate] = []
        try:
            await open_listeners(specs, listeners, gates, reporter, lambda _: "SOCKS5 clients")
            async with session_service(args, reporter) as aws:
                target_id = await unless_set(aws.resolve_target(target), stop)
                if target_id is None:
                    return EXIT_OK

                async def start(spec: ForwardSpec) -> SessionConnection:
                    return await open_connection(
                        aws,
                        target_id,
                        spec.document_name,
                        spec.document_parameters(),
                        channel_config,
                        config,
                    )

                server = SocksServer(
                    start,
                    listeners[0],
                    target_label=target_id,
                    report=reporter.say,
                    verbose=verbose,
                    config=config,
                    sessions=sessions,
                    max_sessions=max_sessions,
                    idle_timeout=idle,
                    wait=wait,
                )
                for gate in gates:
                    gate.open(server.handle)
                try:
                    await unless_set(server.run(), stop)
                finally:
                    await server.close()
                if verbose:
                    reporter.say("stopping")
                return EXIT_OK
        finally:
            for gate in gates:
                gate.fail()
            for listener in listeners:
                await listener.close()
