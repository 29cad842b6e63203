"""ssmsh as the AWS CLI's ``session-manager-plugin``.

It runs as ``ssmsh plugin ARGS...``, and whenever ``ssmsh`` is invoked under
the name ``session-manager-plugin`` (a symlink), with the arguments that
``aws ssm start-session`` passes (:mod:`ssmsh.cli.plugin_args`). ``--version``
prints :data:`~ssmsh.protocol.CLIENT_VERSION`, so the AWS CLI passes the
StartSession response in the environment rather than on the command line.

The session was started by the AWS CLI; this opens its data channel (with
reconnects, KMS and everything else ``ssmsh`` does), waits for the handshake,
and then lets the session type decide, as the official plugin does:

* a shell or command session is bridged to the terminal as by ``ssmsh shell``
  (raw mode, escapes, resizes, the remote exit status);
* a ``Port`` session of ``type`` ``LocalPortForwarding`` listens on the
  ``localPortNumber`` property ("" or absent: a free port), or on
  ``localUnixSocket`` when ``localConnectionType`` is ``unix``, prints the
  official plugin's ``Port N opened for sessionId ID.`` and ``Waiting for
  connections...`` on stdout, and serves it as ``ssmsh forward`` does until Ctrl-C;
* any other ``Port`` session (``AWS-StartSSHSession``) connects stdin and
  stdout as ``ssmsh proxy`` does: stdout carries the tunnel's bytes only.

Unlike the official plugin, status lines go to stderr and the exit status is
that of ``ssmsh shell``: the remote status, 255 for failures (the AWS CLI then
reports an error). Environment: ``SSMSH_DEBUG=1`` (debug log),
``SSMSH_LOG_FILE=PATH``, ``SSMSH_QUIET=1`` (no status lines),
``SSMSH_ESCAPE=CHAR`` (the escape character of shells; ``none`` disables it).

The command is declared in :mod:`ssmsh.cli.commands.plugin`: its arguments reach
:func:`prepare_plugin` unparsed, and the program name ``session-manager-plugin``
means ``ssmsh plugin``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys
from typing import Any

from ..aws import AwsSettings, SsmSessions
from ..channel import ConnectionConfig, SessionConnection
from ..exceptions import EncryptionError, TunnelError, UsageError
from ..protocol import CLIENT_VERSION
from ..protocol.constants import SessionType
from ..protocol.handshake import DataKey
from ..protocol.session import ClientSession, SessionEstablished
from ..terminal.escape import parse_escape_char
from ..terminal.tty import Terminal
from ..tunnel.config import TunnelConfig
from ..tunnel.gate import HandlerGate
from ..tunnel.listeners import open_listener
from ..tunnel.mode import PortMode, choose_mode
from ..tunnel.session import ForwardSession
from ..tunnel.spec import ForwardSpec
from . import shell as shell_cli
from .common import connection_config
from .errors import EXIT_FAILURE, EXIT_OK
from .forward import serve_sessions
from .plugin_args import (
    INSTALLED_MESSAGE,
    USAGE,
    PluginRequest,
    kms_endpoint,
    parse_plugin_argv,
)
from .portsession import port_connection_config, port_protocol
from .proxy import forward_stdio
from .runtime import STOP_SIGNALS, Reporter, handle_signals
from .waits import PortSessionNotices, watch_calls

__all__ = [
    "PluginSessions",
    "configure_plugin",
    "listen_spec",
    "prepare_plugin",
    "run_plugin",
    "run_plugin_command",
]

logger = logging.getLogger(__name__)

_PORT_DOCUMENTS = ("AWS-StartPortForwardingSession", "AWS-StartSSHSession")


class PluginSessions(SsmSessions):
    """SsmSessions that explain why KMS is impossible when the target is unknown."""

    async def generate_data_key(self, key_id: str, session_id: str, target_id: str) -> DataKey:
        if not target_id:
            raise EncryptionError(
                "the target is unknown (the AWS CLI used the legacy argument form); "
                "KMS-encrypted sessions need a newer AWS CLI"
            )
        return await super().generate_data_key(key_id, session_id, target_id)


async def plugin_sessions(request: PluginRequest) -> PluginSessions:
    settings = AwsSettings(
        region=request.region, profile=request.profile, ssm_endpoint_url=request.endpoint_url
    )
    kms = await asyncio.to_thread(kms_endpoint, settings, request.endpoint_url)
    return PluginSessions(dataclasses.replace(settings, kms_endpoint_url=kms))


# --------------------------------------------------------------------- running


def _document_base(name: str | None) -> str:
    if not name:
        return ""
    return name.rsplit(":document/", 1)[-1] if name.startswith("arn:") else name


def _expects_port(request: PluginRequest) -> bool:
    """Whether the document is a known port-forwarding one (tunables for tunnels)."""
    return _document_base(request.document_name).startswith(_PORT_DOCUMENTS)


async def _open(
    request: PluginRequest, sessions: SsmSessions, tunnel: TunnelConfig
) -> SessionConnection:
    defaults = argparse.Namespace()  # the common options' defaults
    config: ConnectionConfig = connection_config(defaults)
    protocol: ClientSession | None = None  # SessionConnection's default
    if _expects_port(request):
        config = port_connection_config(defaults, tunnel)
        protocol = port_protocol(tunnel)
    conn = SessionConnection(request.session, sessions, config=config, protocol=protocol)
    try:
        await conn.start()
    except BaseException:
        await conn.close(terminate=True)
        raise
    return conn


async def run_plugin(
    request: PluginRequest,
    terminal: Terminal,
    reporter: Reporter,
    *,
    escape_char: int | None = ord("~"),
) -> int:
    """Open the session's data channel and serve it as its type says; the exit status."""
    session_id = request.session.session_id
    logger.debug("plugin mode: session %s, target %r", session_id, request.session.target_id)
    tunnel = TunnelConfig()
    sessions = watch_calls(await plugin_sessions(request), reporter.hints)
    conn = await _open(request, sessions, tunnel)
    try:
        established = await conn.wait_established()
    except BaseException:
        await conn.close(terminate=True)
        raise
    if established.session_type != SessionType.PORT:
        return await _run_shell(request, conn, terminal, reporter, escape_char)
    if choose_mode(established) is PortMode.STDIO:
        return await _run_stdio(conn, tunnel)
    return await _run_forward(request, conn, established, tunnel, reporter)


async def _run_shell(
    request: PluginRequest,
    conn: SessionConnection,
    terminal: Terminal,
    reporter: Reporter,
    escape_char: int | None,
) -> int:
    session_id = request.session.session_id
    interactive = _document_base(request.document_name) != shell_cli.NON_INTERACTIVE_DOCUMENT
    try:
        reporter.status(f"Starting session with SessionId: {session_id}")
        result = await shell_cli.bridge_session(
            conn,
            terminal,
            reporter,
            interactive=interactive,
            escape_char=escape_char,
            send_stdin=interactive,
        )
    finally:
        terminal.restore()
        await conn.close(terminate=True)
    if result is None:
        return EXIT_FAILURE
    return shell_cli.finish(result, session_id, reporter)


async def _run_stdio(conn: SessionConnection, tunnel: TunnelConfig) -> int:
    """Standard-stream forwarding: stdout carries the tunnel's bytes, nothing else."""
    stop = asyncio.Event()
    try:
        with handle_signals(STOP_SIGNALS, lambda signum: stop.set()):
            return await forward_stdio(conn, tunnel, stop)
    finally:
        await conn.close(terminate=True)


def listen_spec(properties: Any) -> ForwardSpec:
    """Where to listen, from a LocalPortForwarding session's properties.

    ``localConnectionType`` ``unix`` listens on ``localUnixSocket``; otherwise
    TCP on localhost (both families) at ``localPortNumber`` ("" or absent: any).
    """
    props = properties if isinstance(properties, dict) else {}
    remote = str(props.get("portNumber") or "")
    remote_port = int(remote) if remote.isascii() and remote.isdigit() else 0
    host = props.get("host") if isinstance(props.get("host"), str) else None
    if props.get("localConnectionType") == "unix":
        path = props.get("localUnixSocket")
        if not isinstance(path, str) or not path:
            raise TunnelError("the session asks for a Unix socket but names none (localUnixSocket)")
        return ForwardSpec(remote_port=remote_port, remote_host=host, local_socket=path)
    local = props.get("localPortNumber")
    text = "" if local is None else str(local).strip()
    if not text:
        port = 0
    elif text.isascii() and text.isdigit() and int(text) <= 65535:
        port = int(text)
    else:
        raise TunnelError(f"the session's localPortNumber {text!r} is not a port number")
    return ForwardSpec(remote_port=remote_port, remote_host=host, bind="localhost", local_port=port)


async def _run_forward(
    request: PluginRequest,
    conn: SessionConnection,
    established: SessionEstablished,
    tunnel: TunnelConfig,
    reporter: Reporter,
) -> int:
    """LocalPortForwarding: a listener like ``ssmsh forward``, until Ctrl-C or the end."""
    session_id = request.session.session_id
    stop = asyncio.Event()
    with handle_signals(STOP_SIGNALS, lambda signum: stop.set()):
        gate = HandlerGate()
        try:
            spec = listen_spec(established.properties)
            listener = await open_listener(spec, gate)
        except BaseException:
            gate.fail()
            await conn.close(terminate=True)
            raise
        PortSessionNotices(conn, listener.label, reporter.status, reporter.hints).attach()
        target = request.session.target_id
        where = spec.remote_label + (f" via {target}" if target else "")
        session = ForwardSession(
            conn,
            listener,
            gate,
            remote_label=where,
            report=reporter.say,
            config=tunnel,
        )
        # On stdout, word for word as the official plugin prints them: scripts wait for
        # them (stdout carries nothing else in a port forwarding session).
        opened = f"Unix socket {listener.path}" if listener.path else f"Port {listener.port}"
        _print(f"{opened} opened for sessionId {session_id}.\nWaiting for connections...\n")
        reporter.say(f"listening on {', '.join(listener.addresses)} for {where}")
        for address in listener.public:
            reporter.say(f"warning: {address} accepts connections from other machines")
        try:
            status = await serve_sessions([session], stop, reporter)
        finally:
            await session.terminate()
    if status == EXIT_OK:
        reporter.status(f"Exiting session with sessionId: {session_id}.")
    return status


# --------------------------------------------------------------------- entry points


def _print(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "no", "false")


def _take_back_sigint() -> None:
    """Ctrl-C interrupts us again (before a shell's raw mode; tunnels catch it anyway).

    The AWS CLI ignores SIGINT, SIGQUIT and SIGTSTP while its plugin runs, and
    ignored signals are inherited. SIGTSTP stays ignored: stopping the plugin
    alone would leave the AWS CLI waiting in the foreground.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def configure_plugin(parser: argparse.ArgumentParser) -> None:
    """For ``--help`` only: the arguments are never parsed (``--version`` is one of them),
    they reach :func:`prepare_plugin` as they are."""
    parser.add_argument("plugin_args", nargs=argparse.REMAINDER, metavar="ARGS")


def prepare_plugin(args: argparse.Namespace) -> int | None:
    """What the plugin does before its session: ``--version``, the AWS CLI's arguments.

    Answers ``--version``, ``--help`` and no arguments at once (their exit status).
    Otherwise it reads the arguments into ``args.request`` (a UsageError when they
    are wrong) and takes its settings from the environment (the AWS CLI passes no
    options): ``quiet``, ``debug`` and ``log_file`` (``-v`` and ``--log-file`` given
    before ``plugin`` count too) and ``escape``; and Ctrl-C interrupts it again.
    """
    argv = list(args.plugin_args)
    if not argv:
        _print(INSTALLED_MESSAGE)
        return EXIT_OK
    if argv == ["--version"]:
        _print(f"{CLIENT_VERSION}\n")
        return EXIT_OK
    if argv in (["-h"], ["--help"]):
        _print(USAGE)
        return EXIT_OK
    args.request = parse_plugin_argv(argv)  # first: the response's variable is removed
    try:
        args.escape = parse_escape_char(os.environ.get("SSMSH_ESCAPE") or "~")
    except ValueError as exc:
        raise UsageError(f"SSMSH_ESCAPE: {exc}") from None
    args.quiet = _env_flag("SSMSH_QUIET")
    args.debug = bool(getattr(args, "debug", False)) or _env_flag("SSMSH_DEBUG")
    args.log_file = getattr(args, "log_file", None) or os.environ.get("SSMSH_LOG_FILE") or None
    _take_back_sigint()
    return None


async def run_plugin_command(
    args: argparse.Namespace, terminal: Terminal, reporter: Reporter
) -> int:
    """Entry point of ``ssmsh plugin`` (after :func:`prepare_plugin`)."""
    return await run_plugin(args.request, terminal, reporter, escape_char=args.escape)
