"""EC2 Instance Connect: SendSSHPublicKey, for ``ssmsh ssh --push-key``.

The key is kept on the emulated instance for 60 seconds (:mod:`..instance_connect`).
Errors as the service's model names them: an instance the emulator does not know is
``EC2InstanceNotFoundException``, an instance that is not running (here: not Online)
``EC2InstanceUnavailableException``, a key that is not an OpenSSH public key of a type
the service takes ``InvalidArgsException``.
"""

from __future__ import annotations

import uuid

from ..errors import ServiceError
from ..httpserver import HttpRequest
from .awsjson import Body, string
from .registry import ApiContext, Registry

__all__ = ["InstanceConnectApi"]


class InstanceConnectApi:
    """SendSSHPublicKey against the emulator's instances."""

    def __init__(self, context: ApiContext) -> None:
        self.state = context.state

    def register(self, registry: Registry) -> None:
        registry.add("ec2-instance-connect", "SendSSHPublicKey", self.send_ssh_public_key)

    async def send_ssh_public_key(self, body: Body, request: HttpRequest) -> Body:
        instance_id = string(body, "InstanceId", required=True) or ""
        user = string(body, "InstanceOSUser", required=True) or ""
        key = string(body, "SSHPublicKey", required=True) or ""
        target = self.state.targets.get(instance_id)
        if target is None:
            raise ServiceError("EC2InstanceNotFoundException", f"Instance {instance_id} not found.")
        if target.ping_status != "Online":
            raise ServiceError(
                "EC2InstanceUnavailableException",
                f"Instance {instance_id} is not available ({target.ping_status}).",
            )
        try:
            self.state.ssh_keys.push(instance_id, user, key)
        except ValueError as exc:
            raise ServiceError("InvalidArgsException", str(exc)) from None
        return {"RequestId": str(uuid.uuid4()), "Success": True}
