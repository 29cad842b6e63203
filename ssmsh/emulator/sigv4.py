"""AWS Signature Version 4: parse and verify signed requests.

Used by the API server (services ``ssm`` and ``kms``) and by the message gateway for
the WebSocket upgrade (service ``ssmmessages``, ``GET`` with an empty body). Failures
raise :class:`SigV4Error` carrying the code and message AWS answers with.

What is checked, in order (only the last two need the secret, so without credentials
everything else still is):

1. the form: Authorization header or presigned query parameters, credential scope,
   signed headers (``host`` among them), 64 hex digits of signature, X-Amz-Date;
   a presigned ``X-Amz-Expires`` must be a whole number of seconds from 0 to 604,800
   (a week; S3's ``AuthorizationQueryParametersError`` and wording otherwise);
2. the scope: service and region;
3. the time: a header-signed request within 15 minutes of the server clock either way
   (``Signature expired`` / ``Signature not yet current``); a presigned one not dated
   more than 15 minutes ahead and not past X-Amz-Date + X-Amz-Expires;
4. the payload: an ``x-amz-content-sha256`` header must be the SHA-256 of the body
   actually received; ``UNSIGNED-PAYLOAD`` only with an empty body (the SSM, KMS and
   message-gateway APIs sign their payloads; S3's unsigned payloads do not apply);
5. the access key (``UnrecognizedClientException``) and the signature itself.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import hashlib
import hmac
import posixpath
import re
import time
from collections.abc import Collection, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from .config import Credentials, normalize_credentials
from .errors import ServiceError

__all__ = [
    "ALGORITHM",
    "SigV4Error",
    "SignatureInfo",
    "canonical_request",
    "signing_key",
    "string_to_sign",
    "verify_request",
]

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: How far X-Amz-Date may be from the server clock (AWS: 15 minutes).
MAX_SKEW = 15 * 60
#: The longest a presigned request may stay valid (AWS: one week).
MAX_EXPIRES = 7 * 24 * 60 * 60
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_INTEGER = re.compile(r"^-?[0-9]+$")
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service "
    "documentation for details."
)
_PRESIGN_KEYS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)


class SigV4Error(ServiceError):
    """A request whose signature is missing, malformed, unknown or wrong."""


@dataclasses.dataclass(frozen=True, slots=True)
class SignatureInfo:
    """What a well-formed signature says about its request."""

    access_key: str
    date: str
    region: str
    service: str
    amz_date: str
    signed_headers: tuple[str, ...]
    signature: str
    security_token: str | None
    presigned: bool
    #: True when the signature was checked against a known secret.
    verified: bool


HeadersLike = Mapping[str, str] | Iterable[tuple[str, str]] | Any


def _header_pairs(headers: HeadersLike) -> list[tuple[str, str]]:
    raw_items = getattr(headers, "raw_items", None)  # websockets.datastructures.Headers
    if callable(raw_items):
        return [(str(k), str(v)) for k, v in raw_items()]
    if isinstance(headers, Mapping):
        return [(str(k), str(v)) for k, v in headers.items()]
    return [(str(k), str(v)) for k, v in headers]


def _header_map(headers: HeadersLike) -> dict[str, str]:
    merged: dict[str, list[str]] = {}
    for name, value in _header_pairs(headers):
        merged.setdefault(name.lower(), []).append(" ".join(value.split()))
    return {name: ",".join(values) for name, values in merged.items()}


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The derived key: HMAC chain over date, region, service and ``aws4_request``."""
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _canonical_uri(path: str, double_encode: bool) -> str:
    path = path or "/"
    normalized = posixpath.normpath(path)
    if normalized.startswith("//"):
        normalized = "/" + normalized.lstrip("/")
    if path.endswith("/") and not normalized.endswith("/"):
        normalized += "/"
    if double_encode:
        return quote(normalized, safe="/~")
    return quote(unquote(normalized), safe="/~")


def _canonical_query(query: str, normalize: bool, drop: Collection[str] = ()) -> str:
    if not query:
        return ""
    pairs: list[tuple[str, str]] = []
    if normalize:
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key in drop:
                continue
            pairs.append((quote(key, safe="-_.~"), quote(value, safe="-_.~")))
    else:
        for part in query.split("&"):
            key, _, value = part.partition("=")
            if unquote(key) in drop:
                continue
            pairs.append((key, value))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def canonical_request(
    method: str,
    canonical_uri: str,
    canonical_query: str,
    headers: Mapping[str, str],
    signed_headers: Iterable[str],
    payload_hash: str,
) -> str:
    """The SigV4 canonical request; ``headers`` keys are lowercase, values trimmed."""
    names = list(signed_headers)
    lines = "".join(f"{name}:{headers.get(name, '')}\n" for name in names)
    return "\n".join(
        [method.upper(), canonical_uri, canonical_query, lines, ";".join(names), payload_hash]
    )


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def _signature(secret: str, info: SignatureInfo, canonical: str) -> str:
    scope = f"{info.date}/{info.region}/{info.service}/aws4_request"
    key = signing_key(secret, info.date, info.region, info.service)
    return hmac.new(
        key, string_to_sign(info.amz_date, scope, canonical).encode(), hashlib.sha256
    ).hexdigest()


def _incomplete(message: str) -> SigV4Error:
    return SigV4Error("IncompleteSignatureException", message)


def _parse_credential(credential: str) -> tuple[str, str, str, str]:
    parts = credential.split("/")
    if len(parts) != 5 or not all(parts) or parts[4] != "aws4_request":
        raise _incomplete(
            f"Credential should be scoped to a valid date, region, service and "
            f"terminator ('aws4_request'); got '{credential}'."
        )
    if not re.fullmatch(r"\d{8}", parts[1]):
        raise _incomplete(f"Invalid credential date '{parts[1]}'.")
    return parts[0], parts[1], parts[2], parts[3]


def _parse_authorization(value: str) -> tuple[str, list[str], str]:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise _incomplete(f"Unsupported AWS 'algorithm': '{algorithm}'.")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, val = item.strip().partition("=")
        if sep:
            fields[key.strip()] = val.strip()
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not fields.get(k)]
    if missing:
        raise _incomplete(
            " ".join(f"Authorization header requires '{k}' parameter." for k in missing)
            + f" Authorization={value[:200]}"
        )
    return fields["Credential"], fields["SignedHeaders"].split(";"), fields["Signature"]


def _query_error(message: str) -> SigV4Error:
    return SigV4Error("AuthorizationQueryParametersError", message)


def _parse_expires(value: str) -> int:
    """A presigned request's X-Amz-Expires: seconds, 0 to a week (S3's checks and wording)."""
    if not _INTEGER.match(value):
        raise _query_error("X-Amz-Expires should be a number")
    if value.startswith("-"):
        raise _query_error("X-Amz-Expires must be non-negative")
    if len(value) > 7 or int(value) > MAX_EXPIRES:
        raise _query_error(
            "X-Amz-Expires must be less than a week (in seconds); that is, the given "
            f"X-Amz-Expires must be less than {MAX_EXPIRES} seconds"
        )
    return int(value)


def _parse(
    method: str, target: str, headers: dict[str, str]
) -> tuple[SignatureInfo, str, str, int | None]:
    """Parse header or query authentication; returns info, path, query, expires."""
    split = urlsplit(target)
    query_params = dict(parse_qsl(split.query, keep_blank_values=True))
    authorization = headers.get("authorization")
    expires: int | None = None
    if authorization is not None:
        credential, signed, signature = _parse_authorization(authorization)
        amz_date = headers.get("x-amz-date")
        if amz_date is None:
            raise _incomplete(
                "Authorization header requires existence of either a 'X-Amz-Date' or a "
                "'Date' header."
            )
        token = headers.get("x-amz-security-token")
        presigned = False
    elif "X-Amz-Signature" in query_params or "X-Amz-Credential" in query_params:
        absent = [k for k in _PRESIGN_KEYS if not query_params.get(k)]
        if absent:
            raise _incomplete(
                "AWS query-string parameters must include "
                + ", ".join(f"'{k}'" for k in absent)
                + "."
            )
        if query_params["X-Amz-Algorithm"] != ALGORITHM:
            raise _incomplete(f"Unsupported AWS 'algorithm': '{query_params['X-Amz-Algorithm']}'.")
        credential = query_params["X-Amz-Credential"]
        signed = query_params["X-Amz-SignedHeaders"].split(";")
        signature = query_params["X-Amz-Signature"]
        amz_date = query_params["X-Amz-Date"]
        token = query_params.get("X-Amz-Security-Token")
        presigned = True
        expires = _parse_expires(query_params.get("X-Amz-Expires", "900"))
    else:
        raise SigV4Error("MissingAuthenticationTokenException", "Missing Authentication Token")
    access_key, date, region, service = _parse_credential(credential)
    if not _HEX64.match(signature):
        raise _incomplete(f"Invalid signature '{signature[:80]}': expected 64 hex digits.")
    if "host" not in signed:
        raise _incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
        )
    if any(not h or h != h.lower() for h in signed):
        raise _incomplete(f"Invalid SignedHeaders '{';'.join(signed)}'.")
    try:
        dt.datetime.strptime(amz_date, _AMZ_DATE)
    except ValueError:
        raise _incomplete(f"Invalid X-Amz-Date '{amz_date[:40]}'.") from None
    if amz_date[:8] != date:
        raise SigV4Error(
            "InvalidSignatureException",
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{date}' != '{amz_date[:8]}', from '{amz_date}'.",
        )
    info = SignatureInfo(
        access_key=access_key,
        date=date,
        region=region,
        service=service,
        amz_date=amz_date,
        signed_headers=tuple(signed),
        signature=signature,
        security_token=token,
        presigned=presigned,
        verified=False,
    )
    return info, split.path, split.query, expires


def verify_request(
    method: str,
    target: str,
    headers: HeadersLike,
    body: bytes,
    credentials: Credentials | None,
    *,
    service: str | Collection[str] | None = None,
    region: str | None = None,
    now: float | None = None,
) -> SignatureInfo:
    """Check a request's SigV4 signature (Authorization header or presigned query).

    ``target`` is the request target (path and query). The signature must always be
    well formed, scoped to ``service`` (and ``region`` when given), current (``now``,
    default the clock) and cover the body actually sent (see the module docstring).
    With ``credentials`` (one pair, several pairs or a mapping) it is verified too:
    an unknown access key gives ``UnrecognizedClientException``, a wrong signature
    ``InvalidSignatureException``. Raises :class:`SigV4Error`.
    """
    header_map = _header_map(headers)
    info, path, query, expires = _parse(method, target, header_map)
    if service is not None:
        allowed = {service} if isinstance(service, str) else set(service)
        if info.service not in allowed:
            wanted = service if isinstance(service, str) else "/".join(sorted(allowed))
            raise SigV4Error(
                "InvalidSignatureException",
                f"Credential should be scoped to correct service: '{wanted}'. ",
            )
    if region is not None and info.region != region:
        raise SigV4Error(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region, not '{info.region}'. ",
        )
    current = time.time() if now is None else now
    _check_time(info, expires, current)
    payloads, drop = _payloads(info, header_map, body)
    secrets_by_key = normalize_credentials(credentials)
    if secrets_by_key is None:
        return info
    secret = secrets_by_key.get(info.access_key)
    if secret is None:
        raise SigV4Error(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    for payload in dict.fromkeys(payloads):
        for double in (True, False):
            uri = _canonical_uri(path, double)
            for normalize in (False, True):
                canonical = canonical_request(
                    method,
                    uri,
                    _canonical_query(query, normalize, drop),
                    header_map,
                    info.signed_headers,
                    payload,
                )
                if hmac.compare_digest(_signature(secret, info, canonical), info.signature):
                    return dataclasses.replace(info, verified=True)
    raise SigV4Error("InvalidSignatureException", _MISMATCH)


def _stamp(seconds: float) -> str:
    return time.strftime(_AMZ_DATE, time.gmtime(seconds))


def _check_time(info: SignatureInfo, expires: int | None, current: float) -> None:
    """Within 15 minutes of ``current``, or (presigned) not expired and not from the future."""
    signed_at = float(calendar.timegm(time.strptime(info.amz_date, _AMZ_DATE)))
    if signed_at > current + MAX_SKEW:
        raise SigV4Error(
            "InvalidSignatureException",
            f"Signature not yet current: {info.amz_date} is still later than "
            f"{_stamp(current + MAX_SKEW)} ({_stamp(current)} + 15 min.)",
        )
    if info.presigned:
        if expires is not None and current > signed_at + expires:
            raise SigV4Error(
                "InvalidSignatureException",
                f"Signature expired: {info.amz_date} is now earlier than "
                f"{_stamp(current - expires)} ({_stamp(current)} - {expires} sec.); "
                "the presigned request has expired.",
            )
    elif signed_at < current - MAX_SKEW:
        raise SigV4Error(
            "InvalidSignatureException",
            f"Signature expired: {info.amz_date} is now earlier than "
            f"{_stamp(current - MAX_SKEW)} ({_stamp(current)} - 15 min.)",
        )


def _payloads(
    info: SignatureInfo, headers: Mapping[str, str], body: bytes
) -> tuple[list[str], tuple[str, ...]]:
    """The payload hashes the signature may cover, and the query keys it leaves out."""
    drop: tuple[str, ...] = ("X-Amz-Signature",) if info.presigned else ()
    body_hash = hashlib.sha256(body).hexdigest()
    claimed = headers.get("x-amz-content-sha256")
    if claimed is None:
        # A presigned URL carries no hash: S3-style signers use UNSIGNED-PAYLOAD, which
        # says nothing about a body, so it is accepted only when there is none.
        unsigned = [UNSIGNED_PAYLOAD] if info.presigned and not body else []
        return [body_hash, *unsigned], drop
    if claimed == UNSIGNED_PAYLOAD:
        if body:
            raise SigV4Error(
                "InvalidSignatureException",
                "UNSIGNED-PAYLOAD is not accepted for a request with a body: this API signs "
                "the payload's SHA-256.",
            )
        return [claimed], drop
    if not _HEX64.match(claimed.lower()):
        raise SigV4Error(
            "InvalidSignatureException",
            f"Unsupported x-amz-content-sha256 value '{claimed[:80]}'.",
        )
    if claimed.lower() != body_hash:
        raise SigV4Error(
            "InvalidSignatureException",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
    return [claimed], drop
