"""Port forwarding over Session Manager: specs, listeners, smux streams, forwarders.

* :func:`parse_spec` / :class:`ForwardSpec` — ``[BIND:]LOCALPORT:[HOST:]REMOTEPORT`` and
  ``LOCALSOCKET:[HOST:]REMOTEPORT``;
* :func:`open_listener` / :class:`Listener` — TCP and Unix (0600) listeners;
* :class:`MuxTunnel` / :class:`MuxStream` — smux v1 streams as asyncio reader/writer pairs;
* :class:`MuxForwarder`, :class:`BasicTunnel`, :func:`run_stdio` — the three forwarding modes;
* :class:`ForwardSession` — one listener and the port session behind it;
* :class:`PortChannel` — the seam to the data channel; :class:`TunnelConfig` — the tunables.

See ``docs/tunnels.md``.
"""

from __future__ import annotations

from .basic import BasicTunnel
from .channel import PortChannel, TunnelConfig
from .forwarder import ConnectionLog, MuxForwarder
from .listeners import Listener, open_listener
from .mux import MuxStream, MuxTunnel
from .session import (
    AgentWatchdog,
    ConnectionChannel,
    ForwardSession,
    HandlerGate,
    PortMode,
    choose_mode,
)
from .spec import ForwardSpec, parse_spec
from .stdio import Stdio, run_stdio

__all__ = [
    "AgentWatchdog",
    "BasicTunnel",
    "ConnectionChannel",
    "ConnectionLog",
    "ForwardSession",
    "ForwardSpec",
    "HandlerGate",
    "Listener",
    "MuxForwarder",
    "MuxStream",
    "MuxTunnel",
    "PortChannel",
    "PortMode",
    "Stdio",
    "TunnelConfig",
    "choose_mode",
    "open_listener",
    "parse_spec",
    "run_stdio",
]
