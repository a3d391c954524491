"""The one HTTP client of the upstream providers: auth, timeouts, the error policy and
capped downloads.

Every HTTP provider sends through :class:`UpstreamHTTP`, so the same upstream answer means
the same thing whichever API shape asked. What each answer becomes (one table,
docs/reliability.md "Upstream errors"):

============================================  ===================  ==========================
answer                                        disposition          why
============================================  ===================  ==========================
no connection (refused, DNS, connect or       RETRY                nothing was sent
pool timeout)
base_url unusable (bad URL, scheme)           FAIL_OVER            the route is wrong
timeout or broken connection after sending    MAYBE_SUBMITTED      it may have acted
a 2xx whose body cannot be read               MAYBE_SUBMITTED      it most likely acted
1xx, 3xx                                      FAIL_OVER            base_url is wrong; our key
                                                                   never follows a redirect
401, 402, 403                                 FAIL_OVER            key or account
404, 405                                      FAIL_OVER            endpoint, model or job
                                                                   unknown to this route
4xx whose code names the route (model,        FAIL_OVER            another route may serve it
account, quota: :data:`ROUTE_FAULT_CODES`)
408, 425, 429                                 RETRY                not acted on; wait
                                                                   (``Retry-After`` kept)
5xx                                           RETRY                passing trouble
                                                                   (``Retry-After`` kept)
any other 4xx (400, 409, 413, 422 …)          FAIL_TASK            the request itself
============================================  ===================  ==========================

What the engine does with each disposition is :class:`~videogate.errors.Disposition`'s
business, not the provider's.
"""

from __future__ import annotations

import asyncio
import email.utils
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httpx

from videogate.errors import Disposition, InvalidRequest, UpstreamError
from videogate.fetch.download import save_response
from videogate.providers.base import ProviderDeps, Route
from videogate.settings import Settings

#: Upstream error codes (prefixes) that blame the route, not the request, whichever API
#: shape sent them (relays pass Ark's codes through): Ark's endpoint, model and account
#: codes, OpenAI's model and billing codes.
ROUTE_FAULT_CODES = (
    "InvalidEndpointOrModel",
    "ModelNotOpen",
    "OperationDenied",
    "AccountOverdueError",
    "AccessDenied",
    "model_not_found",
    "insufficient_quota",
    "insufficient_balance",
)
#: Statuses that say the upstream did not act on the request and may later.
RETRY_STATUSES = frozenset({408, 425, 429})
#: Statuses that say the route (its key, account or URL) is wrong.
ROUTE_STATUSES = frozenset({401, 402, 403, 404, 405})
# Transport errors raised before the request left: the upstream cannot have acted on it.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_BAD_URL = (httpx.UnsupportedProtocol, httpx.InvalidURL)


def call_timeout(route: Route, settings: Settings) -> httpx.Timeout:
    """Per-call limits: connect within ``upstream_connect_timeout_seconds``, then no
    silence longer than the route's ``timeout_seconds`` (read/write). The whole call is
    also bounded by ``upstream_total_timeout_seconds`` (:meth:`UpstreamHTTP.send`)."""
    return httpx.Timeout(
        route.timeout_seconds,
        connect=min(settings.upstream_connect_timeout_seconds, route.timeout_seconds),
    )


def disposition_of(status: int, code: str | None = None) -> Disposition:
    """The policy for a non-2xx answer (see the table above)."""
    if status >= 500 or (status in RETRY_STATUSES and not _names_route(code)):
        return Disposition.RETRY
    if status < 400 or status in ROUTE_STATUSES or _names_route(code):
        return Disposition.FAIL_OVER
    return Disposition.FAIL_TASK


def _names_route(code: str | None) -> bool:
    return code is not None and code.startswith(ROUTE_FAULT_CODES)


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds: a number, or an HTTP date measured against the
    answer's own ``Date`` (so neither our clock nor clock skew enters). None if absent or
    unreadable."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        when = _http_date(value)
        sent = _http_date(response.headers.get("date", ""))
        if when is None or sent is None:
            return None
        seconds = when - sent
    return max(seconds, 0.0) if seconds == seconds else None  # NaN is no answer


def _http_date(value: str) -> float | None:
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def error_fields(response: httpx.Response) -> tuple[str | None, str]:
    """``(code, message)`` from the ``{"error": {"code", "message"}}`` envelope that Ark
    and OpenAI share (or a bare ``{"code", "message"}``, or ``{"error": "text"}``), else
    the start of the body."""
    try:
        body = _dict(response.json())
    except ValueError:  # also UnicodeDecodeError
        body = {}
    error = _dict(body.get("error")) or body
    raw = error.get("code")
    code = str(raw) if type(raw) is int else _text(raw)
    fallback = (
        f"HTTP {response.status_code}: {response.text[:300].strip() or response.reason_phrase}"
    )
    return code, _text(error.get("message")) or _text(body.get("error")) or code or fallback


class UpstreamHTTP:
    """One route's upstream calls over the worker's shared ``httpx.AsyncClient``."""

    def __init__(self, route: Route, deps: ProviderDeps) -> None:
        self.route = route
        self._http = deps.http
        self._timeout = call_timeout(route, deps.settings)
        self._total = deps.settings.upstream_total_timeout_seconds
        self._host = urlsplit(route.base_url).netloc or route.base_url

    def headers(self) -> dict[str, str]:
        """The auth header, checked on every call: a route without its key fails over."""
        route = self.route
        if not route.api_key:
            env = route.api_key_env or "(api_key_env is not configured)"
            raise UpstreamError(
                f"route {route.name} has no API key: set the environment variable {env}",
                code="upstream_key_missing",
                disposition=Disposition.FAIL_OVER,
            )
        return {"Authorization": f"Bearer {route.api_key}"}

    async def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One call; returns a 2xx answer or raises the mapped :class:`UpstreamError`.
        Redirects are never followed: our key must only ever go to ``base_url``."""
        headers = self.headers()
        try:
            async with asyncio.timeout(self._total):
                response = await self._http.request(
                    method,
                    url,
                    headers=headers,
                    timeout=self._timeout,
                    follow_redirects=False,
                    **kwargs,
                )
        except TimeoutError:  # over the total (an answer trickling in): a read timeout
            raise self.transport_error(TimeoutError()) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self.transport_error(exc) from None
        if not response.is_success:
            raise self.status_error(response)
        return response

    async def send_json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """:meth:`send`, and the answer's JSON object."""
        return self.json_object(await self.send(method, url, **kwargs))

    def json_object(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:  # also UnicodeDecodeError
            raise self.malformed("a body that is not JSON", response.status_code) from None
        if not isinstance(body, dict):
            raise self.malformed("JSON that is not an object", response.status_code)
        return cast(dict[str, Any], body)

    def malformed(self, what: str, status: int = 200) -> UpstreamError:
        """A 2xx we cannot use: after a create the job most likely exists (looked up, never
        sent again); any other call is simply asked again."""
        return UpstreamError(
            f"route {self.route.name}: the upstream sent {what}",
            code="upstream_malformed",
            disposition=Disposition.MAYBE_SUBMITTED,
            status=status,
        )

    def transport_error(self, exc: Exception) -> UpstreamError:
        """A failure without an HTTP status."""
        route, where = self.route, f"{self._host} (route {self.route.name})"
        detail = str(exc) or type(exc).__name__
        if isinstance(exc, _BAD_URL):
            return UpstreamError(
                f"route {route.name}: base_url {route.base_url!r} cannot be called ({detail})",
                code="upstream_unreachable",
                disposition=Disposition.FAIL_OVER,
            )
        if isinstance(exc, _NOT_SENT):
            return UpstreamError(
                f"could not connect to {where}: {detail}",
                code="upstream_unreachable",
                disposition=Disposition.RETRY,
            )
        if isinstance(exc, httpx.TimeoutException | TimeoutError):
            return UpstreamError(
                f"{where} did not answer in time (at most {route.timeout_seconds:g} s of "
                f"silence, {self._total:g} s in all)",
                code="upstream_timeout",
                disposition=Disposition.MAYBE_SUBMITTED,
            )
        return UpstreamError(
            f"the connection to {where} failed: {type(exc).__name__}: {detail}",
            code="upstream_unreachable",
            disposition=Disposition.MAYBE_SUBMITTED,
        )

    def status_error(self, response: httpx.Response) -> UpstreamError:
        """A non-2xx answer, by :func:`disposition_of`."""
        status, name = response.status_code, self.route.name
        code, message = error_fields(response)
        disposition = disposition_of(status, code)
        if status < 400:
            where_to = response.headers.get("location", "?")
            message = f"route {name}: the upstream redirects to {where_to}; fix its base_url"
        elif status in (401, 403):
            message = f"the upstream rejected route {name}'s key ({message})"
        elif status in (404, 405) and not _names_route(code):
            # A create's 404 is a wrong base_url; a poll's, a job the upstream forgot.
            message = f"route {name}: the upstream knows no such endpoint or job ({message})"
        elif disposition is Disposition.FAIL_OVER:
            message = f"route {name} is misconfigured upstream ({message})"
        return UpstreamError(
            message,
            code=code or f"upstream_http_{status}",
            disposition=disposition,
            status=status,
            retry_after=retry_after(response),
        )

    async def download(self, url: str, dest: Path, *, max_bytes: int, timeout: float) -> None:
        """Stream ``url`` (with our key; no redirects) to ``dest``, at most ``max_bytes``
        and ``timeout`` seconds in all; errors as :meth:`send`'s. Too large:
        ``result_invalid``, ``FAIL_TASK`` (the next try would be as large)."""
        headers = self.headers()
        try:
            async with (
                asyncio.timeout(timeout),
                self._http.stream(
                    "GET", url, headers=headers, timeout=self._timeout, follow_redirects=False
                ) as response,
            ):
                if not response.is_success:
                    await response.aread()
                    raise self.status_error(response)
                await save_response(
                    response, dest, f"route {self.route.name}: the result", max_bytes
                )
        except InvalidRequest as exc:  # over the cap
            raise UpstreamError(exc.message, code="result_invalid") from None
        except TimeoutError:
            raise self.transport_error(TimeoutError()) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self.transport_error(exc) from None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
