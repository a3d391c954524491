"""Reading one field of the OpenAI videos form (text, integer, boolean, file, reference).

Each reader refuses a repeated field, a file where text belongs and a malformed value with
a 400 naming the field, in the form's own words.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import orjson
from starlette.datastructures import FormData, UploadFile

from videogate.errors import InvalidRequest

_INTEGER = re.compile(r"-?\d{1,20}")
REF_KEYS = ("image_url", "file_id")
REFERENCE_HELP = (
    'an image file upload, or a JSON object {"image_url": "https://… or data:image/…"} '
    'or {"file_id": "file_…"}'
)

RefSpec = tuple[Literal["image_url", "file_id"], str]


def text_field(form: FormData, name: str) -> str | None:
    values = form.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequest(f"'{name}' was sent {len(values)} times; send it once", param=name)
    value = values[0]
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a text field, not a file upload", param=name)
    return value


def integer_field(form: FormData, name: str) -> int | None:
    value = text_field(form, name)
    if value is None:
        return None
    if not _INTEGER.fullmatch(value.strip()):
        raise InvalidRequest(f"'{name}' must be an integer, not '{value[:20]}'", param=name)
    return int(value.strip())


def boolean_field(form: FormData, name: str, *, default: bool) -> bool:
    value = text_field(form, name)
    if value is None:
        return default
    text = value.strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise InvalidRequest(f"'{name}' must be true or false, not '{value[:20]}'", param=name)


def callback_url_field(form: FormData) -> str | None:
    value = text_field(form, "callback_url")
    if value is not None and len(value) > 2048:
        raise InvalidRequest("'callback_url' is longer than 2048 characters", param="callback_url")
    return value


def upload_field(form: FormData) -> UploadFile | None:
    values = form.getlist("input_reference")
    files = [v for v in values if isinstance(v, UploadFile)]
    if len(values) > 1:
        raise InvalidRequest(
            f"'input_reference' was sent {len(values)} times; send one image",
            param="input_reference",
        )
    return files[0] if files else None


def reference_field(form: FormData) -> RefSpec | None:
    """The non-file forms of ``input_reference`` (JSON string or bracketed fields)."""
    given: list[RefSpec] = []
    values = form.getlist("input_reference")
    if values and isinstance(values[0], str):
        given.append(_reference_text(values[0]))
    for key in REF_KEYS:
        value = text_field(form, f"input_reference[{key}]")
        if value is not None:
            given.append(_reference_value(key, value))
    if len(given) > 1 or (given and values and isinstance(values[0], UploadFile)):
        raise InvalidRequest(
            f"input_reference must be exactly one of {REFERENCE_HELP}", param="input_reference"
        )
    return given[0] if given else None


def _reference_text(text: str) -> RefSpec:
    stripped = text.strip()
    if stripped.startswith(("http://", "https://", "data:")):
        return "image_url", stripped
    if not stripped.startswith("{"):
        raise InvalidRequest(f"input_reference must be {REFERENCE_HELP}", param="input_reference")
    try:
        obj: Any = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            f"input_reference is not valid JSON; send {REFERENCE_HELP}", param="input_reference"
        ) from None
    if not isinstance(obj, dict) or len(obj) != 1 or next(iter(obj)) not in REF_KEYS:
        raise InvalidRequest(
            f"input_reference must be exactly one of {REFERENCE_HELP}", param="input_reference"
        )
    key, value = next(iter(obj.items()))
    if not isinstance(value, str):
        raise InvalidRequest(f"input_reference.{key} must be a string", param="input_reference")
    return _reference_value(key, value)


def _reference_value(key: str, value: str) -> RefSpec:
    value = value.strip()
    if key == "file_id":
        if not value or len(value) > 40:
            raise InvalidRequest(
                "input_reference.file_id must be the id of a file uploaded with POST /v1/files",
                param="input_reference",
            )
        return "file_id", value
    if not value.startswith(("http://", "https://", "data:")):
        raise InvalidRequest(
            "input_reference.image_url must be an http(s):// URL or a data:image/… URL",
            param="input_reference",
        )
    return "image_url", value
