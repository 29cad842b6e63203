"""Automation runbooks (DocumentType ``Automation``, schemaVersion 0.3): their checks at
CreateDocument/UpdateDocument and the parsed form Automation runs.

What a runbook may hold, after AWS's "Systems Manager Automation actions reference"
(properties shared by all actions) and the schema 0.3 examples in the user guide:

- top level: ``schemaVersion`` (``0.3``, else InvalidDocumentSchemaVersion),
  ``description``, ``assumeRole``, ``parameters``, ``mainSteps`` (required, not empty),
  ``outputs`` (``"step.Output"`` strings), ``files``, ``variables``;
- parameters: the Command/Session document types, plus AWS's typed ones
  (``AWS::EC2::Instance::Id``, ``List<AWS::...>``), which behave as String / StringList;
- each step: ``name`` (letters, digits and ``_``, unique), ``action`` (one of AWS's
  Automation actions), ``inputs``, and the shared properties ``description``,
  ``maxAttempts`` (default 1), ``timeoutSeconds``, ``onFailure`` (``Abort`` (default) |
  ``Continue`` | ``step:NAME``), ``onCancel`` (``Abort`` | ``step:NAME``), ``isEnd``,
  ``nextStep``, ``isCritical`` (default: false with ``onFailure: Continue``, else true)
  and ``outputs`` (``Name``, ``Selector``, ``Type``);
- ``{{ name }}`` references: a declared parameter, ``step.Output`` of a step of the
  runbook, or a system variable (``automation:``, ``global:``, ``ssm:``, ``variable:``).

Every action AWS documents is accepted here; which ones the emulator can run is
Automation's business (``ssmsh.emulator.automation``). The inputs of the actions it runs
are checked for their required members. Failures are InvalidDocumentContent.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from ..errors import ServiceError
from .content import invalid_content, placeholders, schema_version, validate_parameters

__all__ = ["ACTIONS", "Runbook", "Step", "parse_runbook", "plain_types"]

#: The Automation actions AWS documents.
ACTIONS = frozenset(
    {
        "aws:approve",
        "aws:assertAwsResourceProperty",
        "aws:branch",
        "aws:changeInstanceState",
        "aws:copyImage",
        "aws:createImage",
        "aws:createStack",
        "aws:createTags",
        "aws:deleteImage",
        "aws:deleteStack",
        "aws:executeAutomation",
        "aws:executeAwsApi",
        "aws:executeScript",
        "aws:executeStateMachine",
        "aws:invokeLambdaFunction",
        "aws:invokeWebhook",
        "aws:loop",
        "aws:pause",
        "aws:runCommand",
        "aws:runInstances",
        "aws:sleep",
        "aws:updateVariable",
        "aws:waitForAwsResourceProperty",
    }
)
_TOP_LEVEL = frozenset(
    {
        "schemaVersion",
        "description",
        "assumeRole",
        "parameters",
        "mainSteps",
        "outputs",
        "files",
        "variables",
        "templateBody",
    }
)
_STEP_KEYS = frozenset(
    {
        "name",
        "action",
        "description",
        "inputs",
        "maxAttempts",
        "timeoutSeconds",
        "onFailure",
        "onCancel",
        "isEnd",
        "nextStep",
        "isCritical",
        "outputs",
    }
)
_STEP_NAME = re.compile(r"^[a-zA-Z0-9_]+$")
_TYPED_PARAMETER = re.compile(r"^(List<)?AWS::[A-Za-z0-9:]+>?$")
_OUTPUT_TYPES = ("String", "Integer", "Boolean", "StringList", "StringMap", "MapList")
#: Inputs each action the emulator runs cannot do without (alternatives in a tuple).
_REQUIRED_INPUTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "aws:approve": (("Approvers",),),
    "aws:sleep": (("Duration", "Timestamp"),),
    "aws:runCommand": (("DocumentName",),),
    "aws:executeScript": (("Runtime",), ("Script", "Attachment")),
}
_SYSTEM_PREFIXES = ("automation:", "global:", "ssm:", "variable:")


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    """One step of ``mainSteps``."""

    name: str
    action: str
    inputs: dict[str, Any]
    max_attempts: int = 1
    timeout_seconds: int | None = None
    on_failure: str = "Abort"
    on_cancel: str | None = None
    is_end: bool = False
    next_step: str | None = None
    #: As written (None: not written; see :attr:`critical`).
    is_critical: bool | None = None
    outputs: tuple[dict[str, Any], ...] = ()

    @property
    def critical(self) -> bool:
        """Whether a failure of this step makes the execution Failed."""
        if self.is_critical is not None:
            return self.is_critical
        return self.on_failure != "Continue"

    @property
    def valid_next_steps(self) -> list[str]:
        """Where the execution may go from here (StepExecution.ValidNextSteps)."""
        found = [self.next_step] if self.next_step else []
        if self.on_failure.startswith("step:"):
            found.append(self.on_failure[5:])
        return found


@dataclasses.dataclass(frozen=True, slots=True)
class Runbook:
    """A runbook's content, checked."""

    steps: tuple[Step, ...]
    parameters: dict[str, dict[str, Any]]
    #: Document outputs, ``"step.Output"``.
    outputs: tuple[str, ...] = ()
    description: str = ""

    def index(self, name: str) -> int:
        for number, step in enumerate(self.steps):
            if step.name == name:
                return number
        raise KeyError(name)

    def step(self, name: str) -> Step:
        return self.steps[self.index(name)]


def parse_runbook(data: Mapping[str, Any]) -> Runbook:
    """The runbook in ``data``; InvalidDocumentContent / InvalidDocumentSchemaVersion."""
    version = schema_version(data)
    if version != "0.3":
        raise ServiceError(
            "InvalidDocumentSchemaVersion",
            f"Automation documents support schemaVersion 0.3 only, not {version or 'none'}.",
        )
    unknown = sorted(set(data) - _TOP_LEVEL)
    if unknown:
        raise invalid_content(f"Unknown top-level key(s) in a runbook: {', '.join(unknown)}.")
    parameters = data.get("parameters") or {}
    declared = validate_parameters(plain_types(parameters))
    raw_steps = data.get("mainSteps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise invalid_content("A runbook needs mainSteps: a list of one step or more.")
    names: list[str] = []
    for index, raw in enumerate(raw_steps, start=1):
        if not isinstance(raw, dict):
            raise invalid_content(f"mainSteps item {index} must be an object.")
        name = raw.get("name")
        if not isinstance(name, str) or not _STEP_NAME.match(name):
            raise invalid_content(
                f"mainSteps item {index}: name must use letters, digits and '_' only."
            )
        if name in names:
            raise invalid_content(f"mainSteps has two steps named {name}.")
        names.append(name)
    steps = tuple(_step(raw, names) for raw in raw_steps)
    outputs = data.get("outputs") or []
    if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
        raise invalid_content('outputs must be a list of "step.Output" strings.')
    for output in outputs:
        if output.partition(".")[0] not in names or "." not in output:
            raise invalid_content(f'Output "{output}" does not name a step of the runbook.')
    for step in steps:
        for reference in placeholders(step.inputs):
            _check_reference(reference, declared, names, step.name)
    description = data.get("description")
    return Runbook(
        steps,
        {str(k): dict(v) for k, v in parameters.items()},
        tuple(outputs),
        description if isinstance(description, str) else "",
    )


def plain_types(parameters: Any) -> Any:
    """``parameters`` with AWS's typed parameters as the String/StringList they hold."""
    if not isinstance(parameters, dict):
        return parameters
    plain: dict[str, Any] = {}
    for name, definition in parameters.items():
        kind = definition.get("type") if isinstance(definition, dict) else None
        if isinstance(kind, str) and _TYPED_PARAMETER.match(kind):
            kind = "StringList" if kind.startswith("List<") else "String"
            definition = {**definition, "type": kind}
        plain[name] = definition
    return plain


def _step(raw: dict[str, Any], names: list[str]) -> Step:
    name = str(raw["name"])
    where = f"Step {name}"
    unknown = sorted(set(raw) - _STEP_KEYS)
    if unknown:
        raise invalid_content(f"{where} has unknown propertie(s) {', '.join(unknown)}.")
    action = raw.get("action")
    if action not in ACTIONS:
        raise invalid_content(f"{where}: {action!r} is not an Automation action.")
    inputs = raw.get("inputs", {})
    if not isinstance(inputs, dict):
        raise invalid_content(f"{where}: inputs must be an object.")
    for alternatives in _REQUIRED_INPUTS.get(str(action), ()):
        if not any(key in inputs for key in alternatives):
            wanted = " or ".join(alternatives)
            raise invalid_content(f"{where} ({action}) needs the input {wanted}.")
    attempts = _integer(raw, "maxAttempts", where, 1)
    timeout = _integer(raw, "timeoutSeconds", where, None)
    on_failure = str(raw.get("onFailure", "Abort"))
    _check_target(on_failure, ("Abort", "Continue"), names, where, "onFailure")
    on_cancel = raw.get("onCancel")
    if on_cancel is not None:
        _check_target(str(on_cancel), ("Abort",), names, where, "onCancel")
    next_step = raw.get("nextStep")
    if next_step is not None and next_step not in names:
        raise invalid_content(f"{where}: nextStep {next_step!r} is not a step of the runbook.")
    for flag in ("isEnd", "isCritical"):
        if flag in raw and not isinstance(raw[flag], bool):
            raise invalid_content(f"{where}: {flag} must be true or false.")
    return Step(
        name=name,
        action=str(action),
        inputs=dict(inputs),
        max_attempts=attempts or 1,
        timeout_seconds=timeout,
        on_failure=on_failure,
        on_cancel=str(on_cancel) if on_cancel is not None else None,
        is_end=bool(raw.get("isEnd", False)),
        next_step=str(next_step) if next_step is not None else None,
        is_critical=raw.get("isCritical"),
        outputs=tuple(_outputs(raw.get("outputs"), where)),
    )


def _integer(raw: dict[str, Any], key: str, where: str, default: int | None) -> int | None:
    value = raw.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise invalid_content(f"{where}: {key} must be a whole number of 1 or more.")
    return value


def _check_target(
    value: str, keywords: tuple[str, ...], names: list[str], where: str, key: str
) -> None:
    if value in keywords:
        return
    if value.startswith("step:") and value[5:] in names:
        return
    raise invalid_content(
        f"{where}: {key} is {' or '.join(keywords)} or step:NAME of a step, not {value!r}."
    )


def _outputs(raw: Any, where: str) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid_content(f"{where}: outputs must be a list.")
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("Name"), str):
            raise invalid_content(f"{where}: each output needs a Name.")
        if not isinstance(item.get("Selector"), str) or not item["Selector"].startswith("$"):
            raise invalid_content(f"{where}: output {item['Name']} needs a Selector ($...).")
        if item.get("Type", "String") not in _OUTPUT_TYPES:
            raise invalid_content(
                f"{where}: output {item['Name']} has Type {item.get('Type')!r}; the types are "
                f"{', '.join(_OUTPUT_TYPES)}."
            )
    return [dict(item) for item in raw]


def _check_reference(reference: str, declared: set[str], names: list[str], where: str) -> None:
    if reference in declared or reference.startswith(_SYSTEM_PREFIXES):
        return
    step, dot, _ = reference.partition(".")
    if dot and step in names:
        return
    raise invalid_content(
        f'Step {where} uses "{{{{ {reference} }}}}", which is neither a parameter of the '
        "runbook nor a step output."
    )
