"""A blob store that counts the bytes written through it (``videogate_blob_bytes_written``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from prometheus_client import Counter

from videogate.blobs.base import BlobStore


class MeteredBlobStore:
    """Wraps a backend; writes are counted by the key's first segment (results, refs…)."""

    def __init__(self, inner: BlobStore, written: Counter) -> None:
        self.inner = inner
        self.scheme = inner.scheme
        self._written = written

    def _count(self, key: str, size: int) -> int:
        self._written.labels(key.split("/", 1)[0]).inc(size)
        return size

    async def put_file(self, key: str, source: Path) -> int:
        return self._count(key, await self.inner.put_file(key, source))

    async def put_bytes(self, key: str, data: bytes) -> int:
        return self._count(key, await self.inner.put_bytes(key, data))

    async def size(self, key: str) -> int:
        return await self.inner.size(key)

    async def exists(self, key: str) -> bool:
        return await self.inner.exists(key)

    def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        return self.inner.read_range(key, start, end)

    async def get_file(self, key: str, dest: Path) -> int:
        return await self.inner.get_file(key, dest)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)

    async def delete_prefix(self, prefix: str) -> int:
        return await self.inner.delete_prefix(prefix)

    def presign_get(self, key: str, ttl_seconds: int) -> str | None:
        return self.inner.presign_get(key, ttl_seconds)

    def presigned_key(self, url: str) -> tuple[str, int] | None:
        return self.inner.presigned_key(url)

    def local_path(self, key: str) -> Path | None:
        return self.inner.local_path(key)

    async def check(self) -> None:
        await self.inner.check()

    async def close(self) -> None:
        await self.inner.close()
