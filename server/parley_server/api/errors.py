"""Every HTTP error leaves as ``ErrorBody{code, message}`` with a stable code."""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)
from litestar.types import ExceptionHandlersMap

from parley.protocol.errors import ErrorCode
from parley.protocol.http import ErrorBody
from parley_server import metrics
from parley_server.logging import get_logger
from parley_server.service.errors import ServiceError
from parley_server.store.records import StoreUnavailable

log = get_logger("parley.api")

STATUS_OF: dict[ErrorCode, int] = {
    ErrorCode.INVALID: 400,
    ErrorCode.WEAK_PASSWORD: 400,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.DEVICE_REVOKED: 401,
    ErrorCode.BAD_CREDENTIALS: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.ACCOUNT_DISABLED: 403,
    ErrorCode.REGISTRATION_CLOSED: 403,
    ErrorCode.INVITE_REQUIRED: 403,
    ErrorCode.INVITE_INVALID: 403,
    ErrorCode.NOT_MEMBER: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.UNKNOWN_USER: 404,
    ErrorCode.USERNAME_TAKEN: 409,
    ErrorCode.CONFLICT: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL: 500,
    ErrorCode.UNAVAILABLE: 503,
}


def error_response(
    code: ErrorCode, message: str, status: int | None = None, headers: dict[str, str] | None = None
) -> Response[ErrorBody]:
    metrics.count_error("http", code.value)
    return Response(
        ErrorBody(code=code, message=message),
        status_code=status or STATUS_OF.get(code, 400),
        media_type=MediaType.JSON,
        headers=headers,
    )


def _service_error(_: Request[Any, Any, Any], exc: ServiceError) -> Response[ErrorBody]:
    headers = None
    if exc.retry_after is not None:
        headers = {"Retry-After": str(max(1, int(exc.retry_after + 0.999)))}
    return error_response(exc.code, exc.message, headers=headers)


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[ErrorBody]:
    detail = (
        exc.extra[0].get("message", "")
        if isinstance(exc.extra, list) and exc.extra and isinstance(exc.extra[0], dict)
        else ""
    )
    return error_response(ErrorCode.INVALID, f"invalid request: {detail}".strip(": "), 400)


def _not_found(_: Request[Any, Any, Any], exc: NotFoundException) -> Response[ErrorBody]:
    return error_response(ErrorCode.NOT_FOUND, "not found", 404)


def _not_allowed(_: Request[Any, Any, Any], exc: MethodNotAllowedException) -> Response[ErrorBody]:
    return error_response(ErrorCode.INVALID, "method not allowed", 405, headers=exc.headers)


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    status = exc.status_code
    code = {
        400: ErrorCode.INVALID,
        401: ErrorCode.UNAUTHORIZED,
        403: ErrorCode.FORBIDDEN,
        404: ErrorCode.NOT_FOUND,
        413: ErrorCode.TOO_LARGE,
        429: ErrorCode.RATE_LIMITED,
        503: ErrorCode.UNAVAILABLE,
    }.get(status, ErrorCode.INTERNAL if status >= 500 else ErrorCode.INVALID)
    return error_response(code, str(exc.detail)[:200], status)


def _unavailable(_: Request[Any, Any, Any], exc: StoreUnavailable) -> Response[ErrorBody]:
    log.warning("store_unavailable", error=str(exc))
    return error_response(ErrorCode.UNAVAILABLE, "storage unavailable, retry", 503)


def _internal(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    log.exception("http_internal_error", path=request.url.path)
    return error_response(ErrorCode.INTERNAL, "internal server error", 500)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ServiceError: _service_error,
    StoreUnavailable: _unavailable,
    ValidationException: _validation,
    NotFoundException: _not_found,
    MethodNotAllowedException: _not_allowed,
    HTTPException: _http,
    Exception: _internal,
}
