"""Reference images, videos and audio: local files or URLs, turned into ``content`` items."""

from __future__ import annotations

import asyncio
import base64
import mimetypes
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from videogate.client._errors import InvalidReference

ImageRole = Literal["first_frame", "last_frame", "reference_image"]
Source = str | os.PathLike[str]
URL_PREFIXES = ("http://", "https://", "data:", "asset://")

# What mimetypes may not know, or knows under another name.
_EXTRA_TYPES = {
    ".webp": "image/webp",
    ".heic": "image/heic",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".wav": "audio/wav",
    ".aac": "audio/aac",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".mov": "video/quicktime",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
}


def is_url(source: Source) -> bool:
    return isinstance(source, str) and source.startswith(URL_PREFIXES)


@dataclass(frozen=True)
class _Reference:
    source: Source
    kind: ClassVar[Literal["image", "video", "audio"]]

    @property
    def is_url(self) -> bool:
        """True for ``http(s)://``, ``data:`` and ``asset://`` sources; else a local path."""
        return is_url(self.source)

    @property
    def path(self) -> Path | None:
        """The local file, or None for a URL."""
        return None if self.is_url else Path(os.fspath(self.source)).expanduser()

    @property
    def content_role(self) -> str | None:
        """The ``role`` of its ``content`` item (images: as given)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Image(_Reference):
    """A reference image: ``Image("a.png")``, ``Image("https://…", role="first_frame")``.

    ``source`` is a local path or an ``http(s)://``, ``data:`` or ``asset://`` URL.

    ``role`` is ``first_frame``, ``last_frame`` or ``reference_image``. Without one, a lone
    image (no video or audio) is left for the server to treat as the first frame, and
    several images become reference images.
    """

    role: ImageRole | None = None
    kind: ClassVar[Literal["image", "video", "audio"]] = "image"

    @property
    def content_role(self) -> str | None:
        """The ``role`` of its ``content`` item, as given."""
        return self.role


@dataclass(frozen=True)
class Video(_Reference):
    """A reference video: a URL, or (against videogate only) a local file to upload."""

    kind: ClassVar[Literal["image", "video", "audio"]] = "video"

    @property
    def content_role(self) -> str | None:
        """Always ``reference_video``."""
        return "reference_video"


@dataclass(frozen=True)
class Audio(_Reference):
    """A reference audio clip: a URL or a local file."""

    kind: ClassVar[Literal["image", "video", "audio"]] = "audio"

    @property
    def content_role(self) -> str | None:
        """Always ``reference_audio``."""
        return "reference_audio"


Reference = Image | Video | Audio
ReferenceLike = Image | Video | Audio | str | os.PathLike[str]


def guess_mime(name: str) -> str | None:
    suffix = Path(urlsplit(name).path if is_url(name) else name).suffix.lower()
    return _EXTRA_TYPES.get(suffix) or mimetypes.guess_type(f"x{suffix}")[0]


def as_reference(item: ReferenceLike) -> Reference:
    """A bare path or URL becomes Image / Video / Audio by its file extension."""
    if isinstance(item, Image | Video | Audio):
        return item
    source: Source = item
    if isinstance(item, str) and item.startswith("data:"):
        mime = item[5:].split(";", 1)[0].split(",", 1)[0]
    else:
        mime = guess_mime(os.fspath(item)) or ""
    if mime.startswith("image/"):
        return Image(source)
    if mime.startswith("video/"):
        return Video(source)
    if mime.startswith("audio/"):
        return Audio(source)
    raise InvalidReference(
        f"cannot tell whether {str(item)[:100]!r} is an image, a video or an audio file; "
        "wrap it: Image(…), Video(…) or Audio(…)"
    )


def sniff_mime(data: bytes) -> str | None:
    """The type from the first bytes, for files without a telling extension."""
    head = data[:16]
    if head.startswith(b"\x89PNG"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"GIF8"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    return None


def data_url(path: Path, kind: str) -> str:
    """``data:<mime>;base64,…`` for a local image or audio file."""
    data = path.read_bytes()
    mime = guess_mime(path.name)
    if mime is None or not mime.startswith(f"{kind}/"):
        mime = sniff_mime(data) or mime
    if mime is None or not mime.startswith(f"{kind}/"):
        raise InvalidReference(f"{path} does not look like an {kind} file ({mime or 'unknown'})")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def assign_roles(refs: Sequence[Reference]) -> list[str | None]:
    """Roles as sent: explicit ones kept; role-less images become ``reference_image``
    unless there is exactly one image and no video or audio."""
    images = [r for r in refs if isinstance(r, Image)]
    lone_image = len(images) == 1 and len(refs) == 1
    roles: list[str | None] = []
    for ref in refs:
        role = ref.content_role
        if isinstance(ref, Image) and role is None and not lone_image:
            role = "reference_image"
        roles.append(role)
    return roles


Uploader = Callable[[Path], Awaitable[str]]


async def content_items(
    refs: Sequence[ReferenceLike],
    *,
    uploader: Uploader | None,
    api_name: str,
) -> list[dict[str, Any]]:
    """The ``content`` items for ``refs``, in order.

    With an ``uploader`` (videogate), local files are uploaded and their URLs sent;
    without one (Ark, relays), local images and audio become ``data:`` URLs and a local
    video is refused with a message asking for a URL.
    """
    resolved = [as_reference(r) for r in refs]
    items: list[dict[str, Any]] = []
    for ref, role in zip(resolved, assign_roles(resolved), strict=True):
        path = ref.path
        if path is None:
            url = str(ref.source)
        else:
            if not path.is_file():
                raise InvalidReference(f"reference file not found: {path}")
            if uploader is not None:
                url = await uploader(path)
            elif isinstance(ref, Video):
                raise InvalidReference(
                    f"the {api_name} API takes reference videos only as URLs, and {path} is a "
                    "local file: put it somewhere the API can fetch it (http(s)) and pass "
                    "Video('https://…') / --video URL; videogate itself accepts local files"
                )
            else:
                url = await asyncio.to_thread(data_url, path, ref.kind)
        field = f"{ref.kind}_url"
        item: dict[str, Any] = {"type": field, field: {"url": url}}
        if role is not None:
            item["role"] = role
        items.append(item)
    return items
