"""Exit statuses, in one place.

Like ssh: the remote command's status when the agent reports one, 0 for a
shell that ends normally, and 255 for ssmsh's own failures, each reported as
one line on stderr (no traceback unless ``--debug``). A signal that arrives
while a session is still starting ends ssmsh with 128 + its number, as it
would end a process it kills (SIGHUP 129, SIGINT 130, SIGTERM 143), but with
one line and the cleanup done (:class:`StartInterrupted`).
"""

from __future__ import annotations

import signal

from ..exceptions import (
    AgentUnresponsive,
    AwsError,
    ChannelClosed,
    EncryptionError,
    HandshakeError,
    InternalError,
    InvalidMessage,
    ProtocolError,
    ReconnectFailed,
    SsmshError,
    TunnelError,
    UsageError,
)

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_SIGNAL_BASE",
    "EXIT_USAGE",
    "ConfigError",
    "NoTargetChosen",
    "NoTargetGiven",
    "StartInterrupted",
    "describe",
    "exit_status",
]

EXIT_OK = 0
#: argparse's status for a malformed command line.
EXIT_USAGE = 2
#: Interrupted (Ctrl-C before the session started).
EXIT_INTERRUPTED = 130
#: A signal while the session was starting: 128 + the signal's number.
EXIT_SIGNAL_BASE = 128


class StartInterrupted(Exception):
    """SIGINT, SIGTERM or SIGHUP arrived while the session was still starting.

    Raised once what was under way was cancelled, the terminal restored and,
    if a session id had been obtained, TerminateSession attempted.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    def __str__(self) -> str:
        if self.signum == signal.SIGINT:
            return "interrupted"  # as for Ctrl-C at any other time
        return f"killed by signal {self.signum} while starting the session"


class ConfigError(UsageError):
    """The config file (``~/.config/ssmsh/config.toml``) is unreadable or wrong: exit 2."""


class NoTargetGiven(UsageError):
    """No TARGET on the command line, none by default, and no one to ask (no terminal)."""


class NoTargetChosen(Exception):
    """The target picker was left without a choice (Esc, Ctrl-D): exit 130, as fzf's."""

    def __str__(self) -> str:
        return "no target chosen"


#: Any failure of ssmsh itself (ssh uses 255 the same way).
EXIT_FAILURE = 255

#: Exception type -> (exit status, prefix of the one-line message). First match wins.
EXIT_TABLE: tuple[tuple[type[BaseException], int, str], ...] = (
    (ConfigError, EXIT_USAGE, ""),
    (UsageError, EXIT_FAILURE, ""),
    (AwsError, EXIT_FAILURE, ""),
    (HandshakeError, EXIT_FAILURE, "session handshake failed: "),
    (EncryptionError, EXIT_FAILURE, "encryption failed: "),
    (ReconnectFailed, EXIT_FAILURE, "connection failed: "),
    (AgentUnresponsive, EXIT_FAILURE, "connection failed: "),
    (InternalError, EXIT_FAILURE, "internal error: "),
    (ProtocolError, EXIT_FAILURE, "protocol error: "),
    (InvalidMessage, EXIT_FAILURE, "protocol error: "),
    (TunnelError, EXIT_FAILURE, ""),
    (SsmshError, EXIT_FAILURE, ""),
    (KeyboardInterrupt, EXIT_INTERRUPTED, ""),
    (NoTargetChosen, EXIT_INTERRUPTED, ""),
    (OSError, EXIT_FAILURE, ""),
)


def exit_status(exc: BaseException) -> int:
    """The process exit status for a failure."""
    if isinstance(exc, ChannelClosed):
        return exc.exit_code if exc.exit_code else EXIT_FAILURE
    if isinstance(exc, StartInterrupted):
        return EXIT_SIGNAL_BASE + exc.signum
    for kind, status, _ in EXIT_TABLE:
        if isinstance(exc, kind):
            return status
    return EXIT_FAILURE


def describe(exc: BaseException) -> str:
    """The one-line message for a failure."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, StartInterrupted):
        return str(exc)
    if isinstance(exc, OSError) and not isinstance(exc, SsmshError):
        text = exc.strerror or str(exc)
        return f"{text}: {exc.filename}" if exc.filename else text
    text = " ".join(str(exc).split()) or type(exc).__name__
    for kind, _, prefix in EXIT_TABLE:
        if isinstance(exc, kind):
            return prefix + text
    return f"internal error: {type(exc).__name__}: {text}"
