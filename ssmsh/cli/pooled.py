"""``ssmsh forward --sessions N``: each listener spreads its connections over N sessions.

:func:`serve_pools` is what :mod:`.forward` runs instead of one session per SPEC
when ``--sessions`` is given: a :class:`~ssmsh.tunnel.pool.SessionPool` per
listener, its first session started at once (so a bad target or a refused
document fails fast, as without ``--sessions``), the others as load grows.
Sessions that end are replaced when the next connection needs one; ``forward``
ends (255) only when a session cannot be started and none of its listener's is
left, or at Ctrl-C (0).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ..aws import SsmSessions
from ..channel import ConnectionConfig, SessionConnection
from ..exceptions import TunnelError, UsageError
from ..tunnel.config import TunnelConfig
from ..tunnel.gate import HandlerGate
from ..tunnel.listeners import Listener
from ..tunnel.pool import SessionPool, describe_error
from ..tunnel.spec import ForwardSpec
from .errors import EXIT_OK
from .portsession import open_connection
from .runtime import Reporter

__all__ = ["MAX_POOL_SIZE", "check_pool_size", "serve_pools"]

#: The largest ``--sessions``: each session is a process on the instance.
MAX_POOL_SIZE = 64


def check_pool_size(value: int | None) -> int | None:
    """``--sessions`` as given (None: not given); UsageError when out of range."""
    if value is not None and not 1 <= value <= MAX_POOL_SIZE:
        raise UsageError(f"--sessions {value} is out of range (1-{MAX_POOL_SIZE})")
    return value


async def serve_pools(
    aws: SsmSessions,
    target_id: str,
    specs: Sequence[ForwardSpec],
    listeners: Sequence[Listener],
    gates: Sequence[HandlerGate],
    size: int,
    channel_config: ConnectionConfig,
    config: TunnelConfig,
    verbose: bool,
    stop: asyncio.Event,
    reporter: Reporter,
) -> int:
    """Serve every listener through a pool of ``size`` sessions until ``stop`` (0);
    raises when a pool can start no session and has none left."""
    pools: list[SessionPool] = []
    for spec, listener, gate in zip(specs, listeners, gates, strict=True):

        async def start(
            spec: ForwardSpec = spec, port: int | None = listener.port
        ) -> SessionConnection:
            return await open_connection(
                aws,
                target_id,
                spec.document_name,
                spec.document_parameters(port),
                channel_config,
                config,
            )

        pool = SessionPool(
            start,
            listener,
            size=size,
            label=listener.label,
            remote_label=f"{spec.remote_label} via {target_id}",
            report=reporter.say,
            verbose=verbose,
            config=config,
            owner_reports_fatal=True,
        )
        pools.append(pool)
        gate.open(pool.handle)
        pool.warm()
    waiters = {asyncio.ensure_future(pool.fatal.wait()): pool for pool in pools}
    stopping = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait({stopping, *waiters}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            failed = waiters.get(task)
            if failed is None or failed.fatal_error is None:
                continue
            if not failed.started:
                raise failed.fatal_error  # the first session could not start: as without a pool
            reason = describe_error(failed.fatal_error)
            raise TunnelError(f"{failed.label}: cannot start a new session: {reason}")
        if verbose:
            reporter.say("stopping")
        return EXIT_OK
    finally:
        stopping.cancel()
        for task in waiters:
            task.cancel()
        await asyncio.gather(*(pool.close() for pool in pools), return_exceptions=True)
