"""Local listeners: TCP on chosen addresses, and Unix sockets with mode 0600.

Each listener hands accepted connections to a callback as an asyncio
``(StreamReader, StreamWriter)`` pair, like :func:`asyncio.start_server`.

* TCP: every address the BIND host resolves to is bound (for ``*``, the wildcard
  address of each family: ``0.0.0.0`` and ``::``, the latter IPv6-only so the two do
  not collide); with LOCALPORT 0 the
  port the OS picks for the first address is reused for the others, so one
  number is printed. :attr:`Listener.public` says whether any bound address is
  reachable from other machines.
* Unix: the socket is created with umask 0177 (never readable by others, not
  even for an instant) and chmod 0600. A stale socket file left by a dead
  process is replaced; a live one, or any other kind of file, is an error. The
  file is removed on :meth:`Listener.close` if it is still ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable

from ..exceptions import TunnelError
from .spec import ANY_ADDRESS, ForwardSpec

__all__ = ["ConnectionHandler", "Listener", "open_listener"]

logger = logging.getLogger(__name__)

ConnectionHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

#: StreamReader buffer limit for accepted connections (reads of up to this size).
READ_LIMIT = 32 * 1024


class Listener:
    """Bound, listening sockets for one forward."""

    def __init__(
        self,
        servers: list[asyncio.Server],
        *,
        port: int | None = None,
        path: str | None = None,
        addresses: list[str] | None = None,
        inode: tuple[int, int] | None = None,
    ) -> None:
        self._servers = servers
        #: The TCP port (after binding, so never 0), or None for a Unix socket.
        self.port = port
        #: The Unix socket path, or None.
        self.path = path
        #: Printable bound addresses (``127.0.0.1:8080``, ``[::1]:8080``, or the path).
        self.addresses = addresses or ([path] if path else [])
        self._inode = inode
        self._closed = False

    @property
    def label(self) -> str:
        """The first bound address, for messages."""
        return self.addresses[0] if self.addresses else "?"

    @property
    def public(self) -> list[str]:
        """Bound addresses that are not loopback (empty for Unix sockets)."""
        result = []
        for server in self._servers:
            for sock in server.sockets:
                if sock.family in (socket.AF_INET, socket.AF_INET6):
                    host = sock.getsockname()[0]
                    if not ipaddress.ip_address(host.split("%", 1)[0]).is_loopback:
                        result.append(_format_address(sock.getsockname()))
        return result

    async def close(self) -> None:
        """Stop listening and remove the socket file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for server in self._servers:
            server.close()
        if self.path is not None:
            _remove_if_ours(self.path, self._inode)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 0.5)

    def close_nowait(self) -> None:
        """Synchronous part of :meth:`close` (for atexit-like paths)."""
        for server in self._servers:
            server.close()
        if self.path is not None and not self._closed:
            _remove_if_ours(self.path, self._inode)
        self._closed = True


def _format_address(sockname: tuple[object, ...]) -> str:
    host, port = str(sockname[0]), sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def open_listener(spec: ForwardSpec, handler: ConnectionHandler) -> Listener:
    """Bind and listen for ``spec``; raises TunnelError with a one-line reason on failure."""
    if spec.local_socket is not None:
        return await _open_unix(spec.local_socket, handler)
    assert spec.local_port is not None
    return await _open_tcp(spec.bind, spec.local_port, handler)


async def _open_tcp(host: str, port: int, handler: ConnectionHandler) -> Listener:
    loop = asyncio.get_running_loop()
    # getaddrinfo(None, AI_PASSIVE) gives the wildcard address of each family there is.
    name = None if host == ANY_ADDRESS else host
    try:
        infos = await loop.getaddrinfo(name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise TunnelError(f"cannot resolve bind address {host!r}: {exc.strerror}") from None
    seen: set[tuple[int, str]] = set()
    targets = []
    for family, _, proto, _, sockaddr in infos:
        key = (family, str(sockaddr[0]))
        if key not in seen:
            seen.add(key)
            targets.append((family, proto, sockaddr))
    # IPv4 first so a port chosen by the OS comes from the more common family.
    targets.sort(key=lambda t: t[0] != socket.AF_INET)
    servers: list[asyncio.Server] = []
    chosen = port
    try:
        for family, proto, sockaddr in targets:
            address = (sockaddr[0], chosen, *sockaddr[2:])
            sock = None
            try:
                sock = socket.socket(family, socket.SOCK_STREAM, proto)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
            except OSError as exc:
                if sock is not None:
                    sock.close()
                if servers and (port == 0 or host == ANY_ADDRESS):
                    # The port the OS gave the first address is taken on this one, or
                    # this family is not usable here (no IPv6): the other one will do.
                    logger.debug("cannot also bind %s: %s", sockaddr[0], exc)
                    continue
                where = _format_address(address)
                raise TunnelError(f"cannot listen on {where}: {_reason(exc)}") from None
            chosen = sock.getsockname()[1]
            server = await asyncio.start_server(handler, sock=sock, limit=READ_LIMIT, backlog=1024)
            servers.append(server)
    except BaseException:
        for server in servers:
            server.close()
        raise
    addresses = [_format_address(s.getsockname()) for srv in servers for s in srv.sockets]
    return Listener(servers, port=chosen, addresses=addresses)


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "address already in use"
    if exc.errno == errno.EACCES:
        return "permission denied"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "address not available on this machine"
    return exc.strerror or str(exc)


async def _open_unix(path: str, handler: ConnectionHandler) -> Listener:
    _clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise TunnelError(f"cannot listen on {path}: {_reason(exc)}") from None
    finally:
        os.umask(old_umask)
    try:
        os.chmod(path, 0o600)
        st = os.stat(path)
        inode = (st.st_dev, st.st_ino)
        server = await asyncio.start_unix_server(handler, sock=sock, limit=READ_LIMIT, backlog=1024)
    except BaseException:
        sock.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return Listener([server], path=path, inode=inode)


def _clear_stale(path: str) -> None:
    """Remove a socket file nobody listens on; refuse to touch anything else."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise TunnelError(f"cannot use {path}: {_reason(exc)}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise TunnelError(f"cannot listen on {path}: a file that is not a socket is in the way")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        logger.debug("removing stale socket %s", path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    except OSError as exc:
        raise TunnelError(f"cannot use {path}: {_reason(exc)}") from None
    finally:
        probe.close()
    raise TunnelError(f"cannot listen on {path}: another process is listening there")


def _remove_if_ours(path: str, inode: tuple[int, int] | None) -> None:
    try:
        st = os.lstat(path)
    except OSError:
        return
    if inode is not None and (st.st_dev, st.st_ino) != inode:
        return  # someone replaced it; not ours to delete
    with contextlib.suppress(OSError):
        os.unlink(path)
