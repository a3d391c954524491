"""``POST /v1/callbacks/ark/{token}``: upstream callbacks, taken as hints only."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from starlette.responses import Response

from videogate.api.responses import json_response
from videogate.api.state import api_state
from videogate.worker.callbacks import receive_callback

router = APIRouter(tags=["callbacks"])


@router.post("/v1/callbacks/ark/{token}", summary="Ark task callback (re-read, never trusted)")
async def ark_callback(token: str, request: Request) -> Response:
    claimed = _claimed_status(await request.body())
    await receive_callback(api_state(request).ctx, token[:200], claimed)
    return json_response({"ok": True})


def _claimed_status(body: bytes) -> str | None:
    """The ``status`` an Ark task object in ``body`` claims; None when there is none."""
    try:
        data = json.loads(body)
    except ValueError:  # not JSON, or not UTF-8
        return None
    status = data.get("status") if isinstance(data, dict) else None
    return status if isinstance(status, str) else None
