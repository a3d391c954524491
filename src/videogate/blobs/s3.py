"""Blobs in an S3-compatible bucket (``s3://bucket/prefix``): AWS S3, Cloudflare R2, MinIO…

Built on obstore (Rust's object_store): async, streaming both ways, multipart uploads for
large files, presigned GET URLs. Endpoint, region and credentials come from the settings,
which read the standard ``AWS_*`` variables unless ``VIDEOGATE_S3_*`` override them.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import mimetypes
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import obstore
from obstore.exceptions import BaseError as ObstoreError
from obstore.store import S3Store

from videogate.blobs.base import CHUNK
from videogate.errors import NotFound, StorageUnavailable

if TYPE_CHECKING:
    from obstore import Attributes

    from videogate.settings import Settings

T = TypeVar("T")

# Files above this go up in parts of this size, several at once.
MULTIPART_CHUNK = 8 * 1024 * 1024
MULTIPART_CONCURRENCY = 4
# The longest a SigV4 presigned URL may live.
MAX_PRESIGN_SECONDS = 7 * 86_400
DELETE_BATCH = 1000


class S3BlobStore:
    """Blobs as objects under one bucket and prefix."""

    scheme = "s3"

    def __init__(self, store: S3Store, where: str, *, signing: S3Store | None = None) -> None:
        self._store = store
        self._where = where
        # Presigned URLs name the host they were signed for: the public one, if it differs.
        self._signing = signing or store
        # What presigned URLs of each of the two start with (presigned_key), once known.
        self._url_prefixes: dict[int, str] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> S3BlobStore:
        parts = urlsplit(settings.effective_blob_url)
        if not parts.netloc:
            raise ValueError("VIDEOGATE_BLOB_URL: name the bucket, as in s3://bucket/prefix")
        store = _open(settings, parts.netloc, parts.path, settings.s3_endpoint_url)
        signing = None
        public = settings.s3_public_endpoint_url
        if public and public != settings.s3_endpoint_url:
            # Signing is local arithmetic: this store is never sent a request.
            signing = _open(settings, parts.netloc, parts.path, public)
        return cls(store, settings.effective_blob_url, signing=signing)

    async def _call(self, key: str, op: Callable[[], Awaitable[T]]) -> T:
        try:
            return await op()
        except FileNotFoundError:
            raise NotFound(f"no blob named {key!r}") from None
        except (ObstoreError, OSError) as exc:
            raise StorageUnavailable(
                f"the object store {self._where} did not answer as expected "
                f"({type(exc).__name__}: {str(exc)[:200]}); check VIDEOGATE_BLOB_URL, "
                "the endpoint and the credentials"
            ) from None

    def local_path(self, key: str) -> Path | None:
        return None

    async def put_file(self, key: str, source: Path) -> int:
        await self._call(
            key,
            lambda: obstore.put_async(
                self._store,
                key,
                source,
                attributes=_attributes(key),
                chunk_size=MULTIPART_CHUNK,
                max_concurrency=MULTIPART_CONCURRENCY,
            ),
        )
        return (await asyncio.to_thread(source.stat)).st_size

    async def put_bytes(self, key: str, data: bytes) -> int:
        await self._call(
            key, lambda: obstore.put_async(self._store, key, data, attributes=_attributes(key))
        )
        return len(data)

    async def size(self, key: str) -> int:
        meta = await self._call(key, lambda: obstore.head_async(self._store, key))
        return int(meta["size"])

    async def exists(self, key: str) -> bool:
        try:
            await self.size(key)
        except NotFound:
            return False
        return True

    async def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``start`` to ``end`` inclusive, streamed as they arrive."""
        result = await self._call(
            key,
            lambda: obstore.get_async(self._store, key, options={"range": (start, end + 1)}),
        )
        stream = result.stream(min_chunk_size=CHUNK)
        while True:
            try:
                chunk = await self._call(key, stream.__anext__)
            except StopAsyncIteration:
                return
            yield bytes(chunk)

    async def get_file(self, key: str, dest: Path) -> int:
        result = await self._call(key, lambda: obstore.get_async(self._store, key))
        stream = result.stream(min_chunk_size=CHUNK)
        size = 0
        with dest.open("wb") as out:
            while True:
                try:
                    chunk = await self._call(key, stream.__anext__)
                except StopAsyncIteration:
                    break
                size += len(chunk)
                await asyncio.to_thread(out.write, chunk)
        return size

    async def delete(self, key: str) -> None:
        with contextlib.suppress(NotFound):
            await self._call(key, lambda: obstore.delete_async(self._store, key))

    async def delete_prefix(self, prefix: str) -> int:
        prefix = prefix.rstrip("/") + "/"
        batches = obstore.list(self._store, prefix, chunk_size=DELETE_BATCH)
        count = 0
        while True:
            try:
                batch = await self._call(prefix, batches.__anext__)
            except StopAsyncIteration:
                return count
            paths = [meta["path"] for meta in batch]
            if paths:
                await self._call(prefix, lambda p=paths: obstore.delete_async(self._store, p))  # type: ignore[misc]
                count += len(paths)

    def presign_get(self, key: str, ttl_seconds: int) -> str | None:
        ttl = timedelta(seconds=max(1, min(ttl_seconds, MAX_PRESIGN_SECONDS)))
        try:
            return obstore.sign(self._signing, "GET", key, ttl)
        except ObstoreError as exc:
            raise StorageUnavailable(f"cannot presign {key!r} for {self._where}: {exc}") from None

    def presigned_key(self, url: str) -> tuple[str, int] | None:
        # Recognised by the URL every presigned one of this store starts with (the host,
        # bucket and prefix it was signed for), found by signing a probe key: local
        # arithmetic. The signature is not checked (SigV4 needs the signing time's
        # secret-derived key): the caller only lets a tenant name its own blobs.
        base, sep, query = url.partition("?")
        params = parse_qs(query)
        if not sep or "X-Amz-Signature" not in params:
            return None
        for store in (self._signing, self._store):
            prefix = self._url_prefix(store)
            if prefix is None or not base.startswith(prefix):
                continue
            key = unquote(base[len(prefix) :])
            if any(part in ("", ".", "..") for part in key.split("/")):
                return None
            try:
                signed = calendar.timegm(time.strptime(params["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ"))
                return key, signed + int(params["X-Amz-Expires"][0])
            except (KeyError, ValueError):
                return key, 0  # no readable expiry: treated as expired
        return None

    def _url_prefix(self, store: S3Store) -> str | None:
        if id(store) not in self._url_prefixes:
            try:
                probe = obstore.sign(store, "GET", "k", timedelta(seconds=60))
            except ObstoreError:
                return None
            self._url_prefixes[id(store)] = probe.partition("?")[0].removesuffix("k")
        return self._url_prefixes[id(store)]

    async def check(self) -> None:
        # One LIST of the prefix's top level: a missing bucket, a wrong endpoint or
        # refused credentials all fail it, and it reads at most a handful of names.
        await self._call("", lambda: obstore.list_with_delimiter_async(self._store, None))

    async def close(self) -> None:
        return None


def _attributes(key: str) -> Attributes:
    """Content-Type from the key's extension, so presigned downloads play in a browser."""
    return {"Content-Type": mimetypes.guess_type(key)[0] or "application/octet-stream"}


def _open(settings: Settings, bucket: str, prefix: str, endpoint: str) -> S3Store:
    """The bucket at ``endpoint`` (empty: AWS), with the settings' region and credentials."""
    config: dict[str, Any] = {}
    if endpoint:
        config["endpoint"] = endpoint
    if settings.s3_region:
        config["region"] = settings.s3_region
    if settings.s3_access_key_id:
        config["access_key_id"] = settings.s3_access_key_id
        config["secret_access_key"] = settings.s3_secret_access_key
    if settings.s3_session_token:
        config["token"] = settings.s3_session_token
    config["virtual_hosted_style_request"] = settings.s3_virtual_hosted_style
    return S3Store(
        bucket,
        prefix=prefix.strip("/") or None,
        client_options={
            "allow_http": endpoint.startswith("http://"),
            "connect_timeout": "5s",
            "timeout": f"{int(settings.result_timeout_seconds)}s",
        },
        retry_config={
            "max_retries": 3,
            "backoff": {"init_backoff": timedelta(milliseconds=100)},
            "retry_timeout": timedelta(seconds=30),
        },
        **config,
    )
