"""The public models videogate knows, with their capabilities (API.md §1.1, §4)."""

from __future__ import annotations

from dataclasses import dataclass, field

from videogate.media.sizes import RATIOS, RESOLUTIONS


@dataclass(frozen=True)
class ReferenceLimits:
    """Seedance 2.0 limits on multimodal references (API.md §1.1)."""

    max_images: int = 9
    max_videos: int = 3
    min_video_seconds: float = 2.0
    max_video_seconds: float = 15.0
    max_video_total_seconds: float = 15.0
    max_audios: int = 3
    min_audio_seconds: float = 2.0
    max_audio_seconds: float = 15.0
    max_audio_total_seconds: float = 15.0
    max_image_bytes: int = 30 * 1024 * 1024
    max_video_bytes: int = 50 * 1024 * 1024
    max_audio_bytes: int = 15 * 1024 * 1024
    min_image_side: int = 300
    max_image_side: int = 6000
    min_image_aspect: float = 0.4
    max_image_aspect: float = 2.5


@dataclass(frozen=True)
class ModelSpec:
    """A public model name with what it accepts."""

    name: str
    description: str
    resolutions: tuple[str, ...] = RESOLUTIONS
    ratios: tuple[str, ...] = (*RATIOS, "adaptive")
    min_duration: int = 4
    max_duration: int = 15
    default_duration: int = 5
    default_resolution: str = "720p"
    audio: bool = True
    limits: ReferenceLimits = field(default_factory=ReferenceLimits)

    def as_public(self) -> dict[str, object]:
        return {
            "id": self.name,
            "object": "model",
            "owned_by": "videogate",
            "description": self.description,
            "capabilities": {
                "resolutions": list(self.resolutions),
                "ratios": list(self.ratios),
                "durations": {"min": self.min_duration, "max": self.max_duration, "auto": -1},
                "default_duration": self.default_duration,
                "default_resolution": self.default_resolution,
                "audio": self.audio,
                "fps": 24,
                "references": {
                    "images": self.limits.max_images,
                    "videos": self.limits.max_videos,
                    "video_total_seconds": self.limits.max_video_total_seconds,
                    "audios": self.limits.max_audios,
                    "audio_total_seconds": self.limits.max_audio_total_seconds,
                },
            },
        }


SEEDANCE_2 = "doubao-seedance-2-0-260128"
SEEDANCE_2_FAST = "doubao-seedance-2-0-fast-260128"
SANDBOX = "sandbox"


def builtin_models() -> dict[str, ModelSpec]:
    """The models served out of the box (all by the sandbox until routes say otherwise)."""
    models = [
        ModelSpec(SEEDANCE_2, "Seedance 2.0 (standard)"),
        ModelSpec(
            SEEDANCE_2_FAST,
            "Seedance 2.0 fast (no 1080p)",
            resolutions=("480p", "720p"),
        ),
        ModelSpec(SANDBOX, "Local sandbox renderer: real mp4 previews, free and offline"),
    ]
    return {m.name: m for m in models}
