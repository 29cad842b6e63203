"""What the port-session commands share: ``ssmsh forward``, ``ssmsh proxy`` and plugin mode.

Their TARGET argument and tunnel options, the tunnel and channel settings from
the parsed arguments, the AWS side (or an in-process emulator with ``--local``),
and opening a session connection. How they run (signals, the race against
Ctrl-C, failures as one line) is :mod:`.runtime`'s, as for every command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence

from ..aws import SsmSessions
from ..channel import ConnectionConfig, SessionConnection
from ..exceptions import UsageError
from ..protocol.datachannel import ChannelConfig
from ..protocol.session import ClientSession
from ..tunnel.config import TunnelConfig
from ..tunnel.gate import HandlerGate
from ..tunnel.listeners import Listener, open_listener
from ..tunnel.spec import ForwardSpec
from .common import aws_settings, connection_config, local_endpoint
from .runtime import Reporter
from .waits import watch_calls

__all__ = [
    "add_target_argument",
    "add_tunnel_options",
    "open_connection",
    "open_listeners",
    "port_connection_config",
    "port_protocol",
    "session_service",
    "tunnel_config",
]

logger = logging.getLogger(__name__)

DEFAULT_MESSAGE_SIZE = TunnelConfig().max_message_size
DEFAULT_AGENT_TIMEOUT = TunnelConfig().agent_timeout


def add_target_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        metavar="TARGET",
        nargs="?",
        help="instance id, Name tag or alias; default with --local or SSMSH_TARGET",
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
async def session_service(
    args: argparse.Namespace, reporter: Reporter | None = None
) -> AsyncIterator[SsmSessions]:
    """The AWS side (or, with ``--local``, an in-process emulator) for the command; with
    ``reporter``, a hint on its terminal whenever an AWS call takes long."""
    async with local_endpoint(args) as endpoint:
        sessions = SsmSessions(aws_settings(args, endpoint))
        if reporter is not None:
            watch_calls(sessions, reporter.hints)
        yield sessions


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


async def open_listeners(
    specs: Sequence[ForwardSpec],
    listeners: list[Listener],
    gates: list[HandlerGate],
    reporter: Reporter,
    purpose: Callable[[ForwardSpec], str],
) -> None:
    """Open a listener (with its gate) for each spec, appending to ``listeners`` and
    ``gates`` as they open (the caller closes them, also after a failure), and say so."""
    for spec in specs:
        gate = HandlerGate()
        listener = await open_listener(spec, gate)
        listeners.append(listener)
        gates.append(gate)
        reporter.say(f"listening on {', '.join(listener.addresses)} for {purpose(spec)}")
        for address in listener.public:
            reporter.say(f"warning: {address} accepts connections from other machines")
