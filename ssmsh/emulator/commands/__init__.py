"""Run Command in the emulator: command records, the scheduler and the runner.

- ``model.py``: commands, invocations and plugins, the status rules and output limits;
- ``plan.py``: a Command document and its parameters as plugins to run;
- ``runner.py``: one ``aws:runShellScript`` plugin as a real process;
- ``scheduler.py``: :class:`CommandEngine`, rate controls, delivery and cancels;
- ``send.py``: :class:`CommandSender`, a SendCommand body turned into a running command
  (SendCommand, Automation's ``aws:runCommand``, State Manager's executions);
- ``notifications.py``: the SNS messages AWS would publish, recorded;
- ``render.py``: the records in botocore's shapes.
"""

from __future__ import annotations

from .model import CommandRecord, Detail, InvocationRecord, PluginRecord
from .notifications import Notification, NotificationLog
from .plan import plan_plugins
from .scheduler import CommandEngine
from .send import CommandSender

__all__ = [
    "CommandEngine",
    "CommandRecord",
    "CommandSender",
    "Detail",
    "InvocationRecord",
    "Notification",
    "NotificationLog",
    "PluginRecord",
    "plan_plugins",
]
