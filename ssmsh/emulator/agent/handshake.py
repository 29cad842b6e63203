"""The agent's side of the session handshake (protocol notes §7, §8), without I/O.

Order, as the official agent does it:

1. HandshakeRequest (5): ``AgentVersion`` and the requested actions, ``SessionType``
   first (``Properties`` are the port settings for Port sessions, ``null`` for the
   others), then ``KMSEncryption`` (``KMSKeyId`` and a random ``Challenge``) when the
   session is encrypted. The real agent never encrypts Port sessions.
2. HandshakeResponse (6) from the client: every action must have succeeded. For
   KMS the agent decrypts ``KMSCipherTextKey`` with KMS under the encryption context
   ``aws:ssm:SessionId`` / ``aws:ssm:TargetId`` (plus ``aws:ssm:RandomChallenge``
   when the client acknowledged the challenge) and turns encryption on.
3. With KMS: EncChallengeRequest (8) carrying 64 random bytes encrypted with the
   agent's key; the client's EncChallengeResponse (9) must decrypt to the same bytes.
4. HandshakeComplete (7): the time taken in nanoseconds and a ``CustomerMessage``.

Failures raise :class:`~ssmsh.exceptions.HandshakeError` whose text is what the
session reports (``Encountered error while initiating handshake. ...``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from ...exceptions import EncryptionError, HandshakeError, RemoteProtocolError
from ...protocol.constants import ActionStatus, ActionType, SessionType
from ...protocol.crypto import DATA_KEY_SIZE, Encrypter
from ...protocol.payloads import (
    EncChallenge,
    HandshakeComplete,
    HandshakeRequest,
    HandshakeResponse,
    RequestedClientAction,
)
from ...protocol.versions import (
    FIRST_CLIENT_VERSION_WITH_OUTPUT_SEPARATION,
    client_supports_output_separation,
)

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "AgentHandshake",
    "KmsDecrypt",
    "SendChallenge",
    "SendComplete",
]

logger = logging.getLogger(__name__)

#: How long the agent waits for each answer of the client (``handshakeTimeout``).
HANDSHAKE_TIMEOUT = 1500.0
_RANDOM_CHALLENGE_SIZE = 16
_ENCRYPTION_CHALLENGE_SIZE = 64
_PREFIX = "Encountered error while initiating handshake. "
KMS_NOTICE = "This session is encrypted using AWS KMS."

#: ``decrypt(ciphertext_blob, encryption_context) -> plaintext``; raises on failure.
KmsDecrypt = Callable[[bytes, Mapping[str, str]], bytes]


def _fail(message: str) -> HandshakeError:
    return HandshakeError(_PREFIX + message)


@dataclasses.dataclass(frozen=True, slots=True)
class SendChallenge:
    """Encryption is on: send this EncChallengeRequest payload next."""

    payload: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class SendComplete:
    """Send this HandshakeComplete payload; the plugin may start."""

    payload: bytes


class AgentHandshake:
    """One handshake, driven by the agent: payloads in, payloads and decisions out."""

    def __init__(
        self,
        *,
        agent_version: str,
        session_id: str,
        target_id: str,
        session_type: str,
        properties: Mapping[str, Any] | None,
        kms_key_id: str | None,
        decrypt: KmsDecrypt | None,
        separate_output: bool,
        started: float,
    ) -> None:
        self.agent_version = agent_version
        self.session_id = session_id
        self.target_id = target_id
        self.session_type = session_type
        self.properties = properties
        self.kms_key_id = kms_key_id or None
        self._decrypt = decrypt
        self.separate_output = separate_output
        self.started = started
        self.random_challenge = base64.b64encode(os.urandom(_RANDOM_CHALLENGE_SIZE)).decode()
        #: Set from the HandshakeResponse.
        self.client_version = ""
        #: The agent's cipher once KMS succeeded.
        self.encrypter: Encrypter | None = None
        self._challenge: bytes | None = None
        self.complete = False

    # ----------------------------------------------------------------- request

    def request_payload(self) -> bytes:
        """The HandshakeRequest payload (PayloadType 5)."""
        properties: Any = None
        if self.session_type == SessionType.PORT and self.properties is not None:
            # Go marshals a map with its keys sorted.
            properties = {key: self.properties[key] for key in sorted(self.properties)}
        actions = [
            RequestedClientAction(
                ActionType.SESSION_TYPE,
                {"SessionType": self.session_type, "Properties": properties},
            )
        ]
        if self.kms_key_id:
            actions.append(
                RequestedClientAction(
                    ActionType.KMS_ENCRYPTION,
                    {"KMSKeyId": self.kms_key_id, "Challenge": self.random_challenge},
                )
            )
        return HandshakeRequest(self.agent_version, tuple(actions)).encode()

    # ---------------------------------------------------------------- response

    def receive_response(self, payload: bytes, now: float) -> SendChallenge | SendComplete:
        """Process the HandshakeResponse (6); raises HandshakeError if it is not acceptable."""
        try:
            response = HandshakeResponse.decode(payload)
        except RemoteProtocolError as exc:
            raise _fail(f"Unmarshalling of HandshakeResponse message failed, {exc}") from None
        self.client_version = response.client_version
        error: str | None = None
        kms_done = False
        for action in response.processed_actions:
            if action.action_status != ActionStatus.SUCCESS:
                error = (
                    f"{action.action_type} failed on client with status "
                    f"{action.action_status} error: {action.error}"
                )
            elif action.action_type == ActionType.KMS_ENCRYPTION:
                if self.kms_key_id is None:
                    logger.warning("client answered a KMSEncryption action nobody asked for")
                    continue
                try:
                    self.encrypter = self._finalize_kms(action.action_result)
                    kms_done = True
                except HandshakeError as exc:
                    error = str(exc)
            elif action.action_type != ActionType.SESSION_TYPE:
                logger.warning("unknown handshake client action %r", action.action_type)
        if error is not None:
            raise _fail(error)
        if self.kms_key_id and not kms_done:
            raise _fail("KMSEncryption was requested but the client did not perform it")
        if self.encrypter is not None:
            self._challenge = os.urandom(_ENCRYPTION_CHALLENGE_SIZE)
            return SendChallenge(EncChallenge(self.encrypter.encrypt(self._challenge)).encode())
        return SendComplete(self._complete_payload(now))

    def _finalize_kms(self, result: Any) -> Encrypter:
        if not isinstance(result, dict):
            raise HandshakeError("Fetching data key failed: no KMSCipherTextKey in the response")
        raw_key = result.get("KMSCipherTextKey")
        if not isinstance(raw_key, str):
            raise HandshakeError("Fetching data key failed: no KMSCipherTextKey in the response")
        try:
            blob = base64.b64decode(raw_key, validate=True)
        except (binascii.Error, ValueError):
            raise HandshakeError(
                "Fetching data key failed: KMSCipherTextKey is not base64"
            ) from None
        context = {"aws:ssm:SessionId": self.session_id, "aws:ssm:TargetId": self.target_id}
        if result.get("ChallengeAcknowledgement") is True:
            context["aws:ssm:RandomChallenge"] = self.random_challenge
        if self._decrypt is None:
            raise HandshakeError("Fetching data key failed: no KMS available")
        try:
            plaintext = self._decrypt(blob, context)
        except Exception as exc:  # the KMS service's own error, whatever its type
            raise HandshakeError(
                f"Fetching data key failed: Unable to retrieve data key, {exc}"
            ) from None
        if len(plaintext) != DATA_KEY_SIZE:
            raise HandshakeError(
                f"Fetching data key failed: the data key is {len(plaintext)} bytes, "
                f"not {DATA_KEY_SIZE}"
            )
        return Encrypter.for_agent(plaintext)

    # --------------------------------------------------------------- challenge

    def receive_challenge_response(self, payload: bytes, now: float) -> SendComplete:
        """Check the EncChallengeResponse (9); raises HandshakeError if it is wrong."""
        if self.encrypter is None or self._challenge is None:
            raise _fail("unexpected EncChallengeResponse")
        try:
            answer = EncChallenge.decode(payload)
        except RemoteProtocolError as exc:
            raise _fail(
                f"Unmarshalling of EncryptionChallengeResponse message failed, {exc}"
            ) from None
        try:
            plaintext = self.encrypter.decrypt(answer.challenge)
        except EncryptionError as exc:
            raise _fail(f"Error decrypting encrypted text, {exc}") from None
        if plaintext != self._challenge:
            raise _fail("Encryption challenge does not match!")
        return SendComplete(self._complete_payload(now))

    # ---------------------------------------------------------------- complete

    def _complete_payload(self, now: float) -> bytes:
        self.complete = True
        message = ""
        if self.separate_output and not client_supports_output_separation(self.client_version):
            message = (
                "Please update session manager plugin version (minimum required version "
                f"{FIRST_CLIENT_VERSION_WITH_OUTPUT_SEPARATION}) for fully support of separate "
                "StdOut/StdErr output.\r\n"
            )
        if self.encrypter is not None:
            message += KMS_NOTICE
        elapsed_ns = max(0, int((now - self.started) * 1e9))
        return HandshakeComplete(elapsed_ns, message).encode()
