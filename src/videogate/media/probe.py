"""Identify an uploaded media file by its content: image, video or audio, and its basic shape.

Pillow is tried first because it recognises the still-image formats we accept from their magic
bytes; everything else goes to PyAV (FFmpeg). Only metadata is read wherever the container
carries it: images are decoded (cheaply) to catch truncation, videos and audio decode a single
frame to prove the codec is usable.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Final, Literal

import av
import av.container
import av.stream
from PIL import Image, UnidentifiedImageError

__all__ = ["MediaError", "MediaInfo", "probe", "sniff_kind"]

MediaKind = Literal["image", "video", "audio"]

_PREFIX: Final = "not a decodable image/video/audio file"

# Pillow plugins allowed to claim a file. Restricting them matters: some (TGA, for one) accept
# almost any bytes.
_PIL_PLUGINS: Final = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")

# Pillow format name -> (our format name, MIME type). MPO is what Pillow calls the multi-picture
# JPEGs many phone cameras write (its JPEG plugin opens them); to everyone else they are JPEG.
_IMAGE_FORMATS: Final[dict[str, tuple[str, str]]] = {
    "JPEG": ("jpeg", "image/jpeg"),
    "MPO": ("jpeg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
    "BMP": ("bmp", "image/bmp"),
    "TIFF": ("tiff", "image/tiff"),
    "GIF": ("gif", "image/gif"),
}

# EXIF orientations that rotate by 90 or 270 degrees, i.e. swap width and height on display.
_EXIF_ORIENTATION: Final = 0x0112
_TRANSPOSED_ORIENTATIONS: Final = frozenset({5, 6, 7, 8})

# FFmpeg demuxers we accept. An allowlist, because FFmpeg will "open" almost anything (text files
# as the tty demuxer, broken PNGs as png_pipe) and those must not pass as video or audio.
_AV_FORMATS: Final = frozenset(
    {
        "mov,mp4,m4a,3gp,3g2,mj2",
        "matroska,webm",
        "avi",
        "mpegts",
        "mp3",
        "wav",
        "ogg",
        "flac",
        "aac",
    }
)

# Containers whose index states where every packet lives; if the data ends before the index
# says, the file was cut off (a truncated fast-start mp4 still opens and reports full length).
_INDEXED_FORMATS: Final = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"})

_WEBM_CODECS: Final = frozenset({"vp8", "vp9", "av1", "opus", "vorbis"})

# How many packets to read looking for the first decodable frame before giving up.
_MAX_PACKETS_FOR_FIRST_FRAME: Final = 256


@dataclass(frozen=True)
class MediaInfo:
    """What a media file is, as far as the service cares.

    ``duration`` and ``fps`` are None for images (and ``fps`` for audio); ``width`` and
    ``height`` are the displayed size (EXIF rotation applied) and None for audio.
    """

    kind: MediaKind
    format: str
    mime_type: str
    width: int | None
    height: int | None
    duration: float | None
    fps: float | None
    has_audio: bool
    has_video: bool
    bytes: int


class MediaError(Exception):
    """The file is not a usable image, video or audio file; the message says why."""


# Leading bytes of the containers an upstream's result may come in: what ``sniff_kind`` reads.
_VIDEO_BOXES: Final = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")  # mp4, mov, 3gp
_IMAGE_MAGIC: Final = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")
_TIFF_MAGIC: Final = (b"II*\x00", b"MM\x00*")
SNIFF_BYTES: Final = 376  # two MPEG-TS packets


def sniff_kind(head: bytes) -> MediaKind | None:
    """``video`` or ``image`` from a file's first ``SNIFF_BYTES`` bytes, None if neither.

    For a result whose producer we trust to encode it (an upstream's): telling an error page
    from a video takes its magic bytes, not a decode (``probe`` costs milliseconds of CPU
    per file, which at a hundred completions a second is the worker's whole CPU).
    """
    if head[4:8] in _VIDEO_BOXES or head.startswith(b"\x1a\x45\xdf\xa3"):  # mp4 / mkv, webm
        return "video"
    if head.startswith(b"RIFF") and head[8:12] in (b"AVI ", b"WEBP"):
        return "video" if head[8:12] == b"AVI " else "image"
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:  # MPEG-TS sync bytes
        return "video"
    if head.startswith(_IMAGE_MAGIC) or head.startswith(_TIFF_MAGIC):
        return "image"
    return None


def probe(path: Path) -> MediaInfo:
    """Inspect ``path`` and describe it.

    Raises MediaError if the content is not a decodable image, video or audio file (empty,
    garbage, truncated, unsupported container). A missing file raises FileNotFoundError, since
    that is a caller bug rather than a property of the upload.
    """
    size = path.stat().st_size
    if size == 0:
        raise MediaError(f"{_PREFIX}: the file is empty")
    info = _probe_image(path, size)
    if info is None:
        info = _probe_av(path, size)
    return info


def _probe_image(path: Path, size: int) -> MediaInfo | None:
    """Describe an image, None if Pillow does not recognise the bytes as one of our formats."""
    try:
        img = Image.open(path, formats=_PIL_PLUGINS)
    except UnidentifiedImageError:
        return None
    except Image.DecompressionBombError as exc:
        raise MediaError(f"{_PREFIX}: {exc}") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        # A plugin recognised the signature but could not parse the header.
        raise MediaError(f"{_PREFIX}: broken image: {exc}") from exc
    with img:
        pil_format = img.format or ""
        width, height = img.size
        try:
            if pil_format in ("JPEG", "MPO"):
                # Let libjpeg decode at 1/8 scale: it still walks the whole entropy-coded
                # stream (so truncation is caught) at a fraction of the cost.
                img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            img.load()
            orientation = img.getexif().get(_EXIF_ORIENTATION)
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise MediaError(f"{_PREFIX}: broken {pil_format} image: {exc}") from exc
    if orientation in _TRANSPOSED_ORIENTATIONS:
        width, height = height, width
    fmt, mime = _IMAGE_FORMATS[pil_format]
    return MediaInfo(
        kind="image",
        format=fmt,
        mime_type=mime,
        width=width,
        height=height,
        duration=None,
        fps=None,
        has_audio=False,
        has_video=False,
        bytes=size,
    )


def _probe_av(path: Path, size: int) -> MediaInfo:
    """Describe an audio or video file via PyAV."""
    try:
        container = av.open(str(path), mode="r", metadata_errors="replace")
    except av.FFmpegError as exc:
        raise MediaError(f"{_PREFIX}: {_reason(exc)}") from exc
    with container:
        demuxer = container.format.name
        if demuxer not in _AV_FORMATS:
            raise MediaError(f"{_PREFIX}: unsupported format {demuxer!r}")
        videos = [
            s
            for s in container.streams.video
            # Cover art in mp3/m4a shows up as a one-frame video stream; it is not video.
            if not s.disposition & av.stream.Disposition.attached_pic
            and s.codec_context.width > 0
            and s.codec_context.height > 0
        ]
        audios = [s for s in container.streams.audio if s.codec_context.sample_rate > 0]
        main: av.stream.Stream
        if videos:
            main = videos[0]
        elif audios:
            main = audios[0]
        else:
            raise MediaError(f"{_PREFIX}: no audio or video stream")
        try:
            _decode_first_frame(container, main)
            duration = _metadata_duration(container, main)
            if duration is None:
                duration = _demuxed_end(container, main)
            elif demuxer in _INDEXED_FORMATS:
                _check_not_truncated(container, main)
        except av.FFmpegError as exc:
            raise MediaError(f"{_PREFIX}: {_reason(exc)}") from exc
        fmt, mime = _container_type(container, kind="video" if videos else "audio")
        fps: float | None = None
        width = height = None
        if videos:
            video = videos[0]
            width, height = video.codec_context.width, video.codec_context.height
            rate = video.average_rate or video.guessed_rate or video.base_rate
            fps = float(rate) if rate else None
        return MediaInfo(
            kind="video" if videos else "audio",
            format=fmt,
            mime_type=mime,
            width=width,
            height=height,
            duration=duration,
            fps=fps,
            has_audio=bool(audios),
            has_video=bool(videos),
            bytes=size,
        )


def _reason(exc: av.FFmpegError) -> str:
    """FFmpeg's message without the file name PyAV appends (it is the server's temp path)."""
    return str(exc.strerror or exc)


def _decode_first_frame(container: av.container.InputContainer, stream: av.stream.Stream) -> None:
    """Prove the stream's codec works by decoding one frame; MediaError if none comes out."""
    for count, packet in enumerate(container.demux(stream)):
        if packet.decode():
            return
        if count >= _MAX_PACKETS_FOR_FIRST_FRAME:
            break
    raise MediaError(f"{_PREFIX}: no decodable {stream.type} frames")


def _metadata_duration(
    container: av.container.InputContainer, stream: av.stream.Stream, *, stream_first: bool = False
) -> float | None:
    """Duration in seconds from the headers (container's or stream's, in the order asked);
    None if neither states one."""
    from_container = None
    if container.duration is not None and container.duration > 0:
        from_container = float(Fraction(container.duration, av.time_base))
    from_stream = None
    if stream.duration is not None and stream.duration > 0 and stream.time_base is not None:
        from_stream = float(stream.duration * stream.time_base)
    if stream_first:
        return from_stream if from_stream is not None else from_container
    return from_container if from_container is not None else from_stream


def _demuxed_end(container: av.container.InputContainer, stream: av.stream.Stream) -> float:
    """End time in seconds of the stream's last packet, found by demuxing (no decoding).

    Continues from wherever the container is: the end is a maximum over packet timestamps,
    so packets already read do not matter and no (possibly unsupported) seek back is needed.
    """
    time_base = stream.time_base or Fraction(1, 1)
    start = stream.start_time or 0
    end = 0.0
    for packet in container.demux(stream):
        if packet.size and packet.pts is not None:
            end = max(end, float((packet.pts + (packet.duration or 0) - start) * time_base))
    return end


def _check_not_truncated(container: av.container.InputContainer, stream: av.stream.Stream) -> None:
    """MediaError if the stream's packet data stops well before its index says it should."""
    # The stream's own length, not the container's: audio may legitimately outlast video.
    expected = _metadata_duration(container, stream, stream_first=True)
    if expected is None:
        return
    time_base = stream.time_base or Fraction(1, 1)
    with contextlib.suppress(av.FFmpegError):
        # Jump to the keyframe before the last second and demux from there: cheap, and a
        # cut-off file runs out of data first. If seeking fails, demux on from here.
        target = int(max(0.0, expected - 1.0) / time_base) + (stream.start_time or 0)
        container.seek(target, stream=stream, backward=True)
    end = _demuxed_end(container, stream)
    # The tolerance covers audio priming and edit lists.
    if end < expected - max(0.5, 0.05 * expected):
        raise MediaError(
            f"{_PREFIX}: truncated: media data ends at {end:.2f} s of {expected:.2f} s"
        )


def _container_type(
    container: av.container.InputContainer, *, kind: Literal["video", "audio"]
) -> tuple[str, str]:
    """Our format name and MIME type for an FFmpeg demuxer (which lumps related formats)."""
    demuxer = container.format.name
    if demuxer == "mov,mp4,m4a,3gp,3g2,mj2":
        brand = container.metadata.get("major_brand", "").strip().lower()
        if brand == "qt":
            return "mov", "video/quicktime"
        if brand in ("m4a", "m4b"):
            return "m4a", "audio/mp4"
        if brand.startswith("3g"):
            return "3gp", f"{kind}/3gpp"
        return "mp4", f"{kind}/mp4"
    if demuxer == "matroska,webm":
        codecs = {s.codec_context.name for s in container.streams if s.type in ("video", "audio")}
        if codecs <= _WEBM_CODECS:
            return "webm", f"{kind}/webm"
        return "mkv", f"{kind}/x-matroska"
    simple: dict[str, tuple[str, str]] = {
        "avi": ("avi", "video/x-msvideo"),
        "mpegts": ("ts", "video/mp2t"),
        "mp3": ("mp3", "audio/mpeg"),
        "wav": ("wav", "audio/wav"),
        "ogg": ("ogg", f"{kind}/ogg"),
        "flac": ("flac", "audio/flac"),
        "aac": ("aac", "audio/aac"),
    }
    return simple[demuxer]
