"""The jobs file of ``videogate batch``: one request a line, checked before anything runs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videogate.client import (
    Audio,
    Image,
    Reference,
    Video,
)

JOB_KEYS: dict[str, tuple[type, ...]] = {
    "prompt": (str,),
    "model": (str,),
    "image": (str, list),
    "first_frame": (str,),
    "last_frame": (str,),
    "video": (str, list),
    "audio": (str, list),
    "ratio": (str,),
    "duration": (int,),
    "resolution": (str,),
    "seed": (int,),
    "generate_audio": (bool,),
    "watermark": (bool,),
    "return_last_frame": (bool,),
    "out": (str,),
    "extra": (dict,),
}


MAX_STORED_BODY = 256 * 1024  # bigger bodies (inline data: URLs) are rebuilt on resume


class BatchError(Exception):
    """A problem with the jobs file, the journal or the out dir: nothing was sent."""


@dataclass
class Job:
    """One line of the jobs file."""

    line: int
    digest: str
    prompt: str
    options: dict[str, Any]
    references: list[Reference]
    out_name: str
    out_path: Path


def _as_list(value: str | list[Any]) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _source(value: str, base: Path) -> str:
    if value.startswith(("http://", "https://", "data:", "asset://")):
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def parse_job(line_no: int, raw: str, base: Path, out_dir: Path, model: str) -> Job:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BatchError(f"line {line_no}: not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise BatchError(f"line {line_no}: expected a JSON object")
    unknown = sorted(set(data) - set(JOB_KEYS))
    if unknown:
        raise BatchError(
            f"line {line_no}: unknown key(s) {', '.join(unknown)}; known: {', '.join(JOB_KEYS)}"
        )
    for key, value in data.items():
        types = JOB_KEYS[key]
        ok = isinstance(value, types)
        if isinstance(value, bool) and bool not in types:
            ok = False  # JSON true is not a number here
        if key in ("image", "video", "audio") and isinstance(value, list):
            ok = all(isinstance(v, str) for v in value)
        if not ok:
            names = " or ".join("list of strings" if t is list else t.__name__ for t in types)
            raise BatchError(f"line {line_no}: '{key}' must be a {names}")
    prompt = data.get("prompt")
    if not prompt:
        raise BatchError(f"line {line_no}: 'prompt' is required")
    refs: list[Reference] = []
    if "first_frame" in data:
        refs.append(Image(_source(data["first_frame"], base), role="first_frame"))
    if "last_frame" in data:
        refs.append(Image(_source(data["last_frame"], base), role="last_frame"))
    refs += [Image(_source(v, base)) for v in _as_list(data.get("image", []))]
    refs += [Video(_source(v, base)) for v in _as_list(data.get("video", []))]
    refs += [Audio(_source(v, base)) for v in _as_list(data.get("audio", []))]
    options = {
        name: data[name]
        for name in (
            "ratio",
            "duration",
            "resolution",
            "seed",
            "generate_audio",
            "watermark",
            "return_last_frame",
            "extra",
        )
        if name in data
    }
    options["model"] = data.get("model", model)
    out_name = data.get("out") or f"{line_no:04d}.mp4"
    out_path = Path(out_name).expanduser()
    if not out_path.is_absolute():
        out_path = out_dir / out_path
    digest = hashlib.sha256(raw.strip().encode()).hexdigest()[:16]
    return Job(line_no, digest, prompt, options, refs, out_name, out_path)


def load_jobs(path: Path, out_dir: Path, model: str) -> list[Job]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BatchError(f"cannot read {path}: {exc.strerror or exc}") from None
    base = path.resolve().parent
    jobs: list[Job] = []
    problems: list[str] = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            jobs.append(parse_job(line_no, raw, base, out_dir, model))
        except BatchError as exc:
            problems.append(str(exc))
    seen: dict[Path, int] = {}
    for job in jobs:
        other = seen.setdefault(job.out_path.resolve(), job.line)
        if other != job.line:
            problems.append(f"line {job.line}: 'out' {job.out_name} is also line {other}'s")
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise BatchError(f"{path} has problems (nothing was sent):\n  {shown}{more}")
    if not jobs:
        raise BatchError(f"{path} has no jobs")
    return jobs
