"""Where the OpenAI form's ``input_reference`` points: an upload stored as the caller's
file, or a ``file_id`` of theirs, as a URL this server issued (or the client's own URL)."""

from __future__ import annotations

import math
import time

from starlette.datastructures import UploadFile

from videogate.api.openai_fields import RefSpec
from videogate.context import AppContext
from videogate.errors import InvalidRequest
from videogate.service.keys import Caller
from videogate.service.uploads import UploadRules, get_upload, store_upload


async def reference_url(ctx: AppContext, caller: Caller, ref: RefSpec) -> str:
    kind, value = ref
    if kind == "image_url":
        return value
    row = await get_upload(ctx, caller.key_id, value)
    if row is None:
        raise InvalidRequest(
            f"input_reference.file_id '{value}' is not a file of this API key; "
            "upload the image with POST /v1/files (or send it as the input_reference file)",
            param="input_reference",
        )
    if not row.mime_type.startswith("image/"):
        raise InvalidRequest(
            f"input_reference.file_id '{value}' is {row.mime_type}; it must be an image",
            param="input_reference",
        )
    return _sign_upload(ctx, row.blob_key)


#: What the form's ``input_reference`` may be: an image, stored once per key per content, so
#: that a retried create with an ``Idempotency-Key`` builds the same request.
INPUT_REFERENCE = UploadRules(
    param="input_reference",
    name="input_reference",
    prefix="input_reference: ",
    readable_as="an image",
    kinds=("image",),
    kinds_text="an image (PNG, JPEG or WebP)",
    content_addressed=True,
)


async def store_input_reference(ctx: AppContext, caller: Caller, upload: UploadFile) -> str:
    """Store the image as an upload of the caller's key; return a URL this server issued."""
    stored = await store_upload(ctx, caller.key_id, upload, INPUT_REFERENCE)
    return _sign_upload(ctx, stored.blob_key)


def _sign_upload(ctx: AppContext, blob_key: str) -> str:
    # Signed from a rounded clock so that the same upload gives the same URL for a while
    # (request fingerprints, hence Idempotency-Key retries, depend on it).
    ttl = ctx.settings.upload_ttl_seconds
    bucket = max(1, min(3600, ttl // 4))
    now = math.floor(time.time() / bucket) * bucket
    url, _ = ctx.signer.sign(blob_key, ttl, now=now)
    return url
