"""ssmsh as the AWS CLI's ``session-manager-plugin``.

``aws ssm start-session`` calls StartSession itself and then runs a program
named ``session-manager-plugin`` with the result (protocol notes §11.1)::

    session-manager-plugin RESPONSE REGION StartSession PROFILE REQUEST ENDPOINT

* RESPONSE: the StartSession response as JSON (SessionId, StreamUrl,
  TokenValue), or the name of an environment variable holding it (a name
  starting with ``AWS_SSM_START_SESSION_RESPONSE``; the variable is removed
  from this process as soon as it is read);
* REGION, PROFILE: as given to the AWS CLI (empty: boto3's defaults);
* REQUEST: the StartSession request as JSON; only ``Target`` is used (for
  KMS encryption). The legacy four-argument form has neither REQUEST nor
  ENDPOINT, and then no KMS encryption;
* ENDPOINT: the SSM endpoint for ResumeSession and TerminateSession. KMS
  goes where boto3 resolves it (``AWS_ENDPOINT_URL_KMS``, ``AWS_ENDPOINT_URL``,
  the profile's ``services`` section), except that a non-AWS ENDPOINT (a
  local emulator, LocalStack) also serves KMS unless KMS is configured to go
  elsewhere: see :func:`kms_endpoint`.

ssmsh runs in this mode as ``ssmsh plugin ARGS...`` and whenever it is
invoked under the name ``session-manager-plugin`` (a symlink to ``ssmsh``).
``--version`` prints :data:`~ssmsh.protocol.CLIENT_VERSION`, so the AWS CLI uses
the environment-variable form.

After the handshake the session type decides, exactly as for the official
plugin: a shell (or command) session is bridged to the terminal like
``ssmsh shell``; a ``Port`` session with ``type`` ``LocalPortForwarding``
listens on ``localPortNumber`` (or ``localUnixSocket``) like ``ssmsh
forward``; any other ``Port`` session connects stdin/stdout like ``ssmsh
proxy``. Unlike the official plugin, status lines go to stderr (stdout holds
only session data) and the exit status follows ``ssmsh shell``.

Environment: ``SSMSH_DEBUG=1`` (debug log), ``SSMSH_LOG_FILE=PATH``,
``SSMSH_ESCAPE=CHAR`` (escape character of shells, ``none`` to disable).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
import urllib.parse
from collections.abc import MutableMapping, Sequence
from typing import Any

from ..aws import AwsSettings, SsmSessions
from ..channel import ConnectionConfig, SessionConnection, SessionInfo, StreamCredentials
from ..exceptions import EncryptionError, TunnelError, UsageError
from ..protocol import CLIENT_VERSION
from ..protocol.constants import SessionType
from ..protocol.handshake import DataKey
from ..protocol.session import ClientSession, SessionEstablished
from ..terminal.escape import parse_escape_char
from ..terminal.tty import Terminal
from ..tunnel.channel import TunnelConfig
from ..tunnel.listeners import open_listener
from ..tunnel.session import ForwardSession, HandlerGate, PortMode, choose_mode
from ..tunnel.spec import ForwardSpec
from . import forward as forward_cli
from . import proxy as proxy_cli
from . import shell as shell_cli
from .common import Reporter, connection_config
from .errors import EXIT_FAILURE, EXIT_OK, describe, exit_status

__all__ = [
    "PLUGIN_NAME",
    "RESPONSE_ENV_PREFIX",
    "PluginRequest",
    "add_parser",
    "invoked_as_plugin",
    "is_aws_endpoint",
    "kms_endpoint",
    "main",
    "parse_plugin_argv",
    "run_plugin",
]

logger = logging.getLogger(__name__)

#: The program name the AWS CLI runs.
PLUGIN_NAME = "session-manager-plugin"
#: argv[1] starting with this names an environment variable holding the response.
RESPONSE_ENV_PREFIX = "AWS_SSM_START_SESSION_RESPONSE"
START_SESSION = "StartSession"

#: What running the plugin without arguments prints (install checks look for it).
INSTALLED_MESSAGE = (
    "\nThe Session Manager plugin was installed successfully. "
    "Use the AWS CLI to start a session.\n\n"
)
USAGE = f"""\
usage: {PLUGIN_NAME} RESPONSE REGION StartSession [PROFILE [REQUEST [ENDPOINT]]]
       {PLUGIN_NAME} --version

ssmsh acting as the AWS CLI's Session Manager plugin: `aws ssm start-session`
runs it after StartSession. RESPONSE is the StartSession response (JSON), or the
name of an environment variable holding it. See docs/aws-cli.md.
"""

#: Host name suffixes of AWS endpoints (all partitions).
AWS_DOMAINS = (
    "amazonaws.com",
    "amazonaws.com.cn",
    "api.aws",
    "api.amazonwebservices.com.cn",
    "c2s.ic.gov",
    "sc2s.sgov.gov",
    "cloud.adc-e.uk",
    "csp.hci.ic.gov",
    "amazonaws.eu",
)

_PORT_DOCUMENTS = ("AWS-StartPortForwardingSession", "AWS-StartSSHSession")
_NON_INTERACTIVE_DOCUMENT = shell_cli.NON_INTERACTIVE_DOCUMENT


@dataclasses.dataclass(frozen=True, slots=True)
class PluginRequest:
    """What the AWS CLI passed, parsed."""

    session: SessionInfo
    region: str | None = None
    profile: str | None = None
    #: The SSM endpoint (argv[6]); None: boto3's resolution.
    endpoint_url: str | None = None
    #: DocumentName of the StartSession request, when it named one.
    document_name: str | None = None
    #: The legacy four-argument form (no REQUEST): the target is unknown.
    legacy: bool = False


# --------------------------------------------------------------------- argv


def invoked_as_plugin(argv0: str) -> bool:
    """True when the program was run as ``session-manager-plugin`` (e.g. a symlink)."""
    name = os.path.basename(argv0)
    if name.lower().endswith(".exe"):
        name = name[:-4]
    return name == PLUGIN_NAME


def _shown(arg: str) -> str:
    """An argument for an error message; never echo what may be a response with a token."""
    if "{" in arg or "Token" in arg or len(arg) > 60:
        return "(a JSON document)" if arg.lstrip().startswith("{") else "(a long argument)"
    return repr(arg)


def read_response_argument(arg: str, environ: MutableMapping[str, str]) -> str:
    """argv[1] itself, or the environment variable it names (removed once read)."""
    if not arg.startswith(RESPONSE_ENV_PREFIX):
        return arg
    value = environ.pop(arg, None)  # os.environ.pop also unsetenv()s it
    if value is None:
        raise UsageError(f"the environment variable {arg} (the StartSession response) is not set")
    return value


def _field(document: dict[str, Any], name: str) -> str:
    """A string field, its name matched case-insensitively (as Go's decoder does)."""
    for key, value in document.items():
        if isinstance(key, str) and key.lower() == name.lower():
            if isinstance(value, str) and value:
                return value
            break
    raise UsageError(f"the StartSession response has no {name}")


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"cannot read {what}: not JSON ({exc.msg} at char {exc.pos})") from None
    except RecursionError:
        raise UsageError(f"cannot read {what}: nested too deeply") from None
    if not isinstance(document, dict):
        raise UsageError(f"cannot read {what}: not a JSON object")
    return document


def parse_response(text: str) -> tuple[str, StreamCredentials]:
    """(SessionId, stream credentials) from the StartSession response JSON."""
    document = _json_object(text, "the StartSession response (argument 1)")
    session_id = _field(document, "SessionId")
    stream = StreamCredentials(_field(document, "StreamUrl"), _field(document, "TokenValue"))
    return session_id, stream


def parse_request(text: str) -> tuple[str, str | None]:
    """(Target, DocumentName) from the StartSession request JSON."""
    document = _json_object(text, "the StartSession request (argument 5)")
    target = document.get("Target")
    if not isinstance(target, str) or not target.strip():
        raise UsageError("the StartSession request (argument 5) has no Target")
    name = document.get("DocumentName")
    return target.strip(), name if isinstance(name, str) and name else None


def parse_plugin_argv(
    argv: Sequence[str], environ: MutableMapping[str, str] | None = None
) -> PluginRequest:
    """Parse ``RESPONSE REGION OPERATION [PROFILE [REQUEST [ENDPOINT]]]`` (argv[1:]).

    The response's environment variable is removed from ``environ`` (default
    ``os.environ``) before anything else can fail. Raises UsageError.
    """
    environ = os.environ if environ is None else environ
    if not argv:
        raise UsageError("no arguments")
    response = read_response_argument(argv[0], environ)
    if len(argv) < 3:
        raise UsageError(
            f"unknown operation {_shown(argv[0])}: {PLUGIN_NAME} is run by "
            f"`aws ssm start-session` ({PLUGIN_NAME} --version prints the version)"
        )
    if argv[2] != START_SESSION:
        raise UsageError(f"Invalid Operation {_shown(argv[2])}: only {START_SESSION} is supported")
    if len(argv) > 6:
        logger.debug("ignoring %d extra arguments", len(argv) - 6)
    session_id, stream = parse_response(response)
    target, document = ("", None) if len(argv) < 5 else parse_request(argv[4])
    return PluginRequest(
        session=SessionInfo(session_id, target, stream),
        region=argv[1] or None,
        profile=(argv[3] or None) if len(argv) > 3 else None,
        endpoint_url=(argv[5] or None) if len(argv) > 5 else None,
        document_name=document,
        legacy=len(argv) == 3,
    )


# --------------------------------------------------------------------- AWS settings


def is_aws_endpoint(url: str) -> bool:
    """True for an endpoint of AWS itself (any partition, VPC endpoints included)."""
    host = (urllib.parse.urlsplit(url if "//" in url else f"//{url}").hostname or "").lower()
    return any(host == d or host.endswith("." + d) for d in AWS_DOMAINS)


def kms_endpoint(settings: AwsSettings, ssm_endpoint: str | None) -> str | None:
    """The KMS endpoint to use alongside ``ssm_endpoint``; None: boto3's resolution.

    The official plugin always uses the region's KMS endpoint. We let boto3
    resolve it (environment, profile), and when that gives plain AWS while SSM
    itself is not AWS (an emulator, LocalStack...), KMS follows SSM: AWS's KMS
    could not make keys for a session there. Blocking (reads the AWS config).
    """
    if not ssm_endpoint or is_aws_endpoint(ssm_endpoint):
        return None
    resolved = str(settings.client(settings.new_session(), "kms").meta.endpoint_url)
    if is_aws_endpoint(resolved):
        logger.debug("KMS follows the non-AWS SSM endpoint")
        return ssm_endpoint
    return None


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
        config = forward_cli.port_connection_config(defaults, tunnel)
        protocol = forward_cli.port_protocol(tunnel)
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
    sessions = await plugin_sessions(request)
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
    interactive = _document_base(request.document_name) != _NON_INTERACTIVE_DOCUMENT
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
        with forward_cli.stop_signals(stop):
            return await proxy_cli.forward_stdio(conn, tunnel, stop)
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
    with forward_cli.stop_signals(stop):
        gate = HandlerGate()
        try:
            spec = listen_spec(established.properties)
            listener = await open_listener(spec, gate)
        except BaseException:
            gate.fail()
            await conn.close(terminate=True)
            raise
        target = request.session.target_id
        where = spec.remote_label + (f" via {target}" if target else "")
        session = ForwardSession(
            conn,
            listener,
            gate,
            remote_label=where,
            report=forward_cli.report,
            config=tunnel,
        )
        opened = f"Unix socket {listener.path}" if listener.path else f"Port {listener.port}"
        forward_cli.report(
            f"{opened} opened for sessionId {session_id} "
            f"(listening on {', '.join(listener.addresses)} for {where})"
        )
        for address in listener.public:
            forward_cli.report(f"warning: {address} accepts connections from other machines")
        try:
            status = await forward_cli.serve_sessions([session], stop)
        finally:
            await session.terminate()
    if status == EXIT_OK:
        reporter.status(f"Exiting session with sessionId: {session_id}.")
    return status


# --------------------------------------------------------------------- entry points


def _print(text: str, file: Any = None) -> None:
    stream = file or sys.stdout
    stream.write(text)
    stream.flush()


def main(argv: Sequence[str], *, debug: bool | None = None, log_file: str | None = None) -> int:
    """``session-manager-plugin ARGS`` (``argv`` without the program name)."""
    from .main import run_async, setup_logging  # main imports this module

    argv = list(argv)
    if not argv:
        _print(INSTALLED_MESSAGE)
        return EXIT_OK
    if argv == ["--version"]:
        _print(f"{CLIENT_VERSION}\n")
        return EXIT_OK
    if argv[0] in ("-h", "--help") and len(argv) == 1:
        _print(USAGE)
        return EXIT_OK
    if debug is None:
        debug = os.environ.get("SSMSH_DEBUG", "") not in ("", "0")
    log_file = log_file or os.environ.get("SSMSH_LOG_FILE") or None
    terminal = Terminal()
    reporter = Reporter(terminal)
    try:
        request = parse_plugin_argv(argv)
        escape = parse_escape_char(os.environ.get("SSMSH_ESCAPE") or "~")
    except (UsageError, ValueError) as exc:
        reporter.error(describe(exc) if isinstance(exc, UsageError) else f"SSMSH_ESCAPE: {exc}")
        return exit_status(exc) if isinstance(exc, UsageError) else EXIT_FAILURE
    try:
        setup_logging(argparse.Namespace(debug=debug, log_file=log_file), terminal)
    except OSError as exc:
        reporter.error(f"cannot open the log file: {describe(exc)}")
        return EXIT_FAILURE
    return run_async(
        lambda: run_plugin(request, terminal, reporter, escape_char=escape),
        terminal,
        reporter,
        debug=debug,
    )


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``plugin`` on the main parser's subcommands (for ``--help``)."""
    parser = subparsers.add_parser(
        "plugin",
        help="act as the AWS CLI's session-manager-plugin",
        description=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("plugin_args", nargs=argparse.REMAINDER, metavar="ARGS")
    parser.set_defaults(func=_run_from_namespace)


def _run_from_namespace(args: argparse.Namespace) -> int:
    """``ssmsh [OPTIONS] plugin ARGS`` (``-v`` and ``--log-file`` before ``plugin`` apply)."""
    debug = bool(getattr(args, "debug", False)) or None
    return main(args.plugin_args, debug=debug, log_file=getattr(args, "log_file", None))
