"""AES-256-GCM payload encryption for KMS-enabled sessions (protocol notes §8).

When the agent asks for ``KMSEncryption``, the client obtains a 64-byte data key
from KMS and both ends split it in two:

* bytes ``0:32``  — the *agent* encrypts with it, so the client decrypts with it;
* bytes ``32:64`` — the *client* encrypts with it, so the agent decrypts with it.

Every encrypted payload travels as ``nonce(12) || ciphertext || tag(16)``: a fresh
random 96-bit nonce, standard GCM with a 16-byte tag, no additional authenticated
data. An encrypted payload is therefore 28 bytes longer than its plaintext.

The nonce source is injectable so that tests can reproduce known vectors; in
production it is :func:`os.urandom`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..exceptions import EncryptionError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "DATA_KEY_SIZE",
    "KEY_SIZE",
    "NONCE_SIZE",
    "OVERHEAD",
    "TAG_SIZE",
    "Encrypter",
    "NonceSource",
    "answer_challenge",
    "verify_challenge",
]

#: Bytes requested from ``kms:GenerateDataKey`` (``NumberOfBytes``).
DATA_KEY_SIZE = 64
#: One AES-256 key.
KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
#: Bytes added to every plaintext on the wire.
OVERHEAD = NONCE_SIZE + TAG_SIZE

#: Returns ``n`` unpredictable bytes, like :func:`os.urandom`.
NonceSource = Callable[[int], bytes]


class Encrypter:
    """Encrypts outgoing and decrypts incoming payloads with two distinct AES-256 keys.

    Build one with :meth:`for_client` or :meth:`for_agent` from the 64-byte KMS
    data key. ``decrypt`` raises :class:`EncryptionError` and nothing else.
    """

    __slots__ = ("_decryptor", "_encryptor", "_invalid_tag", "_nonce_source")

    def __init__(
        self,
        encrypt_key: bytes,
        decrypt_key: bytes,
        nonce_source: NonceSource | None = None,
    ) -> None:
        for name, key in (("encryption", encrypt_key), ("decryption", decrypt_key)):
            if not isinstance(key, bytes | bytearray) or len(key) != KEY_SIZE:
                raise EncryptionError(f"the {name} key must be {KEY_SIZE} bytes")
        aesgcm, self._invalid_tag = _aead()
        self._encryptor: AESGCM = aesgcm(bytes(encrypt_key))
        self._decryptor: AESGCM = aesgcm(bytes(decrypt_key))
        self._nonce_source: NonceSource = nonce_source or os.urandom

    @classmethod
    def for_client(cls, data_key: bytes, nonce_source: NonceSource | None = None) -> Encrypter:
        """The client's view: decrypt with ``data_key[0:32]``, encrypt with ``[32:64]``."""
        _check_data_key(data_key)
        return cls(data_key[KEY_SIZE:], data_key[:KEY_SIZE], nonce_source)

    @classmethod
    def for_agent(cls, data_key: bytes, nonce_source: NonceSource | None = None) -> Encrypter:
        """The agent's view (used by the emulator): the reverse of :meth:`for_client`."""
        _check_data_key(data_key)
        return cls(data_key[:KEY_SIZE], data_key[KEY_SIZE:], nonce_source)

    def encrypt(self, plaintext: bytes) -> bytes:
        """Return ``nonce || ciphertext || tag`` for ``plaintext`` under a fresh nonce."""
        nonce = self._nonce_source(NONCE_SIZE)
        if len(nonce) != NONCE_SIZE:
            raise EncryptionError(f"the nonce source returned {len(nonce)} bytes, not 12")
        return nonce + self._encryptor.encrypt(nonce, bytes(plaintext), None)

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Open ``nonce || ciphertext || tag``; :class:`EncryptionError` if it does not verify."""
        if len(ciphertext) < OVERHEAD:
            raise EncryptionError(
                f"encrypted payload too short ({len(ciphertext)} bytes, at least {OVERHEAD})"
            )
        data = bytes(ciphertext)
        try:
            return self._decryptor.decrypt(data[:NONCE_SIZE], data[NONCE_SIZE:], None)
        except self._invalid_tag:
            raise EncryptionError("payload failed authentication (wrong key or tampered)") from None
        except (ValueError, OverflowError) as exc:
            raise EncryptionError(f"payload could not be decrypted: {exc}") from None

    def __repr__(self) -> str:  # never show key material
        return "Encrypter(<keys hidden>)"


def _aead() -> tuple[type[AESGCM], type[Exception]]:
    """AES-GCM and its authentication error, imported on first use.

    cryptography costs ~7 MB of memory; sessions without KMS encryption never need it.
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM, InvalidTag


def _check_data_key(data_key: bytes) -> None:
    if not isinstance(data_key, bytes | bytearray) or len(data_key) != DATA_KEY_SIZE:
        size = len(data_key) if isinstance(data_key, bytes | bytearray) else "no"
        raise EncryptionError(f"the KMS data key must be {DATA_KEY_SIZE} bytes, got {size}")


def answer_challenge(encrypter: Encrypter, challenge: bytes) -> bytes:
    """Answer an encryption challenge (notes §8.4).

    The agent sends bytes encrypted with its key; proving we hold the data key
    means decrypting them and encrypting the plaintext again with our own key
    (under a fresh nonce). Raises :class:`EncryptionError` if the challenge does
    not decrypt.
    """
    return encrypter.encrypt(encrypter.decrypt(challenge))


def verify_challenge(encrypter: Encrypter, expected_plaintext: bytes, response: bytes) -> bool:
    """The agent's check of a challenge response (used by the emulator).

    ``encrypter`` is the agent's :meth:`Encrypter.for_agent`; the response must
    decrypt to exactly the plaintext the agent encrypted into the challenge.
    Never raises: a response that does not decrypt is simply wrong.
    """
    try:
        return encrypter.decrypt(response) == expected_plaintext
    except EncryptionError:
        return False
