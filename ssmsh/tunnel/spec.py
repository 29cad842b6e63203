"""Forwarding specs: ``PORT``, ``[BIND:]LOCALPORT:[HOST:]REMOTEPORT`` and
``LOCALSOCKET:[HOST:]REMOTEPORT``.

The syntax follows ``ssh -L`` with the remote host made optional: without a
HOST the agent connects to a port on the target itself
(``AWS-StartPortForwardingSession``); with one it connects onwards to HOST
(``AWS-StartPortForwardingSessionToRemoteHost``).

* ``8080:80`` listens on 127.0.0.1:8080 and reaches port 80 on the target.
* ``5432`` alone means ``5432:5432`` (ssh has no such form; it is the natural one).
* ``0:5432`` picks a free local port.
* ``8080:db.internal:5432`` reaches db.internal:5432 from the target.
* ``*:8080:80`` listens on every interface, IPv4 and IPv6 (:data:`ANY_ADDRESS`);
  ``0.0.0.0:8080:80`` on every IPv4 one, ``[::]:8080:80`` on every IPv6 one. A
  non-loopback BIND must always be written out.
* ``/run/app.sock:80`` and ``./pg.sock:db:5432`` listen on a Unix socket; a
  LOCALSOCKET is recognised by the ``/`` it contains.
* IPv6 addresses are written in brackets: ``[::1]:8080:[fd00::5]:22``.

Three fields are read as ``LOCALPORT:HOST:REMOTEPORT`` when the first is a port
number and as ``BIND:LOCALPORT:REMOTEPORT`` when the second is; anything else
is refused as ambiguous rather than guessed.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os

from ..exceptions import UsageError

__all__ = [
    "ANY_ADDRESS",
    "DOCUMENT_PORT",
    "DOCUMENT_REMOTE_HOST",
    "DOCUMENT_SSH",
    "ForwardSpec",
    "is_loopback_host",
    "parse_port",
    "parse_spec",
    "proxy_document",
]

DOCUMENT_PORT = "AWS-StartPortForwardingSession"
DOCUMENT_REMOTE_HOST = "AWS-StartPortForwardingSessionToRemoteHost"
DOCUMENT_SSH = "AWS-StartSSHSession"

DEFAULT_BIND = "127.0.0.1"
#: BIND ``*``: every interface of both families (``0.0.0.0`` and ``::``).
ANY_ADDRESS = "*"
#: ``sun_path`` holds 108 bytes on Linux, including the terminating NUL (104 on BSD/macOS).
MAX_SOCKET_PATH = 107


@dataclasses.dataclass(frozen=True, slots=True)
class ForwardSpec:
    """One parsed forwarding specification.

    Exactly one of ``local_port`` (with ``bind``) and ``local_socket`` is set.
    ``bind_explicit`` records whether the user wrote a BIND address.
    """

    remote_port: int
    remote_host: str | None = None
    bind: str = DEFAULT_BIND
    local_port: int | None = None
    local_socket: str | None = None
    bind_explicit: bool = False
    text: str = ""

    @property
    def document_name(self) -> str:
        """The SSM document that implements this forward."""
        return DOCUMENT_REMOTE_HOST if self.remote_host else DOCUMENT_PORT

    def document_parameters(self, local_port: int | None = None) -> dict[str, list[str]]:
        """StartSession ``Parameters`` for this forward.

        ``local_port`` is the port actually bound (the documents pass it back to
        the client in the session properties; ssmsh has bound it already).
        """
        params: dict[str, list[str]] = {"portNumber": [str(self.remote_port)]}
        if self.remote_host:
            params["host"] = [self.remote_host]
        port = local_port if local_port is not None else self.local_port
        if port:
            params["localPortNumber"] = [str(port)]
        return params

    @property
    def remote_label(self) -> str:
        """``HOST:PORT`` as seen from the target, for messages."""
        host = self.remote_host or "localhost"
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{self.remote_port}"

    @property
    def local_label(self) -> str:
        """The listening address as written, for messages (before binding)."""
        if self.local_socket is not None:
            return self.local_socket
        return f"{_bracket(self.bind)}:{self.local_port}"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def proxy_document(port: int) -> tuple[str, dict[str, list[str]]]:
    """Document and parameters of ``ssmsh proxy`` (stdio forwarding to ``port``)."""
    return DOCUMENT_SSH, {"portNumber": [str(port)]}


def parse_port(text: str, *, what: str, allow_zero: bool = False) -> int:
    """A decimal TCP port; raises UsageError with a one-line reason otherwise."""
    if not text.isascii() or not text.isdigit():
        raise UsageError(f"{what} {text!r} is not a port number")
    value = int(text)
    low = 0 if allow_zero else 1
    if not low <= value <= 65535:
        raise UsageError(f"{what} {value} is out of range ({low}-65535)")
    return value


def _split(text: str) -> list[str]:
    """Split on ``:`` outside square brackets; brackets are removed from a field."""
    fields: list[str] = []
    current: list[str] = []
    depth = 0
    bracketed = False
    for char in text:
        if char == "[" and depth == 0 and not current:
            depth = 1
            bracketed = True
            continue
        if char == "]" and depth == 1:
            depth = 0
            continue
        if char == ":" and depth == 0:
            fields.append(_field(current, bracketed, text))
            current, bracketed = [], False
            continue
        if depth == 0 and bracketed:
            raise UsageError(f"bad forward spec {text!r}: text after ']'")
        current.append(char)
    if depth:
        raise UsageError(f"bad forward spec {text!r}: unbalanced '['")
    fields.append(_field(current, bracketed, text))
    return fields


def _field(chars: list[str], bracketed: bool, text: str) -> str:
    value = "".join(chars)
    if bracketed and not value:
        raise UsageError(f"bad forward spec {text!r}: empty brackets")
    if "]" in value or "[" in value:
        raise UsageError(f"bad forward spec {text!r}: misplaced bracket")
    return value


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _check_host(host: str, what: str, text: str) -> str:
    if not host:
        raise UsageError(f"bad forward spec {text!r}: empty {what}")
    if any(c.isspace() for c in host) or "/" in host:
        raise UsageError(f"bad forward spec {text!r}: {what} {host!r} is not a host name")
    return host


def _check_bind(bind: str, text: str) -> str:
    if not bind:
        raise UsageError(
            f"bad forward spec {text!r}: empty bind address "
            "(write 0.0.0.0 or * to listen on every interface)"
        )
    if bind == ANY_ADDRESS:
        return ANY_ADDRESS
    return _check_host(bind, "bind address", text)


def _check_socket(path: str, text: str) -> str:
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise UsageError(
            f"bad forward spec {text!r}: socket path is longer than {MAX_SOCKET_PATH} bytes"
        )
    if path.endswith("/"):
        raise UsageError(f"bad forward spec {text!r}: socket path names a directory")
    return path


def parse_spec(text: str) -> ForwardSpec:
    """Parse one forwarding specification; raises UsageError on anything odd."""
    if not text or text.strip() != text:
        raise UsageError(f"bad forward spec {text!r}")
    first = text.split(":", 1)[0]
    if "/" in first and not first.startswith("["):
        return _parse_socket_spec(text)
    fields = _split(text)
    count = len(fields)
    bind, bind_explicit, host = DEFAULT_BIND, False, None
    if count == 1 and _is_port(text):
        local = remote = text  # the same port here and there
    elif count == 2:
        local, remote = fields
    elif count == 3:
        a, b, c = fields
        if _is_port(a) and not _is_port(b):
            local, host, remote = a, _check_host(b, "remote host", text), c
        elif _is_port(b) and not _is_port(a):
            bind, bind_explicit, local, remote = _check_bind(a, text), True, b, c
        else:
            raise UsageError(
                f"ambiguous forward spec {text!r}: write BIND:LOCALPORT:REMOTEPORT, "
                "LOCALPORT:HOST:REMOTEPORT or BIND:LOCALPORT:HOST:REMOTEPORT"
            )
    elif count == 4:
        bind, local, host, remote = fields
        bind, bind_explicit = _check_bind(bind, text), True
        host = _check_host(host, "remote host", text)
    else:
        raise UsageError(
            f"bad forward spec {text!r}: expected PORT, [BIND:]LOCALPORT:[HOST:]REMOTEPORT "
            "or LOCALSOCKET:[HOST:]REMOTEPORT"
        )
    return ForwardSpec(
        remote_port=parse_port(remote, what="remote port"),
        remote_host=host,
        bind=bind,
        local_port=parse_port(local, what="local port", allow_zero=True),
        bind_explicit=bind_explicit,
        text=text,
    )


def _parse_socket_spec(text: str) -> ForwardSpec:
    # The path may not contain ':' (it would be ambiguous); the rest may be bracketed.
    path, _, rest = text.partition(":")
    if not rest:
        raise UsageError(f"bad forward spec {text!r}: missing remote port")
    fields = _split(rest)
    if len(fields) == 1:
        host, remote = None, fields[0]
    elif len(fields) == 2:
        host, remote = _check_host(fields[0], "remote host", text), fields[1]
    else:
        raise UsageError(f"bad forward spec {text!r}: expected LOCALSOCKET:[HOST:]REMOTEPORT")
    return ForwardSpec(
        remote_port=parse_port(remote, what="remote port"),
        remote_host=host,
        local_socket=_check_socket(path, text),
        text=text,
    )


def is_loopback_host(host: str) -> bool:
    """True for loopback addresses and ``localhost`` (names are not resolved here)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False
