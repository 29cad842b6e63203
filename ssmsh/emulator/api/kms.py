"""KMS operations a Session Manager client needs: GenerateDataKey and Decrypt."""

from __future__ import annotations

import base64

from ..httpserver import HttpRequest
from .awsjson import Body, blob, integer, string, string_map
from .registry import ApiContext, Registry

__all__ = ["KmsApi"]


class KmsApi:
    """Data keys from the emulator's in-process KMS (``ssmsh.emulator.kms``)."""

    def __init__(self, context: ApiContext) -> None:
        self.kms = context.state.kms

    def register(self, registry: Registry) -> None:
        registry.add("kms", "GenerateDataKey", self.generate_data_key)
        registry.add("kms", "Decrypt", self.decrypt)

    async def generate_data_key(self, body: Body, request: HttpRequest) -> Body:
        data_key = self.kms.generate_data_key(
            string(body, "KeyId", required=True) or "",
            integer(body, "NumberOfBytes"),
            string(body, "KeySpec"),
            string_map(body, "EncryptionContext"),
        )
        return {
            "CiphertextBlob": base64.b64encode(data_key.ciphertext_blob).decode(),
            "Plaintext": base64.b64encode(data_key.plaintext).decode(),
            "KeyId": data_key.key_arn,
        }

    async def decrypt(self, body: Body, request: HttpRequest) -> Body:
        ciphertext = blob(body, "CiphertextBlob", required=True) or b""
        plaintext, key_arn = self.kms.decrypt_with_key(
            ciphertext, string_map(body, "EncryptionContext"), string(body, "KeyId")
        )
        return {
            "KeyId": key_arn,
            "Plaintext": base64.b64encode(plaintext).decode(),
            "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        }
