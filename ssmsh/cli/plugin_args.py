"""The AWS CLI's side of ``session-manager-plugin``: its arguments, and the endpoints.

``aws ssm start-session`` calls StartSession itself and then runs a program
named ``session-manager-plugin`` with the result (protocol notes §11.1)::

    session-manager-plugin RESPONSE REGION StartSession PROFILE REQUEST ENDPOINT

* RESPONSE: the StartSession response as JSON (SessionId, StreamUrl,
  TokenValue; key names matched case-insensitively), or the name of an
  environment variable holding it (a name starting with
  ``AWS_SSM_START_SESSION_RESPONSE``, which the AWS CLI uses with plugins newer
  than 1.2.497.0). The variable is removed from this process as soon as it is
  read, so no child inherits the token;
* REGION, PROFILE: as given to the AWS CLI (empty: the usual AWS defaults);
* REQUEST: the StartSession request as JSON; only ``Target`` is used (it is
  part of the KMS encryption context). The legacy four-argument form
  (RESPONSE REGION StartSession) has no REQUEST, and so no KMS encryption;
* ENDPOINT: the SSM endpoint, for ResumeSession and TerminateSession.

KMS goes where boto3 resolves it (``AWS_ENDPOINT_URL_KMS``, ``AWS_ENDPOINT_URL``,
the profile's ``services`` section), except that a non-AWS ENDPOINT (a local
emulator, LocalStack) serves KMS too unless KMS is configured to go elsewhere:
see :func:`kms_endpoint`.

Nothing here prints: bad arguments raise :class:`~ssmsh.exceptions.UsageError`
with a one-line reason that never repeats the response (it holds a token).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import urllib.parse
from collections.abc import MutableMapping, Sequence
from typing import Any

from ..aws import AwsSettings
from ..channel import SessionInfo, StreamCredentials
from ..exceptions import UsageError

__all__ = [
    "INSTALLED_MESSAGE",
    "PLUGIN_NAME",
    "RESPONSE_ENV_PREFIX",
    "USAGE",
    "PluginRequest",
    "invoked_as_plugin",
    "is_aws_endpoint",
    "kms_endpoint",
    "parse_plugin_argv",
    "parse_request",
    "parse_response",
    "read_response_argument",
]

logger = logging.getLogger(__name__)

#: The program name the AWS CLI runs.
PLUGIN_NAME = "session-manager-plugin"
#: argv[1] starting with this names an environment variable holding the response.
RESPONSE_ENV_PREFIX = "AWS_SSM_START_SESSION_RESPONSE"
START_SESSION = "StartSession"

#: What running the plugin without arguments prints (install checks look for it).
INSTALLED_MESSAGE = (
    "\nThe Session Manager plugin was installed successfully. "
    "Use the AWS CLI to start a session.\n\n"
)
USAGE = f"""\
usage: {PLUGIN_NAME} RESPONSE REGION StartSession [PROFILE [REQUEST [ENDPOINT]]]
       {PLUGIN_NAME} --version

ssmsh acting as the AWS CLI's Session Manager plugin: `aws ssm start-session`
runs it after StartSession. RESPONSE is the StartSession response (JSON), or the
name of an environment variable holding it; REQUEST is the StartSession request
(JSON; its Target is used); ENDPOINT is the SSM endpoint the AWS CLI used.

To use it, put a symlink named {PLUGIN_NAME} to ssmsh in a directory that
comes before the official plugin's on PATH:
  ln -s "$(command -v ssmsh)" ~/bin/{PLUGIN_NAME}
(`ssmsh plugin ARGS` is the same without a symlink.)

Environment: SSMSH_DEBUG=1 (the debug log on stderr), SSMSH_LOG_FILE=PATH (the
debug log in PATH), SSMSH_QUIET=1 (no status lines), SSMSH_ESCAPE=CHAR (the
shell escape character: ~ by default, ^X for Ctrl-X, none).

More: ssmsh help aws-cli.
"""

#: Host name suffixes of AWS endpoints (all partitions).
AWS_DOMAINS = (
    "amazonaws.com",
    "amazonaws.com.cn",
    "api.aws",
    "api.amazonwebservices.com.cn",
    "c2s.ic.gov",
    "sc2s.sgov.gov",
    "cloud.adc-e.uk",
    "csp.hci.ic.gov",
    "amazonaws.eu",
)


@dataclasses.dataclass(frozen=True, slots=True)
class PluginRequest:
    """What the AWS CLI passed, parsed."""

    session: SessionInfo
    region: str | None = None
    profile: str | None = None
    #: The SSM endpoint (argv[6]); None: botocore's resolution.
    endpoint_url: str | None = None
    #: DocumentName of the StartSession request, when it named one.
    document_name: str | None = None
    #: The legacy four-argument form (no REQUEST): the target is unknown.
    legacy: bool = False


# --------------------------------------------------------------------- argv


def invoked_as_plugin(argv0: str) -> bool:
    """True when the program was run as ``session-manager-plugin`` (e.g. a symlink)."""
    name = os.path.basename(argv0)
    if name.lower().endswith(".exe"):
        name = name[:-4]
    return name == PLUGIN_NAME


def _shown(arg: str) -> str:
    """An argument for an error message; never echo what may be a response with a token."""
    if "{" in arg or "Token" in arg or len(arg) > 60:
        return "(a JSON document)" if arg.lstrip().startswith("{") else "(a long argument)"
    return repr(arg)


def read_response_argument(arg: str, environ: MutableMapping[str, str]) -> str:
    """argv[1] itself, or the environment variable it names (removed once read)."""
    if not arg.startswith(RESPONSE_ENV_PREFIX):
        return arg
    value = environ.pop(arg, None)  # os.environ.pop also unsetenv()s it
    if value is None:
        raise UsageError(f"the environment variable {arg} (the StartSession response) is not set")
    return value


def _field(document: dict[str, Any], name: str) -> str:
    """A string field, its name matched case-insensitively (as Go's decoder does)."""
    for key, value in document.items():
        if isinstance(key, str) and key.lower() == name.lower():
            if isinstance(value, str) and value:
                return value
            break
    raise UsageError(f"the StartSession response has no {name}")


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"cannot read {what}: not JSON ({exc.msg} at char {exc.pos})") from None
    except RecursionError:
        raise UsageError(f"cannot read {what}: nested too deeply") from None
    if not isinstance(document, dict):
        raise UsageError(f"cannot read {what}: not a JSON object")
    return document


def parse_response(text: str) -> tuple[str, StreamCredentials]:
    """(SessionId, stream credentials) from the StartSession response JSON."""
    document = _json_object(text, "the StartSession response (argument 1)")
    session_id = _field(document, "SessionId")
    stream = StreamCredentials(_field(document, "StreamUrl"), _field(document, "TokenValue"))
    return session_id, stream


def parse_request(text: str) -> tuple[str, str | None]:
    """(Target, DocumentName) from the StartSession request JSON."""
    document = _json_object(text, "the StartSession request (argument 5)")
    target = document.get("Target")
    if not isinstance(target, str) or not target.strip():
        raise UsageError("the StartSession request (argument 5) has no Target")
    name = document.get("DocumentName")
    return target.strip(), name if isinstance(name, str) and name else None


def parse_plugin_argv(
    argv: Sequence[str], environ: MutableMapping[str, str] | None = None
) -> PluginRequest:
    """Parse ``RESPONSE REGION OPERATION [PROFILE [REQUEST [ENDPOINT]]]`` (argv[1:]).

    The response's environment variable is removed from ``environ`` (default
    ``os.environ``) before anything else can fail. Raises UsageError.
    """
    environ = os.environ if environ is None else environ
    if not argv:
        raise UsageError("no arguments")
    response = read_response_argument(argv[0], environ)
    if len(argv) < 3:
        raise UsageError(
            f"unknown operation {_shown(argv[0])}: {PLUGIN_NAME} is run by "
            f"`aws ssm start-session` ({PLUGIN_NAME} --version prints the version)"
        )
    if argv[2] != START_SESSION:
        raise UsageError(f"Invalid Operation {_shown(argv[2])}: only {START_SESSION} is supported")
    if len(argv) > 6:
        logger.debug("ignoring %d extra arguments", len(argv) - 6)
    session_id, stream = parse_response(response)
    target, document = ("", None) if len(argv) < 5 else parse_request(argv[4])
    return PluginRequest(
        session=SessionInfo(session_id, target, stream),
        region=argv[1] or None,
        profile=(argv[3] or None) if len(argv) > 3 else None,
        endpoint_url=(argv[5] or None) if len(argv) > 5 else None,
        document_name=document,
        legacy=len(argv) == 3,
    )


# --------------------------------------------------------------------- AWS settings


def is_aws_endpoint(url: str) -> bool:
    """True for an endpoint of AWS itself (any partition, VPC endpoints included)."""
    host = (urllib.parse.urlsplit(url if "//" in url else f"//{url}").hostname or "").lower()
    return any(host == d or host.endswith("." + d) for d in AWS_DOMAINS)


def kms_endpoint(settings: AwsSettings, ssm_endpoint: str | None) -> str | None:
    """The KMS endpoint to use alongside ``ssm_endpoint``; None: botocore's resolution.

    The official plugin always uses the region's KMS endpoint. We let boto3
    resolve it (environment, profile), and when that gives plain AWS while SSM
    itself is not AWS (an emulator, LocalStack...), KMS follows SSM: AWS's KMS
    could not make keys for a session there. Blocking (reads the AWS config).
    """
    if not ssm_endpoint or is_aws_endpoint(ssm_endpoint):
        return None
    resolved = str(settings.client(settings.new_session(), "kms").meta.endpoint_url)
    if is_aws_endpoint(resolved):
        logger.debug("KMS follows the non-AWS SSM endpoint")
        return ssm_endpoint
    return None
