"""Fetching, storing and probing the references of a new task.

Runs at create time so that limit violations are a 400 naming the item; a reference that
cannot be reached is not the client's syntax error, so it fails the task instead.
"""

from __future__ import annotations

import asyncio
import mimetypes
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from videogate.blobs.keys import owner_results_prefix, reference_key, upload_prefix
from videogate.context import AppContext
from videogate.errors import InvalidRequest, NotFound, ReferenceUnreachable, SignatureInvalid
from videogate.fetch import fetch_url
from videogate.media.probe import MediaError, MediaInfo, probe
from videogate.providers import Route
from videogate.request import GenerationRequest, Reference
from videogate.service.keys import Caller


def check_routes_can_serve(req: GenerationRequest, routes: Sequence[Route]) -> None:
    """Refuse at create what the upstreams that may serve the task cannot do, as their
    providers declare it: ``asset://`` references (only an upstream with that asset
    library resolves them) and the container asked for. Every candidate must be able to,
    since a failover may hand the task to any of them."""
    assets = req.assets()
    if assets and not all(r.capabilities.resolves_assets for r in routes):
        ref = assets[0]
        raise InvalidRequest(
            f"{ref.label} ('{ref.url[:80]}') is an asset library reference, which model "
            f"{req.public_model} cannot resolve here: it is not served by an upstream with "
            "an asset library. Send the media as an http(s) or data: URL instead",
            param="content",
        )
    fmt = req.output_format
    if not all(fmt in r.capabilities.output_formats for r in routes):
        offered = sorted(set.intersection(*(set(r.capabilities.output_formats) for r in routes)))
        raise InvalidRequest(
            f"output_format '{fmt}' cannot be delivered for model {req.public_model} here; "
            f"it is delivered as {', '.join(offered) or 'mp4'}",
            param="output_format",
        )


@dataclass(frozen=True)
class Resolved:
    request: GenerationRequest
    unreachable: ReferenceUnreachable | None


async def resolve_references(
    ctx: AppContext, caller: Caller, task_id: str, req: GenerationRequest
) -> Resolved:
    """Store a copy of every reference and probe it; return the request with media facts."""
    if not req.references:
        return Resolved(req, None)
    results = await asyncio.gather(
        *(_resolve_one(ctx, caller, task_id, ref) for ref in req.references),
        return_exceptions=True,
    )
    resolved: list[Reference] = []
    unreachable: ReferenceUnreachable | None = None
    for ref, result in zip(req.references, results, strict=True):
        if isinstance(result, ReferenceUnreachable):
            unreachable = unreachable or result
            resolved.append(ref)
        elif isinstance(result, BaseException):
            raise result
        else:
            resolved.append(result)
    req = req.model_copy(update={"references": tuple(resolved)})
    if req.operation == "extend" and req.source_seconds is None:
        # An extend asked for on the Ark surface: the clip extended is video 1.
        video = next(iter(req.of_kind("video")), None)
        if video is not None and video.duration:
            req = req.model_copy(update={"source_seconds": video.duration})
    return Resolved(req, unreachable)


async def _resolve_one(ctx: AppContext, caller: Caller, task_id: str, ref: Reference) -> Reference:
    if ref.is_asset:
        return ref  # the upstream's asset library resolves it (check_routes_can_serve)
    blob_key = own_blob_key(ctx, ref)
    if blob_key is not None:
        if not blob_key.startswith(upload_prefix(caller.key_id)) and not blob_key.startswith(
            owner_results_prefix(caller.key_id)
        ):
            raise InvalidRequest(
                f"{ref.label}: that file belongs to another key; upload it with this key",
                param="content",
            )
        return _with_info(ref, blob_key, await _probe_stored(ctx, ref, blob_key))

    tmp = ctx.tmp_dir / f"{uuid.uuid4().hex}"
    try:
        fetched = await fetch_url(
            ref.url,
            tmp,
            label=ref.label,
            client=ctx.http,
            guard=ctx.guard,
            max_bytes=ctx.settings.max_reference_bytes,
            timeout=ctx.settings.reference_timeout_seconds,
        )
        info = await _probe(ref, fetched.path)
        ext = mimetypes.guess_extension(info.mime_type) or f".{info.format}"
        blob_key = reference_key(task_id, ref.kind, ref.index, ext)
        await ctx.blobs.put_file(blob_key, fetched.path)
        return _with_info(ref, blob_key, info)
    finally:
        tmp.unlink(missing_ok=True)


def own_blob_key(ctx: AppContext, ref: Reference) -> str | None:
    """The blob key when ``ref`` is a URL of ours: one we signed (any download mode), or
    one our object store presigned (download mode ``presigned``, or a redirect's
    target). It is read from the blob store, never fetched: the store may sit on an
    address the SSRF guard refuses, and the bytes are ours already."""
    own = ctx.signer.parse_own_url(ref.url)
    if own is not None:
        blob_key, exp, sig = own
        try:
            ctx.signer.verify(blob_key, exp, sig)
        except SignatureInvalid as exc:
            raise InvalidRequest(f"{ref.label}: {exc.message}", param="content") from None
        return blob_key
    presigned = ctx.blobs.presigned_key(ref.url)
    if presigned is None:
        return None
    blob_key, expires = presigned
    # The wall clock, as for our own signed URLs (signing.py): the store judges it so.
    if expires < time.time():
        raise InvalidRequest(
            f"{ref.label}: this URL has expired: GET the task again for a fresh video_url",
            param="content",
        )
    return blob_key


async def _probe_stored(ctx: AppContext, ref: Reference, blob_key: str) -> MediaInfo:
    """Probe a file already in our store (an upload or an earlier result)."""
    missing = InvalidRequest(f"{ref.label}: that file no longer exists", param="content")
    path = ctx.blobs.local_path(blob_key)
    if path is not None:
        if not path.exists():
            raise missing
        return await _probe(ref, path)
    tmp = ctx.tmp_dir / uuid.uuid4().hex
    try:
        try:
            await ctx.blobs.get_file(blob_key, tmp)
        except NotFound:
            raise missing from None
        return await _probe(ref, tmp)
    finally:
        tmp.unlink(missing_ok=True)


async def _probe(ref: Reference, path: Path) -> MediaInfo:
    try:
        info = await asyncio.to_thread(probe, path)
    except MediaError as exc:
        raise InvalidRequest(
            f"{ref.label}: not a readable {ref.kind} file ({exc})", param="content"
        ) from None
    if info.kind != ref.kind:
        raise InvalidRequest(
            f"{ref.label}: expected {_article(ref.kind)} {ref.kind}, but the URL holds "
            f"{_article(info.kind)} {info.kind} ({info.mime_type})",
            param="content",
        )
    return info


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _with_info(ref: Reference, blob_key: str, info: MediaInfo) -> Reference:
    return ref.model_copy(
        update={
            "blob_key": blob_key,
            "mime_type": info.mime_type,
            "width": info.width,
            "height": info.height,
            "duration": info.duration,
            "bytes": info.bytes,
        }
    )
