"""``POST /v1/callbacks/ark/{token}``: upstream callbacks, taken as hints only."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from videogate.api.responses import json_response
from videogate.api.state import api_state
from videogate.worker.callbacks import receive_callback

router = APIRouter(tags=["callbacks"])


@router.post("/v1/callbacks/ark/{token}", summary="Ark task callback (re-read, never trusted)")
async def ark_callback(token: str, request: Request) -> Response:
    await receive_callback(api_state(request).ctx, token[:200])
    return json_response({"ok": True})
