"""EC2 Instance Connect's side on the instance: the SSH keys pushed to it, for 60 seconds.

``SendSSHPublicKey`` hands a public key to the instance's metadata service for one OS
user; the instance's ``sshd`` accepts it (through its ``AuthorizedKeysCommand``) for the
next 60 seconds, then forgets it (AWS's EC2 Instance Connect documentation). The
emulator keeps the same record on its clock, so a test's SSH server can ask which keys
a user may log in with right now (:meth:`PushedKeys.valid`).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Callable

__all__ = ["KEY_LIFETIME", "PushedKeys", "parse_public_key"]

#: How long a pushed key is accepted, in seconds.
KEY_LIFETIME = 60.0

#: The key types EC2 Instance Connect takes (OpenSSH format, ``TYPE BASE64 [COMMENT]``).
_KEY_TYPES = (
    "ssh-rsa",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
)
_KEY_RE = re.compile(r"^(\S+) ([A-Za-z0-9+/=]+)(?: .*)?$")


def parse_public_key(text: str) -> tuple[str, bytes]:
    """``(type, blob)`` of an OpenSSH public key line; ValueError says what is wrong."""
    match = _KEY_RE.match(text.strip())
    if match is None:
        raise ValueError("the public key is not in OpenSSH format (TYPE BASE64 [COMMENT])")
    key_type, data = match.groups()
    if key_type not in _KEY_TYPES:
        raise ValueError(f"unsupported key type {key_type!r} (use {', '.join(_KEY_TYPES)})")
    try:
        blob = base64.b64decode(data, validate=True)
    except binascii.Error:
        raise ValueError("the public key's base64 is malformed") from None
    # The blob starts with its own type as an SSH string: it must say the same.
    size = int.from_bytes(blob[:4], "big") if len(blob) >= 4 else -1
    if blob[4 : 4 + size].decode("ascii", "replace") != key_type:
        raise ValueError("the public key's data does not match its type")
    return key_type, blob


@dataclasses.dataclass(frozen=True, slots=True)
class _Pushed:
    key_type: str
    blob: bytes
    expires: float


class PushedKeys:
    """Keys pushed per (instance, OS user), each valid for :data:`KEY_LIFETIME`."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._keys: dict[tuple[str, str], list[_Pushed]] = {}

    def push(self, instance_id: str, user: str, public_key: str) -> None:
        key_type, blob = parse_public_key(public_key)
        now = self._clock()
        kept = [k for k in self._keys.get((instance_id, user), []) if k.expires > now]
        kept.append(_Pushed(key_type, blob, now + KEY_LIFETIME))
        self._keys[(instance_id, user)] = kept[-16:]  # bounded: the newest few

    def valid(self, instance_id: str, user: str) -> list[tuple[str, bytes]]:
        """The ``(type, blob)`` of every key ``user`` may log in with now."""
        now = self._clock()
        return [
            (k.key_type, k.blob) for k in self._keys.get((instance_id, user), []) if k.expires > now
        ]
