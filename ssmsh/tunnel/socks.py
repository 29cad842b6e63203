"""A SOCKS5 proxy whose connections leave from the target: :class:`SocksServer`.

RFC 1928, CONNECT only, no authentication (method 0x00; a client that offers no
such method gets 0xFF). Destinations are IPv4 and IPv6 addresses and domain names;
names are not resolved here but sent as they are, to be resolved on the target.

The document fixes a port session's destination when it starts
(``AWS-StartPortForwardingSessionToRemoteHost`` takes ``host`` and ``portNumber``;
``localhost`` uses ``AWS-StartPortForwardingSession``), so each destination gets
its own :class:`~ssmsh.tunnel.pool.SessionPool`: opened by the first connection to
it, reused while alive (a session carries any number of connections), closed after
``idle_timeout`` seconds without connections, replaced when it ends. ``max_sessions``
caps the sessions of all destinations together; at the cap, the destination idle
longest gives its sessions up for a new one, and if none is idle the client gets
0x01.

The agent reports failures, never successes: when it cannot connect to the
destination it sends Flag ConnectToPortError and closes the stream
(``port-mux-refused``); when it can, nothing comes until the destination speaks.
So before answering a CONNECT, :meth:`SocksServer.confirm` waits for one of: the
refusal (reply 0x05), data from the destination, or ``connect_wait`` seconds (by
default one retransmission timeout of the session, i.e. a round trip to the agent
and back, plus 50 ms for its dial), then answers success. A failure the agent
reports later (a name that takes long to fail, a host that never answers: the
agent's dial has no timeout of its own) then closes the connection. ssh -D
waits for its channel-open confirmation in the same way: one round trip.

Reply codes:

* 0x01 general failure: the session ended or failed to start for another reason,
  or no session may be started (``max_sessions``);
* 0x02 not allowed: StartSession refused (access denied, the document or its
  parameters, e.g. a host name the document's pattern rejects);
* 0x03 network unreachable: the target is not connected to Session Manager;
* 0x04 host unreachable: a malformed domain name;
* 0x05 connection refused: the agent could not connect (ConnectToPortError: refused,
  unresolvable or unreachable alike, the agent does not say which);
* 0x07 command not supported (BIND, UDP ASSOCIATE); 0x08 address type not supported.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import ipaddress
import logging
from collections.abc import Awaitable, Callable

from ..channel import SessionConnection
from ..exceptions import AwsError, SsmshError, UsageError
from .config import TunnelConfig
from .forwarder import peer_label
from .listeners import Listener
from .mode import PortMode
from .pool import PoolUnavailable, SessionPool, describe_error
from .spec import DEFAULT_BIND, ForwardSpec, parse_port
from .stream import MuxStream

__all__ = [
    "Destination",
    "Reply",
    "SocksRefusal",
    "SocksServer",
    "connect_wait",
    "negotiate",
    "parse_listen",
    "reply",
    "reply_for",
]

logger = logging.getLogger(__name__)

VERSION = 5
NO_AUTHENTICATION = 0x00
NO_ACCEPTABLE_METHOD = 0xFF
CONNECT = 0x01
COMMANDS = {0x01: "CONNECT", 0x02: "BIND", 0x03: "UDP ASSOCIATE"}
ATYP_IPV4 = 0x01
ATYP_DOMAIN = 0x03
ATYP_IPV6 = 0x04
#: SOCKS4's "request rejected or failed" (a SOCKS4 client is answered in its own terms).
SOCKS4_REJECTED = bytes([0x00, 0x5B, 0, 0, 0, 0, 0, 0])
#: Seconds a client has to send its greeting and request.
NEGOTIATION_TIMEOUT = 30.0
#: Added to the session's retransmission timeout when waiting for a refusal: the
#: agent's dial (a refused port answers within a millisecond on a local network).
DIAL_ALLOWANCE = 0.05
#: The longest automatic wait for a refusal.
MAX_CONNECT_WAIT = 1.5
#: Characters the AWS documents' host pattern refuses, and whitespace: not a host name.
_NOT_IN_NAMES = frozenset(",$^&()!;'\"<>`{}[]|#= \t\r\n\x0b\x0c")

StartSession = Callable[[ForwardSpec], Awaitable[SessionConnection]]
Report = Callable[[str], None]


class Reply(enum.IntEnum):
    """RFC 1928 reply codes."""

    SUCCEEDED = 0x00
    GENERAL_FAILURE = 0x01
    NOT_ALLOWED = 0x02
    NETWORK_UNREACHABLE = 0x03
    HOST_UNREACHABLE = 0x04
    CONNECTION_REFUSED = 0x05
    TTL_EXPIRED = 0x06
    COMMAND_NOT_SUPPORTED = 0x07
    ADDRESS_TYPE_NOT_SUPPORTED = 0x08


def reply(code: int) -> bytes:
    """A reply with BND.ADDR 0.0.0.0:0 (the address the agent used is not known here)."""
    return bytes([VERSION, code, 0, ATYP_IPV4, 0, 0, 0, 0, 0, 0])


#: AWS error codes of a StartSession that was refused for the caller or the document.
_NOT_ALLOWED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "InvalidDocument",
        "InvalidDocumentVersion",
        "InvalidParameters",
        "ValidationException",
    }
)


def reply_for(exc: BaseException) -> Reply:
    """The reply code for a session that could not be had."""
    if isinstance(exc, AwsError):
        if exc.code in _NOT_ALLOWED_CODES:
            return Reply.NOT_ALLOWED
        if exc.code == "TargetNotConnected":
            return Reply.NETWORK_UNREACHABLE
    return Reply.GENERAL_FAILURE


@dataclasses.dataclass(frozen=True, slots=True)
class Destination:
    """Where a CONNECT goes: an address in its usual text form, or a domain name."""

    host: str
    port: int

    @property
    def key(self) -> tuple[str, int]:
        return self.host.lower(), self.port

    @property
    def label(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def spec(self) -> ForwardSpec:
        """The forward to this destination: ``localhost`` on the target itself
        (AWS-StartPortForwardingSession), anything else through it (…ToRemoteHost)."""
        remote = None if self.host.lower() == "localhost" else self.host
        return ForwardSpec(remote_port=self.port, remote_host=remote, text=self.label)


class SocksRefusal(Exception):
    """The client's request cannot be served; ``answer`` is written to it before closing."""

    def __init__(self, reason: str, answer: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.answer = answer


def _host_from_name(raw: bytes) -> str:
    try:
        name = raw.decode("ascii")
    except UnicodeDecodeError:
        name = ""
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if not name or not name.isprintable() or _NOT_IN_NAMES.intersection(name):
        shown = raw.decode("ascii", "backslashreplace")
        raise SocksRefusal(f"{shown!r} is not a host name", reply(Reply.HOST_UNREACHABLE))
    try:
        return str(ipaddress.ip_address(name))  # an address written as a name
    except ValueError:
        return name


async def negotiate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Destination:
    """The method negotiation and the request; the destination of a CONNECT.

    Raises :class:`SocksRefusal` (with the answer to write) for what is not served,
    and :class:`asyncio.IncompleteReadError` when the client goes away.
    """
    version, count = await reader.readexactly(2)
    if version == 4:
        raise SocksRefusal("SOCKS4 is not supported (use SOCKS5)", SOCKS4_REJECTED)
    if version != VERSION:
        raise SocksRefusal(f"not a SOCKS5 client (version byte {version})")
    methods = await reader.readexactly(count)
    if NO_AUTHENTICATION not in methods:
        offered = ", ".join(f"{m:#04x}" for m in methods) or "none"
        raise SocksRefusal(
            f"no acceptable authentication method (offered {offered}; only 0x00 is served)",
            bytes([VERSION, NO_ACCEPTABLE_METHOD]),
        )
    writer.write(bytes([VERSION, NO_AUTHENTICATION]))
    version, command, _reserved, address_type = await reader.readexactly(4)
    if version != VERSION:
        raise SocksRefusal(f"bad request (version byte {version})")
    if address_type == ATYP_IPV4:
        host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
    elif address_type == ATYP_IPV6:
        host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
    elif address_type == ATYP_DOMAIN:
        (size,) = await reader.readexactly(1)
        raw = await reader.readexactly(size)
        port = int.from_bytes(await reader.readexactly(2), "big")
        if command != CONNECT:
            raise _unsupported(command)
        return _checked(Destination(_host_from_name(raw), port))
    else:
        raise SocksRefusal(
            f"address type {address_type:#04x} is not supported",
            reply(Reply.ADDRESS_TYPE_NOT_SUPPORTED),
        )
    port = int.from_bytes(await reader.readexactly(2), "big")
    if command != CONNECT:
        raise _unsupported(command)
    return _checked(Destination(host, port))


def _unsupported(command: int) -> SocksRefusal:
    name = COMMANDS.get(command, f"{command:#04x}")
    return SocksRefusal(
        f"command {name} is not supported (only CONNECT)", reply(Reply.COMMAND_NOT_SUPPORTED)
    )


def _checked(destination: Destination) -> Destination:
    if destination.port == 0:
        raise SocksRefusal(f"{destination.label}: port 0", reply(Reply.NOT_ALLOWED))
    return destination


def parse_listen(text: str) -> ForwardSpec:
    """Where a SOCKS proxy listens, ``[BIND:]PORT`` as for ssh -D: ``1080``,
    ``0.0.0.0:1080`` (``*:1080``), ``[::1]:1080``; PORT 0 picks a free port. The
    result's ``bind`` and ``local_port`` are set (its remote fields mean nothing)."""
    bad = f"bad SOCKS address {text!r}"
    if not text or text.strip() != text:
        raise UsageError(bad)
    explicit = True
    if text.startswith("["):
        bind, closing, port = text[1:].partition("]")
        if not closing or not port.startswith(":"):
            raise UsageError(f"{bad}: expected [ADDRESS]:PORT")
        port = port[1:]
    elif ":" in text:
        bind, _, port = text.rpartition(":")
        if ":" in bind:
            raise UsageError(f"{bad}: write an IPv6 address in brackets, e.g. [::1]:1080")
    else:
        bind, port, explicit = DEFAULT_BIND, text, False
    if bind == "*":
        bind = "0.0.0.0"
    if not bind:
        raise UsageError(
            f"{bad}: empty bind address (write 0.0.0.0 or * to listen on every interface)"
        )
    if any(c.isspace() for c in bind) or "/" in bind or "[" in bind or "]" in bind:
        raise UsageError(f"{bad}: {bind!r} is not a host name")
    return ForwardSpec(
        remote_port=0,
        bind=bind,
        local_port=parse_port(port, what="SOCKS port", allow_zero=True),
        bind_explicit=explicit,
        text=text,
    )


def connect_wait(connection: SessionConnection) -> float:
    """How long to wait for a refusal: the session's retransmission timeout (a round
    trip to the agent, with its variation) plus :data:`DIAL_ALLOWANCE`."""
    rto = float(connection.protocol.channel.rtt.rto)
    return min(MAX_CONNECT_WAIT, rto + DIAL_ALLOWANCE)


class SocksServer:
    """The SOCKS5 handler of one or more listeners, and its sessions per destination."""

    def __init__(
        self,
        start: StartSession,
        listener: Listener,
        *,
        target_label: str,
        report: Report,
        verbose: bool = False,
        config: TunnelConfig | None = None,
        sessions: int = 1,
        max_sessions: int = 32,
        idle_timeout: float = 120.0,
        wait: float | None = None,
    ) -> None:
        if sessions < 1 or max_sessions < 1 or idle_timeout <= 0:
            raise ValueError("sessions, max_sessions and idle_timeout must be positive")
        self._start = start
        self.listener = listener
        self.target_label = target_label
        self.report = report
        self.verbose = verbose
        self.config = config or TunnelConfig()
        self.sessions = sessions
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        #: Seconds to wait for a refusal before answering success (None: :func:`connect_wait`).
        self.wait = wait
        self.pools: dict[tuple[str, int], SessionPool] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    # -------------------------------------------------------------- counts

    @property
    def session_count(self) -> int:
        """Sessions starting or serving, all destinations together."""
        return sum(len(pool.members) for pool in self.pools.values())

    def _can_grow(self) -> bool:
        return self.session_count < self.max_sessions

    # ---------------------------------------------------------- connections

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One client: negotiation, then its connection through the destination's pool."""
        peer = peer_label(writer)
        try:
            async with asyncio.timeout(NEGOTIATION_TIMEOUT):
                destination = await negotiate(reader, writer)
        except SocksRefusal as refusal:
            if self.verbose:
                self.report(f"{self.listener.label}: {peer}: {refusal.reason}")
            await _answer_and_close(writer, refusal.answer)
            return
        except (TimeoutError, asyncio.IncompleteReadError, OSError) as exc:
            logger.debug("%s: negotiation with %s ended: %r", self.listener.label, peer, exc)
            writer.transport.abort()
            return
        served = False
        try:
            pool = self._pool(destination)
            async with pool.slot() as member:
                served = True
                if member.mode is not PortMode.MUX:
                    # Basic mode (agents up to 3.0.196.0) reports no refusals: go ahead.
                    writer.write(reply(Reply.SUCCEEDED))
                await member.gate(reader, writer)
        except Exception as exc:
            if served:  # the connection was handed over: it may have had its answer
                logger.debug("SOCKS connection failed", exc_info=exc)
                writer.transport.abort()
                return
            # The session could not be had: say so to the client.
            if isinstance(exc, PoolUnavailable) or self.verbose:
                reason = describe_error(exc)
                self.report(f"{self.listener.label}: {destination.label} for {peer}: {reason}")
            if not isinstance(exc, SsmshError):
                logger.debug("SOCKS connection failed", exc_info=exc)
            await _answer_and_close(writer, reply(reply_for(exc)))

    async def confirm(
        self, connection: SessionConnection, stream: MuxStream, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer the CONNECT once its stream is open (see the module docstring)."""
        loop = asyncio.get_running_loop()
        wait = self.wait if self.wait is not None else connect_wait(connection)
        deadline = loop.time() + wait
        refused = asyncio.Event()
        stream.on_refused = refused.set
        readable = asyncio.ensure_future(stream.wait_readable())
        refusal = asyncio.ensure_future(refused.wait())
        try:
            done, _ = await asyncio.wait(
                {readable, refusal}, timeout=wait, return_when=asyncio.FIRST_COMPLETED
            )
            if readable in done and readable.exception() is not None:
                writer.write(reply(Reply.GENERAL_FAILURE))
                return False
            if not stream.refused and stream.eof_received and not stream.bytes_received:
                # A FIN without data: a refusal's flag may come just after it.
                await asyncio.wait({refusal}, timeout=max(0.0, deadline - loop.time()))
        finally:
            stream.on_refused = None
            for task in (readable, refusal):
                task.cancel()
            await asyncio.gather(readable, refusal, return_exceptions=True)
        if stream.refused:
            writer.write(reply(Reply.CONNECTION_REFUSED))
            return False
        writer.write(reply(Reply.SUCCEEDED))
        return True

    def _pool(self, destination: Destination) -> SessionPool:
        if self._closed:
            raise PoolUnavailable("the proxy is closing")
        pool = self.pools.get(destination.key)
        if (pool is None or not pool.members) and not self._can_grow():
            self._make_room()
        if pool is None:
            pool = SessionPool(
                lambda: self._start(destination.spec()),
                self.listener,
                size=self.sessions,
                label=f"{self.listener.label} {destination.label}",
                remote_label=f"{destination.label} via {self.target_label}",
                report=self.report,
                verbose=self.verbose,
                config=self.config,
                confirm=self.confirm,
                can_grow=self._can_grow,
            )
            self.pools[destination.key] = pool
        return pool

    def _make_room(self) -> None:
        """At the session cap: give up the sessions of the destination idle longest."""
        idle = [
            (pool.idle_for(), key)
            for key, pool in self.pools.items()
            if pool.members and not pool.load
        ]
        if idle:
            _, key = max(idle)
            self._retire(key, "to make room for another destination")

    def _retire(self, key: tuple[str, int], why: str) -> None:
        pool = self.pools.pop(key)
        if pool.members and self.verbose:
            self.report(f"{pool.label}: closing its session{'s' * (len(pool.members) > 1)} {why}")
        task = asyncio.get_running_loop().create_task(pool.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # ------------------------------------------------------------ lifetime

    async def run(self) -> None:
        """Close idle destinations' sessions, for ever (cancel it, then :meth:`close`)."""
        period = min(5.0, self.idle_timeout / 4)
        while True:
            await asyncio.sleep(period)
            for key, pool in list(self.pools.items()):
                if pool.load:
                    continue
                if not pool.members:
                    self.pools.pop(key)  # nothing to close: its sessions ended
                elif pool.idle_for() >= self.idle_timeout:
                    self._retire(key, f"(idle for {self.idle_timeout:g} s)")

    async def close(self) -> None:
        """End every session (flag, API); open connections are dropped."""
        self._closed = True
        pools = list(self.pools.values())
        self.pools.clear()
        await asyncio.gather(
            *(pool.close() for pool in pools), *self._closing, return_exceptions=True
        )


async def _answer_and_close(writer: asyncio.StreamWriter, answer: bytes) -> None:
    try:
        if answer and not writer.is_closing():
            writer.write(answer)
            await asyncio.wait_for(writer.drain(), 5.0)
    except (OSError, TimeoutError):
        pass
    finally:
        writer.close()
