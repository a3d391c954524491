"""The blob key layout, in one place.

Every key holds a random id (a task id or a file id, 80 random bits each): nobody can
guess another tenant's key, and neither backend lets a client list keys.

- ``results/<key id>/<task id>/video.mp4`` (and ``thumbnail.jpg``, ``last_frame.png``)
- ``refs/<task id>/<kind><n><ext>``: a copy of each reference fetched from a URL
- ``uploads/<key id>/<file id><ext>``: files sent to ``POST /v1/files`` or the OpenAI form
"""

from __future__ import annotations

RESULTS = "results"
REFERENCES = "refs"
UPLOADS = "uploads"


def result_prefix(key_id: str, task_id: str) -> str:
    return f"{RESULTS}/{key_id}/{task_id}"


def result_key(key_id: str, task_id: str, name: str) -> str:
    return f"{result_prefix(key_id, task_id)}/{name}"


def owner_results_prefix(key_id: str) -> str:
    """Every result of one API key (a reference may reuse the key's own results)."""
    return f"{RESULTS}/{key_id}/"


def reference_prefix(task_id: str) -> str:
    return f"{REFERENCES}/{task_id}"


def reference_key(task_id: str, kind: str, index: int, ext: str) -> str:
    return f"{reference_prefix(task_id)}/{kind}{index}{ext}"


def upload_prefix(key_id: str) -> str:
    return f"{UPLOADS}/{key_id}/"


def upload_key(key_id: str, file_id: str, ext: str) -> str:
    return f"{upload_prefix(key_id)}{file_id}{ext}"
