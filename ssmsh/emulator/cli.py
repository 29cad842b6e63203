"""``ssmsh emulator``: run the local SSM emulator in the foreground.

When ready, the first line on stdout is the API endpoint URL alone (flushed), so
scripts can read it; hints for humans go to stderr. Ctrl-C or SIGTERM stop it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from typing import Any

from .cli_types import (
    _count,
    _credentials,
    _delay,
    _identity,
    _numbers,
    _port,
    _rate,
    _seconds,
    _slow,
    _target,
    _UsageError,
)
from .config import (
    AGENT_FIN_MODES,
    AGENT_RESEND_MODES,
    DEFAULT_AGENT_VERSION,
    DEFAULT_REGION,
    EmulatorConfig,
    is_loopback,
)
from .faults import FaultConfig
from .kms import KmsService
from .server import Emulator
from .state import DEFAULT_TARGET, TargetRecord

__all__ = ["configure_parser", "main", "register", "run", "serve"]

logger = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``ssmsh emulator`` options to ``parser``."""
    parser.description = (
        "Run a local SSM Session Manager emulator: the SSM/KMS API over HTTP, the "
        "message gateway (WebSocket) and an agent. The first stdout line is the "
        "endpoint URL."
    )
    net = parser.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    net.add_argument("--port", type=_port, default=0, help="API port (default: 0, any free port)")
    net.add_argument("--region", default=DEFAULT_REGION, help="region to claim (ARNs, hints)")
    net.add_argument(
        "--credentials",
        metavar="KEY:SECRET",
        type=_credentials,
        action="append",
        help="verify SigV4 signatures against these credentials (repeatable)",
    )
    net.add_argument(
        "--identity",
        metavar="KEY=ARN",
        type=_identity,
        action="append",
        default=[],
        help="the IAM principal behind an access key: Automation's ExecutedBy and "
        "aws:approve's approvers (repeatable; other keys are "
        "arn:aws:iam::123456789012:user/emulated)",
    )
    agent = parser.add_argument_group("targets and agent")
    agent.add_argument(
        "--target",
        metavar="ID[,name=N][,kms=KEYID][,shell=PATH][,platform=P][,status=S]",
        type=_target,
        action="append",
        default=[],
        help=f"add a managed instance (repeatable; {DEFAULT_TARGET} always exists, "
        "and giving its id reconfigures it)",
    )
    agent.add_argument(
        "--instances",
        type=_count,
        default=0,
        metavar="N",
        help="add a fleet of N managed instances i-00000000000000001... (Name node-1..., "
        "tags Env prod/staging/dev and Role web/app/db/worker in turn)",
    )
    agent.add_argument(
        "--offline",
        type=_numbers,
        default=(),
        metavar="N[,N...]",
        help="fleet nodes (by number) that start offline: they never pick up a command",
    )
    agent.add_argument(
        "--slow",
        type=_slow,
        action="append",
        default=[],
        metavar="N[,N...]:SECONDS",
        help="fleet nodes whose agent takes SECONDS to pick up a command (repeatable)",
    )
    agent.add_argument(
        "--command-visibility-delay",
        type=_delay,
        default=0.5,
        metavar="SECONDS",
        help="Run Command: seconds before a new command's invocations can be seen "
        "(default 0.5; GetCommandInvocation answers InvocationDoesNotExist meanwhile)",
    )
    agent.add_argument(
        "--kms-key",
        metavar="KEYID",
        action="append",
        default=[],
        help="a KMS key id, ARN or alias/NAME the emulated KMS knows (repeatable)",
    )
    agent.add_argument("--shell", help="shell for sessions (default: sh, as the real agent runs)")
    agent.add_argument("--idle-timeout", type=_seconds, metavar="SECONDS")
    agent.add_argument("--max-session-duration", type=_seconds, metavar="SECONDS")
    agent.add_argument(
        "--agent-pacing",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="send like the real agent: 1 KiB reads and 1 ms pause per message (default); "
        "--no-agent-pacing sends port data up to 32 KiB per message without pauses",
    )
    agent.add_argument(
        "--agent-resend",
        choices=AGENT_RESEND_MODES,
        default="oldest",
        help="how unacknowledged messages are sent again: oldest, the real agent's (only "
        "the oldest, on a 100 ms tick; default), or selective (every expired one, and all "
        "of them at once on a new connection)",
    )
    agent.add_argument(
        "--pty-start-delay",
        type=_seconds,
        default=1.0,
        metavar="SECONDS",
        help="wait before reading a shell's first output, as the real agent does (default 1)",
    )
    agent.add_argument(
        "--agent-version", default=DEFAULT_AGENT_VERSION, help="AgentVersion to report"
    )
    agent.add_argument(
        "--shell-exit-status",
        action="store_true",
        help="report a shell's non-zero exit status as an ExitCode payload (the real "
        "agent does not)",
    )
    agent.add_argument(
        "--agent-fin",
        choices=AGENT_FIN_MODES,
        default="close",
        help="a port-forwarding connection's end of data in one direction (smux FIN): "
        "close closes the whole destination connection, as the real agent does (default); "
        "half-close keeps the other direction open",
    )
    agent.add_argument(
        "--handshake-delay",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="wait SECONDS before the HandshakeRequest (a slow agent); client data "
        "meanwhile is ignored, as by the real agent",
    )
    agent.add_argument(
        "--token-ttl", type=_seconds, default=60.0, metavar="SECONDS", help="token lifetime"
    )
    faults = parser.add_argument_group("fault injection (data messages, both directions)")
    faults.add_argument(
        "--close-every",
        type=_seconds,
        metavar="SECONDS",
        help='close each client WebSocket after SECONDS (1000 "Bye")',
    )
    faults.add_argument(
        "--reset-every",
        type=_seconds,
        metavar="SECONDS",
        help="reset each client TCP connection after SECONDS",
    )
    faults.add_argument("--drop", type=_rate, default=0.0, metavar="RATE")
    faults.add_argument("--duplicate", type=_rate, default=0.0, metavar="RATE")
    faults.add_argument("--reorder", type=_rate, default=0.0, metavar="RATE")
    faults.add_argument(
        "--delay", type=float, default=0.0, metavar="MS", help="added latency per data message"
    )
    faults.add_argument("--seed", type=int, help="seed for reproducible faults")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-vv for debug)"
    )
    return parser


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``emulator`` to an ``add_subparsers()`` object; sets ``handler=run``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "emulator", help="run a local SSM emulator (no AWS account needed)"
    )
    configure_parser(parser)
    parser.set_defaults(handler=run)
    return parser


def build_config(args: argparse.Namespace) -> EmulatorConfig:
    """The emulator configuration the parsed options describe."""
    targets: dict[str, TargetRecord] = {DEFAULT_TARGET: TargetRecord(DEFAULT_TARGET)}
    for target in args.target:
        targets[target.instance_id] = target
    if args.delay < 0:
        raise _UsageError("--delay must not be negative")
    probe = KmsService(args.region)
    for key_id in [*args.kms_key, *(t.kms_key_id for t in targets.values() if t.kms_key_id)]:
        try:
            probe.add_key(key_id)
        except ValueError as exc:
            raise _UsageError(str(exc)) from None
    try:
        faults = FaultConfig(
            close_every=args.close_every,
            reset_every=args.reset_every,
            drop=args.drop,
            duplicate=args.duplicate,
            reorder=args.reorder,
            delay_ms=args.delay,
            seed=args.seed,
        )
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        region=args.region,
        credentials=list(args.credentials) if args.credentials else None,
        identities=dict(args.identity),
        targets=list(targets.values()),
        kms_keys=list(args.kms_key),
        shell=args.shell,
        idle_timeout=args.idle_timeout,
        max_session_duration=args.max_session_duration,
        agent_pacing=args.agent_pacing,
        token_ttl=args.token_ttl,
        faults=faults,
        agent_version=args.agent_version,
        shell_exit_status=args.shell_exit_status,
        pty_start_delay=args.pty_start_delay,
        agent_resend=args.agent_resend,
        agent_fin=args.agent_fin,
        handshake_delay=args.handshake_delay,
        instances=args.instances,
        offline_instances=tuple(args.offline),
        slow_instances={node: seconds for nodes, seconds in args.slow for node in nodes},
        command_visibility_delay=args.command_visibility_delay,
    )


def _hints(emulator: Emulator, config: EmulatorConfig) -> str:
    url = emulator.endpoint_url
    key = config.credential_map()
    key_id = next(iter(key)) if key else "emulated"
    secret = "<its secret>" if key else "emulated"
    lines = [
        f"ssmsh emulator: SSM/KMS API at {url}, message gateway at {emulator.gateway.url}",
        "targets:",
    ]
    shown = list(emulator.state.targets.values())
    if len(shown) > 12:
        hidden = len(shown) - 10
        shown = shown[:10]
    else:
        hidden = 0
    for target in shown:
        extra = f", KMS key {target.kms_key_id}" if target.kms_key_id else ""
        name = f"  Name={target.name}" if target.name else ""
        lines.append(f"  {target.instance_id}{name}  {target.ping_status}{extra}")
    if hidden:
        lines.append(f"  ... and {hidden} more (DescribeInstanceInformation lists them all)")
    if key:
        lines.append("SigV4 signatures are verified against the --credentials given.")
    lines += [
        "Use it from a shell:",
        f"  export AWS_ENDPOINT_URL={url}",
        f"  export AWS_ACCESS_KEY_ID={key_id} AWS_SECRET_ACCESS_KEY={secret}",
        f"  export AWS_DEFAULT_REGION={config.region}",
        f"  aws ssm start-session --target {DEFAULT_TARGET} --endpoint-url {url}",
        f"  ssmsh shell {DEFAULT_TARGET}",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def _warn_exposed(host: str) -> None:
    bar = "!" * 72
    print(
        f"{bar}\n"
        f"WARNING: the emulator is binding {host!r}, which is not a loopback address.\n"
        "Anyone who can reach this machine can open shells and tunnels as your user.\n"
        "Use --credentials KEY:SECRET and a firewall, or bind 127.0.0.1.\n"
        f"{bar}",
        file=sys.stderr,
        flush=True,
    )


async def _serve(config: EmulatorConfig, stop: asyncio.Event) -> int:
    emulator = Emulator(config)
    try:
        try:
            await emulator.start()
        except OSError as exc:
            print(
                f"ssmsh emulator: cannot listen on {config.host}: {exc.strerror or exc}",
                file=sys.stderr,
            )
            return 1
        try:
            sys.stdout.write(emulator.endpoint_url + "\n")
            sys.stdout.flush()
        except (BrokenPipeError, OSError):
            pass  # nobody reads stdout; keep serving
        print(_hints(emulator, config), file=sys.stderr, flush=True)
        await stop.wait()
        print("ssmsh emulator: stopping", file=sys.stderr, flush=True)
        return 0
    finally:
        await emulator.close()


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    root = logging.getLogger()
    timestamped = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    for handler in root.handlers:  # ssmsh's own prints plain ``ssmsh:`` lines otherwise
        if handler.formatter is None:
            handler.setFormatter(timestamped)
    logging.getLogger("ssmsh").setLevel(level)
    if verbosity < 2:
        logging.getLogger("websockets").setLevel(logging.WARNING)


async def serve(args: argparse.Namespace, stop: asyncio.Event) -> int:
    """Run the emulator the parsed options describe until ``stop`` is set; the exit
    status (2: a bad option, 1: cannot listen). ``ssmsh emulator`` sets ``stop`` on
    Ctrl-C or SIGTERM."""
    try:
        config = build_config(args)
    except _UsageError as exc:
        print(f"ssmsh emulator: {exc}", file=sys.stderr)
        return 2
    _configure_logging(args.verbose)
    if not is_loopback(config.host):
        _warn_exposed(config.host)
    return await _serve(config, stop)


async def _serve_until_signal(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
    try:
        return await serve(args, stop)
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def run(args: argparse.Namespace) -> int:
    """Run the emulator until Ctrl-C or SIGTERM; the process exit status."""
    try:
        return asyncio.run(_serve_until_signal(args))
    except KeyboardInterrupt:
        return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m ssmsh.emulator.cli``: the same as ``ssmsh emulator``."""
    parser = configure_parser(argparse.ArgumentParser(prog="ssmsh emulator"))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
