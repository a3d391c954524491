"""The task object as the Ark-native surface shows it (API.md §2).

Field for field Ark's content-generation task: ``content`` and ``usage`` appear once the
task has succeeded, ``ratio`` is the resolved one (never ``adaptive``), output is 24 fps.
URLs are our signed URLs and ``billing_detail`` is the same as on ``/v1/videos``.
"""

from __future__ import annotations

from typing import Any

from videogate.request import GenerationRequest, resolve_output
from videogate.signing import UrlSigner
from videogate.statuses import ARK_STATUS
from videogate.store.records import TaskRecord
from videogate.views.relay import billing_detail, signed_url

FPS = 24
# Our failure codes in Ark's documented codes (the detail stays in the message).
ARK_ERROR_CODES = {
    "cancelled": "TaskCancelled",
    "expired": "TaskExpired",
    "reference_unreachable": "InvalidParameter.ContentUnreachable",
    "reference_unavailable": "InvalidParameter.ContentUnreachable",
    "unsupported_request": "InvalidParameter.UnsupportedParameter",
    "upstream_timeout": "ServiceUnavailable",
    "upstream_unreachable": "ServiceUnavailable",
    "no_available_route": "ServiceUnavailable",
}
ARK_DEFAULT_ERROR = "InternalServiceError"
# Ark's own codes (a failed Ark upstream's) pass through as they are.
_ARK_CODE_SHAPES = ("InvalidParameter", "OutputVideoSensitiveContentDetected", "InputImage")


def ark_error_code(code: str) -> str:
    """Our error code as Ark's: upstream Ark codes as they are, ours mapped."""
    if code[:1].isupper() or code.startswith(_ARK_CODE_SHAPES):
        return code
    return ARK_ERROR_CODES.get(code, ARK_DEFAULT_ERROR)


def ark_task(task: TaskRecord, signer: UrlSigner, ttl: int) -> dict[str, Any]:
    req = GenerationRequest.model_validate(task.request)
    ratio, _, _ = resolve_output(req)
    status = ARK_STATUS[task.status]
    obj: dict[str, Any] = {
        "id": task.id,
        "model": req.public_model,
        "status": status,
        "error": None,
    }
    if status in ("failed", "expired") and task.error_code:
        obj["error"] = {
            "code": ark_error_code(task.error_code),
            "message": f"{task.error_message or task.error_code} ({task.error_code})",
        }
    if status == "succeeded":
        video_url = last_frame_url = None
        if not task.media_deleted:
            video_url, _ = signed_url(signer, task.video_key, ttl)
            last_frame_url, _ = signed_url(signer, task.last_frame_key, ttl)
        # file_url is for Ark's non-video generations: declared by the SDK, null here.
        obj["content"] = {
            "video_url": video_url,
            "last_frame_url": last_frame_url,
            "file_url": None,
        }
        if task.completion_tokens is not None:
            obj["usage"] = {
                "completion_tokens": task.completion_tokens,
                "total_tokens": task.completion_tokens,
            }
    seconds = task.seconds if task.seconds is not None else req.duration
    duration = int(seconds) if seconds and seconds > 0 else req.duration
    obj.update(
        {
            "created_at": int(task.created_at),
            "updated_at": int(task.updated_at),
            "seed": task.seed,
            "resolution": req.resolution,
            "ratio": ratio,
            "duration": duration,
            "frames": duration * FPS if duration > 0 else None,
            "framespersecond": FPS,
            "generate_audio": req.generate_audio,
            "service_tier": "default",
            "execution_expires_after": round(task.deadline_at - task.created_at),
            "draft": False,
            "fileformat": req.output_format,
            "output_format": req.output_format,
            # Every other field the Ark SDK's task declares: null where it has no meaning
            # for a video task (3D subdivision, image prompt rewriting, drafts) or was not sent.
            "safety_identifier": None,
            "priority": None,
            "tools": None,
            "revised_prompt": None,
            "subdivisionlevel": None,
            "draft_task_id": None,
            "billing_detail": billing_detail(task),
        }
    )
    # What the client sent on this surface, echoed as Ark does (service_tier, priority…).
    for name, value in req.extras.items():
        if name != "execution_expires_after":
            obj[name] = value
    return obj
