"""``POST /v1/files`` uploads and ``/files/{key}`` signed downloads (API.md §1.4, §1.5)."""

from __future__ import annotations

import mimetypes
import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile
from starlette.responses import RedirectResponse, Response

from videogate.api.openapi_models import FileObject, documented
from videogate.api.responses import blob_response, json_response
from videogate.api.state import api_state
from videogate.errors import Gone, InvalidRequest, NotFound, VideogateError
from videogate.service.uploads import Upload, get_upload, store_upload

router = APIRouter(tags=["files"])

_upload_schema = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


def file_object(row: Upload, url: str, expires_at: int) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "file",
        "bytes": row.bytes,
        "mime_type": row.mime_type,
        "filename": row.filename,
        "created_at": int(row.created_at),
        "url": url,
        "expires_at": expires_at,
    }


@router.post(
    "/v1/files",
    summary="Upload a reference file",
    **documented(FileObject, (400, 401, 429), extra=_upload_schema),
)
async def upload_file(request: Request) -> Response:
    state = api_state(request)
    caller = await state.caller(request)
    ctx = state.ctx
    limit = ctx.settings.max_upload_bytes
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequest(
            "send the file as multipart/form-data with a 'file' field", param="file"
        )
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit + 64 * 1024:
        raise InvalidRequest(f"the file is over the {limit // (1024 * 1024)} MB upload limit")
    try:
        form = await request.form(max_files=1, max_fields=10)
    except VideogateError:
        raise  # the body grew over its cap while streaming (api/edge.py): a 413
    except Exception as exc:  # the multipart parser raises several unrelated types
        raise InvalidRequest(f"could not read the multipart body: {exc}", param="file") from None
    try:  # closes every part's temp file, also when the form is refused
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidRequest("the form needs a 'file' field holding the file", param="file")
        stored = await store_upload(ctx, caller.key_id, upload)
    finally:
        await form.close()
    url, expires = ctx.signer.sign(stored.blob_key, ctx.settings.upload_ttl_seconds)
    return json_response(file_object(stored, url, expires))


@router.get(
    "/v1/files/{file_id}",
    summary="Get an uploaded file with a fresh URL",
    **documented(FileObject, (401, 404, 429)),
)
async def get_file(file_id: str, request: Request) -> Response:
    state = api_state(request)
    caller = await state.caller(request)
    row = await get_upload(state.ctx, caller.key_id, file_id)
    if row is None:
        raise NotFound(f"no file '{file_id[:100]}' for this API key", param="file_id")
    url, expires = state.ctx.signer.sign(row.blob_key, state.ctx.settings.upload_ttl_seconds)
    return json_response(file_object(row, url, expires))


@router.get(
    "/files/{blob_key:path}",
    summary="Download a result or upload through a signed URL (no auth header)",
)
@router.head("/files/{blob_key:path}", include_in_schema=False)
async def signed_download(blob_key: str, request: Request) -> Response:
    state = api_state(request)
    q = request.query_params
    exp = q.get("exp")
    state.ctx.signer.verify(blob_key, exp, q.get("sig"))
    ctx = state.ctx
    gone = Gone(
        "this file was deleted: results and uploads are kept for a limited time "
        "(see the retention settings); GET the task or file again"
    )
    if ctx.settings.download_mode != "proxy" and ctx.blobs.scheme != "file":
        if not await ctx.blobs.exists(blob_key):
            raise gone
        # Object storage: send the client to the store itself (Range and all), for no
        # longer than our own URL had left, nor longer than an hour.
        left = int(exp or 0) - int(time.time())
        direct = ctx.blobs.presign_get(blob_key, max(60, min(left, 3600)))
        if direct is not None:
            return RedirectResponse(direct, status_code=302, headers={"Cache-Control": "no-store"})
    media_type = mimetypes.guess_type(blob_key)[0] or "application/octet-stream"
    try:
        return await blob_response(
            state.ctx.blobs,
            blob_key,
            media_type,
            request.headers.get("range"),
            head=request.method == "HEAD",
            filename=blob_key.rsplit("/", 1)[-1],
        )
    except NotFound:
        raise gone from None  # the signature is ours: the file existed
