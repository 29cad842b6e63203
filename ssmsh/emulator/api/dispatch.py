"""The API dispatcher: an :class:`HttpServer` handler for SSM and KMS over awsJson1.1.

``POST /`` with ``X-Amz-Target: AmazonSSM.<Op>`` or ``TrentService.<Op>`` and a JSON
body. Each request is verified (SigV4), routed to the service area that registered the
operation, validated against botocore's model, and answered with JSON; errors are
``{"__type": code, "message": text}`` with status 400 (client) or 500 (internal), which
botocore turns into ``ClientError`` with the same code.

A body that is not JSON, or nests deeper than :data:`MAX_JSON_DEPTH`, is a
``SerializationException`` (awsJson1.1's code for a body it cannot read).
:attr:`ApiHandler.calls` counts each known operation; every other target shares the
key ``"?"``, so a peer inventing targets cannot grow it.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

from ..associations import AssociationEngine
from ..automation import AutomationEngine
from ..commands import CommandEngine, CommandSender
from ..config import EmulatorConfig
from ..errors import ServiceError
from ..httpserver import HttpRequest, HttpResponse, LogThrottle
from ..sigv4 import verify_request
from ..state import EmulatorState
from .associations import AssociationsApi
from .automation import AutomationApi
from .awsjson import Body
from .commands import CommandsApi
from .documents import DocumentsApi
from .instance_connect import InstanceConnectApi
from .instances import InstancesApi
from .kms import KmsApi
from .registry import ApiContext, Operation, Registry, model_check, snake
from .sessions import SessionsApi
from .validation import ModelValidator

__all__ = ["CONTENT_TYPE", "MAX_JSON_DEPTH", "ApiHandler", "parse_json"]

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-amz-json-1.1"
#: Deepest nesting of arrays and objects accepted in a request body. SSM's and KMS's
#: requests nest a few levels (a map of lists at most); the parser's recursion is
#: what this keeps away from.
MAX_JSON_DEPTH = 64
#: The key of :attr:`ApiHandler.calls` for every unknown or missing X-Amz-Target.
UNKNOWN_TARGET = "?"
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
#: Everything but brackets, deleted; then braces become brackets (depth is all we need).
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_BRACKETS_ONLY = bytes.maketrans(b"{}", b"[]")


def _too_deep(raw: bytes, limit: int) -> bool:
    """True if arrays and objects nest deeper than ``limit``, without recursing."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # the common case, at C speed
    brackets = _JSON_STRING.sub(b"", raw).translate(_BRACKETS_ONLY, _NOT_BRACKETS)
    if b"[" * (limit + 1) in brackets:
        return True  # the usual attack, at C speed too
    depth = 0
    for char in brackets:
        if char == 0x5B:  # "["
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def parse_json(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """A request body as JSON; SerializationException if malformed or too deep."""
    if _too_deep(raw, max_depth):
        raise ServiceError(
            "SerializationException",
            f"The request body nests arrays and objects deeper than {max_depth} levels.",
        )
    try:
        return json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ServiceError(
            "SerializationException", "The request body is not valid JSON."
        ) from None


#: Codes any AWS operation may answer with besides the ones its model lists.
_COMMON_ERRORS = frozenset(
    {
        "ValidationException",
        "SerializationException",
        "AccessDeniedException",
        "InternalServerError",
        "ThrottlingException",
    }
)


class ApiHandler:
    """Answers SSM and KMS API requests from the shared :class:`EmulatorState`.

    The operations live in the service area modules; they are also reachable as
    attributes by their snake_case names (``handler.start_session``).
    """

    def __init__(
        self,
        state: EmulatorState,
        config: EmulatorConfig,
        commands: CommandEngine | None = None,
    ) -> None:
        self.state = state
        self.config = config
        #: Run Command's scheduler (the emulator passes its own, which it closes).
        self.commands = (
            commands
            if commands is not None
            else CommandEngine(state.targets, region=config.region, clock=state.clock.now)
        )
        #: SendCommand requests, from the API, Automation and State Manager alike.
        self.sender = CommandSender(
            state, self.commands, region=config.region, validate=model_check("SendCommand")
        )
        #: Number of signed requests answered, by ``Service.Operation`` (errors included);
        #: unknown or missing targets all count under ``"?"``.
        self.calls: dict[str, int] = {}
        self._throttle = LogThrottle(logger)
        #: Automation executions (closed with :meth:`close`).
        self.automation = AutomationEngine(
            state, self.sender, region=config.region, environment=config.environment
        )
        #: State Manager associations and their schedules (closed with :meth:`close`).
        self.associations = AssociationEngine(state, self.sender)
        context = ApiContext(state, config)
        self._registry = Registry()
        for area in (
            SessionsApi(context),
            InstancesApi(context),
            DocumentsApi(context),
            CommandsApi(context, self.sender),
            AutomationApi(context, self.automation),
            AssociationsApi(context, self.associations),
            KmsApi(context),
            InstanceConnectApi(context),
        ):
            area.register(self._registry)
        self._signing_names = self._registry.signing_names
        #: The handler of each X-Amz-Target (tests may replace entries).
        self._operations: dict[str, Operation] = {
            target: spec.handler for target, spec in self._registry.specs.items()
        }
        self._by_attribute: dict[str, Operation] = {
            snake(spec.name): spec.handler for spec in self._registry.specs.values()
        }

    async def close(self) -> None:
        """Stop what runs on its own: association schedules, Automation executions (Run
        Command's engine is the emulator's to close)."""
        await self.associations.close()
        await self.automation.close()

    def __getattr__(self, name: str) -> Operation:
        operations = self.__dict__.get("_by_attribute", {})
        if name in operations:
            handler: Operation = operations[name]
            return handler
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = str(uuid.uuid4())
        headers = (("x-amzn-RequestId", request_id),)
        target = request.header("x-amz-target") or ""
        shown = (target or request.method)[:100]
        try:
            body = await self._dispatch(request, target)
        except ServiceError as exc:
            if exc.status >= 500:
                self._throttle.log(logging.WARNING, shown, "%s failed: %s", shown, exc.code)
            else:
                logger.info("%s refused: %s: %s", shown, exc.code, exc.message[:300])
            return HttpResponse.json(exc.status, exc.to_json(), CONTENT_TYPE, headers)
        except Exception:
            self._throttle.log(logging.ERROR, shown, "internal error in %s", shown, exc_info=True)
            error = ServiceError("InternalServerError", "An internal error occurred.", 500)
            return HttpResponse.json(500, error.to_json(), CONTENT_TYPE, headers)
        return HttpResponse.json(200, body, CONTENT_TYPE, headers)

    async def _dispatch(self, request: HttpRequest, target: str) -> Body:
        prefix, _, _ = target.partition(".")
        service = self._signing_names.get(prefix)
        verify_request(
            request.method,
            request.target,
            request.headers,
            request.body,
            self.config.credentials,
            service=service if service is not None else tuple(self._signing_names.values()),
        )
        operation = self._operations.get(target)
        key = target if operation is not None else UNKNOWN_TARGET
        self.calls[key] = self.calls.get(key, 0) + 1
        if request.method != "POST" or request.path != "/" or operation is None:
            raise ServiceError(
                "UnknownOperationException",
                f"Unknown operation {target[:200]!r}."
                if target
                else "Missing X-Amz-Target header.",
            )
        body = parse_json(request.body)
        if not isinstance(body, dict):
            raise ServiceError(
                "SerializationException", "Start of structure or map found where not expected."
            )
        spec = self._registry.specs.get(target)
        if spec is not None:
            ModelValidator(spec.unchecked).validate(spec.input_shape, body)
        try:
            return await operation(body, request)
        except ServiceError as exc:
            if spec is not None and exc.code not in spec.error_codes | _COMMON_ERRORS:
                logger.debug("%s answered %s, which its model does not list", target, exc.code)
            raise
