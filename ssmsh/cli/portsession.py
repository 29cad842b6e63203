"""What the port-session commands share: ``ssmsh forward``, ``ssmsh proxy`` and plugin mode.

Their TARGET argument and tunnel options, the tunnel and channel settings from
the parsed arguments, the AWS side (or an in-process emulator with ``--local``),
opening a session connection, racing a start against Ctrl-C, stop signals, the
stderr reporter, and running a command so that a failure is one line and an
exit status.
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
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from ..aws import SsmSessions
from ..channel import ConnectionConfig, SessionConnection
from ..exceptions import SsmshError, UsageError
from ..protocol.datachannel import ChannelConfig
from ..protocol.session import ClientSession
from ..tunnel.config import TunnelConfig
from .common import aws_settings, connection_config, local_endpoint
from .errors import describe, exit_status

__all__ = [
    "add_target_argument",
    "add_tunnel_options",
    "open_connection",
    "port_connection_config",
    "port_protocol",
    "report",
    "run_command",
    "session_service",
    "stop_signals",
    "tunnel_config",
    "unless_stopped",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_MESSAGE_SIZE = TunnelConfig().max_message_size
DEFAULT_AGENT_TIMEOUT = TunnelConfig().agent_timeout


def add_target_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        metavar="TARGET",
        nargs="?",
        help="instance id or Name tag; default with --local or SSMSH_TARGET",
    )


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


async def unless_stopped(start: Awaitable[T], stop: asyncio.Event) -> T | None:
    """The result of ``start``, or None if ``stop`` is set first (``start`` is then cancelled)."""
    starting = asyncio.ensure_future(start)
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError, SsmshError):
            await starting
        return None
    stopping.cancel()
    return starting.result()


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
