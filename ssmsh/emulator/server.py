"""The :class:`Emulator`: API server, message gateway and shared state in one object.

Usable in-process::

    async with Emulator(EmulatorConfig()) as emulator:
        ssm = boto3.client("ssm", endpoint_url=emulator.endpoint_url, ...)

It binds two ports: the HTTP API (``endpoint_url``) and the WebSocket gateway that
StartSession's ``StreamUrl`` points to.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Protocol

from .api import ApiHandler
from .clock import EmulatorClock
from .commands import CommandEngine, Notification
from .config import DEFAULT_AGENT_VERSION, EmulatorConfig, fleet
from .httpserver import HttpLimits, HttpServer, LogThrottle
from .state import EmulatorState, SessionRecord

__all__ = ["Emulator", "GatewayLike"]

logger = logging.getLogger(__name__)


class GatewayLike(Protocol):
    """What the emulator needs from the message gateway (``ssmsh.emulator.gateway``)."""

    @property
    def url(self) -> str: ...

    async def start(self, host: str) -> None: ...

    async def close(self) -> None: ...

    def terminate(self, session: SessionRecord) -> Awaitable[None]: ...


GatewayFactory = Callable[[EmulatorState, EmulatorConfig], GatewayLike]

#: What asyncio's own accept loop (the gateway's, through websockets) reports when the
#: process is out of file descriptors: once per failed accept, with a traceback.
_ACCEPT_EXHAUSTED = "socket.accept() out of system resource"


class _QuietAcceptErrors:
    """A loop exception handler: descriptor exhaustion in accept() becomes a rate-limited
    one-line WARNING (asyncio retries by itself); everything else goes to the default."""

    def __init__(self) -> None:
        self._throttle = LogThrottle(logger)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == _ACCEPT_EXHAUSTED:
            self._throttle.log(
                logging.WARNING,
                "accept",
                "out of file descriptors: a listening socket cannot accept (%s); it retries "
                "as connections close",
                context.get("exception"),
            )
            return
        loop.default_exception_handler(context)


def _default_gateway(state: EmulatorState, config: EmulatorConfig) -> GatewayLike:
    module: Any = importlib.import_module(".gateway", __package__)
    gateway: GatewayLike = module.Gateway(state, config)
    return gateway


class Emulator:
    """The local SSM emulator. An async context manager; also ``start()`` / ``close()``."""

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        gateway_factory: GatewayFactory | None = None,
        http_limits: HttpLimits | None = None,
    ) -> None:
        self.config = config if config is not None else EmulatorConfig()
        targets = [dataclasses.replace(t) for t in self.config.targets]
        targets += fleet(
            self.config.instances,
            offline=self.config.offline_instances,
            slow=self.config.slow_instances,
        )
        if self.config.agent_version != DEFAULT_AGENT_VERSION:
            for target in targets:
                if target.agent_version == DEFAULT_AGENT_VERSION:
                    target.agent_version = self.config.agent_version
        for target in targets:
            if target.shell is None:
                target.shell = self.config.shell
        self.state = EmulatorState(
            self.config.token_ttl,
            targets=targets,
            region=self.config.region,
            kms_keys=self.config.kms_keys,
            max_session_duration=self.config.max_session_duration,
        )
        #: Run Command: commands, their invocations and the notifications they published.
        self.commands = CommandEngine(
            self.state.targets,
            region=self.config.region,
            environment=self.config.environment,
            visibility_delay=self.config.command_visibility_delay,
            timeout_scale=self.config.command_timeout_scale,
            clock=self.state.clock.now,
        )
        self.api = ApiHandler(self.state, self.config, self.commands)
        self._http = HttpServer(self.api, http_limits)
        self._gateway_factory = gateway_factory or _default_gateway
        self._gateway: GatewayLike | None = None
        self._started = False
        self._loop_handler: _QuietAcceptErrors | None = None

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> Emulator:
        """Bind both ports; returns self once clients can connect."""
        if self._started:
            return self
        self._started = True
        loop = asyncio.get_running_loop()
        if loop.get_exception_handler() is None:  # the application's own handler stays
            self._loop_handler = _QuietAcceptErrors()
            loop.set_exception_handler(self._loop_handler)
        try:
            self._gateway = self._gateway_factory(self.state, self.config)
            await self._gateway.start(self.config.host)
            self.state.stream_base_url = self._gateway.url
            self.state.on_terminate = self._gateway.terminate
            await self._http.start(self.config.host, self.config.port)
        except BaseException:
            await self.close()
            raise
        logger.info("emulator API at %s, gateway at %s", self.endpoint_url, self.gateway.url)
        return self

    async def close(self) -> None:
        """Stop serving: API first (no new sessions or commands), then automations, then
        running commands (their processes are killed), then the gateway and its sessions."""
        await self._http.close()
        await self.api.close()
        await self.commands.close()
        if self._gateway is not None:
            gateway, self._gateway = self._gateway, None
            await gateway.close()
        if self._loop_handler is not None:
            loop = asyncio.get_running_loop()
            if loop.get_exception_handler() is self._loop_handler:
                loop.set_exception_handler(None)
            self._loop_handler = None

    async def __aenter__(self) -> Emulator:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- properties -----------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        """The SSM/KMS endpoint, e.g. ``http://127.0.0.1:43117``."""
        if not self._http.port:
            raise RuntimeError("the emulator is not started")
        return self._http.url

    @property
    def http(self) -> HttpServer:
        """The API's HTTP server (its ``limits``, open ``connections``, ``evictions``)."""
        return self._http

    @property
    def gateway(self) -> GatewayLike:
        if self._gateway is None:
            raise RuntimeError("the emulator is not started")
        return self._gateway

    @property
    def faults(self) -> Any:
        """The gateway's fault injector (``ssmsh.emulator.faults``)."""
        return getattr(self.gateway, "faults", None)

    @property
    def notifications(self) -> list[Notification]:
        """Every SNS notification Run Command published (recorded, never sent)."""
        return self.commands.notifications.records

    def disconnect_instance(self, target_id: str) -> None:
        """Make a managed instance unreachable (GetConnectionStatus: notconnected)."""
        self.state.disconnect_instance(target_id)

    def reconnect_instance(self, target_id: str) -> None:
        self.state.reconnect_instance(target_id)

    @property
    def clock(self) -> EmulatorClock:
        """The emulator's clock; ``clock.advance(seconds)`` (on the emulator's loop) runs
        what schedules and waits have come due."""
        return self.state.clock

    def set_pickup_delay(self, target_id: str, seconds: float) -> None:
        """Make an instance's agent slow (or quick again) to pick up Run Command work."""
        self.state.targets[target_id].pickup_delay = seconds
