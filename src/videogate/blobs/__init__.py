"""The blob store: a local directory (``file://``, the default) or S3-compatible
object storage (``s3://bucket/prefix``), chosen by ``VIDEOGATE_BLOB_URL``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from urllib.request import url2pathname

from videogate.blobs.base import CHUNK, BlobStore
from videogate.blobs.file import LocalBlobStore

if TYPE_CHECKING:
    from videogate.settings import Settings


def open_blob_store(settings: Settings) -> BlobStore:
    """The store the settings name (``blob_url``), defaulting to ``data_dir/blobs``."""
    url = settings.effective_blob_url
    parts = urlsplit(url)
    if parts.scheme == "file":
        return LocalBlobStore(_file_path(url))
    if parts.scheme == "s3":
        from videogate.blobs.s3 import S3BlobStore  # only S3 deployments load obstore

        return S3BlobStore.from_settings(settings)
    raise ValueError(f"VIDEOGATE_BLOB_URL {url!r}: use file:///path or s3://bucket/prefix")


def _file_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"VIDEOGATE_BLOB_URL {url!r}: a file URL names no host (file:///path)")
    return Path(url2pathname(parts.path))


__all__ = ["CHUNK", "BlobStore", "LocalBlobStore", "open_blob_store"]
