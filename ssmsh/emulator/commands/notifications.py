"""The Amazon SNS notifications Run Command would publish, recorded instead of sent.

A command's ``NotificationConfig`` names a topic, the events wanted (``All``,
``InProgress``, ``Success``, ``TimedOut``, ``Cancelled``, ``Failed``) and a type:
``Command`` (one message each time the command's status changes) or ``Invocation`` (one
each time an invocation's status changes). The message bodies have the fields of AWS's
"Example Amazon SNS notifications for AWS Systems Manager" (monitoring-sns-examples):
command summaries carry ``commandId``, ``documentName``, ``instanceIds`` (empty when the
command targeted tags), ``requestedDateTime``, ``expiresAfter``, ``outputS3BucketName``,
``outputS3KeyPrefix``, ``status`` and ``eventTime``; invocation messages carry
``commandId``, ``documentName``, ``instanceId``, ``requestedDateTime``, ``status`` and
``eventTime``. Nothing leaves the machine: each one is logged and kept in
:attr:`NotificationLog.records` (``Emulator.notifications``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from .model import CommandRecord, InvocationRecord

__all__ = ["Notification", "NotificationLog", "iso_time"]

logger = logging.getLogger(__name__)


def iso_time(epoch: float) -> str:
    """``2019-04-25T17:57:09.170Z``: UTC with milliseconds, as the SNS messages show."""
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclasses.dataclass(frozen=True, slots=True)
class Notification:
    """One message Run Command would have published to an SNS topic."""

    topic_arn: str
    #: The NotificationEvents value it answers to (the new Status).
    event: str
    #: ``Command`` or ``Invocation``.
    notification_type: str
    message: dict[str, Any]
    time: float


class NotificationLog:
    """Every notification the emulated Run Command published, oldest first."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.records: list[Notification] = []
        self.clock = clock

    def command_changed(self, command: CommandRecord) -> None:
        if self._wanted(command, "Command", command.status) is None:
            return
        now = self.clock()
        message = {
            "commandId": command.command_id,
            "documentName": command.document_name,
            "instanceIds": list(command.instance_ids),
            "requestedDateTime": iso_time(command.requested),
            "expiresAfter": iso_time(command.expires_after),
            "outputS3BucketName": command.output_s3_bucket,
            "outputS3KeyPrefix": command.output_s3_prefix,
            "status": command.status,
            "eventTime": iso_time(now),
        }
        self._publish(command, "Command", command.status, message, now)

    def invocation_changed(self, command: CommandRecord, invocation: InvocationRecord) -> None:
        if self._wanted(command, "Invocation", invocation.status) is None:
            return
        now = self.clock()
        message = {
            "commandId": command.command_id,
            "documentName": command.document_name,
            "instanceId": invocation.instance_id,
            "requestedDateTime": iso_time(invocation.requested),
            "status": invocation.status,
            "eventTime": iso_time(now),
        }
        self._publish(command, "Invocation", invocation.status, message, now)

    def publish(self, topic_arn: str, kind: str, event: str, message: dict[str, Any]) -> None:
        """Record a message another service (Automation's approvals) would publish."""
        now = self.clock()
        self.records.append(Notification(topic_arn, event, kind, message, now))
        logger.info("SNS %s (%s %s): %s", topic_arn, kind, event, json.dumps(message))

    @staticmethod
    def _wanted(command: CommandRecord, kind: str, status: str) -> str | None:
        config = command.notification_config
        topic = config.get("NotificationArn")
        if not topic or config.get("NotificationType", "Command") != kind:
            return None
        events = config.get("NotificationEvents") or ["All"]
        return str(topic) if "All" in events or status in events else None

    def _publish(
        self, command: CommandRecord, kind: str, event: str, message: dict[str, Any], now: float
    ) -> None:
        topic = str(command.notification_config["NotificationArn"])
        self.records.append(Notification(topic, event, kind, message, now))
        logger.info("SNS %s (%s %s): %s", topic, kind, event, json.dumps(message))
