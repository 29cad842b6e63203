"""Managed instances: DescribeInstanceInformation and DescribeInstanceProperties.

DescribeInstanceProperties is what the Systems Manager console lists nodes with; unlike
DescribeInstanceInformation it carries the EC2 ``Name`` tag (``ssmsh ls`` shows it).
"""

from __future__ import annotations

from typing import Any

from ..errors import ServiceError
from ..httpserver import HttpRequest
from ..state import TargetRecord
from .awsjson import Body, epoch, key_values_filters, page_result
from .registry import ApiContext, Registry

__all__ = ["InstancesApi"]

_INSTANCE_FILTER_KEYS = (
    "InstanceIds",
    "AgentVersion",
    "PingStatus",
    "PlatformTypes",
    "ActivationIds",
    "IamRole",
    "ResourceType",
    "AssociationStatus",
)


class InstancesApi:
    """The managed instances the emulator hosts."""

    def __init__(self, context: ApiContext) -> None:
        self.state = context.state

    def register(self, registry: Registry) -> None:
        # Filter keys and values have their own error codes (InvalidFilterKey,
        # InvalidInstanceInformationFilterValue), checked below.
        registry.add(
            "ssm",
            "DescribeInstanceInformation",
            self.describe_instance_information,
            unchecked=("InstanceInformationFilterList.*", "Filters.*"),
        )
        registry.add(
            "ssm",
            "DescribeInstanceProperties",
            self.describe_instance_properties,
            unchecked=("InstancePropertyFilterList.*", "FiltersWithOperator.*"),
        )

    async def describe_instance_properties(self, body: Body, request: HttpRequest) -> Body:
        targets = sorted(self.state.targets.values(), key=lambda t: t.instance_id)
        for key, values in key_values_filters(
            body, "InstancePropertyFilterList", "key", "valueSet"
        ):
            if key not in _PROPERTY_FILTER_KEYS:
                raise ServiceError("InvalidFilterKey", f"The filter key {key} is not valid.")
            _check_values(key, values)
            targets = [t for t in targets if _target_matches(t, key, values)]
        for item in _filters_with_operator(body):
            key, values, operator = item
            if not (key in _PROPERTY_FILTER_KEYS or key.startswith("tag:")):
                raise ServiceError("InvalidFilterKey", f"The filter key {key} is not valid.")
            _check_values(key, values)
            targets = [t for t in targets if _operator_matches(t, key, values, operator)]
        return page_result(
            targets, "DescribeInstanceProperties", body, 10, "InstanceProperties", _properties
        )

    async def describe_instance_information(self, body: Body, request: HttpRequest) -> Body:
        targets = sorted(self.state.targets.values(), key=lambda t: t.instance_id)
        legacy = key_values_filters(body, "InstanceInformationFilterList", "key", "valueSet")
        for key, values in legacy:
            if key not in _INSTANCE_FILTER_KEYS:
                raise ServiceError("InvalidFilterKey", f"The filter key {key} is not valid.")
            _check_values(key, values)
            if key == "InstanceIds":
                unknown = [v for v in values if v not in self.state.targets]
                if unknown:
                    raise ServiceError(
                        "InvalidInstanceId", f"Instances {unknown} not found or not managed."
                    )
            targets = [t for t in targets if _target_matches(t, key, values)]
        for key, values in key_values_filters(body, "Filters"):
            if not (key in _INSTANCE_FILTER_KEYS or key.startswith("tag:") or key == "tag-key"):
                raise ServiceError("InvalidFilterKey", f"The filter key {key} is not valid.")
            _check_values(key, values)
            targets = [t for t in targets if _target_matches(t, key, values)]
        return page_result(
            targets, "DescribeInstanceInformation", body, 50, "InstanceInformationList", _info
        )


#: InstancePropertyFilterList keys (botocore's InstancePropertyFilterKey).
_PROPERTY_FILTER_KEYS = (*_INSTANCE_FILTER_KEYS, "DocumentName")
_OPERATORS = ("Equal", "NotEqual", "BeginWith", "LessThan", "GreaterThan")


def _filters_with_operator(body: Body) -> list[tuple[str, list[Any], str]]:
    found = []
    for item in body.get("FiltersWithOperator") or []:
        if not isinstance(item, dict) or not isinstance(item.get("Key"), str):
            raise ServiceError("SerializationException", "Each filter must have a Key.")
        operator = item.get("Operator") or "Equal"
        if operator not in _OPERATORS:
            raise ServiceError(
                "ValidationException",
                f"Operator {operator!r} is not one of {', '.join(_OPERATORS)}.",
            )
        values = item.get("Values")
        found.append((item["Key"], values if isinstance(values, list) else [], str(operator)))
    return found


def _field(target: TargetRecord, key: str) -> str | None:
    if key.startswith("tag:"):
        return target.all_tags.get(key[4:])
    return {
        "InstanceIds": target.instance_id,
        "PingStatus": target.ping_status,
        "AgentVersion": target.agent_version,
        "PlatformTypes": target.platform_type,
        "ResourceType": "EC2Instance",
        "AssociationStatus": "Success",
    }.get(key)


def _operator_matches(target: TargetRecord, key: str, values: list[str], operator: str) -> bool:
    value = _field(target, key)
    if value is None:
        return operator == "NotEqual"
    if operator == "Equal":
        return value in values
    if operator == "NotEqual":
        return value not in values
    if operator == "BeginWith":
        return any(value.startswith(v) for v in values)
    if operator == "LessThan":
        return any(value < v for v in values)
    return any(value > v for v in values)  # GreaterThan


def _check_values(key: str, values: list[Any]) -> None:
    if not values or not all(isinstance(v, str) and v for v in values):
        raise ServiceError(
            "InvalidInstanceInformationFilterValue",
            f"The filter {key} needs one or more non-empty string values.",
        )


def _target_matches(target: TargetRecord, key: str, values: list[str]) -> bool:
    if key == "InstanceIds":
        return target.instance_id in values
    if key == "PingStatus":
        return target.ping_status in values
    if key == "AgentVersion":
        return target.agent_version in values
    if key == "PlatformTypes":
        return target.platform_type in values
    if key == "ResourceType":
        return "EC2Instance" in values
    if key == "AssociationStatus":
        return "Success" in values
    if key.startswith("tag:"):
        return target.all_tags.get(key[4:]) in values
    if key == "tag-key":
        return any(v in target.all_tags for v in values)
    return False  # ActivationIds, IamRole: emulated instances have none


def _info(target: TargetRecord) -> Body:
    return {
        "InstanceId": target.instance_id,
        "PingStatus": target.ping_status,
        "LastPingDateTime": epoch(target.last_ping),
        "AgentVersion": target.agent_version,
        "IsLatestVersion": False,
        "PlatformType": target.platform_type,
        "PlatformName": target.platform_name,
        "PlatformVersion": "",
        "ResourceType": "EC2Instance",
        "IPAddress": "127.0.0.1",
        "ComputerName": f"{target.name or target.instance_id}.emulated.local",
        "AssociationStatus": "Success",
        "SourceId": target.instance_id,
        "SourceType": "AWS::EC2::Instance",
    }


def _properties(target: TargetRecord) -> Body:
    info = _info(target)
    properties: Body = {
        key: info[key]
        for key in (
            "InstanceId",
            "PingStatus",
            "LastPingDateTime",
            "AgentVersion",
            "PlatformType",
            "PlatformName",
            "PlatformVersion",
            "ResourceType",
            "IPAddress",
            "ComputerName",
            "AssociationStatus",
            "SourceId",
            "SourceType",
        )
    }
    if target.name:
        properties["Name"] = target.name
    return properties
