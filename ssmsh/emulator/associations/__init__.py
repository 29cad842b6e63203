"""State Manager in the emulator: associations, their schedules and executions.

- ``schedule.py``: rate, cron and at expressions, and their next occurrence;
- ``model.py``: associations, versions, executions and per-target results;
- ``engine.py``: :class:`AssociationEngine`, checks, schedules on the emulator's clock,
  executions through Run Command;
- ``render.py``: the records in botocore's shapes.
"""

from __future__ import annotations

from .engine import AssociationEngine
from .model import AssociationExecution, AssociationRecord, AssociationVersion, TargetResult
from .schedule import Schedule, parse_schedule

__all__ = [
    "AssociationEngine",
    "AssociationExecution",
    "AssociationRecord",
    "AssociationVersion",
    "Schedule",
    "TargetResult",
    "parse_schedule",
]
