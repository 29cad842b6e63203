"""Where AWS calls go and as whom: region, profile, endpoint, credentials.

:class:`AwsSettings` holds what the command line said; the usual AWS resolution
does the rest (environment, config files, SSO, instance roles,
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_SSM`` ...). Every call to
:meth:`AwsSettings.new_session` resolves credentials afresh, which is what a
reconnect hours into a session needs.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import NoRegionError
from botocore.loaders import JSONFileLoader, Loader

from .._version import __version__
from .errors import map_aws_errors

__all__ = ["AwsSettings", "StaticCredentials"]


_loader_lock = threading.Lock()
_loader: Any = None


#: Session variables that make a botocore session ignore the user's AWS profile and files.
_ISOLATED_VARS = {
    "profile": (None, None, None, None),
    "config_file": (None, None, os.devnull, None),
    "credentials_file": (None, None, os.devnull, None),
}


#: Services whose endpoint data botocore may need: ours, and those its credential
#: providers call (AssumeRole, web identity, SSO).
ENDPOINT_SERVICES = frozenset({"ssm", "kms", "sts", "sso", "sso-oidc"})


class _TrimmingFileLoader(JSONFileLoader):
    """botocore's JSON loader, keeping only the endpoints of :data:`ENDPOINT_SERVICES`.

    ``endpoints.json`` describes every service in every partition (1.3 MB of
    JSON, ~7 MB once parsed) and a client keeps it for life; ssmsh's clients use
    a handful of its entries. The partitions themselves (regions, DNS suffixes,
    defaults) are kept whole, so these services resolve exactly as with the full
    file.
    """

    def load_file(self, file_path: str) -> Any:
        data = super().load_file(file_path)
        if isinstance(data, dict) and os.path.basename(file_path) == "endpoints":
            _trim_endpoints(data)
        return data


def _trim_endpoints(data: dict[str, Any]) -> None:
    for partition in data.get("partitions", ()):
        services = partition.get("services") if isinstance(partition, dict) else None
        if isinstance(services, dict):
            for name in [n for n in services if n not in ENDPOINT_SERVICES]:
                del services[name]


def _new_loader(session: botocore.session.Session) -> Loader:
    """The loader botocore would make (honouring AWS_DATA_PATH), with trimmed data."""
    paths = session.get_config_variable("data_path")
    extra = None
    if paths:
        extra = [os.path.expanduser(os.path.expandvars(p)) for p in paths.split(os.pathsep)]
    return Loader(extra_search_paths=extra, file_loader=_TrimmingFileLoader())


def _botocore_session(isolated: bool = False) -> botocore.session.Session:
    """A new botocore session (credentials resolved afresh) sharing one model loader.

    Loading the service models is most of the cost of a new session (~100 ms);
    the models never change, the credentials may.
    """
    global _loader
    session = botocore.session.Session(session_vars=_ISOLATED_VARS if isolated else None)
    with _loader_lock:
        if _loader is None:
            _loader = _new_loader(session)
        session.register_component("data_loader", _loader)
    return session


@dataclasses.dataclass(frozen=True, slots=True)
class StaticCredentials:
    """Explicit credentials (used for the local emulator); never printed."""

    access_key: str
    secret_key: str = dataclasses.field(repr=False)
    session_token: str | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass(frozen=True, slots=True)
class AwsSettings:
    """The AWS options of the command line.

    ``endpoint_url`` applies to both SSM and KMS (the local emulator serves
    both); leave it unset and use ``AWS_ENDPOINT_URL_SSM`` / ``AWS_ENDPOINT_URL_KMS``
    to point them at different places. ``ssm_endpoint_url`` / ``kms_endpoint_url``
    set one service's endpoint alone; the other is left to ``endpoint_url`` or boto3.
    """

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    ssm_endpoint_url: str | None = None
    kms_endpoint_url: str | None = None
    credentials: StaticCredentials | None = None
    #: Ignore AWS_PROFILE and the AWS config and credentials files (for the local emulator).
    isolated: bool = False
    #: Seconds to wait for an AWS API connection / response. The session calls
    #: answer in well under a second; an endpoint that accepts and never answers
    #: should fail in well under a minute (read_timeout x max_attempts, plus backoff).
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    #: Attempts per API call: one retry.
    max_attempts: int = 2
    #: botocore's retry mode: "standard", or "adaptive" (client-side rate limiting
    #: after throttling, for commands that poll, such as ``ssmsh run``).
    retry_mode: str = "standard"  # botocore's _RetryDict wants a Literal

    def new_session(self) -> botocore.session.Session:
        """A new botocore session: credentials are resolved again by its clients.

        botocore directly, as boto3.Session would set it up for clients: boto3
        itself (resources, S3 transfers) is not needed and costs ~2 MB.
        """
        with map_aws_errors("loading the AWS configuration"):
            session = _botocore_session(self.isolated)
            if self.profile:
                session.set_config_variable("profile", self.profile)
            if self.credentials is not None:
                session.set_credentials(
                    self.credentials.access_key,
                    self.credentials.secret_key,
                    self.credentials.session_token,
                )
            if self.region:
                session.set_config_variable("region", self.region)
            if not session.get_config_variable("region"):
                # botocore would go ahead with an endpoint URL and sign for region "".
                raise NoRegionError()
            return session

    def client_config(self) -> Config:
        return Config(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            retries={"mode": self.retry_mode, "max_attempts": self.max_attempts},  # type: ignore[arg-type]
            user_agent_extra=f"ssmsh/{__version__}",
        )

    def client(self, session: botocore.session.Session, service: str) -> Any:
        """A botocore client for ``service`` ("ssm" or "kms") honouring these settings."""
        kwargs: dict[str, Any] = {"config": self.client_config()}
        only = {"ssm": self.ssm_endpoint_url, "kms": self.kms_endpoint_url}.get(service)
        if only or self.endpoint_url:
            kwargs["endpoint_url"] = only or self.endpoint_url
        with map_aws_errors(f"creating the {service.upper()} client"):
            return session.create_client(service, **kwargs)
