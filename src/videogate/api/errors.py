"""The tables that map errors to HTTP (native surface; Ark surface), and the handlers."""

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
from videogate.context import RESOURCE_ERRORS, resource_failure

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
    (e.Gone, 410),
    (e.RateLimited, 429),
    (e.PayloadTooLarge, 413),
    (e.UpstreamError, 502),
    (e.NoAvailableRoute, 503),
    (e.StorageUnavailable, 503),
    (e.ServiceUnavailable, 503),
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
    410: "not_found_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    416: "invalid_request_error",
    429: "rate_limit_error",
}


# The Ark-native surface (API.md §2) reports the same errors in Ark's words: its status
# and code per class. A code that is already Ark-style (CamelCase, e.g. "MissingParameter"
# raised by the Ark parser) is kept as it is.
ARK_PREFIX = "/api/v3/"
ARK_ERRORS: list[tuple[type[e.VideogateError], int, str]] = [
    (e.InvalidRequest, 400, "InvalidParameter"),
    (e.AuthenticationFailed, 401, "AuthenticationError"),
    (e.InsufficientBalance, 403, "AccountOverdueError"),
    (e.SignatureInvalid, 403, "AccessDenied"),
    (e.PermissionDenied, 403, "AccessDenied"),
    (e.ModelNotFound, 404, "InvalidEndpointOrModel.NotFound"),
    (e.NotFound, 404, "ResourceNotFound"),
    (e.Conflict, 409, "Conflict"),
    (e.Gone, 410, "ResourceExpired"),
    (e.RateLimited, 429, "RateLimitExceeded"),
    (e.PayloadTooLarge, 413, "InvalidParameter.RequestTooLarge"),
    (e.UpstreamError, 502, "InternalServiceError"),
    (e.NoAvailableRoute, 503, "ServiceUnavailable"),
    (e.StorageUnavailable, 503, "ServiceUnavailable"),
    # Ark's own word for shedding load is a 429 (its SDK retries it like a 5xx).
    (e.Overloaded, 429, "ServerOverloaded"),
    (e.ServiceUnavailable, 503, "ServiceUnavailable"),
    (e.VideogateError, 500, "InternalServiceError"),
]
# Errors raised by the framework (unknown path, wrong method) on the Ark surface.
ARK_HTTP_CODES = {404: "ResourceNotFound", 405: "MethodNotAllowed"}
ARK_ERROR_TYPES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Gone",
    413: "RequestEntityTooLarge",
    429: "TooManyRequests",
    503: "ServiceUnavailable",
}


def status_for(exc: e.VideogateError) -> int:
    return next(status for cls, status in HTTP_STATUS if isinstance(exc, cls))


def is_ark_request(request: Request) -> bool:
    path = str(request.scope.get("path", ""))
    return path.startswith(ARK_PREFIX) or path == ARK_PREFIX.rstrip("/")


def ark_status_and_code(exc: e.VideogateError) -> tuple[int, str]:
    status, code = next((s, c) for cls, s, c in ARK_ERRORS if isinstance(exc, cls))
    return status, exc.code if exc.code[:1].isupper() else code


def ark_error_response(
    status: int,
    code: str,
    message: str,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Ark's envelope: ``param`` is ``""`` when there is none, ``type`` names the status."""
    body = {
        "error": {
            "code": code,
            "message": message,
            "param": param or "",
            "type": ARK_ERROR_TYPES.get(
                status, "BadRequest" if status < 500 else "InternalServiceError"
            ),
        }
    }
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


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


def videogate_error_response(exc: e.VideogateError, *, ark: bool = False) -> Response:
    status = status_for(exc)
    headers = None
    if isinstance(exc, e.RateLimited | e.ServiceUnavailable):
        headers = {"Retry-After": str(exc.retry_after)}
    if status >= 500 and not isinstance(
        exc, e.UpstreamError | e.NoAvailableRoute | e.ServiceUnavailable
    ):
        log.error("internal error: %s", exc.message)
    if ark:
        ark_status, code = ark_status_and_code(exc)
        return ark_error_response(ark_status, code, exc.message, exc.param, headers)
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
    async def on_videogate_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, e.VideogateError)
        return videogate_error_response(exc, ark=is_ark_request(request))

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        message, param = describe_validation_errors(exc.errors())
        if is_ark_request(request):
            return ark_error_response(400, "InvalidParameter", message, param)
        return error_response(400, "invalid_request", message, param)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if isinstance(exc.__cause__, e.VideogateError):
            # FastAPI wraps whatever fails while it reads a declared body (ours: the edge's
            # 413 for a body over its cap) into "There was an error parsing the body".
            return videogate_error_response(exc.__cause__, ark=is_ark_request(request))
        code = "not_found" if exc.status_code == 404 else "invalid_request"
        if exc.status_code == 405:
            code = "method_not_allowed"
        message = str(exc.detail) if exc.detail else "error"
        if exc.status_code == 404 and message == "Not Found":
            message = "no such endpoint; see /docs for the API"
        if is_ark_request(request):
            code = ARK_HTTP_CODES.get(exc.status_code, "InvalidParameter")
            return ark_error_response(exc.status_code, code, message, headers=exc.headers)
        return error_response(exc.status_code, code, message, headers=exc.headers)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        if is_ark_request(request):
            return ark_error_response(500, "InternalServiceError", "internal error; it was logged")
        return error_response(500, "internal_error", "internal error; it was logged")

    async def on_foreign_error(request: Request, exc: Exception) -> Response:
        known = resource_failure(exc)
        if known is None:
            return await on_unexpected(request, exc)
        if isinstance(known, e.ServiceUnavailable):
            # One line, not a traceback per request: an outage would flood the log.
            log.warning("%s %s: %s: %s", request.method, request.url.path, known.message, exc)
        return videogate_error_response(known, ark=is_ark_request(request))

    app.add_exception_handler(e.VideogateError, on_videogate_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    # Registered by class so that they are answered here (Starlette re-raises what reaches
    # the catch-all ``Exception`` handler); ``resource_failure`` tells a bug (500) from the
    # rest (``store/failures.py``).
    for foreign in RESOURCE_ERRORS:
        app.add_exception_handler(foreign, on_foreign_error)
    app.add_exception_handler(Exception, on_unexpected)
