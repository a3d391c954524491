"""HTTP with retries: backoff with jitter, ``Retry-After``, and the error envelope."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from videogate.client._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ProtocolError,
    status_error_class,
)

log = logging.getLogger("videogate.client")

RetryMode = Literal["idempotent", "unsent", "never"]
"""When a failed request may be sent again.

* ``idempotent``: GET, DELETE, and a create whose ``Idempotency-Key`` the server honours:
  on any connection error, timeout, ``429`` or ``5xx``.
* ``unsent``: a create the server may not deduplicate: only when the request surely did
  nothing (the connection was refused, or ``429``).
* ``never``.
"""

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to retry, and how long to wait in between."""

    max_retries: int = 4
    backoff_base: float = 0.5  # seconds; doubles each attempt
    backoff_max: float = 8.0
    retry_after_max: float = 60.0  # a longer Retry-After is cut to this

    def backoff(self, attempt: int) -> float:
        """The pause before retry number ``attempt`` (1-based): exponential, half jitter."""
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_from_response(response: httpx.Response) -> APIStatusError:
    """The typed error for an HTTP error response (any of the known envelopes)."""
    status = response.status_code
    code: str | None = None
    param: str | None = None
    message = response.reason_phrase or f"HTTP {status}"
    body: Any = None
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        text = response.text.strip()
        if text:
            message = text[:300]
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            code = _str_or_none(err.get("code")) or _str_or_none(err.get("type"))
            param = _str_or_none(err.get("param")) or None
            found = err.get("message") or err.get("detail") or body.get("message")
            if found:
                message = str(found)
        elif isinstance(err, str):
            message = err
    cls = status_error_class(status)
    return cls(
        message,
        status=status,
        code=code,
        param=param,
        request_id=response.headers.get("x-request-id"),
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        body=body,
    )


def _str_or_none(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _unsent(exc: httpx.TransportError) -> bool:
    """True when the request surely never reached the server."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)


class Transport:
    """One ``httpx.AsyncClient`` with the API key, retries and error mapping."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float,
        retry: RetryPolicy,
        http_client: httpx.AsyncClient | None,
        user_agent: str,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self.timeout = timeout
        self._api_key = api_key
        self._user_agent = user_agent
        self._owns_http = http_client is None
        self.http = http_client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
            follow_redirects=True,
        )

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}", "User-Agent": self._user_agent}

    async def request(
        self,
        method: str,
        path: str,
        *,
        retry: RetryMode,
        json_body: Any = None,
        files: Any = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[Any, httpx.Response]:
        """Send, retrying per ``retry``; return the decoded JSON body and the response.

        Raises :class:`APIStatusError` (typed by status), :class:`APIConnectionError`
        or :class:`ProtocolError`.
        """
        url = self.url(path)
        all_headers = {**self.auth_headers(), **(headers or {})}
        attempt = 0
        while True:
            attempt += 1
            can_retry = retry != "never" and attempt <= self.retry.max_retries
            try:
                response = await self.http.request(
                    method,
                    url,
                    json=json_body,
                    files=files,
                    params=params,
                    headers=all_headers,
                )
            except httpx.TransportError as exc:
                retryable = can_retry and (retry == "idempotent" or _unsent(exc))
                if not retryable:
                    raise _connection_error(exc, method, url) from exc
                delay = self.retry.backoff(attempt)
                log.info("%s %s failed (%r); retry %d in %.1f s", method, url, exc, attempt, delay)
                await asyncio.sleep(delay)
                continue
            if response.status_code >= 400:
                error = error_from_response(response)
                retryable = can_retry and (
                    (retry == "idempotent" and response.status_code in RETRY_STATUSES)
                    or response.status_code == 429
                )
                if not retryable:
                    raise error
                delay = self.retry.backoff(attempt)
                if error.retry_after is not None:
                    delay = min(error.retry_after, self.retry.retry_after_max)
                    delay += random.uniform(0, 0.1 * delay + 0.05)
                log.info(
                    "%s %s answered %d; retry %d in %.1f s",
                    method,
                    url,
                    response.status_code,
                    attempt,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            if not response.content:
                return None, response
            try:
                return response.json(), response
            except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
                if can_retry and retry == "idempotent":
                    delay = self.retry.backoff(attempt)
                    log.info("%s %s: unreadable JSON; retry %d", method, url, attempt)
                    await asyncio.sleep(delay)
                    continue
                ctype = response.headers.get("content-type", "?")
                raise ProtocolError(
                    f"{method} {url} answered {response.status_code} with a body that is not "
                    f"JSON ({ctype}): is the base URL right?",
                    status=response.status_code,
                    body=response.text[:500],
                ) from None

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()


def _connection_error(exc: httpx.TransportError, method: str, url: str) -> APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"{method} {url} timed out ({type(exc).__name__})", url=url)
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return APIConnectionError(
            f"cannot connect to {url} ({detail}): is the server up and the base URL right?",
            url=url,
        )
    return APIConnectionError(f"{method} {url} failed: {detail}", url=url)
