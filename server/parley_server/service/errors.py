"""The one exception type the service layer raises for expected failures."""

from __future__ import annotations

from parley.protocol.errors import ErrorCode


class ServiceError(Exception):
    """A failure with a stable code; transports turn it into an Error frame or HTTP body."""

    def __init__(self, code: ErrorCode, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


def not_member() -> ServiceError:
    """The same answer for "no such conversation" and "not yours": existence never leaks."""
    return ServiceError(ErrorCode.NOT_MEMBER, "not a member of that conversation")
