"""Wire enums and the official constants of the Session Manager data channel."""

from __future__ import annotations

import enum

__all__ = [
    "CLIENT_VERSION",
    "ActionStatus",
    "ActionType",
    "Flag",
    "MessageType",
    "PayloadType",
    "SessionType",
]

#: The version we report to the service and the agent. Agents gate features on it
#: (smux, keepalive, stdout/stderr separation), so it must be a real, current release.
CLIENT_VERSION = "1.2.779.0"


class MessageType(enum.StrEnum):
    INPUT_STREAM_DATA = "input_stream_data"
    OUTPUT_STREAM_DATA = "output_stream_data"
    ACKNOWLEDGE = "acknowledge"
    CHANNEL_CLOSED = "channel_closed"
    START_PUBLICATION = "start_publication"
    PAUSE_PUBLICATION = "pause_publication"
    AGENT_SESSION_STATE = "agent_session_state"


#: Message types that carry sequenced stream data.
STREAM_MESSAGE_TYPES = frozenset({MessageType.INPUT_STREAM_DATA, MessageType.OUTPUT_STREAM_DATA})


class PayloadType(enum.IntEnum):
    UNDEFINED = 0
    OUTPUT = 1
    ERROR = 2
    SIZE = 3
    PARAMETER = 4
    HANDSHAKE_REQUEST = 5
    HANDSHAKE_RESPONSE = 6
    HANDSHAKE_COMPLETE = 7
    ENC_CHALLENGE_REQUEST = 8
    ENC_CHALLENGE_RESPONSE = 9
    FLAG = 10
    STDERR = 11
    EXIT_CODE = 12


#: Payload types of the handshake family: acked before they are processed.
HANDSHAKE_PAYLOAD_TYPES = frozenset(
    {
        PayloadType.HANDSHAKE_REQUEST,
        PayloadType.HANDSHAKE_COMPLETE,
        PayloadType.ENC_CHALLENGE_REQUEST,
    }
)


class Flag(enum.IntEnum):
    """Values of a PayloadType.FLAG payload (4-byte big-endian)."""

    DISCONNECT_TO_PORT = 1
    TERMINATE_SESSION = 2
    CONNECT_TO_PORT_ERROR = 3


class ActionType(enum.StrEnum):
    KMS_ENCRYPTION = "KMSEncryption"
    SESSION_TYPE = "SessionType"


class ActionStatus(enum.IntEnum):
    SUCCESS = 1
    FAILED = 2
    UNSUPPORTED = 3


class SessionType(enum.StrEnum):
    STANDARD_STREAM = "Standard_Stream"
    INTERACTIVE_COMMANDS = "InteractiveCommands"
    NON_INTERACTIVE_COMMANDS = "NonInteractiveCommands"
    PORT = "Port"
