"""What a Command document runs: its parameters checked and filled in, one plugin per step.

Two document shapes run in the emulator, both with the ``aws:runShellScript`` plugin:

- schemaVersion 1.2 (``AWS-RunShellScript``): ``runtimeConfig`` → ``aws:runShellScript`` →
  ``properties``; each property is a plugin named ``aws:runShellScript``, as AWS names
  the plugin of its own document;
- schemaVersion 2.x: ``mainSteps``, each step a plugin named after the step.

``runCommand`` (a list of lines or one string) becomes one script; ``timeoutSeconds`` is
the execution timeout (AWS-RunShellScript's ``executionTimeout`` parameter feeds it;
3600 s when absent, the plugin's documented default). Other actions give
``InvalidDocument``: the emulated agent has no other plugins. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..documents.session import fill_parameters, parameter_values
from ..errors import ServiceError
from .model import PluginRecord

__all__ = ["DEFAULT_EXECUTION_TIMEOUT", "RUN_SHELL_SCRIPT", "plan_plugins"]

RUN_SHELL_SCRIPT = "aws:runShellScript"
#: The aws:runShellScript plugin's execution timeout when the document sets none.
DEFAULT_EXECUTION_TIMEOUT = 3600.0


def plan_plugins(
    name: str, data: Mapping[str, Any], parameters: Mapping[str, list[str]]
) -> list[PluginRecord]:
    """The plugins ``data`` runs with ``parameters`` (InvalidParameters, InvalidDocument)."""
    definitions = data.get("parameters") or {}
    values = parameter_values(name, definitions, dict(parameters))
    version = str(data.get("schemaVersion", ""))
    plugins: list[PluginRecord] = []
    if version.startswith("1."):
        runtime = data.get("runtimeConfig") or {}
        for action, config in runtime.items():
            _check_action(name, str(action))
            properties = config.get("properties") if isinstance(config, dict) else None
            items = properties if isinstance(properties, list) else [properties or {}]
            for item in items:
                plugins.append(_plugin(RUN_SHELL_SCRIPT, RUN_SHELL_SCRIPT, item, values))
    else:
        for step in data.get("mainSteps") or []:
            action = str(step.get("action", ""))
            _check_action(name, action)
            plugins.append(_plugin(str(step["name"]), action, step.get("inputs") or {}, values))
    if not plugins:
        raise ServiceError("InvalidDocument", f"Document {name} has no steps to run.")
    return plugins


def _check_action(name: str, action: str) -> None:
    if action != RUN_SHELL_SCRIPT:
        raise ServiceError(
            "InvalidDocument",
            f"Document {name} uses {action}; the emulated agent runs {RUN_SHELL_SCRIPT} only.",
        )


def _plugin(
    name: str, action: str, inputs: Mapping[str, Any], values: Mapping[str, Any]
) -> PluginRecord:
    filled = fill_parameters(dict(inputs), values)
    commands = filled.get("runCommand", [])
    script = "\n".join(str(c) for c in commands) if isinstance(commands, list) else str(commands)
    timeout = filled.get("timeoutSeconds")
    try:
        seconds = float(timeout) if timeout not in (None, "") else DEFAULT_EXECUTION_TIMEOUT
    except (TypeError, ValueError):
        raise ServiceError(
            "InvalidParameters", f"timeoutSeconds {timeout!r} is not a number of seconds."
        ) from None
    return PluginRecord(
        name=name,
        action=action,
        script=script,
        working_directory=str(filled.get("workingDirectory") or ""),
        timeout=seconds,
    )
