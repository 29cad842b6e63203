"""``ssmsh proxy TARGET [PORT]``: stdin/stdout to a port on the target, for ssh.

Use it as an SSH ProxyCommand::

    ssh -o ProxyCommand='ssmsh proxy %h %p' ec2-user@i-0123456789abcdef0

It starts an ``AWS-StartSSHSession`` session (standard-stream forwarding) and
connects the process's stdin and stdout to it. stdout carries the tunnel's
bytes and nothing else: no banner, no status text (the official plugin prints
"Starting session with SessionId" there). Problems go to stderr.

The command ends with status 0 when the agent closes the session (the
destination closed its connection) or stdout goes away, and on SIGINT, SIGTERM
or SIGHUP (ssh sends SIGHUP to its ProxyCommand when it is done), after ending
the session: Flag TerminateSession and the TerminateSession API. The command is
declared in :mod:`ssmsh.cli.commands.proxy`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os

from ..aws import SsmSessions
from ..channel import ConnectionConfig, SessionConnection
from ..exceptions import SsmshError, TunnelError
from ..protocol.constants import Flag
from ..terminal.tty import Terminal
from ..tunnel.channel import ConnectionChannel
from ..tunnel.config import TunnelConfig
from ..tunnel.mode import PortMode, choose_mode
from ..tunnel.spec import parse_port, proxy_document
from ..tunnel.stdio import Stdio, StdioStats, run_stdio
from ..tunnel.watchdog import AgentWatchdog
from .common import add_common_options, default_target
from .config import load_config
from .errors import EXIT_OK
from .portsession import (
    add_target_argument,
    add_tunnel_options,
    open_connection,
    port_connection_config,
    session_service,
    tunnel_config,
)
from .runtime import STOP_SIGNALS, Reporter, handle_signals, unless_set

__all__ = ["configure_proxy", "forward_stdio", "run_proxy", "target_and_port"]

logger = logging.getLogger(__name__)


def configure_proxy(parser: argparse.ArgumentParser) -> None:
    """``ssmsh proxy``'s arguments."""
    add_target_argument(parser)
    parser.add_argument("port", metavar="PORT", nargs="?", help="default 22")
    add_common_options(parser, suppress=True)
    add_tunnel_options(parser)


def target_and_port(args: argparse.Namespace) -> tuple[str, int]:
    """TARGET (default with --local or SSMSH_TARGET) and PORT (default 22).

    With a default target, a lone number is the port: ``ssmsh proxy --local 2222``.
    """
    target_word, port_word = args.target, args.port
    defaulted = args.local or os.environ.get("SSMSH_TARGET") or load_config().defaults.target
    if port_word is None and target_word is not None and target_word.isdigit() and defaulted:
        target_word, port_word = None, target_word
    port = parse_port(port_word or "22", what="port")
    return default_target(args, target_word), port


async def run_proxy(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    """Entry point of ``ssmsh proxy``: 0 when the session ends or a stop signal comes."""
    target, port = target_and_port(args)
    config = tunnel_config(args)
    channel_config = port_connection_config(args, config)
    document, parameters = proxy_document(port)
    stop = asyncio.Event()
    with handle_signals(STOP_SIGNALS, lambda signum: stop.set()):
        async with session_service(args, reporter) as aws:
            connection = await unless_set(
                _start(aws, target, document, parameters, channel_config, config), stop
            )
            if connection is None:
                return EXIT_OK
            try:
                return await forward_stdio(connection, config, stop)
            finally:
                await connection.close(terminate=True)


async def _start(
    aws: SsmSessions,
    target: str,
    document: str,
    parameters: dict[str, list[str]],
    config: ConnectionConfig,
    tunnel: TunnelConfig,
) -> SessionConnection:
    target_id = await aws.resolve_target(target)
    return await open_connection(aws, target_id, document, parameters, config, tunnel)


async def forward_stdio(
    connection: SessionConnection, config: TunnelConfig, stop: asyncio.Event
) -> int:
    """Connect stdin/stdout to an open standard-stream port session until it ends.

    Returns 0 when the agent closed the session, stdout went away or ``stop`` was
    set (then Flag TerminateSession is sent); raises the channel's failure. The
    caller closes the connection.
    """
    established = await unless_set(connection.wait_established(), stop)
    if established is None:  # stopped before the agent said a word: nothing to end
        return EXIT_OK
    mode = choose_mode(established)
    if mode is not PortMode.STDIO:
        raise TunnelError(
            f"the session document asked for {mode.value} port forwarding, not a standard stream"
        )
    stdio = Stdio(read_size=config.read_size)
    await stdio.open()
    stats = StdioStats()
    try:
        forwarding = asyncio.ensure_future(
            run_stdio(ConnectionChannel(connection), stdio, config=config, stats=stats)
        )
        watchdog = asyncio.ensure_future(AgentWatchdog(connection, config.agent_timeout).run())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait(
                {forwarding, watchdog, stopping}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in (forwarding, watchdog):
                if task.done():
                    task.result()  # raise a channel failure or a dead agent
        finally:
            for pending in (forwarding, watchdog, stopping):
                pending.cancel()
            await asyncio.gather(forwarding, watchdog, stopping, return_exceptions=True)
        if not connection.closed:
            with contextlib.suppress(SsmshError, TimeoutError):
                async with asyncio.timeout(2.0):
                    await connection.send_flag(Flag.TERMINATE_SESSION)
                    await connection.drain(2.0)
    finally:
        stdio.close()
        logger.debug("proxy done: %d bytes sent, %d received", stats.sent, stats.received)
    return EXIT_OK
