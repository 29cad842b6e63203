"""``ssmsh attach [SESSION_ID]``: take over a shell whose ssmsh process died.

A shell session outlives its client for the service's idle timeout (20 minutes by
default): the agent keeps the shell and its programs, holds what they print and
sends it, unacknowledged, to the next connection
(``protocol/traces/shell-client-sigkill-resume.jsonl``: acked messages are not sent
again; the unacked ones are, possibly out of order). A new official plugin process
cannot use that: it starts again at sequence 0 and waits for ever. ssmsh can,
because ``ssmsh shell`` keeps what a new process needs (:mod:`.resumable`):

1. ResumeSession gives a new token (and StreamUrl); a session the service ended
   (TerminateSession, the idle timeout) gets none: one line, the stale record is
   removed, 255.
2. The protocol is restored from the record (:meth:`ClientSession.restore`):
   established at once, as the handshake's results are known; incoming, the next
   expected number and the ones acked ahead of it (skipped: the agent will not
   send them again); outgoing, the terminal size as filler for the numbers the
   agent may or may not have had, so its input never waits for a missing one.
3. The link opens with the recorded ClientId (the same client reconnecting, as
   ``protocol/traces/shell-client-drop-resume.jsonl`` shows), and the terminal is
   bridged as by ``shell``: the current size goes at once, the escapes work.
4. The record is taken over first (this process's pid), kept current, and removed
   when the session ends here.

Not attachable: KMS-encrypted sessions (their data keys are never written down),
a record whose process still runs (it would fight it) unless ``--force``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import time

from ..aws import SsmSessions
from ..channel import SessionConnection, SessionInfo, StreamCredentials
from ..exceptions import AwsError, UsageError
from ..protocol.datachannel import ChannelConfig
from ..protocol.session import ClientSession
from ..terminal.escape import parse_escape_char
from ..terminal.tty import Terminal
from .common import StartupSignals, add_common_options, aws_settings, connection_config
from .errors import EXIT_FAILURE
from .listing import duration, emit, table
from .resumable import (
    AttachHeader,
    AttachRecord,
    RecordWriter,
    list_records,
    owner_alive,
    process_start,
    read_record,
    record_path,
)
from .runtime import Reporter
from .shell import add_escape_option, bridge_session, finish
from .waits import gateway_hint, watch_calls

__all__ = ["ATTACH_DESCRIPTION", "configure_attach", "run_attach"]

ATTACH_DESCRIPTION = (
    "Take over a shell session whose ssmsh process died (killed, crashed, the machine "
    "lost) while the session lives on (until the service's idle timeout): its programs "
    "kept running, and what they printed meanwhile is shown. Without SESSION_ID, list "
    "the sessions there are records of ($XDG_STATE_HOME/ssmsh/sessions). Only "
    "`ssmsh shell` on a terminal keeps such a record; not KMS-encrypted sessions."
)

#: The terminal size sent as filler when the terminal has none.
DEFAULT_SIZE = (80, 24)
#: ResumeSession's answer for a session it does not know (any more).
_GONE_CODES = frozenset({"DoesNotExistException", "InvalidSessionId"})


def configure_attach(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "session_id",
        nargs="?",
        metavar="SESSION_ID",
        help="the session to take over; without it, list the ones that can be",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="take it over even if the ssmsh process that holds it still runs",
    )
    add_escape_option(parser)
    add_common_options(parser, suppress=True)


async def run_attach(args: argparse.Namespace, terminal: Terminal, reporter: Reporter) -> int:
    if getattr(args, "local", False):
        raise UsageError(
            "attach takes over sessions on AWS or a separate emulator: --local's emulator "
            "ended with the process that started it"
        )
    if not args.session_id:
        return _list(reporter)
    path = record_path(args.session_id)
    record = read_record(path)
    header = record.header
    sid = header.session_id
    if header.encrypted or record.state is None:
        raise UsageError(
            f"session {sid} is encrypted with KMS: its data keys are never written to "
            f"disk, so it cannot be taken over (ssmsh terminate {sid} ends it)"
        )
    if not args.force and owner_alive(header):
        raise UsageError(
            f"session {sid} is still held by ssmsh process {header.pid}: attaching would "
            "fight it (--force takes it over anyway)"
        )
    if not terminal.stdin_is_tty:
        raise UsageError("ssmsh attach needs a terminal (stdin is not one)")
    try:
        escape_char = parse_escape_char(args.escape)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    config = connection_config(args)
    settings = aws_settings(_with_recorded_aws(args, header))
    sessions = watch_calls(SsmSessions(settings), reporter.hints)

    signals = StartupSignals()
    signals.install()
    conn: SessionConnection | None = None
    try:
        stream = await _resume(sessions, record, signals)
        loop = asyncio.get_running_loop()
        protocol = ClientSession(ChannelConfig(epoch_offset=time.time() - loop.time()))
        protocol.restore(
            session_type=header.session_type,
            agent_version=header.agent_version,
            sequence=record.state,
            size=terminal.size() or DEFAULT_SIZE,
            now=loop.time(),
        )
        info = SessionInfo(sid, header.target_id, stream)
        conn = SessionConnection(
            info, sessions, config=config, protocol=protocol, client_id=header.client_id
        )
        writer = _take_over(record, info, protocol, reporter)
        conn.set_recorder(writer)
        reporter.status(f"Attaching to session with SessionId: {sid}")
        with gateway_hint(reporter.hints, stream.stream_url):
            await signals.guard(conn.start())
    except BaseException:
        reporter.terminal.restore()
        if conn is not None:
            # Interrupted while connecting: the session stays as it was, attachable.
            await conn.close(terminate=False)
        raise
    finally:
        signals.remove()
    try:
        result = await bridge_session(
            conn,
            terminal,
            reporter,
            interactive=True,
            escape_char=escape_char,
            send_stdin=True,
        )
    finally:
        reporter.terminal.restore()
        await conn.close(terminate=True)
        writer.remove()
    if result is None:
        return EXIT_FAILURE
    return finish(result, sid, reporter, strict=True)


async def _resume(
    sessions: SsmSessions, record: AttachRecord, signals: StartupSignals
) -> StreamCredentials:
    """ResumeSession; a session the service ended: its record goes, one line, 255."""
    header = record.header
    sid = header.session_id
    found: list[StreamCredentials | None] = []

    async def resume() -> None:
        found.append(await sessions.resume_session(sid))

    try:
        await signals.guard(resume())
    except AwsError as exc:
        if exc.code not in _GONE_CODES:
            raise
        found.append(None)
    stream = found[0] if found else None
    if stream is None:
        record.path.unlink(missing_ok=True)
        raise UsageError(
            f"session {sid} has ended (terminated, or timed out while no client was "
            "attached); its record is removed"
        )
    return StreamCredentials(stream.stream_url or header.stream_url, stream.token_value)


def _take_over(
    record: AttachRecord, info: SessionInfo, protocol: ClientSession, reporter: Reporter
) -> RecordWriter:
    """The record is this process's now (its pid, the new StreamUrl), kept as before."""
    pid = os.getpid()
    header = dataclasses.replace(
        record.header, pid=pid, pid_start=process_start(pid), stream_url=info.stream.stream_url
    )
    writer = RecordWriter(record.path, lambda _: header, warn=reporter.status)
    writer(protocol)  # writes the whole record: the protocol is established already
    return writer


def _with_recorded_aws(args: argparse.Namespace, header: AttachHeader) -> argparse.Namespace:
    """The AWS options given, else those the session was started with."""
    merged = argparse.Namespace(**vars(args))
    for name in ("region", "profile", "endpoint_url"):
        if not getattr(args, name, None):
            setattr(merged, name, getattr(header, name))
    return merged


def _list(reporter: Reporter) -> int:
    """One line per record: session, target, age, who holds it."""
    rows: list[tuple[str, str, str, str]] = []
    now = time.time()
    for item in list_records():
        if isinstance(item, tuple):
            path, _why = item
            rows.append((path.stem, "-", "-", "damaged (ssmsh attach SESSION_ID says why)"))
            continue
        header = item.header
        if header.encrypted or item.state is None:
            state = "not attachable (KMS-encrypted)"
        elif owner_alive(header):
            state = f"held by ssmsh process {header.pid}"
        else:
            state = f"attachable (ssmsh process {header.pid} is gone)"
        rows.append((header.session_id, header.target_id, duration(now - header.started), state))
    if not rows:
        reporter.status("ssmsh: no session records (ssmsh shell keeps one while it runs)")
        return 0
    return emit(reporter.terminal, table(("SESSION", "TARGET", "AGE", "STATE"), rows))
