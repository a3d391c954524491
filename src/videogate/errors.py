"""One root exception and its typed subclasses.

The HTTP layer maps each class to a status and an error code through one table
(:data:`videogate.api.errors.HTTP_STATUS`); nothing else decides HTTP statuses.
"""

from __future__ import annotations


class VideogateError(Exception):
    """Root of every error videogate raises on purpose."""

    code = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class ConfigurationError(VideogateError):
    """The deployment's configuration cannot work (found at start-up, never per request)."""

    code = "configuration_error"


class InvalidRequest(VideogateError):
    """The request body, a field or a reference is wrong; the message says how to fix it."""

    code = "invalid_request"


class AuthenticationFailed(VideogateError):
    code = "invalid_api_key"


class PermissionDenied(VideogateError):
    code = "permission_denied"


class InsufficientBalance(VideogateError):
    code = "insufficient_balance"


class NotFound(VideogateError):
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class Conflict(VideogateError):
    code = "conflict"


class RateLimited(VideogateError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLarge(VideogateError):
    """The request body is over its size limit (found while it streams in)."""

    code = "request_too_large"


class ServiceUnavailable(VideogateError):
    """Our own infrastructure is in trouble (database unreachable, disk full, data dir not
    writable): nothing the client did wrong; the same request may work after
    ``retry_after`` seconds."""

    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after: int = 5, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class Overloaded(ServiceUnavailable):
    """This process is at its limit of concurrent requests: the request was shed unread."""

    code = "overloaded"


class NoAvailableRoute(VideogateError):
    code = "no_available_route"


class UpstreamError(VideogateError):
    """An upstream refused or failed; ``retryable`` tells the engine whether to try again."""

    code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retryable: bool = False,
        status: int | None = None,
        route_fault: bool = False,
        maybe_submitted: bool = False,
    ) -> None:
        super().__init__(message, code=code)
        self.retryable = retryable
        self.status = status
        # The route itself is misconfigured (bad key, unknown upstream model, overdue
        # account): another route may well serve the task.
        self.route_fault = route_fault
        # A submit whose request may have reached the upstream (timeout, connection lost
        # after sending): the job may exist, so it must be looked up, not sent again.
        self.maybe_submitted = maybe_submitted


class StorageUnavailable(ServiceUnavailable):
    """The blob store (directory or S3 bucket) cannot be reached: a 503, retry later."""

    code = "storage_unavailable"


class Gone(VideogateError):
    """What was asked for existed but was removed by the retention policy."""

    code = "gone"


class ReferenceUnreachable(VideogateError):
    """A reference URL could not be fetched (the task fails with this code)."""

    code = "reference_unreachable"


class UnsafeURL(InvalidRequest):
    """A URL points at a loopback, private, link-local or metadata address."""


class SignatureInvalid(VideogateError):
    """A signed URL is expired or was tampered with."""

    code = "forbidden"
