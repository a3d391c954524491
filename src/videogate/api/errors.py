"""The one table that maps errors to HTTP, and the handlers that apply it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from videogate import errors as e

log = logging.getLogger("videogate.api")

# Order matters: the first matching class wins, so subclasses come before their parents.
HTTP_STATUS: list[tuple[type[e.VideogateError], int]] = [
    (e.InvalidRequest, 400),
    (e.AuthenticationFailed, 401),
    (e.InsufficientBalance, 402),
    (e.SignatureInvalid, 403),
    (e.PermissionDenied, 403),
    (e.ModelNotFound, 404),
    (e.NotFound, 404),
    (e.Conflict, 409),
    (e.RateLimited, 429),
    (e.UpstreamError, 502),
    (e.NoAvailableRoute, 503),
    (e.VideogateError, 500),
]

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    416: "invalid_request_error",
    429: "rate_limit_error",
}


def status_for(exc: e.VideogateError) -> int:
    return next(status for cls, status in HTTP_STATUS if isinstance(exc, cls))


def error_body(status: int, code: str, message: str, param: str | None = None) -> bytes:
    return orjson.dumps(
        {
            "error": {
                "code": code,
                "message": message,
                "param": param,
                "type": ERROR_TYPES.get(status, "server_error"),
            }
        }
    )


def error_response(
    status: int,
    code: str,
    message: str,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(
        error_body(status, code, message, param),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def videogate_error_response(exc: e.VideogateError) -> Response:
    status = status_for(exc)
    headers = None
    if isinstance(exc, e.RateLimited):
        headers = {"Retry-After": str(exc.retry_after)}
    if status >= 500 and not isinstance(exc, e.UpstreamError | e.NoAvailableRoute):
        log.error("internal error: %s", exc.message)
    return error_response(status, exc.code, exc.message, exc.param, headers)


def describe_validation_errors(errors: list[dict[str, Any]] | Any) -> tuple[str, str | None]:
    """One readable sentence from pydantic's error list, and the first offending field."""
    parts: list[str] = []
    first_param: str | None = None
    for err in list(errors)[:5]:
        loc = [str(x) for x in err.get("loc", ()) if x not in ("body", "query", "path")]
        field = ".".join(loc) or "body"
        first_param = first_param or field
        if err.get("type") == "extra_forbidden":
            parts.append(f"unknown field '{field}'")
        elif err.get("type") == "missing":
            parts.append(f"'{field}' is required")
        else:
            parts.append(f"'{field}': {err.get('msg', 'invalid value')}")
    return "; ".join(parts) or "invalid request", first_param


def install_error_handlers(app: FastAPI) -> None:
    async def on_videogate_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, e.VideogateError)
        return videogate_error_response(exc)

    async def on_validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        message, param = describe_validation_errors(exc.errors())
        return error_response(400, "invalid_request", message, param)

    async def on_http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = "not_found" if exc.status_code == 404 else "invalid_request"
        if exc.status_code == 405:
            code = "method_not_allowed"
        message = str(exc.detail) if exc.detail else "error"
        if exc.status_code == 404 and message == "Not Found":
            message = "no such endpoint; see /docs for the API"
        return error_response(exc.status_code, code, message, headers=exc.headers)

    async def on_unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "internal error; it was logged")

    app.add_exception_handler(e.VideogateError, on_videogate_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
