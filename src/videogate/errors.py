"""One root exception and its typed subclasses.

The HTTP layer maps each class to a status and an error code through one table
(:data:`videogate.api.errors.HTTP_STATUS`); nothing else decides HTTP statuses.
"""

from __future__ import annotations

from enum import StrEnum


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


class AlreadyExists(Conflict):
    """The store refused a row whose unique value (an id, an idempotency key) another row
    already holds: the database's constraint violation, in our words."""


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


class Disposition(StrEnum):
    """What the engine does about an upstream failure: the one value an
    :class:`UpstreamError` carries (the policy is in ``providers/http.py``; what each step
    does with it, in docs/reliability.md)."""

    #: Passing trouble (429, 5xx, 408, no connection, a read lost): this route may answer
    #: later. A create fails over to the next route at once (the breaker counts it); a poll,
    #: look-up or download is tried again after the retry policy's wait.
    RETRY = "retry"
    #: The route itself is wrong (key, account, model name, base_url, a redirect): another
    #: route may well serve the task, this one will not until it is fixed. A running job
    #: cannot move, so outside a create the task fails.
    FAIL_OVER = "fail_over"
    #: The upstream refuses the request itself: every route would, so the task fails.
    FAIL_TASK = "fail_task"
    #: The request may have taken effect and only its answer was lost (a timeout or a
    #: broken connection after sending, a 2xx that cannot be read). A create is looked up
    #: by its attempt's marker before anything else, never sent blind; any other call is
    #: retried like ``RETRY``.
    MAYBE_SUBMITTED = "maybe_submitted"


class UpstreamError(VideogateError):
    """An upstream refused or failed; ``disposition`` alone tells the engine what to do,
    and ``retry_after`` (seconds, from the upstream's ``Retry-After``) how long it asked
    us to wait at least."""

    code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        disposition: Disposition = Disposition.FAIL_TASK,
        code: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.disposition = disposition
        self.status = status
        self.retry_after = retry_after


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
