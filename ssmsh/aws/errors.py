"""botocore exceptions mapped, once, to :class:`~ssmsh.exceptions.AwsError`.

Everything that calls botocore does so inside :func:`map_aws_errors`, so the rest
of ssmsh only ever sees ``AwsError(message, code)`` with a one-line message a
user can act on. Messages never contain credentials or tokens.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator

from botocore import exceptions as boto

from ..exceptions import AwsError

__all__ = [
    "EVERY_CALL_CODES",
    "CredentialSource",
    "affects_every_call",
    "aws_error",
    "map_aws_errors",
]


@dataclasses.dataclass(frozen=True, slots=True)
class CredentialSource:
    """Where the credentials of a failed call came from, for naming the fix."""

    #: The AWS profile in use (None: the default profile or none).
    profile: str | None = None
    #: botocore's name for the credential provider ("sso", "custom-process", "assume-role"...).
    method: str | None = None


#: botocore's RuntimeError when refreshed credentials are already expired (it has no
#: exception class of its own for this).
_STILL_EXPIRED = "refreshed credentials are still expired"

#: Extra advice appended to service errors, by error code.
_ADVICE = {
    "ExpiredTokenException": "the AWS credentials have expired; refresh them "
    "(for example `aws sso login`)",
    "ExpiredToken": "the AWS credentials have expired; refresh them (for example `aws sso login`)",
    "UnrecognizedClientException": "the AWS credentials are not valid",
    "InvalidClientTokenId": "the AWS credentials are not valid",
    "InvalidSignatureException": "the request signature was rejected (check the secret key "
    "and the clock)",
    "SignatureDoesNotMatch": "the request signature was rejected (check the secret key "
    "and the clock)",
    "TargetNotConnected": "the target is not connected to Session Manager "
    "(is the SSM agent running and online?)",
    "InvalidDocument": "the document does not exist or cannot be used for sessions",
    "ThrottlingException": "AWS is throttling requests; try again in a moment",
}


#: Codes of failures that are not about one request's arguments: the endpoint,
#: the credentials, the configuration, throttling. The next call would fail alike.
EVERY_CALL_CODES = frozenset(
    {
        "",  # a failure outside botocore's own (a malformed endpoint URL...)
        "EndpointConnectionError",
        "Timeout",
        "NoCredentials",
        "NoRegion",
        "NoProfile",
        "SSOToken",
        "Credentials",
        "ExpiredCredentials",
        "ExpiredTokenException",
        "ExpiredToken",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "ThrottlingException",
    }
)


def affects_every_call(error: AwsError) -> bool:
    """True when ``error`` would recur for any other request (see :data:`EVERY_CALL_CODES`),
    so that a command working through several ids should stop rather than repeat it."""
    return error.code in EVERY_CALL_CODES


def _describe(code: str, message: str, operation: str) -> str:
    advice = _ADVICE.get(code)
    if code in ("AccessDeniedException", "AccessDenied"):
        return f"access denied by AWS for {operation}: {message}".rstrip(": ")
    if advice:
        return f"{operation}: {advice} ({code}: {message})" if message else f"{operation}: {advice}"
    return f"{operation} failed: {code}: {message}" if message else f"{operation} failed: {code}"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _sso_login(source: CredentialSource | None) -> str:
    """The command that renews the SSO session of ``source``'s profile."""
    if source is not None and source.profile:
        return f"aws sso login --profile {source.profile}"
    return "aws sso login"


def _expired_after_refresh(source: CredentialSource | None) -> AwsError:
    """botocore refreshed the credentials and got expired ones again."""
    method = source.method if source is not None else None
    profile = f" of profile {source.profile!r}" if source is not None and source.profile else ""
    if method == "custom-process":
        text = (
            f"the credential_process{profile} returned expired credentials "
            "(its Expiration is in the past); renew what it reads, or fix the program"
        )
    elif method in ("sso", "sso-legacy"):
        text = f"the AWS SSO credentials have expired; run `{_sso_login(source)}`"
    else:
        origin = f" (from {method}{profile})" if method else profile
        text = f"the AWS credentials{origin} are expired, even after a refresh; renew them"
    return AwsError(text, "ExpiredCredentials")


def aws_error(
    exc: BaseException, operation: str = "AWS request", source: CredentialSource | None = None
) -> AwsError:
    """The :class:`AwsError` for a botocore exception (or any other exception of a call).

    ``source`` says where the credentials came from, so that a credential failure can
    name its fix (``aws sso login --profile NAME``).
    """
    if isinstance(exc, AwsError):
        return exc
    if isinstance(exc, boto.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        message = _one_line(str(error.get("Message") or ""))
        return AwsError(_describe(code, message, operation), code)
    if isinstance(exc, boto.NoCredentialsError):
        return AwsError(
            "no AWS credentials found (set AWS_PROFILE or use --profile, "
            "or run `aws configure` / `aws sso login`)",
            "NoCredentials",
        )
    if isinstance(exc, boto.NoRegionError):
        return AwsError(
            "no AWS region configured (use --region or set AWS_DEFAULT_REGION)", "NoRegion"
        )
    if isinstance(exc, boto.ProfileNotFound):
        return AwsError(f"AWS profile {exc.kwargs.get('profile', '')!r} not found", "NoProfile")
    if isinstance(exc, (boto.SSOTokenLoadError, boto.UnauthorizedSSOTokenError)) or (
        isinstance(exc, boto.TokenRetrievalError) and exc.kwargs.get("provider") == "sso"
    ):
        return AwsError(
            f"the AWS SSO session has expired or is missing; run `{_sso_login(source)}`",
            "SSOToken",
        )
    if isinstance(exc, RuntimeError) and _STILL_EXPIRED in str(exc):
        return _expired_after_refresh(source)
    if isinstance(exc, boto.TokenRetrievalError | boto.CredentialRetrievalError):
        return AwsError(f"could not obtain AWS credentials: {_one_line(str(exc))}", "Credentials")
    if isinstance(exc, boto.EndpointConnectionError):
        url = exc.kwargs.get("endpoint_url", "")
        return AwsError(
            f"cannot reach the AWS endpoint {url} (network down or wrong --endpoint-url?)",
            "EndpointConnectionError",
        )
    if isinstance(exc, boto.ConnectTimeoutError | boto.ReadTimeoutError):
        url = exc.kwargs.get("endpoint_url", "")
        return AwsError(f"timed out talking to the AWS endpoint {url}", "Timeout")
    if isinstance(exc, boto.ParamValidationError):
        return AwsError(f"invalid request for {operation}: {_one_line(str(exc))}", "Validation")
    if isinstance(exc, boto.BotoCoreError):
        return AwsError(f"{operation} failed: {_one_line(str(exc))}", type(exc).__name__)
    return AwsError(f"{operation} failed: {_one_line(str(exc)) or type(exc).__name__}", "")


@contextlib.contextmanager
def map_aws_errors(
    operation: str, source: Callable[[], CredentialSource] | None = None
) -> Iterator[None]:
    """Re-raise any botocore failure inside the block as :class:`AwsError`.

    ``source`` is asked, only when something failed, where the credentials came from.
    """

    def mapped(exc: BaseException) -> AwsError:
        found = None
        if source is not None:
            try:
                found = source()
            except Exception:  # naming the fix must not hide the failure
                found = None
        return aws_error(exc, operation, found)

    try:
        yield
    except AwsError:
        raise
    except (boto.BotoCoreError, boto.ClientError) as exc:
        raise mapped(exc) from None
    except (OSError, ValueError) as exc:  # e.g. a malformed endpoint URL or config file
        raise mapped(exc) from None
    except RuntimeError as exc:
        if _STILL_EXPIRED not in str(exc):
            raise
        raise mapped(exc) from None
