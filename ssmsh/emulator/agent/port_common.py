"""What every port-session variant shares: the Flag payload and error text."""

from __future__ import annotations

import logging

from ...exceptions import RemoteProtocolError
from ...protocol.constants import Flag
from ...protocol.payloads import decode_flag
from .plugin import PluginHost

__all__ = ["describe", "handle_flag"]

logger = logging.getLogger(__name__)


def handle_flag(host: PluginHost, payload: bytes) -> int | None:
    """Decode a Flag payload; TerminateSession ends the session. Returns the flag."""
    try:
        flag = decode_flag(payload)
    except RemoteProtocolError as exc:
        logger.debug("ignoring bad flag payload: %s", exc)
        return None
    if flag == Flag.TERMINATE_SESSION:
        host.finish("")
    return flag


def describe(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
