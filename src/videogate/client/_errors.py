"""The SDK's exceptions: one root, :class:`VideogateClientError`.

These are the client's own classes; the server's (``videogate.errors``) are unrelated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from videogate.client._models import TaskState


class VideogateClientError(Exception):
    """Root of every error the SDK raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigurationError(VideogateClientError, ValueError):
    """The client was set up wrongly: no API key, an unknown ``api``, a bad base URL."""


class InvalidReference(VideogateClientError, ValueError):
    """A reference cannot be sent: a missing file, an unknown kind, or a local video
    where the API only takes URLs."""


class UnsupportedOperation(VideogateClientError):
    """The API dialect has no such call (e.g. model listing on Ark)."""


class APIConnectionError(VideogateClientError):
    """The server could not be reached, or the connection broke, after every retry."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class APITimeoutError(APIConnectionError):
    """A request took longer than the client's ``timeout``, after every retry."""


class ProtocolError(VideogateClientError):
    """The server answered something the SDK cannot read (e.g. HTML instead of JSON)."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class APIStatusError(VideogateClientError):
    """The API answered with an HTTP error (after every retry, for retryable ones).

    ``code``, ``message`` and ``param`` come from the ``{"error": {…}}`` envelope that
    videogate, Ark and the relays share; ``retry_after`` is the ``Retry-After`` header
    in seconds, when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        text = f"{status} {code}: {message}" if code else f"{status}: {message}"
        super().__init__(text)
        self.message = message
        self.status = status
        self.code = code
        self.param = param
        self.request_id = request_id
        self.retry_after = retry_after
        self.body = body


class BadRequestError(APIStatusError):
    """400: a field or a reference is wrong; the message says which and how to fix it."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, unknown or revoked."""


class InsufficientBalanceError(APIStatusError):
    """402: the key's balance does not cover the task."""


class PermissionDeniedError(APIStatusError):
    """403."""


class NotFoundError(APIStatusError):
    """404: no such task (for this key), model or route."""


class ConflictError(APIStatusError):
    """409: e.g. an ``Idempotency-Key`` reused with a different request body."""


class RateLimitError(APIStatusError):
    """429 after every retry (``Retry-After`` honoured in between)."""


class ServerError(APIStatusError):
    """5xx after every retry."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientBalanceError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: BadRequestError,
    429: RateLimitError,
}


def status_error_class(status: int) -> type[APIStatusError]:
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, APIStatusError)


class TaskError(VideogateClientError):
    """Something about one task; ``task_id`` says which, so the caller can come back."""

    def __init__(self, message: str, *, task_id: str) -> None:
        super().__init__(message)
        self.task_id = task_id


class TaskFailed(TaskError):
    """The task ended without a video: ``status`` is ``failed``, ``cancelled`` or
    ``expired``; ``code`` and ``error_message`` are the server's."""

    def __init__(self, state: TaskState) -> None:
        code = state.error_code or state.status
        detail = state.error_message or "no message"
        super().__init__(f"task {state.id} {state.status}: {code}: {detail}", task_id=state.id)
        self.state = state
        self.status = state.status
        self.code = code
        self.error_message = state.error_message


class TaskTimeout(TaskError):
    """Waiting ran out of time; the task goes on, and ``task_id`` re-attaches to it."""

    def __init__(self, task_id: str, *, status: str, waited: float) -> None:
        super().__init__(
            f"task {task_id} is still {status} after {waited:.0f} s; it keeps running: "
            f"wait again with client.task({task_id!r}).wait() or `videogate wait {task_id}`",
            task_id=task_id,
        )
        self.status = status
        self.waited = waited


class DownloadError(TaskError):
    """The result could not be downloaded (after retries and URL refreshes)."""

    def __init__(self, message: str, *, task_id: str, status: int | None = None) -> None:
        super().__init__(message, task_id=task_id)
        self.status = status
