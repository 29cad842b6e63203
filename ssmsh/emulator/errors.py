"""AWS-shaped service errors raised by the emulator's API layers.

An error has the code botocore turns into ``ClientError.response["Error"]["Code"]``,
a one-line message, and the HTTP status the real service answers with.
"""

from __future__ import annotations

__all__ = ["ServiceError"]


class ServiceError(Exception):
    """A request the emulated service refuses, the way AWS refuses it."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status

    def to_json(self) -> dict[str, str]:
        """The awsJson1.1 error body."""
        return {"__type": self.code, "message": self.message}
