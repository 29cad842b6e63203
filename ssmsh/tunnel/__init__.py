"""Port forwarding over Session Manager: specs, listeners, smux streams, forwarders.

* :func:`parse_spec` / :class:`ForwardSpec` — ``[BIND:]LOCALPORT:[HOST:]REMOTEPORT`` and
  ``LOCALSOCKET:[HOST:]REMOTEPORT`` (``spec.py``);
* :func:`open_listener` / :class:`Listener` — TCP and Unix (0600) listeners (``listeners.py``);
  :class:`HandlerGate` — connections that arrive before the session is ready (``gate.py``);
* :class:`MuxTunnel` / :class:`MuxStream` — smux v1 streams as asyncio reader/writer pairs
  (``mux.py``, ``stream.py``);
* :class:`MuxForwarder`, :class:`BasicTunnel`, :func:`run_stdio` — the three forwarding modes
  (``forwarder.py``, ``basic.py``, ``stdio.py``), chosen by :func:`choose_mode` (``mode.py``);
* :class:`ForwardSession` — one listener and the port session behind it (``session.py``);
  :class:`SessionPool` — several sessions behind one listener, least loaded first (``pool.py``);
  :class:`SocksServer` — a SOCKS5 proxy, a pool per destination (``socks.py``);
  :class:`AgentWatchdog` — ends a session whose agent stopped acknowledging (``watchdog.py``);
* :class:`PortChannel` — the seam to the data channel, :data:`PortEvent` what it receives,
  :class:`ConnectionChannel` — a SessionConnection behind it (``channel.py``);
  :class:`TunnelConfig` — the tunables (``config.py``).

See ``docs/tunnels.md``.
"""

from __future__ import annotations

from .basic import BasicTunnel
from .channel import ConnectionChannel, PortChannel, PortEvent
from .config import TunnelConfig
from .forwarder import ConnectionLog, MuxForwarder
from .gate import HandlerGate
from .listeners import Listener, open_listener
from .mode import PortMode, choose_mode
from .mux import MuxTunnel
from .pool import SessionPool
from .session import ForwardSession
from .socks import SocksServer
from .spec import ForwardSpec, parse_spec
from .stdio import Stdio, run_stdio
from .stream import MuxStream
from .watchdog import AgentWatchdog

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
    "PortEvent",
    "PortMode",
    "SessionPool",
    "SocksServer",
    "Stdio",
    "TunnelConfig",
    "choose_mode",
    "open_listener",
    "parse_spec",
    "run_stdio",
]
