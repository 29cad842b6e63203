"""The emulated SSM agent: the agent side of the data channel and its session plugins.

:class:`Agent` (one per session) speaks the protocol through
:class:`~ssmsh.protocol.datachannel.DataChannel` in ``Role.AGENT``; the plugins
(:mod:`.shell`, :mod:`.commands`, :mod:`.port`, :mod:`.port_mux`) do the work.
"""

from __future__ import annotations

from .agent import IDLE_TIMEOUT_REASON, MAX_DURATION_REASON, Agent
from .handshake import AgentHandshake
from .pacing import Pacing

__all__ = ["IDLE_TIMEOUT_REASON", "MAX_DURATION_REASON", "Agent", "AgentHandshake", "Pacing"]
