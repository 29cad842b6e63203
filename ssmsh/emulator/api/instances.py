"""Managed instances: DescribeInstanceInformation."""

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
