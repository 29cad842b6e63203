"""What every session command shares: AWS options, ``--local``, opening a session.

:func:`add_common_options` adds ``--region``, ``--profile``, ``--endpoint-url``,
``--local``, ``--quiet``, ``-v/--verbose``, ``--debug``, ``--log-file`` and the reconnect
tunables. :func:`open_session` resolves the target, starts the session (in an
in-process emulator with ``--local``), opens a :class:`SessionConnection` and
always closes it with TerminateSession, whatever happens inside the block.
While it is starting, SIGINT, SIGTERM and SIGHUP end it cleanly
(:class:`StartupSignals`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from ..aws import AwsSettings, SsmSessions, StaticCredentials
from ..channel import ConnectionConfig, SessionConnection, SessionInfo
from ..exceptions import AwsError, UsageError
from .config import Config, HostConfig, load_config
from .errors import NoTargetGiven, StartInterrupted
from .runtime import STOP_SIGNALS, Reporter, handle_signals, unless_set
from .waits import gateway_hint, watch_calls

__all__ = [
    "LOCAL_CREDENTIALS",
    "ParametersFor",
    "StartupSignals",
    "add_common_options",
    "aws_settings",
    "connection_config",
    "default_target",
    "local_endpoint",
    "open_session",
    "parse_parameters",
    "setting",
    "use_alias",
]

logger = logging.getLogger(__name__)

#: Credentials used with ``--local`` (the emulator accepts any well-formed signature).
LOCAL_CREDENTIALS = StaticCredentials("AKIDSSMSHLOCAL000000", "ssmsh-local-emulator-secret")
LOCAL_REGION = "us-east-1"

#: Document parameters that depend on the target's platform: called with its
#: PlatformType (``Linux``, ``Windows``, ``MacOS``; None when unknown).
ParametersFor = Callable[[str | None], Mapping[str, Sequence[str]]]


def add_common_options(parser: argparse.ArgumentParser, suppress: bool = False) -> None:
    """The options every session command accepts.

    With ``suppress`` the defaults are left out, so that the same options given
    on the main parser (before the command name) are not overwritten.
    """

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    aws = parser.add_argument_group("AWS options")
    aws.add_argument(
        "--region",
        default=default(None),
        help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION or the profile's)",
    )
    aws.add_argument("--profile", default=default(None), help="AWS profile from ~/.aws/config")
    aws.add_argument(
        "--endpoint-url",
        default=default(None),
        metavar="URL",
        help="SSM and KMS endpoint (AWS_ENDPOINT_URL works too)",
    )
    aws.add_argument(
        "--local",
        action="store_true",
        default=default(False),
        help="start a local emulator in-process and connect to it",
    )
    out = parser.add_argument_group("output and connection")
    out.add_argument(
        "-q", "--quiet", action="store_true", default=default(False), help="no status lines"
    )
    out.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default(0),
        help="more status lines: each forwarded connection, links lost and found, how the "
        "session started and ended (-vv: --debug)",
    )
    out.add_argument(
        "--debug",
        action="store_true",
        default=default(False),
        help="the debug log on stderr (or in --log-file) and tracebacks "
        "(tokens and keys are never logged)",
    )
    out.add_argument(
        "--log-file",
        default=default(None),
        metavar="PATH",
        help="write the debug log to PATH (stderr keeps its usual lines)",
    )
    out.add_argument(
        "--reconnect-timeout",
        type=float,
        default=default(300.0),
        metavar="SECONDS",
        help="how long to keep trying to get a lost connection back (default 300)",
    )
    out.add_argument(
        "--keepalive",
        type=float,
        default=default(10.0),
        metavar="SECONDS",
        help="ping interval; silence for this long (plus as much again) "
        "counts as a lost connection (default 10)",
    )
    out.add_argument(
        "--handshake-timeout",
        type=float,
        default=default(30.0),
        metavar="SECONDS",
        help="how long to wait for the agent's first word once connected (default 30; 0: for ever)",
    )


def aws_settings(args: argparse.Namespace, endpoint_url: str | None = None) -> AwsSettings:
    """AwsSettings from the options (``endpoint_url`` overrides, for ``--local``).

    What the command line (or an alias, :func:`use_alias`) leaves unset comes from the
    environment, else from the config file's ``[defaults]``, else from AWS's own
    resolution (the profile's region...).
    """
    if endpoint_url is not None:
        return AwsSettings(
            region=args.region or LOCAL_REGION,
            endpoint_url=endpoint_url,
            credentials=LOCAL_CREDENTIALS,
            isolated=True,  # the user's AWS profile and files play no part
        )
    defaults = load_config().defaults
    env = os.environ

    def unless_env(value: str | None, *names: str) -> str | None:
        return None if any(env.get(name) for name in names) else value

    return AwsSettings(
        region=getattr(args, "region", None)
        or env.get("AWS_REGION")  # botocore reads only AWS_DEFAULT_REGION
        or unless_env(defaults.region, "AWS_DEFAULT_REGION"),
        profile=getattr(args, "profile", None)
        or unless_env(defaults.profile, "AWS_PROFILE", "AWS_DEFAULT_PROFILE"),
        endpoint_url=getattr(args, "endpoint_url", None)
        or unless_env(defaults.endpoint_url, "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SSM"),
    )


def connection_config(args: argparse.Namespace) -> ConnectionConfig:
    keepalive = getattr(args, "keepalive", 10.0)
    budget = getattr(args, "reconnect_timeout", 300.0)
    handshake = getattr(args, "handshake_timeout", 30.0)
    if not keepalive > 0:
        raise UsageError("--keepalive must be positive")
    if not budget >= 0:
        raise UsageError("--reconnect-timeout must not be negative")
    if not handshake >= 0:
        raise UsageError("--handshake-timeout must not be negative")
    return ConnectionConfig(
        ping_interval=keepalive,
        ping_timeout=keepalive,
        reconnect_budget=budget,
        connect_budget=min(budget, ConnectionConfig().connect_budget),
        handshake_timeout=handshake or None,
    )


def parse_parameters(
    items: Sequence[str] | None, document_json: str | None = None
) -> dict[str, list[str]]:
    """``KEY=VALUE`` options and an AWS-CLI-style ``--parameters`` JSON object ->
    StartSession Parameters (repeated keys accumulate, the JSON's first)."""
    parameters: dict[str, list[str]] = {}
    if document_json is not None:
        parameters = _json_parameters(document_json)
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--parameter expects KEY=VALUE, got {item!r}")
        parameters.setdefault(key, []).append(value)
    return parameters


def _json_parameters(text: str) -> dict[str, list[str]]:
    example = 'e.g. \'{"command":["top"]}\''
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--parameters is not JSON ({exc}); {example}") from None
    if not isinstance(document, dict):
        raise UsageError(f"--parameters expects a JSON object; {example}")
    parameters: dict[str, list[str]] = {}
    for key, value in document.items():
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in values):
            raise UsageError(f"--parameters: {key!r} must be a string or a list of strings")
        parameters[key] = list(values)
    return parameters


@contextlib.asynccontextmanager
async def local_endpoint(args: argparse.Namespace) -> AsyncIterator[str | None]:
    """With ``--local``: an in-process emulator, yielding its endpoint URL. Else None."""
    if not args.local:
        yield None
        return
    if args.endpoint_url:
        raise UsageError("--local and --endpoint-url cannot be used together")
    from ..emulator import Emulator, EmulatorConfig

    # The emulator is on loopback, in this process: no proxy can reach it.
    _bypass_proxies_for_loopback()
    if not logger.isEnabledFor(logging.DEBUG):
        # -v is about the session, not the emulator's side of it (the debug log has both).
        logging.getLogger("ssmsh.emulator").setLevel(logging.WARNING)
    # The emulator's defaults: the official agent's behaviour, message for message.
    async with Emulator(EmulatorConfig()) as emulator:
        logger.debug("local emulator at %s", emulator.endpoint_url)
        yield emulator.endpoint_url


def _bypass_proxies_for_loopback() -> None:
    """Add the loopback names to NO_PROXY (read by botocore and websockets alike)."""
    loopback = ["127.0.0.1", "localhost", "::1"]
    for name in ("NO_PROXY", "no_proxy"):
        current = [h.strip() for h in os.environ.get(name, "").split(",") if h.strip()]
        os.environ[name] = ",".join(current + [h for h in loopback if h not in current])


def default_target(args: argparse.Namespace, target: str | None) -> str:
    """The target to resolve: TARGET as given, else ``--local``'s instance, ``SSMSH_TARGET``,
    the config file's ``[defaults] target`` or what the picker chose (``args.picked_target``,
    :func:`.choose.choose_target`); :class:`NoTargetGiven` when there is none.

    An alias of the config file becomes its target, and its settings go into ``args``
    where the command line set none (:func:`use_alias`). Applied once: given its own
    result again, it returns it as it is.
    """
    if target and target == getattr(args, "chosen_target", None):
        return target
    local = bool(getattr(args, "local", False))
    config = load_config()
    word = target
    if not word and local:
        from ..emulator import DEFAULT_TARGET

        word = DEFAULT_TARGET
    word = (
        word
        or os.environ.get("SSMSH_TARGET")
        or config.defaults.target
        or getattr(args, "picked_target", None)
    )
    if not word:
        raise NoTargetGiven("no target given (an instance id, Name tag or alias; or use --local)")
    chosen = use_alias(args, word, config)
    args.chosen_target = chosen
    return chosen


def use_alias(args: argparse.Namespace, word: str, config: Config) -> str:
    """``word``'s target when it is an alias (else ``word``), its settings put into
    ``args`` where the command line set none; ``args.alias`` is the alias, or None."""
    host = config.host(word)
    args.alias = host
    if host is None:
        return word
    for name in ("profile", "region", "endpoint_url"):
        value = getattr(host, name)
        if name == "endpoint_url" and getattr(args, "local", False):
            continue  # --local is its own endpoint
        if value and not getattr(args, name, None):
            setattr(args, name, value)
    return host.target or word


def setting(args: argparse.Namespace, name: str) -> str | None:
    """A setting that only the config file gives (``document``, ``user``): the alias's
    (from :func:`use_alias`), else ``[defaults]``'s."""
    host: HostConfig | None = getattr(args, "alias", None)
    value: str | None = getattr(host, name) if host is not None else None
    fallback: str | None = getattr(load_config().defaults, name)
    return value or fallback


class StartupSignals:
    """SIGINT, SIGTERM and SIGHUP while a session is starting.

    Without this, SIGTERM and SIGHUP would kill ssmsh at once: no line, and a
    session that StartSession had already created would be left to time out.
    :meth:`install` routes them to the event loop; :meth:`guard` runs a step of
    the start (a blocking AWS call, the WebSocket opening) and, when a signal
    comes first, cancels it (nothing waits for a hung call) and raises
    :class:`StartInterrupted`. A signal that is ignored (``nohup``, a background
    job's SIGINT) stays ignored. :meth:`remove` puts the previous handlers back.
    """

    def __init__(self) -> None:
        #: The first signal received (0: none).
        self.signum = 0
        self._caught = asyncio.Event()
        self._handlers = contextlib.ExitStack()

    def install(self) -> None:
        self._handlers.enter_context(handle_signals(STOP_SIGNALS, self._on_signal))

    def remove(self) -> None:
        self._handlers.close()

    def _on_signal(self, signum: int) -> None:
        logger.debug("signal %d while starting the session", signum)
        if not self.signum:
            self.signum = signum
        self._caught.set()

    async def guard(self, step: Awaitable[None]) -> None:
        """Run ``step``, unless a signal came (or comes) first: StartInterrupted."""
        await unless_set(step, self._caught)
        if self.signum:
            raise StartInterrupted(self.signum)


def _refuses_document(error: AwsError, document: str | None) -> bool:
    """StartSession refused the document itself: it is gone, or access to it is denied
    (an AccessDenied may also be about the target; then it names no document)."""
    if error.code == "InvalidDocument":
        return True
    return (
        error.code == "AccessDeniedException"
        and bool(document)
        and (f"document/{document}" in str(error))
    )


@contextlib.asynccontextmanager
async def open_session(
    args: argparse.Namespace,
    reporter: Reporter,
    target: str | None,
    document: str | None = None,
    parameters: Mapping[str, Sequence[str]] | ParametersFor | None = None,
    reason: str | None = None,
    fallback_document: str | None = None,
    on_fallback: Callable[[AwsError], None] | None = None,
    announce: bool = True,
) -> AsyncIterator[tuple[SessionConnection, SessionInfo]]:
    """Start a session and yield its open connection; TerminateSession on the way out.

    ``parameters`` may depend on the target's platform (:data:`ParametersFor`): it is
    then looked up first (DescribeInstanceInformation, unless resolving a Name tag
    already told).

    When StartSession refuses ``document`` (it does not exist, or access to it is
    denied) and a ``fallback_document`` is given, the session starts with that one
    instead, after ``on_fallback`` was told why.

    A signal before the connection is open (SIGINT, SIGTERM, SIGHUP) raises
    :class:`StartInterrupted`, after TerminateSession if StartSession had answered.
    Without ``announce`` the ``Starting session`` line is only logged (``exec``).
    """
    config = connection_config(args)  # a bad option must not leave a session behind
    target = default_target(args, target)  # an alias's settings, before they are used
    signals = StartupSignals()
    signals.install()
    try:
        async with local_endpoint(args) as endpoint:
            sessions = watch_calls(SsmSessions(aws_settings(args, endpoint)), reporter.hints)
            opened: list[SessionConnection] = []

            async def start() -> None:
                target_id = await sessions.resolve_target(target)
                given = parameters
                if callable(given):
                    given = given(await sessions.platform_type(target_id))
                try:
                    info = await sessions.start_session(target_id, document, given, reason)
                except AwsError as exc:
                    if fallback_document is None or not _refuses_document(exc, document):
                        raise
                    logger.debug("%s refused (%s); using %s", document, exc, fallback_document)
                    info = await sessions.start_session(target_id, fallback_document, given, reason)
                    if on_fallback is not None:  # only once the fallback worked
                        on_fallback(exc)
                if announce:
                    reporter.status(f"Starting session with SessionId: {info.session_id}")
                else:
                    logger.info("Starting session with SessionId: %s", info.session_id)
                opened.append(SessionConnection(info, sessions, config=config))
                with gateway_hint(reporter.hints, info.stream.stream_url):
                    await opened[0].start()

            try:
                await signals.guard(start())
            except BaseException:
                reporter.terminal.restore()
                if opened:
                    await opened[0].close(terminate=True)
                raise
            signals.remove()  # from here on, the session's own handling (bridge_session)
            conn = opened[0]
            try:
                yield conn, conn.info
            finally:
                reporter.terminal.restore()
                await conn.close(terminate=not conn.leave_running)
    finally:
        signals.remove()
