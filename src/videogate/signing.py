"""HMAC-signed URLs for results and uploads: no auth header needed, expire, tamper-proof."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from urllib.parse import parse_qs, quote, unquote, urlencode

from videogate.errors import SignatureInvalid

# Result URLs are signed per window of this many seconds: every poll within one window
# gets the same URL (cacheable), and the URL outlives the window by the full TTL.
URL_WINDOW_SECONDS = 60


def url_window(now: float) -> int:
    """The signing window ``now`` falls in."""
    return int(now // URL_WINDOW_SECONDS)


def window_expiry(now: float, ttl_seconds: int) -> int:
    """When a URL signed at ``now`` expires: the end of ``now``'s window plus the TTL, so it
    works for at least ``ttl_seconds`` from any moment of the window it is handed out in."""
    return (url_window(now) + 1) * URL_WINDOW_SECONDS + ttl_seconds


class UrlSigner:
    """Signs ``/files/{blob_key}`` paths with an expiry."""

    def __init__(
        self,
        secret: str,
        public_url: str,
        *,
        presign: Callable[[str, int], str | None] | None = None,
    ) -> None:
        self.secret = secret.encode()
        self._public_url = public_url.rstrip("/")
        # Set when results are handed out as presigned object-store URLs (download_mode
        # "presigned"): then no result byte passes through videogate.
        self._presign = presign

    def download_url(
        self, blob_key: str, ttl_seconds: int, *, now: float | None = None
    ) -> tuple[str, int]:
        """The URL a client downloads a result from: presigned at the object store when
        the operator chose so, else our own signed URL."""
        if self._presign is not None:
            url = self._presign(blob_key, ttl_seconds)
            if url is not None:
                return url, int((now if now is not None else time.time()) + ttl_seconds)
        return self.sign(blob_key, ttl_seconds, now=now)

    def download_url_until(self, blob_key: str, expires: int) -> str:
        """:meth:`download_url`, valid until ``expires`` (unix seconds) however late in
        its signing window it is handed out (a presigned URL is signed for the time left)."""
        if self._presign is not None:
            url = self._presign(blob_key, max(1, expires - int(time.time())))
            if url is not None:
                return url
        return self.sign_until(blob_key, expires)

    def _sig(self, blob_key: str, expires: int) -> str:
        msg = f"{blob_key}\n{expires}".encode()
        return hmac.new(self.secret, msg, hashlib.sha256).hexdigest()[:40]

    def sign(self, blob_key: str, ttl_seconds: int, *, now: float | None = None) -> tuple[str, int]:
        """The absolute URL for ``blob_key`` and its expiry (unix seconds)."""
        expires = int((now if now is not None else time.time()) + ttl_seconds)
        return self.sign_until(blob_key, expires), expires

    def sign_until(self, blob_key: str, expires: int) -> str:
        """The absolute URL for ``blob_key``, valid until ``expires`` (unix seconds)."""
        query = urlencode({"exp": expires, "sig": self._sig(blob_key, expires)})
        return f"{self._public_url}/files/{quote(blob_key)}?{query}"

    def verify(self, blob_key: str, exp: str | None, sig: str | None) -> None:
        """Raise :class:`SignatureInvalid` unless the URL is intact and not expired."""
        # An expiry is a Unix time: ASCII digits, far fewer than 20 (and int() refuses
        # thousands of digits, or a superscript that isdigit() accepts).
        if not exp or not sig or not (exp.isascii() and exp.isdigit() and len(exp) <= 18):
            raise SignatureInvalid("this URL is not signed: request a fresh one from the task")
        expected = self._sig(blob_key, int(exp))
        if not hmac.compare_digest(expected, sig):
            raise SignatureInvalid("this URL's signature is invalid: it was altered")
        if int(exp) < time.time():
            raise SignatureInvalid("this URL has expired: GET the task again for a fresh video_url")

    def parse_own_url(self, url: str) -> tuple[str, str | None, str | None] | None:
        """If ``url`` is one this server issued, return (blob_key, exp, sig)."""
        prefix = f"{self._public_url}/files/"
        if not url.startswith(prefix):
            return None
        path, _, query_string = url[len(prefix) :].partition("?")
        query = parse_qs(query_string)
        return unquote(path), query.get("exp", [None])[0], query.get("sig", [None])[0]


def hash_api_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
