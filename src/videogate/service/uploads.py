"""Uploads: the one path that stores a client's file as a reference, whatever surface sent it.

``POST /v1/files`` and the OpenAI form's ``input_reference`` both come here: the bytes
stream to a scratch file under the size cap (hashed on the way), are probed, stored in the
blob store under the key's own prefix, and recorded. The API sees :class:`Upload` records,
never a database row.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from videogate.blobs.keys import upload_key
from videogate.context import AppContext
from videogate.errors import InvalidRequest
from videogate.fields import printable
from videogate.ids import new_id
from videogate.media.probe import MediaError, probe
from videogate.store.tables import StoredFile

CHUNK = 1024 * 1024


class Readable(Protocol):
    """An incoming file: Starlette's ``UploadFile`` or anything that reads like it."""

    filename: str | None

    async def read(self, size: int = -1) -> bytes: ...


@dataclass(frozen=True)
class Upload:
    """A stored upload of one key."""

    id: str
    key_id: str
    blob_key: str
    filename: str
    mime_type: str
    bytes: int
    created_at: float

    @classmethod
    def of(cls, row: StoredFile) -> Upload:
        return cls(
            row.id, row.key_id, row.blob_key, row.filename, row.mime_type, row.bytes, row.created_at
        )


@dataclass(frozen=True)
class UploadRules:
    """How one surface names and limits what it accepts."""

    param: str = "file"  # the field named in errors
    name: str = "the file"  # how messages call the upload as a whole
    prefix: str = ""  # put before messages, e.g. "input_reference: "
    readable_as: str = "an image, video or audio file"
    kinds: tuple[str, ...] = ()  # media kinds accepted; empty: any we can read
    kinds_text: str = ""  # the accepted kinds in words, e.g. "an image (PNG, JPEG or WebP)"
    #: Same bytes, same file id for the key: a retried create finds the same upload.
    content_addressed: bool = False


async def store_upload(
    ctx: AppContext, key_id: str, source: Readable, rules: UploadRules | None = None
) -> Upload:
    """Store ``source`` for ``key_id``; a 400 naming ``rules.param`` when it cannot be used."""
    rules = rules or UploadRules()
    limit = ctx.settings.max_upload_bytes
    tmp = ctx.tmp_dir / uuid.uuid4().hex
    try:
        size, digest = await _save(source, tmp, limit, rules)
        if size == 0:
            raise InvalidRequest(f"{rules.prefix}the uploaded file is empty", param=rules.param)
        try:
            info = await asyncio.to_thread(probe, tmp)
        except MediaError as exc:
            raise InvalidRequest(
                f"{rules.prefix}the upload is not {rules.readable_as} we can read ({exc})",
                param=rules.param,
            ) from None
        if rules.kinds and info.kind not in rules.kinds:
            raise InvalidRequest(
                f"{rules.param} must be {rules.kinds_text or rules.readable_as}; the upload is "
                f"{info.kind} ({info.mime_type})",
                param=rules.param,
            )
        if rules.content_addressed:
            file_id = "file_" + hashlib.sha256(f"{key_id}:{digest}".encode()).hexdigest()[:26]
            existing = await ctx.store.files.get(file_id, key_id)
            if existing is not None:
                return Upload.of(existing)
        else:
            file_id = new_id("file")
        ext = mimetypes.guess_extension(info.mime_type) or f".{info.format}"
        blob_key = upload_key(key_id, file_id, ext)
        await ctx.blobs.put_file(blob_key, tmp)
    finally:
        tmp.unlink(missing_ok=True)
    row = StoredFile(
        id=file_id,
        key_id=key_id,
        blob_key=blob_key,
        filename=printable(source.filename or "", 300),
        mime_type=info.mime_type,
        bytes=size,
        created_at=time.time(),
    )
    # Not inserted: the same bytes stored meanwhile by a concurrent request of this key.
    await ctx.store.files.insert(row)
    return Upload.of(row)


async def get_upload(ctx: AppContext, key_id: str, file_id: str) -> Upload | None:
    """The key's upload ``file_id``, or None (another key's upload is None too)."""
    row = await ctx.store.files.get(file_id[:40], key_id)
    return None if row is None else Upload.of(row)


async def _save(source: Readable, dest: Path, limit: int, rules: UploadRules) -> tuple[int, str]:
    size = 0
    digest = hashlib.sha256()
    with dest.open("wb") as out:
        while chunk := await source.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise InvalidRequest(
                    f"{rules.name} is over the {limit // (1024 * 1024)} MB upload limit",
                    param=rules.param,
                )
            await asyncio.to_thread(_write, out, digest, chunk)
    return size, digest.hexdigest()


def _write(out: BinaryIO, digest: Any, chunk: bytes) -> None:
    digest.update(chunk)
    out.write(chunk)
