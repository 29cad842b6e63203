"""How a protocol-level failure becomes the exception a session ends with."""

from __future__ import annotations

import pytest

from ssmsh.channel.events import failure_exception
from ssmsh.cli.errors import describe, exit_status
from ssmsh.exceptions import (
    AgentUnresponsive,
    EncryptionError,
    HandshakeError,
    InternalError,
    ReconnectFailed,
    RemoteProtocolError,
)
from ssmsh.protocol.session import SessionFailed


@pytest.mark.parametrize(
    ("kind", "cls"),
    [
        ("handshake", HandshakeError),
        ("encryption", EncryptionError),
        ("protocol", RemoteProtocolError),
        ("timeout", AgentUnresponsive),
        ("something new", RemoteProtocolError),
    ],
)
def test_each_kind_has_its_exception(kind: str, cls: type[Exception]) -> None:
    assert type(failure_exception(SessionFailed("why", kind))) is cls


def test_an_agent_that_stops_acking_is_not_a_reconnect_failure() -> None:
    exc = failure_exception(SessionFailed("message 7 unacknowledged after 300 attempts", "timeout"))
    assert not isinstance(exc, ReconnectFailed)
    assert describe(exc) == (
        "connection failed: the agent stopped acknowledging data "
        "(message 7 unacknowledged after 300 attempts)"
    )
    assert exit_status(exc) == 255


def test_a_driver_bug_says_internal_error() -> None:
    exc = InternalError("ValueError: boom")
    assert describe(exc) == "internal error: ValueError: boom"
    assert exit_status(exc) == 255
