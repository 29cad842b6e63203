"""The operation registry: what each service area module serves, and how to reach it.

A service area (``sessions``, ``instances``, ``documents``, ``kms``) is a class built from
an :class:`ApiContext` whose ``register`` method adds its operations to a
:class:`Registry`. Each entry knows its botocore input shape, so the dispatcher validates
every request the same way before the operation sees it.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Awaitable, Callable, Collection
from typing import Any
from urllib.parse import urlsplit

import botocore.loaders
from botocore.model import ServiceModel, Shape

from ..config import DEFAULT_PRINCIPAL, EmulatorConfig, is_loopback
from ..httpserver import HttpRequest
from ..state import EmulatorState
from .awsjson import Body
from .validation import ModelValidator

__all__ = [
    "ApiContext",
    "Operation",
    "OperationSpec",
    "Registry",
    "model_check",
    "service_model",
]

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")

#: An operation: the validated JSON body and the HTTP request in, the JSON answer out.
Operation = Callable[[Body, HttpRequest], Awaitable[Body]]


@functools.cache
def service_model(service: str) -> ServiceModel:
    """botocore's model of ``ssm`` or ``kms`` (loaded once).

    Read with botocore's data loader alone, not a botocore Session: a session reads the
    user's AWS config files, and the emulator must work whatever they hold (a broken
    ``~/.aws/config`` must not stop ``ssmsh shell --local``).
    """
    data = botocore.loaders.Loader().load_service_model(service, "service-2")
    return ServiceModel(data, service_name=service)


def model_check(operation: str, service: str = "ssm") -> Callable[[dict[str, Any]], None]:
    """A function that validates a request body of ``operation``, for requests made inside
    the emulator (an Automation step's SendCommand) that the dispatcher never saw."""
    shape = service_model(service).operation_model(operation).input_shape
    assert shape is not None, f"{service} {operation} has no input shape"

    def check(body: dict[str, Any]) -> None:
        ModelValidator().validate(shape, body)

    return check


def snake(name: str) -> str:
    """``StartSession`` -> ``start_session``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclasses.dataclass(frozen=True, slots=True)
class OperationSpec:
    """One operation as the dispatcher sees it."""

    service: str
    name: str
    handler: Operation
    input_shape: Shape
    #: Member paths whose constraints the operation checks itself (see validation.py).
    unchecked: tuple[str, ...]

    @property
    def target(self) -> str:
        """The X-Amz-Target value, e.g. ``AmazonSSM.StartSession``."""
        return f"{service_model(self.service).metadata['targetPrefix']}.{self.name}"

    @property
    def error_codes(self) -> frozenset[str]:
        """The error codes the model lists for this operation."""
        model = service_model(self.service).operation_model(self.name)
        return frozenset(shape.name for shape in model.error_shapes)


class Registry:
    """Operations by X-Amz-Target."""

    def __init__(self) -> None:
        self.specs: dict[str, OperationSpec] = {}

    def add(
        self, service: str, name: str, handler: Operation, *, unchecked: Collection[str] = ()
    ) -> None:
        shape = service_model(service).operation_model(name).input_shape
        assert shape is not None, f"{service} {name} has no input shape"
        spec = OperationSpec(service, name, handler, shape, tuple(unchecked))
        self.specs[spec.target] = spec

    @property
    def signing_names(self) -> dict[str, str]:
        """Signing service name by target prefix: ``{"AmazonSSM": "ssm", ...}``."""
        result: dict[str, str] = {}
        for spec in self.specs.values():
            model = service_model(spec.service)
            result[model.metadata["targetPrefix"]] = model.signing_name
        return result


@dataclasses.dataclass(slots=True)
class ApiContext:
    """What every service area works with."""

    state: EmulatorState
    config: EmulatorConfig

    def caller(self, request: HttpRequest) -> str:
        """The IAM principal behind the request's access key (``EmulatorConfig.identities``)."""
        match = _CREDENTIAL.search(request.header("authorization") or "")
        key = match.group(1) if match else None
        return self.config.identities.get(key, DEFAULT_PRINCIPAL) if key else DEFAULT_PRINCIPAL

    def base_url(self, request: HttpRequest) -> str | None:
        """The gateway URL as the client can reach it, for a wildcard bind."""
        base = self.state.stream_base_url
        host = self.config.host
        if not base or is_loopback(host) or host not in ("0.0.0.0", "::"):
            return None
        host_header = request.header("host") or ""
        hostname = urlsplit(f"//{host_header}").hostname
        split = urlsplit(base)
        if not hostname or split.port is None:
            return None
        netloc = f"[{hostname}]" if ":" in hostname else hostname
        return f"{split.scheme}://{netloc}:{split.port}"
