"""The videogate SDK: from a prompt and local files to an mp4 on disk.

>>> from videogate.client import Client, Image
>>> with Client("http://127.0.0.1:8000", "vg-…") as client:
...     task = client.create("the cat in image 1 jumps", references=[Image("cat.png")])
...     task.wait(timeout=600)
...     task.download("cat.mp4")

It speaks to videogate itself (``api="videogate"``), to any Seedance relay with the
``/v1/videos`` shape (``api="relay"``), and to Volcengine Ark / BytePlus ModelArk
(``api="ark"``). :class:`AsyncClient` is the asynchronous original; :class:`Client` is a
thin blocking wrapper. Every error is a :class:`VideogateClientError`.

This package needs only ``httpx`` (the base ``pip install videogate``); it never imports
the server.
"""

from videogate.client._client import AsyncClient, CreateOptions, new_idempotency_key
from videogate.client._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    DownloadError,
    InsufficientBalanceError,
    InvalidReference,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    RateLimitError,
    ServerError,
    TaskError,
    TaskFailed,
    TaskTimeout,
    UnsupportedOperation,
    VideogateClientError,
)
from videogate.client._media import mp4_duration
from videogate.client._models import (
    API_NAMES,
    DEFAULT_MODEL,
    ApiName,
    PreparedRequest,
    Status,
    TaskPage,
    TaskState,
)
from videogate.client._references import Audio, Image, Reference, ReferenceLike, Video
from videogate.client._sync import Client, Task
from videogate.client._task import AsyncTask, GeneratedVideo

__all__ = [
    "API_NAMES",
    "DEFAULT_MODEL",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "ApiName",
    "AsyncClient",
    "AsyncTask",
    "Audio",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConfigurationError",
    "ConflictError",
    "CreateOptions",
    "DownloadError",
    "GeneratedVideo",
    "Image",
    "InsufficientBalanceError",
    "InvalidReference",
    "NotFoundError",
    "PermissionDeniedError",
    "PreparedRequest",
    "ProtocolError",
    "RateLimitError",
    "Reference",
    "ReferenceLike",
    "ServerError",
    "Status",
    "Task",
    "TaskError",
    "TaskFailed",
    "TaskPage",
    "TaskState",
    "TaskTimeout",
    "UnsupportedOperation",
    "Video",
    "VideogateClientError",
    "mp4_duration",
    "new_idempotency_key",
]
