"""The API dispatcher: an :class:`HttpServer` handler for SSM and KMS over awsJson1.1.

``POST /`` with ``X-Amz-Target: AmazonSSM.<Op>`` or ``TrentService.<Op>`` and a JSON
body. Each request is verified (SigV4), routed to the service area that registered the
operation, validated against botocore's model, and answered with JSON; errors are
``{"__type": code, "message": text}`` with status 400 (client) or 500 (internal), which
botocore turns into ``ClientError`` with the same code.
"""

from __future__ import annotations

import json
import logging
import uuid

from ..associations import AssociationEngine
from ..automation import AutomationEngine
from ..commands import CommandEngine, CommandSender
from ..config import EmulatorConfig
from ..errors import ServiceError
from ..httpserver import HttpRequest, HttpResponse
from ..sigv4 import verify_request
from ..state import EmulatorState
from .associations import AssociationsApi
from .automation import AutomationApi
from .awsjson import Body
from .commands import CommandsApi
from .documents import DocumentsApi
from .instances import InstancesApi
from .kms import KmsApi
from .registry import ApiContext, Operation, Registry, model_check, snake
from .sessions import SessionsApi
from .validation import ModelValidator

__all__ = ["CONTENT_TYPE", "ApiHandler"]

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-amz-json-1.1"

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
        #: Number of requests answered, by ``Service.Operation`` (errors included).
        self.calls: dict[str, int] = {}
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
        try:
            body = await self._dispatch(request, target)
        except ServiceError as exc:
            if exc.status >= 500:
                logger.warning("%s failed: %s", target or request.method, exc.code)
            else:
                logger.info("%s refused: %s: %s", target or request.method, exc.code, exc.message)
            return HttpResponse.json(exc.status, exc.to_json(), CONTENT_TYPE, headers)
        except Exception:
            logger.exception("internal error in %s", target or request.method)
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
        self.calls[target or "?"] = self.calls.get(target or "?", 0) + 1
        if request.method != "POST" or request.path != "/" or operation is None:
            raise ServiceError(
                "UnknownOperationException",
                f"Unknown operation {target!r}." if target else "Missing X-Amz-Target header.",
            )
        try:
            body = json.loads(request.body) if request.body.strip() else {}
        except (ValueError, UnicodeDecodeError):
            raise ServiceError(
                "SerializationException", "The request body is not valid JSON."
            ) from None
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
