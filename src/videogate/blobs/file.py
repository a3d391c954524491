"""Blobs as files under one local directory (``file:///path``): one machine's disk, or a
filesystem every process mounts.

Writes go to a temporary file first and are renamed into place, so a crash never leaves a
half-written blob.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from videogate.blobs.base import CHUNK
from videogate.errors import NotFound, StorageUnavailable


class LocalBlobStore:
    """Blobs as files under one directory."""

    scheme = "file"

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
        return await asyncio.to_thread(self._write, key, source, None)

    async def put_bytes(self, key: str, data: bytes) -> int:
        return await asyncio.to_thread(self._write, key, None, data)

    def _write(self, key: str, source: Path | None, data: bytes | None) -> int:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                if source is not None:
                    with source.open("rb") as src:
                        shutil.copyfileobj(src, out, CHUNK)
                else:
                    out.write(data or b"")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest.stat().st_size

    async def size(self, key: str) -> int:
        try:
            return (await asyncio.to_thread(self._path(key).stat)).st_size
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"no blob named {key!r}") from None

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``start`` to ``end`` inclusive."""
        path = self._path(key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except (FileNotFoundError, NotADirectoryError):
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

    async def get_file(self, key: str, dest: Path) -> int:
        path = self._path(key)
        try:
            await asyncio.to_thread(shutil.copyfile, path, dest)
        except (FileNotFoundError, NotADirectoryError):
            if not path.is_file():
                raise NotFound(f"no blob named {key!r}") from None
            raise
        return (await asyncio.to_thread(dest.stat)).st_size

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, True)

    async def delete_prefix(self, prefix: str) -> int:
        path = self._path(prefix.rstrip("/"))
        return await asyncio.to_thread(_remove_tree, path)

    def presign_get(self, key: str, ttl_seconds: int) -> str | None:
        return None

    def presigned_key(self, url: str) -> tuple[str, int] | None:
        return None

    async def check(self) -> None:
        try:
            await asyncio.to_thread(self._check)
        except OSError as exc:
            raise StorageUnavailable(
                f"the blob directory {self.root} is not writable ({exc.strerror}); "
                "check VIDEOGATE_BLOB_URL and the disk"
            ) from None

    def _check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK):
            raise PermissionError(13, "permission denied")

    async def close(self) -> None:
        return None


def _remove_tree(path: Path) -> int:
    if not path.is_dir():
        return 0
    count = sum(1 for p in path.rglob("*") if p.is_file())
    shutil.rmtree(path, ignore_errors=True)
    return count
