"""The State Manager engine: associations, their schedules and their executions.

Each execution sends one command through Run Command (``CommandSender``) to the
instances the association's targets resolve to at that moment, with the association's
MaxConcurrency and MaxErrors. Schedules wait on the emulator's clock, one asyncio task
per scheduled association, all cancelled by :meth:`AssociationEngine.close`.

What AWS does, and how we know (user guide: "About State Manager", "Understanding
targets and rate controls", the cron and rate reference; API reference):

- an association runs when it is created, then on its schedule; ApplyOnlyAtCronInterval
  skips the first run (not with rate expressions: InvalidSchedule). UpdateAssociation
  makes a new version and runs it at once when the document, its version, the
  parameters, the schedule, the output location or the targets changed (unless
  ApplyOnlyAtCronInterval). StartAssociationsOnce runs it now. An association without a
  schedule runs only then.
- targets: ``InstanceIds`` (``*``: every managed node), ``tag:NAME``, ``tag-key``; the
  deprecated ``InstanceId`` form takes a schemaVersion 1.2 document and none of
  AssociationName, DocumentVersion, MaxErrors, MaxConcurrency, OutputLocation,
  ScheduleExpression; a second such association of the same document and instance is
  AssociationAlreadyExists.
- MaxConcurrency defaults to 100% (the API reference; the older rate-controls page says
  50 nodes) and MaxErrors to 100% (the rate-controls page), so without them every
  target runs.
- UpdateAssociation overwrites every optional setting the request leaves out with
  nothing, as the API reference warns; the emulator keeps Name, Targets and InstanceId
  (an association cannot be without them).
- ``Duration`` (hours, with ApplyOnlyAtCronInterval) cancels an execution's command
  once it has run that long on the emulator's clock.
- a jump of the clock over several occurrences of a schedule runs the association once:
  missed occurrences are not replayed. Overlapping executions are allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from ..commands import CommandSender, plan_plugins
from ..commands.send import known_instances, resolve_targets
from ..errors import ServiceError
from ..state import EmulatorState, TargetRecord
from .model import SETTINGS, AssociationExecution, AssociationRecord, AssociationVersion
from .schedule import Schedule, parse_schedule

__all__ = ["AssociationEngine"]

logger = logging.getLogger(__name__)

#: Changes after which UpdateAssociation runs the association.
_RUN_ON_CHANGE = (
    "Name",
    "DocumentVersion",
    "Parameters",
    "ScheduleExpression",
    "OutputLocation",
    "Targets",
    "InstanceId",
)
#: What an association made with InstanceId can't have.
_LEGACY_REFUSED = (
    "AssociationName",
    "DocumentVersion",
    "MaxErrors",
    "MaxConcurrency",
    "OutputLocation",
    "ScheduleExpression",
)


def does_not_exist(association_id: str) -> ServiceError:
    return ServiceError("AssociationDoesNotExist", f"Association {association_id} does not exist.")


class AssociationEngine:
    """Associations by id, their schedules and executions."""

    def __init__(self, state: EmulatorState, sender: CommandSender) -> None:
        self.state = state
        self.clock = state.clock
        self.sender = sender
        self.associations: dict[str, AssociationRecord] = {}
        self._schedules: dict[str, asyncio.Task[None]] = {}
        self._watchers: set[asyncio.Task[None]] = set()

    # -- requests ---------------------------------------------------------------------

    def create(self, request: Mapping[str, Any], tags: list[dict[str, str]]) -> AssociationRecord:
        settings = {k: request[k] for k in SETTINGS if request.get(k) is not None}
        schedule = self._check(settings)
        instance_id = settings.get("InstanceId")
        if instance_id is not None:
            for other in self.associations.values():
                if (other.settings.get("InstanceId"), other.settings["Name"]) == (
                    instance_id,
                    settings["Name"],
                ):
                    raise ServiceError(
                        "AssociationAlreadyExists",
                        f"Document {settings['Name']} is already associated with {instance_id}.",
                    )
        now = self.clock.now()
        association = AssociationRecord(
            association_id=str(uuid.uuid4()),
            created=now,
            versions=[AssociationVersion(1, now, settings, schedule)],
            updated=now,
            tags=list(tags),
            anchor=now,
        )
        self.associations[association.association_id] = association
        logger.info("association %s of %s created", association.association_id, settings["Name"])
        if not settings.get("ApplyOnlyAtCronInterval"):
            self.run(association)
        self._schedule(association)
        return association

    def update(self, association_id: str, request: Mapping[str, Any]) -> AssociationRecord:
        association = self.get(association_id)
        wanted = request.get("AssociationVersion")
        latest = association.latest
        if wanted not in (None, "$LATEST", str(latest.number)):
            raise ServiceError(
                "InvalidAssociationVersion",
                f"Association {association_id} is at version {latest.number}, not {wanted}.",
            )
        settings = {k: request[k] for k in SETTINGS if request.get(k) is not None}
        for kept in ("Name", "Targets", "InstanceId"):
            if kept not in settings and kept in latest.settings:
                settings[kept] = latest.settings[kept]
        schedule = self._check(settings)
        now = self.clock.now()
        association.versions.append(AssociationVersion(latest.number + 1, now, settings, schedule))
        association.updated = now
        association.anchor = now
        changed = any(latest.settings.get(k) != settings.get(k) for k in _RUN_ON_CHANGE)
        if changed and not settings.get("ApplyOnlyAtCronInterval"):
            self.run(association)
        self._schedule(association)
        return association

    def delete(self, association_id: str) -> None:
        association = self.get(association_id)
        task = self._schedules.pop(association.association_id, None)
        if task is not None:
            task.cancel()
        del self.associations[association.association_id]
        logger.info("association %s deleted", association_id)

    def get(self, association_id: str) -> AssociationRecord:
        association = self.associations.get(association_id)
        if association is None:
            raise does_not_exist(association_id)
        return association

    def legacy(self, name: str, instance_id: str) -> AssociationRecord:
        """The association of document ``name`` made with InstanceId ``instance_id``."""
        for association in self.associations.values():
            settings = association.settings
            if settings.get("InstanceId") == instance_id and settings["Name"] == name:
                return association
        raise ServiceError(
            "AssociationDoesNotExist",
            f"Document {name} is not associated with {instance_id} (associations made with "
            "Targets are named by their AssociationId).",
        )

    def start_once(self, association_ids: Iterable[str]) -> None:
        associations = [self.get(i) for i in association_ids]
        for association in associations:
            self.run(association)

    async def close(self) -> None:
        tasks = [*self._schedules.values(), *self._watchers]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- checks -----------------------------------------------------------------------

    def _check(self, settings: dict[str, Any]) -> Schedule | None:
        """Refuse settings AWS refuses; the parsed schedule."""
        name = str(settings.get("Name", ""))
        document = self.state.documents.find(name)
        if document is None:
            raise ServiceError("InvalidDocument", f"Document with name {name} does not exist.")
        if document.document_type != "Command":
            raise ServiceError(
                "InvalidDocument",
                f"Document {document.name} is a {document.document_type} document; the "
                "emulator's associations run Command documents.",
            )
        settings["Name"] = document.name
        version = document.version(str(settings.get("DocumentVersion") or "$DEFAULT"))
        plan_plugins(document.name, version.data, settings.get("Parameters") or {})
        instance_id = settings.get("InstanceId")
        targets = settings.get("Targets")
        if bool(instance_id) == bool(targets):
            raise ServiceError(
                "ValidationException", "Specify either Targets or InstanceId (one of them)."
            )
        if instance_id is not None:
            given = [k for k in _LEGACY_REFUSED if k in settings]
            if given:
                raise ServiceError(
                    "ValidationException",
                    f"InstanceId can't be used with {', '.join(given)}: use Targets.",
                )
            if not str(version.data.get("schemaVersion", "")).startswith("1."):
                raise ServiceError(
                    "InvalidDocument",
                    "InstanceId takes documents of schemaVersion 1.2; use Targets.",
                )
            known_instances(self.state, [str(instance_id)])
        else:
            self._check_targets(list(targets or []))
        return self._check_schedule(settings)

    def _check_targets(self, targets: list[dict[str, Any]]) -> None:
        for target in targets:
            key = str(target.get("Key", ""))
            if key.startswith("resource-groups:"):
                raise ServiceError("InvalidTarget", "The emulator has no resource groups.")
            if key not in ("InstanceIds", "tag-key") and not key.startswith("tag:"):
                raise ServiceError(
                    "InvalidTarget", f"Target key {key} is not InstanceIds, tag:NAME or tag-key."
                )
            values = [str(v) for v in target.get("Values") or []]
            if key == "InstanceIds" and values != ["*"]:
                try:
                    known_instances(self.state, values)
                except ServiceError as exc:
                    raise ServiceError("InvalidTarget", exc.message) from None

    @staticmethod
    def _check_schedule(settings: dict[str, Any]) -> Schedule | None:
        expression = settings.get("ScheduleExpression")
        offset = settings.get("ScheduleOffset")
        only_at_cron = bool(settings.get("ApplyOnlyAtCronInterval"))
        if expression is None:
            if only_at_cron or offset is not None:
                raise ServiceError(
                    "InvalidSchedule",
                    "ApplyOnlyAtCronInterval and ScheduleOffset need a ScheduleExpression.",
                )
            return None
        schedule = parse_schedule(str(expression), offset)
        if only_at_cron and schedule.kind == "rate":
            raise ServiceError(
                "InvalidSchedule", "ApplyOnlyAtCronInterval is not supported for rate expressions."
            )
        if offset is not None and not only_at_cron:
            raise ServiceError("InvalidSchedule", "ScheduleOffset needs ApplyOnlyAtCronInterval.")
        return schedule

    # -- running ----------------------------------------------------------------------

    def run(self, association: AssociationRecord) -> AssociationExecution:
        """One execution of ``association`` now."""
        settings = association.settings
        execution = AssociationExecution(
            execution_id=str(uuid.uuid4()),
            association_id=association.association_id,
            association_version=str(association.latest.number),
            created=self.clock.now(),
        )
        association.executions.append(execution)
        try:
            chosen = self._targets(settings)
            if chosen:
                execution.command = self.sender.send(
                    self._body(settings), chosen=chosen, check=False
                )
        except ServiceError as exc:
            execution.error = ("Failed", exc.code)
            logger.info("association %s could not run: %s", association.association_id, exc)
        if execution.command is None:
            execution.ended = execution.created
            return execution
        watcher = asyncio.get_running_loop().create_task(self._watch(execution, settings))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return execution

    def _targets(self, settings: Mapping[str, Any]) -> list[TargetRecord]:
        instance_id = settings.get("InstanceId")
        if instance_id is not None:
            return known_instances(self.state, [str(instance_id)])
        return resolve_targets(self.state, settings.get("Targets") or [], wildcard=True)

    @staticmethod
    def _body(settings: Mapping[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "DocumentName": settings["Name"],
            "DocumentVersion": settings.get("DocumentVersion") or "$DEFAULT",
            "Parameters": settings.get("Parameters") or {},
            "MaxConcurrency": settings.get("MaxConcurrency") or "100%",
            "MaxErrors": settings.get("MaxErrors") or "100%",
        }
        if settings.get("Targets"):
            body["Targets"] = settings["Targets"]
        else:
            body["InstanceIds"] = [settings["InstanceId"]]
        s3 = (settings.get("OutputLocation") or {}).get("S3Location") or {}
        for key in ("OutputS3Region", "OutputS3BucketName", "OutputS3KeyPrefix"):
            if s3.get(key):
                body[key] = s3[key]
        return body

    async def _watch(self, execution: AssociationExecution, settings: Mapping[str, Any]) -> None:
        command = execution.command
        assert command is not None
        engine = self.sender.engine
        hours = settings.get("Duration")
        if hours and settings.get("ApplyOnlyAtCronInterval"):
            limit = asyncio.ensure_future(self.clock.sleep(float(hours) * 3600))
            done = asyncio.ensure_future(engine.wait(command))
            try:
                await asyncio.wait({limit, done}, return_when=asyncio.FIRST_COMPLETED)
                if not done.done():
                    engine.cancel(command)
                    await done
            finally:
                limit.cancel()
                done.cancel()
        else:
            await engine.wait(command)
        execution.ended = self.clock.now()
        logger.info(
            "association %s: execution %s ended %s",
            execution.association_id,
            execution.execution_id,
            execution.status[0],
        )

    def _schedule(self, association: AssociationRecord) -> None:
        task = self._schedules.pop(association.association_id, None)
        if task is not None:
            task.cancel()
        schedule = association.latest.schedule
        if schedule is None:
            return
        task = asyncio.get_running_loop().create_task(self._tick(association, schedule))
        self._schedules[association.association_id] = task

    async def _tick(self, association: AssociationRecord, schedule: Schedule) -> None:
        reference = self.clock.now()
        while (when := schedule.next_after(reference, association.anchor)) is not None:
            await self.clock.sleep_until(when)
            if association.association_id not in self.associations:
                return
            self.run(association)
            reference = max(when, self.clock.now())
