"""Hints for the AWS calls of a command: :func:`watch_calls` (see :mod:`ssmsh.terminal.hints`)."""

from __future__ import annotations

import contextlib
import urllib.parse

from ..aws import SsmSessions
from ..terminal.hints import Hints

__all__ = ["gateway_hint", "watch_calls"]


def watch_calls(sessions: SsmSessions, hints: Hints) -> SsmSessions:
    """Give ``sessions`` a hint for every AWS call that takes long; returns it."""

    def watch(operation: str, service: str) -> contextlib.AbstractContextManager[object]:
        if not hints.enabled:
            return contextlib.nullcontext()

        def describe(elapsed: float) -> str:
            url = sessions.endpoint_url(service)
            where = f"the {service.upper()} endpoint" + (f" at {url}" if url else "")
            return hints.with_way_out(f"waiting for {where} ({operation}, {elapsed:.0f} s)")

        return hints.waiting(describe)

    sessions.watch = watch
    return sessions


def gateway_hint(hints: Hints, stream_url: str) -> contextlib.AbstractContextManager[object]:
    """A hint while the data channel's WebSocket opens (retried for up to half a minute)."""
    host = urllib.parse.urlsplit(stream_url).hostname or "the message gateway"

    def describe(elapsed: float) -> str:
        return hints.with_way_out(f"connecting to {host} ({elapsed:.0f} s)")

    return hints.waiting(describe)
