"""Which kind of port forwarding a session does, decided as the official client does.

:func:`choose_mode` follows protocol notes §9.4: ``type == "LocalPortForwarding"``
gives multiplexed forwarding (:class:`~ssmsh.tunnel.mux.MuxTunnel`) when the
agent is newer than 3.0.196.0 and basic forwarding
(:class:`~ssmsh.tunnel.basic.BasicTunnel`) otherwise; any other type is
standard-stream forwarding (:func:`~ssmsh.tunnel.stdio.run_stdio`).
"""

from __future__ import annotations

import enum
from typing import Any

from ..protocol.session import SessionEstablished
from ..protocol.versions import agent_supports_smux

__all__ = ["LOCAL_PORT_FORWARDING", "PortMode", "choose_mode"]

LOCAL_PORT_FORWARDING = "LocalPortForwarding"


class PortMode(enum.Enum):
    MUX = "multiplexed"
    BASIC = "basic"
    STDIO = "standard stream"


def choose_mode(established: SessionEstablished) -> PortMode:
    """The forwarding variant for a session, from its properties and the agent version."""
    properties: Any = established.properties
    port_type = properties.get("type") if isinstance(properties, dict) else None
    if port_type != LOCAL_PORT_FORWARDING:
        return PortMode.STDIO
    if agent_supports_smux(established.agent_version):
        return PortMode.MUX
    return PortMode.BASIC
