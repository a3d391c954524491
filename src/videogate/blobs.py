"""The blob store: results and uploads. A local directory by default.

Keys are relative paths such as ``results/<task>/video.mp4``. Writes go to a temporary
file first and are renamed into place, so a crash never leaves a half-written blob.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from videogate.errors import NotFound

CHUNK = 256 * 1024


class BlobStore(Protocol):
    """What the service and the worker need from storage."""

    async def put_file(self, key: str, source: Path) -> int: ...
    async def put_bytes(self, key: str, data: bytes) -> int: ...
    async def size(self, key: str) -> int: ...
    def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]: ...
    async def delete_prefix(self, prefix: str) -> None: ...
    def local_path(self, key: str) -> Path | None: ...


class LocalBlobStore:
    """Blobs as files under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise NotFound(f"no blob named {key!r}")
        return path

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    async def put_file(self, key: str, source: Path) -> int:
        return await asyncio.to_thread(self._put_file, key, source)

    def _put_file(self, key: str, source: Path) -> int:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                shutil.copyfileobj(src, out, CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest.stat().st_size

    async def put_bytes(self, key: str, data: bytes) -> int:
        return await asyncio.to_thread(self._put_bytes, key, data)

    def _put_bytes(self, key: str, data: bytes) -> int:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return len(data)

    async def size(self, key: str) -> int:
        try:
            return (await asyncio.to_thread(self._path(key).stat)).st_size
        except FileNotFoundError:
            raise NotFound(f"no blob named {key!r}") from None

    async def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``start`` to ``end`` inclusive."""
        path = self._path(key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise NotFound(f"no blob named {key!r}") from None
        try:
            await asyncio.to_thread(handle.seek, start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = await asyncio.to_thread(handle.read, min(CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk
        finally:
            handle.close()

    async def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        await asyncio.to_thread(shutil.rmtree, path, True)


def open_blob_store(url_or_dir: Path) -> BlobStore:
    """The store for the settings' blob location (local directory for now)."""
    return LocalBlobStore(url_or_dir)
