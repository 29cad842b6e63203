"""Port sessions: choosing the variant, and the basic and stdio variants.

The variant is chosen the way the official agent chooses it, after the handshake:

* ``type == "LocalPortForwarding"`` and ClientVersion >= 1.1.70: multiplexed
  (smux, :mod:`.port_mux`), smux keepalive on unless ClientVersion > 1.2.331.0;
* ``type == "LocalPortForwarding"``, older client: basic; also basic when the
  emulated AgentVersion is 3.0.196.0 or older, as agents of that age had no smux
  (the official plugin then runs basic forwarding too);
* no ``type`` (AWS-StartSSHSession): stdio, i.e. basic without reconnection.

Basic and stdio connect one TCP connection to ``host:portNumber`` (``localhost``
when there is no host) as soon as the session starts. A connection that cannot
be made ends the session. Bytes both ways travel as Output payloads. In basic mode
a DisconnectToPort flag, or the remote end closing, drops the connection, and the
client's next data opens a new one; in stdio mode the end of the connection ends
the session. The TerminateSession flag ends the session in every variant.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from ...protocol.constants import Flag, PayloadType
from ...protocol.versions import (
    agent_supports_smux,
    client_supports_smux,
    client_wants_agent_keepalive_off,
)
from .plugin import Plugin, PluginHost
from .port_common import describe, handle_flag
from .port_mux import MuxPortPlugin

__all__ = ["LOCAL_PORT_FORWARDING", "BasicPortPlugin", "make_port_plugin", "port_address"]

logger = logging.getLogger(__name__)

LOCAL_PORT_FORWARDING = "LocalPortForwarding"
_DISCONNECT = object()


def port_address(properties: dict[str, Any]) -> tuple[str, int]:
    """``(host, port)`` from the session properties; ValueError with the agent's wording."""
    raw = properties.get("portNumber")
    if raw is None or str(raw).strip() == "":
        raise ValueError(f"Port number is empty in session properties. {properties}")
    try:
        port = int(str(raw).strip())
    except ValueError:
        raise ValueError(f"Invalid port number {raw!r} in session properties.") from None
    if not 0 < port < 65536:
        raise ValueError(f"Invalid port number {raw!r} in session properties.")
    host = str(properties.get("host") or "").strip() or "localhost"
    return host, port


def make_port_plugin(host: PluginHost, *, half_close: bool = True) -> Plugin | None:
    """The variant the real agent would run for this session and client.

    ``half_close`` applies to the multiplexed variant (see :class:`.port_mux.MuxPortPlugin`);
    basic and stdio sessions have no way to carry a half-close, here as in the real agent.
    """
    properties = host.session.properties or {}
    try:
        address = port_address(properties)
    except ValueError as exc:
        host.finish(str(exc))
        return None
    version = host.client_version
    if properties.get("type") == LOCAL_PORT_FORWARDING:
        if client_supports_smux(version) and agent_supports_smux(host.agent_version):
            keepalive = not client_wants_agent_keepalive_off(version)
            return MuxPortPlugin(host, address, keepalive=keepalive, half_close=half_close)
        return BasicPortPlugin(host, address, reconnect=True)
    return BasicPortPlugin(host, address, reconnect=False)


@dataclasses.dataclass(eq=False, slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()


class BasicPortPlugin(Plugin):
    """One TCP connection at a time (basic), or exactly one (stdio)."""

    requires_handshake = True

    def __init__(self, host: PluginHost, address: tuple[str, int], *, reconnect: bool) -> None:
        super().__init__(host)
        self.address = address
        self.reconnect = reconnect
        self._conn: _Connection | None = None
        self._new_connections: asyncio.Queue[_Connection] = asyncio.Queue()
        self._inbox: asyncio.Queue[bytes | object] = asyncio.Queue()
        #: Connections opened so far (tests and logs).
        self.connections = 0

    async def start(self) -> None:
        try:
            await self._connect()
        except OSError as exc:
            self.host.finish(f"Unable to connect to specified port: {describe(exc)}")
            return
        session_id = self.host.session.session_id
        self.spawn(self._read_loop(), f"port read {session_id}")
        self.spawn(self._write_loop(), f"port write {session_id}")

    async def _connect(self) -> _Connection:
        reader, writer = await asyncio.open_connection(*self.address)
        conn = _Connection(reader, writer)
        self._conn = conn
        self.connections += 1
        self._new_connections.put_nowait(conn)
        return conn

    def receive(self, payload_type: int, payload: bytes) -> None:
        if payload_type == PayloadType.OUTPUT:
            self._inbox.put_nowait(payload)
        elif (
            payload_type == PayloadType.FLAG
            and handle_flag(self.host, payload) == Flag.DISCONNECT_TO_PORT
        ):
            self._inbox.put_nowait(_DISCONNECT)

    async def _write_loop(self) -> None:
        while True:
            item = await self._inbox.get()
            conn = self._conn
            if item is _DISCONNECT:
                if conn is not None:
                    self._conn = None
                    conn.close()
                continue
            assert isinstance(item, bytes)
            if conn is None:
                if not self.reconnect:
                    continue  # stdio: the connection is gone and the session is ending
                try:
                    conn = await self._connect()
                except OSError as exc:
                    self.host.finish(f"Unable to connect to specified port: {describe(exc)}")
                    return
            conn.writer.write(item)
            try:
                await conn.writer.drain()
            except (ConnectionError, OSError) as exc:
                logger.debug("writing to %s:%d failed: %s", *self.address, exc)
                if self._conn is conn:
                    self._conn = None
                conn.close()

    async def _read_loop(self) -> None:
        host = self.host
        chunk = host.pacing.port_chunk
        while True:
            conn = await self._new_connections.get()
            error: OSError | None = None
            try:
                while True:
                    await host.wait_writable()
                    data = await conn.reader.read(chunk)
                    if not data:
                        break
                    host.send(PayloadType.OUTPUT, data)
                    await host.pacing.pause()
            except OSError as exc:
                error = exc
            if self._conn is conn:
                self._conn = None
            conn.close()
            if not self.reconnect:
                host.finish("" if error is None else f"Failed to read from port: {describe(error)}")
                return
            logger.debug("connection to %s:%d ended; the next data reconnects", *self.address)

    async def stop(self) -> None:
        await super().stop()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        while not self._new_connections.empty():
            self._new_connections.get_nowait().close()
