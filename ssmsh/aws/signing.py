"""SigV4 headers for the data-channel WebSocket upgrade (protocol notes §12).

Current official clients sign ``GET <StreamUrl>`` (empty body) for the service
``ssmmessages`` and send ``Authorization``, ``X-Amz-Date`` and, with temporary
credentials, ``X-Amz-Security-Token`` with the upgrade request. A *presigned*
StreamUrl already carries its signature in the query string and is left alone.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit, urlunsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

__all__ = ["PRESIGN_PARAMETERS", "SIGNING_SERVICE", "is_presigned", "sign_upgrade"]

SIGNING_SERVICE = "ssmmessages"

#: Query parameters whose presence means the URL is presigned.
PRESIGN_PARAMETERS = frozenset(
    {
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-expires",
        "x-amz-signedheaders",
        "x-amz-signature",
        "x-amz-security-token",
    }
)

_SIGNED_HEADERS = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")


def is_presigned(url: str) -> bool:
    """True when ``url``'s query string holds any SigV4 presigning parameter."""
    query = urlsplit(url).query
    return any(key.lower() in PRESIGN_PARAMETERS for key, _ in parse_qsl(query, True))


def _http_url(url: str) -> str:
    """The same URL with an http(s) scheme, which is what SigV4 canonicalises."""
    parts = urlsplit(url)
    scheme = {"wss": "https", "ws": "http"}.get(parts.scheme.lower(), parts.scheme)
    return urlunsplit((scheme, *parts[1:]))


def sign_upgrade(url: str, credentials: ReadOnlyCredentials, region: str) -> dict[str, str]:
    """The headers that sign ``GET url`` (now) for ``ssmmessages`` in ``region``."""
    request = AWSRequest(method="GET", url=_http_url(url), data=b"")
    SigV4Auth(credentials, SIGNING_SERVICE, region).add_auth(request)
    return {name: request.headers[name] for name in _SIGNED_HEADERS if name in request.headers}
