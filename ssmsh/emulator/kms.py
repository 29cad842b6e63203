"""A small in-process KMS: GenerateDataKey and Decrypt with encryption-context checks.

The CiphertextBlob format is the emulator's own: a version byte, the key id, a
12-byte nonce and AES-256-GCM ciphertext under a per-key key derived from one
random per-emulator master key. The encryption context is the GCM associated
data, so Decrypt with a different context fails like KMS does
(``InvalidCiphertextException``). Blobs do not survive an emulator restart.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from collections.abc import Iterable, Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import ServiceError

__all__ = ["ACCOUNT_ID", "DataKey", "KmsKey", "KmsService"]

ACCOUNT_ID = "123456789012"
_BLOB_VERSION = 1
_NONCE = 12
_KEY_SPECS = {"AES_256": 32, "AES_128": 16}
_MAX_DATA_KEY = 1024


@dataclasses.dataclass(frozen=True, slots=True)
class KmsKey:
    key_id: str
    arn: str
    aliases: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class DataKey:
    """GenerateDataKey's result."""

    plaintext: bytes
    ciphertext_blob: bytes
    key_arn: str


def _context_aad(context: Mapping[str, str] | None) -> bytes:
    return json.dumps(dict(context or {}), sort_keys=True, separators=(",", ":")).encode()


class KmsService:
    """Symmetric KMS keys known to one emulator instance."""

    def __init__(
        self,
        region: str = "us-east-1",
        key_ids: Iterable[str] = (),
        account: str = ACCOUNT_ID,
        master_key: bytes | None = None,
    ) -> None:
        self.region = region
        self.account = account
        self._master = master_key if master_key is not None else os.urandom(32)
        self._keys: dict[str, KmsKey] = {}
        self._aliases: dict[str, str] = {}
        for key_id in key_ids:
            self.add_key(key_id)

    # -- key registry -------------------------------------------------------------

    def add_key(self, identifier: str) -> KmsKey:
        """Register a key by id, key ARN, ``alias/name`` or alias ARN; returns it."""
        alias: str | None = None
        if identifier.startswith("arn:"):
            resource = identifier.split(":", 5)[-1]
            if resource.startswith("alias/"):
                alias = resource
                key_id = str(uuid.uuid5(uuid.NAMESPACE_URL, resource))
            else:
                key_id = resource.removeprefix("key/")
        elif identifier.startswith("alias/"):
            alias = identifier
            key_id = str(uuid.uuid5(uuid.NAMESPACE_URL, alias))
        else:
            key_id = identifier
        if not key_id or len(key_id) > 255 or not key_id.isascii() or "/" in key_id:
            raise ValueError(f"not a usable KMS key identifier: {identifier!r}")
        existing = self._keys.get(key_id)
        arn = f"arn:aws:kms:{self.region}:{self.account}:key/{key_id}"
        aliases = existing.aliases if existing else ()
        if alias and alias not in aliases:
            aliases = (*aliases, alias)
            self._aliases[alias] = key_id
        key = KmsKey(key_id, arn, aliases)
        self._keys[key_id] = key
        return key

    @property
    def keys(self) -> list[KmsKey]:
        return list(self._keys.values())

    def lookup(self, identifier: str) -> KmsKey:
        """The key named by id, key ARN, alias name or alias ARN (NotFoundException)."""
        key_id: str | None = identifier
        if identifier.startswith("arn:"):
            resource = identifier.split(":", 5)[-1]
            key_id = (
                self._aliases.get(resource)
                if resource.startswith("alias/")
                else resource.removeprefix("key/")
            )
        elif identifier.startswith("alias/"):
            key_id = self._aliases.get(identifier)
        key = self._keys.get(key_id) if key_id is not None else None
        if key is None:
            if identifier.startswith("alias/") or ":alias/" in identifier:
                full = identifier
                if not identifier.startswith("arn:"):
                    full = f"arn:aws:kms:{self.region}:{self.account}:{identifier}"
                raise ServiceError("NotFoundException", f"Alias {full} is not found.")
            raise ServiceError(
                "NotFoundException",
                f"Key 'arn:aws:kms:{self.region}:{self.account}:key/{key_id}' does not exist",
            )
        return key

    # -- operations ---------------------------------------------------------------

    def generate_data_key(
        self,
        key_id: str,
        number_of_bytes: int | None = None,
        key_spec: str | None = None,
        context: Mapping[str, str] | None = None,
    ) -> DataKey:
        """A fresh random data key, in plaintext and wrapped under ``key_id``."""
        if (number_of_bytes is None) == (key_spec is None):
            raise ServiceError(
                "ValidationException", "Please specify either number of bytes or key spec."
            )
        if key_spec is not None:
            if key_spec not in _KEY_SPECS:
                raise ServiceError(
                    "ValidationException",
                    f"1 validation error detected: Value '{key_spec}' at 'keySpec' failed to "
                    "satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]",
                )
            size = _KEY_SPECS[key_spec]
        else:
            assert number_of_bytes is not None
            if not 1 <= number_of_bytes <= _MAX_DATA_KEY:
                raise ServiceError(
                    "ValidationException",
                    f"1 validation error detected: Value '{number_of_bytes}' at "
                    "'numberOfBytes' failed to satisfy constraint: Member must have value "
                    f"between 1 and {_MAX_DATA_KEY}",
                )
            size = number_of_bytes
        key = self.lookup(key_id)
        plaintext = os.urandom(size)
        return DataKey(plaintext, self._wrap(key, plaintext, context), key.arn)

    def decrypt_with_key(
        self,
        blob: bytes,
        context: Mapping[str, str] | None = None,
        key_id: str | None = None,
    ) -> tuple[bytes, str]:
        """``(plaintext, key ARN)`` of a blob from :meth:`generate_data_key`."""
        if len(blob) < 2 or blob[0] != _BLOB_VERSION or len(blob) < 2 + blob[1] + _NONCE + 16:
            raise ServiceError("InvalidCiphertextException", "The ciphertext is invalid.")
        id_len = blob[1]
        try:
            blob_key_id = blob[2 : 2 + id_len].decode("ascii")
        except UnicodeDecodeError:
            raise ServiceError("InvalidCiphertextException", "The ciphertext is invalid.") from None
        key = self._keys.get(blob_key_id)
        if key is None:
            raise ServiceError("InvalidCiphertextException", "The ciphertext is invalid.")
        if key_id is not None and self.lookup(key_id).key_id != key.key_id:
            raise ServiceError(
                "IncorrectKeyException",
                "The key ID in the request does not identify a CMK that can perform this "
                "operation.",
            )
        nonce = blob[2 + id_len : 2 + id_len + _NONCE]
        sealed = blob[2 + id_len + _NONCE :]
        try:
            plaintext = AESGCM(self._key_material(key)).decrypt(
                nonce, sealed, self._aad(key, context)
            )
        except InvalidTag:
            raise ServiceError(
                "InvalidCiphertextException",
                "The ciphertext or encryption context does not match.",
            ) from None
        return plaintext, key.arn

    def decrypt(self, blob: bytes, context: Mapping[str, str] | None = None) -> bytes:
        """The plaintext data key; raises ServiceError like KMS Decrypt."""
        return self.decrypt_with_key(blob, context)[0]

    # -- internals ----------------------------------------------------------------

    def _key_material(self, key: KmsKey) -> bytes:
        return HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=b"ssmsh-emulator-kms:" + key.key_id.encode(),
        ).derive(self._master)

    def _aad(self, key: KmsKey, context: Mapping[str, str] | None) -> bytes:
        return key.arn.encode() + b"\x00" + _context_aad(context)

    def _wrap(self, key: KmsKey, plaintext: bytes, context: Mapping[str, str] | None) -> bytes:
        key_id = key.key_id.encode("ascii")
        nonce = os.urandom(_NONCE)
        sealed = AESGCM(self._key_material(key)).encrypt(nonce, plaintext, self._aad(key, context))
        return bytes([_BLOB_VERSION, len(key_id)]) + key_id + nonce + sealed
