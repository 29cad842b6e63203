"""Automation in the emulator: executions of Automation runbooks (schemaVersion 0.3).

- ``model.py``: executions, step executions, approvals and their statuses;
- ``values.py``: typed parameters, ``{{ references }}``, selectors, ISO 8601 times;
- ``actions.py``: the actions the emulator runs (approve, pause, sleep, runCommand,
  executeScript);
- ``script.py``: ``aws:executeScript``'s Python scripts, in a child process;
- ``signals.py``: SendAutomationSignal: who may send what, and when;
- ``engine.py``: :class:`AutomationEngine`, steps, transitions, signals and stops;
- ``render.py``: the records in botocore's shapes.

The runbooks themselves are checked and parsed by ``documents/automation.py``.
"""

from __future__ import annotations

from .engine import AutomationEngine
from .model import ExecutionRecord, Status, StepRecord

__all__ = ["AutomationEngine", "ExecutionRecord", "Status", "StepRecord"]
