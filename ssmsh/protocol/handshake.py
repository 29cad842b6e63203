"""Client-side handshake processing (protocol notes §7, §8.4), as pure functions.

The agent opens with a HandshakeRequest (PayloadType 5) listing actions for the
client; the client answers with one HandshakeResponse (6), possibly proves it
holds the KMS data key by answering an EncChallengeRequest (8 → 9), and the
agent ends with HandshakeComplete (7). :class:`~ssmsh.protocol.session.ClientSession`
drives these steps; this module only turns payloads into decisions and back.

Actions and how each is answered, in request order:

``SessionType``
    ``Standard_Stream``, ``InteractiveCommands`` and ``NonInteractiveCommands``
    all mean "shell handling" and become ``Standard_Stream``; ``Port`` stays
    ``Port``; both keep the ``Properties`` object as sent. Anything else fails with
    ``Unknown session type <name>``.
``KMSEncryption``
    Needs a 64-byte data key from ``kms:GenerateDataKey`` for ``KMSKeyId``: the
    caller fetches it (the KMS call is I/O) and passes a :class:`DataKey` or an
    error text. On success the result carries the CiphertextBlob (base64) for the
    agent and the client turns encryption on.
anything else
    Reported the way the official client does: ``ActionStatus`` 0, the number 3
    (Unsupported) in ``ActionResult``, and ``Unsupported action <name>``.

A failed action is reported with ``ActionStatus`` 2 and
``Failed to process action <type>: <error>``, and its bare error text is added to
the top-level ``Errors`` list (``null`` when there are none).
"""

from __future__ import annotations

import base64
import dataclasses
import re
from typing import Any

from ..exceptions import EncryptionError, HandshakeError, LocalProtocolError
from .constants import CLIENT_VERSION, ActionStatus, ActionType, PayloadType, SessionType
from .crypto import Encrypter, NonceSource, answer_challenge
from .payloads import (
    EncChallenge,
    HandshakeComplete,
    HandshakeRequest,
    HandshakeResponse,
    ProcessedClientAction,
    RequestedClientAction,
)

__all__ = [
    "SHELL_SESSION_TYPES",
    "DataKey",
    "HandshakeResult",
    "answer_encryption_challenge",
    "implied_session_type",
    "parse_handshake_complete",
    "parse_handshake_request",
    "process_handshake_request",
    "requested_kms_key_id",
    "resolve_session_type",
]

#: Session types the client handles as an interactive shell.
SHELL_SESSION_TYPES = frozenset(
    {
        SessionType.STANDARD_STREAM,
        SessionType.INTERACTIVE_COMMANDS,
        SessionType.NON_INTERACTIVE_COMMANDS,
    }
)


@dataclasses.dataclass(frozen=True, slots=True)
class DataKey:
    """The answer of ``kms:GenerateDataKey``: 64 plaintext bytes and the blob for the agent."""

    plaintext: bytes = dataclasses.field(repr=False)
    ciphertext_blob: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class HandshakeResult:
    """What processing a HandshakeRequest decided."""

    #: To send as PayloadType 6 (never encrypted).
    response: HandshakeResponse
    agent_version: str
    #: ``Standard_Stream`` or ``Port`` when a SessionType action succeeded, else None.
    session_type: str | None
    session_properties: Any
    #: Set when a KMSEncryption action succeeded: encryption is on from now.
    encrypter: Encrypter | None = dataclasses.field(default=None, repr=False)
    #: The first failed SessionType action's error, if any.
    session_type_error: str | None = None
    #: The first failed KMSEncryption action's error, if any.
    kms_error: str | None = None

    @property
    def errors(self) -> tuple[str, ...]:
        return self.response.errors


def parse_handshake_request(payload: bytes) -> HandshakeRequest:
    """Decode PayloadType 5; raises RemoteProtocolError on malformed JSON."""
    return HandshakeRequest.decode(payload)


def parse_handshake_complete(payload: bytes) -> HandshakeComplete:
    """Decode PayloadType 7; raises RemoteProtocolError on malformed JSON."""
    return HandshakeComplete.decode(payload)


def _kms_key_id(action: RequestedClientAction) -> str:
    params = action.action_parameters
    key_id = params.get("KMSKeyId") if isinstance(params, dict) else None
    return key_id if isinstance(key_id, str) else ""


def requested_kms_key_id(request: HandshakeRequest) -> str | None:
    """The KMS key to ask a data key for, or None if no usable KMSEncryption action.

    One data key serves the whole request (an agent asks for encryption once).
    """
    for action in request.requested_actions:
        if action.action_type == ActionType.KMS_ENCRYPTION:
            key_id = _kms_key_id(action)
            if key_id:
                return key_id
    return None


def resolve_session_type(params: Any) -> tuple[str, Any]:
    """Map SessionType ``ActionParameters`` to (internal type, properties).

    Raises :class:`HandshakeError` with ``Unknown session type <name>``.
    """
    if not isinstance(params, dict):
        params = {}
    name = params.get("SessionType")
    name = name if isinstance(name, str) else ""
    properties = params.get("Properties")
    if name in SHELL_SESSION_TYPES:
        return SessionType.STANDARD_STREAM.value, properties
    if name == SessionType.PORT:
        return SessionType.PORT.value, properties
    raise HandshakeError(f"Unknown session type {name}")


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean(text: str) -> str:
    """Text safe to encode as UTF-8: lone surrogates (legal in JSON escapes, not in
    UTF-8) become U+FFFD, as Go's decoder would have made them."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def _failed(action_type: str, error: str) -> ProcessedClientAction:
    return ProcessedClientAction(
        action_type=action_type,
        action_status=ActionStatus.FAILED,
        action_result=None,
        error=f"Failed to process action {action_type}: {error}",
    )


def process_handshake_request(
    request: HandshakeRequest,
    data_key: DataKey | str | None = None,
    client_version: str = CLIENT_VERSION,
    nonce_source: NonceSource | None = None,
) -> HandshakeResult:
    """Answer every requested action, in order, and build the HandshakeResponse.

    ``data_key`` is the KMS answer when :func:`requested_kms_key_id` returned a
    key: a :class:`DataKey`, or the error text of a failed KMS call. Passing None
    while a key was requested is a caller bug (LocalProtocolError).
    """
    processed: list[ProcessedClientAction] = []
    errors: list[str] = []
    session_type: str | None = None
    properties: Any = None
    encrypter: Encrypter | None = None
    session_type_error: str | None = None
    kms_error: str | None = None

    for action in request.requested_actions:
        atype = _clean(action.action_type)
        if atype == ActionType.SESSION_TYPE:
            try:
                session_type, properties = resolve_session_type(action.action_parameters)
            except HandshakeError as exc:
                error = _clean(str(exc))
                session_type_error = session_type_error or error
                processed.append(_failed(atype, error))
                errors.append(error)
            else:
                processed.append(ProcessedClientAction(atype, ActionStatus.SUCCESS, None, ""))
        elif atype == ActionType.KMS_ENCRYPTION:
            try:
                encrypter, blob = _use_data_key(action, data_key, nonce_source)
            except EncryptionError as exc:
                error = _clean(str(exc))
                kms_error = kms_error or error
                processed.append(_failed(atype, error))
                errors.append(error)
            else:
                result = {
                    "KMSCipherTextKey": base64.b64encode(blob).decode("ascii"),
                    "KMSCipherTextHash": None,
                }
                processed.append(ProcessedClientAction(atype, ActionStatus.SUCCESS, result, ""))
        else:
            # The official client's shape: status left at 0, "Unsupported" in the result.
            error = f"Unsupported action {atype}"
            processed.append(ProcessedClientAction(atype, 0, ActionStatus.UNSUPPORTED.value, error))
            errors.append(error)

    response = HandshakeResponse(client_version, tuple(processed), tuple(errors))
    return HandshakeResult(
        response=response,
        agent_version=request.agent_version,
        session_type=session_type,
        session_properties=properties,
        encrypter=encrypter if kms_error is None else None,
        session_type_error=session_type_error,
        kms_error=kms_error,
    )


def _use_data_key(
    action: RequestedClientAction,
    data_key: DataKey | str | None,
    nonce_source: NonceSource | None,
) -> tuple[Encrypter, bytes]:
    """The client encrypter and the blob for the agent; EncryptionError says why not."""
    if not _kms_key_id(action):
        raise EncryptionError("KMSKeyId is missing from the request")
    if data_key is None:
        raise LocalProtocolError("a KMS data key was requested but none was provided")
    if isinstance(data_key, str):
        raise EncryptionError(data_key or "the KMS data key request failed")
    if not data_key.ciphertext_blob:
        raise EncryptionError("KMS returned an empty CiphertextBlob")
    return Encrypter.for_client(data_key.plaintext, nonce_source), data_key.ciphertext_blob


def answer_encryption_challenge(encrypter: Encrypter, payload: bytes) -> bytes:
    """PayloadType 8 in, PayloadType 9 out.

    Raises RemoteProtocolError for malformed JSON and EncryptionError when the
    challenge does not decrypt (wrong data key).
    """
    challenge = EncChallenge.decode(payload).challenge
    return EncChallenge(answer_challenge(encrypter, challenge)).encode()


def implied_session_type(payload_type: int) -> str | None:
    """The session type an agent that skips the handshake implies with its first payload.

    Very old agents start sending Output at once; that means a shell session. Any
    other first payload implies nothing.
    """
    if payload_type == PayloadType.OUTPUT:
        return SessionType.STANDARD_STREAM.value
    return None
