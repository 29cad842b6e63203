"""A SendCommand request turned into a running command, for every part of the emulator.

SendCommand itself (``api/commands.py``), Automation's ``aws:runCommand`` steps and State
Manager's association executions all send commands the same way: the request is a
SendCommand body (a dict in botocore's shape), the document comes from the store, the
targets from the emulated fleet, and the :class:`CommandEngine` runs the result.
Refusals are SendCommand's (InvalidInstanceId, DuplicateInstanceId, InvalidDocument,
InvalidDocumentVersion, InvalidParameters, UnsupportedPlatformType, InvalidRole,
InvalidNotificationConfig) or ValidationException.

Requests that do not come through the API (an Automation step's inputs) can be checked
against botocore's SendCommand input shape first: the API layer hands a ``validate``
function in, so this package needs nothing from it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..documents import DocumentVersion
from ..documents.content import platform_types
from ..errors import ServiceError
from ..state import EmulatorState, TargetRecord
from .model import CommandRecord, InvocationRecord
from .plan import plan_plugins
from .scheduler import CommandEngine

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "CommandSender", "resolve_targets"]

#: Delivery timeout when SendCommand gives none.
DEFAULT_TIMEOUT_SECONDS = 3600
_SNS_ARN = re.compile(r"^arn:aws[\w-]*:sns:[a-z0-9-]+:\d{12}:[\w-]{1,256}$")
_ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")

Body = Mapping[str, Any]


class CommandSender:
    """Builds CommandRecords from SendCommand bodies and hands them to the engine."""

    def __init__(
        self,
        state: EmulatorState,
        engine: CommandEngine,
        *,
        region: str = "us-east-1",
        validate: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.state = state
        self.engine = engine
        self.region = region
        #: Checks a body against botocore's SendCommand input (raises ValidationException).
        self.validate = validate

    def send(
        self,
        body: Body,
        *,
        chosen: list[TargetRecord] | None = None,
        check: bool = True,
    ) -> CommandRecord:
        """Start the command ``body`` asks for; returns its record.

        ``chosen``: the instances, already resolved by the caller (State Manager resolves
        its own targets); else ``InstanceIds`` or ``Targets`` choose them. ``check``:
        validate ``body`` against the model first (requests the API did not validate).
        """
        if check and self.validate is not None:
            self.validate(dict(body))
        document, version = self.document(body)
        parameters = {k: [str(i) for i in v] for k, v in (body.get("Parameters") or {}).items()}
        template = plan_plugins(document, version.data, parameters)
        instance_ids = [str(i) for i in body.get("InstanceIds") or []]
        targets = list(body.get("Targets") or [])
        if chosen is None:
            chosen = self._resolve(instance_ids, targets)
        platforms = platform_types(version.data, "Command")
        wrong = [t.instance_id for t in chosen if t.platform_type not in platforms]
        if wrong:
            raise ServiceError(
                "UnsupportedPlatformType",
                f"Document {document} does not support the platform of {', '.join(wrong)}.",
            )
        notification = _notification(body)
        now = self.engine.clock()
        execution = sum(p.timeout for p in template)
        timeout = int(body.get("TimeoutSeconds") or DEFAULT_TIMEOUT_SECONDS)
        bucket = str(body.get("OutputS3BucketName") or "")
        command = CommandRecord(
            command_id=str(uuid.uuid4()),
            document_name=document,
            document_version=str(body.get("DocumentVersion") or "$DEFAULT"),
            requested=now,
            expires_after=now + timeout + execution,
            timeout_seconds=timeout,
            parameters=parameters,
            instance_ids=instance_ids,
            targets=[{"Key": t["Key"], "Values": list(t.get("Values") or [])} for t in targets],
            max_concurrency=str(body.get("MaxConcurrency") or "50"),
            max_errors=str(body.get("MaxErrors") or "0"),
            comment=str(body.get("Comment") or ""),
            output_s3_region=str(body.get("OutputS3Region") or self.region) if bucket else "",
            output_s3_bucket=bucket,
            output_s3_prefix=str(body.get("OutputS3KeyPrefix") or ""),
            service_role=str(body.get("ServiceRoleArn") or ""),
            notification_config=notification,
            cloudwatch_config=dict(body.get("CloudWatchOutputConfig") or {}),
            alarm_config=body.get("AlarmConfiguration"),
        )
        for target in chosen:
            command.invocations[target.instance_id] = InvocationRecord(
                command_id=command.command_id,
                instance_id=target.instance_id,
                instance_name=target.name,
                requested=now,
                plugins=[dataclasses.replace(p) for p in template],
            )
        self.engine.submit(command)
        return command

    def document(self, body: Body, kind: str = "SendCommand") -> tuple[str, DocumentVersion]:
        """The Command document (name, version) ``body`` names, its hash checked."""
        name = str(body.get("DocumentName") or "")
        document = self.state.documents.get(name)
        if document.document_type != "Command":
            raise ServiceError(
                "InvalidDocument",
                f"Document {document.name} is a {document.document_type} document; "
                f"{kind} needs a Command document.",
            )
        version = document.version(str(body.get("DocumentVersion") or "$DEFAULT"))
        wanted = body.get("DocumentHash")
        if wanted is not None:
            hash_type = str(body.get("DocumentHashType") or "Sha256")
            digest = hashlib.sha1 if hash_type == "Sha1" else hashlib.sha256
            if digest(version.content.encode()).hexdigest() != wanted:
                raise ServiceError(
                    "InvalidDocument",
                    f"The {hash_type} hash does not match version {version.version} of "
                    f"document {document.name}.",
                )
        return document.name, version

    def _resolve(self, instance_ids: list[str], targets: list[Any]) -> list[TargetRecord]:
        if bool(instance_ids) == bool(targets):
            raise ServiceError(
                "ValidationException",
                "Specify either InstanceIds or Targets (one of them, not both).",
            )
        if instance_ids:
            return known_instances(self.state, instance_ids)
        return resolve_targets(self.state, targets)


def known_instances(state: EmulatorState, instance_ids: Iterable[str]) -> list[TargetRecord]:
    """The instances named, in order; DuplicateInstanceId / InvalidInstanceId otherwise."""
    ids = list(instance_ids)
    seen: set[str] = set()
    for instance_id in ids:
        if instance_id in seen:
            raise ServiceError(
                "DuplicateInstanceId", f"Instance {instance_id} is given more than once."
            )
        seen.add(instance_id)
    unknown = [i for i in ids if i not in state.targets]
    if unknown:
        raise ServiceError(
            "InvalidInstanceId",
            f"Instances [{', '.join(unknown)}] not in a valid state for account.",
        )
    return [state.targets[i] for i in ids]


def resolve_targets(
    state: EmulatorState, targets: Iterable[Mapping[str, Any]], *, wildcard: bool = False
) -> list[TargetRecord]:
    """The instances matching every one of ``targets`` (``InstanceIds``, ``tag:NAME``,
    ``tag-key``), sorted by id. ``wildcard``: ``InstanceIds`` ``*`` means every instance
    (State Manager's way of targeting all managed nodes)."""
    chosen = sorted(state.targets.values(), key=lambda t: t.instance_id)
    for target in targets:
        key, values = str(target["Key"]), [str(v) for v in target.get("Values") or []]
        if key == "InstanceIds":
            if wildcard and values == ["*"]:
                continue
            wanted = {t.instance_id for t in known_instances(state, values)}
            chosen = [t for t in chosen if t.instance_id in wanted]
        elif key.startswith("tag:"):
            chosen = [t for t in chosen if t.all_tags.get(key[4:]) in values]
        elif key == "tag-key":
            chosen = [t for t in chosen if any(v in t.all_tags for v in values)]
        else:
            raise ServiceError(
                "ValidationException",
                f"Target key {key} is not supported here; use InstanceIds, tag:NAME or tag-key.",
            )
    return chosen


def _notification(body: Body) -> dict[str, Any]:
    config = dict(body.get("NotificationConfig") or {})
    arn = config.get("NotificationArn")
    role = body.get("ServiceRoleArn")
    if role is not None and not _ROLE_ARN.match(str(role)):
        raise ServiceError("InvalidRole", f"{role} is not an IAM role ARN.")
    if arn:
        if not _SNS_ARN.match(str(arn)):
            raise ServiceError(
                "InvalidNotificationConfig", f"{arn} is not an Amazon SNS topic ARN."
            )
        if role is None:
            raise ServiceError(
                "InvalidRole",
                "Notifications need ServiceRoleArn: the role Run Command publishes with.",
            )
    return config
