"""The one interface every blob store backend implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

# Bytes per read when streaming a blob out, and the part size of multipart uploads.
CHUNK = 256 * 1024


class BlobStore(Protocol):
    """Where results, thumbnails, last frames, uploads and stored references live.

    Keys are relative, ``/``-separated names (see :mod:`videogate.blobs.keys`). Every
    write is atomic: a reader sees the whole blob or none. A missing blob raises
    :class:`~videogate.errors.NotFound`; a store that cannot be reached raises
    :class:`~videogate.errors.StorageUnavailable`.
    """

    #: ``file`` or ``s3``: what the operator configured.
    scheme: str

    async def put_file(self, key: str, source: Path) -> int:
        """Store the file at ``source`` (streamed, multipart when large); its size."""
        ...

    async def put_bytes(self, key: str, data: bytes) -> int: ...

    async def size(self, key: str) -> int: ...

    async def exists(self, key: str) -> bool: ...

    def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``start`` to ``end`` inclusive, in chunks."""
        ...

    async def get_file(self, key: str, dest: Path) -> int:
        """Copy the blob into the local file ``dest`` (streamed); its size."""
        ...

    async def delete(self, key: str) -> None:
        """Remove one blob; a missing one is not an error."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every blob under ``prefix/``; how many went."""
        ...

    def presign_get(self, key: str, ttl_seconds: int) -> str | None:
        """A URL anyone can GET the blob from until ``ttl_seconds`` from now, or None
        when the backend has no such URLs (the file backend)."""
        ...

    def presigned_key(self, url: str) -> tuple[str, int] | None:
        """(key, expiry in unix seconds) when ``url`` is one :meth:`presign_get` of this
        store made, so that it is read from the store rather than fetched; else None."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The blob's path on this machine when the backend is a local directory."""
        ...

    async def check(self) -> None:
        """Raise :class:`~videogate.errors.StorageUnavailable` unless the store answers.

        Cheap enough for a readiness probe: one small request at most.
        """
        ...

    async def close(self) -> None: ...
