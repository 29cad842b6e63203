"""EC2 Instance Connect: push a one-time SSH key to an instance for 60 seconds.

``ssmsh ssh --push-key`` makes a new Ed25519 key pair for each connection, sends its
public half with ``SendSSHPublicKey`` and hands the private half to OpenSSH. Nothing
needs to be installed on the instance beyond what EC2 Instance Connect needs
(``ec2-instance-connect`` on Amazon Linux 2023 and Ubuntu; its ``sshd``
AuthorizedKeysCommand), and no key is kept: the file is deleted once ssh ends.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .sessions import SsmSessions

__all__ = ["OneTimeKey", "push_key"]


class OneTimeKey:
    """A new Ed25519 key pair; the private key in a 0600 file under a 0700 directory."""

    def __init__(self) -> None:
        # cryptography (~5 MB) only when a key is made: every command's parser imports this.
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key = Ed25519PrivateKey.generate()
        self.public = (
            key.public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            .decode("ascii")
            + " ssmsh-one-time-key"
        )
        self._dir = tempfile.mkdtemp(prefix="ssmsh-key-")
        self.path = Path(self._dir) / "id_ed25519"
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(private)

    def remove(self) -> None:
        """Delete the private key (idempotent)."""
        self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            os.rmdir(self._dir)


async def push_key(sessions: SsmSessions, instance_id: str, user: str, public_key: str) -> None:
    """SendSSHPublicKey: ``user`` may log in with ``public_key`` for the next 60 s."""
    await sessions.call(
        "ec2-instance-connect",
        "SendSSHPublicKey",
        InstanceId=instance_id,
        InstanceOSUser=user,
        SSHPublicKey=public_key,
    )
