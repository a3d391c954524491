"""Benchmark the sandbox renderer: wall time and real-time factor per output resolution.

Usage: .venv/bin/python bench/render_bench.py [--duration 8] [--ratio 16:9] [--repeat 3]

Each case renders the clip the service would (mp4 with AAC audio, thumbnail, last frame) and
reports the best of ``--repeat`` runs. The real-time factor is render time / clip duration:
below 1.0 is faster than real time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from videogate.media.render import RenderSpec, render
from videogate.media.sizes import RATIOS, RESOLUTIONS, output_size

PROMPT = (
    "A corgi in a yellow raincoat splashes through puddles on a neon-lit Tokyo street at "
    "night, reflections shimmering, handheld camera, shallow depth of field"
)


def bench_one(spec: RenderSpec, workdir: Path, repeat: int) -> float:
    """Best wall time of ``repeat`` renders of ``spec``, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        render(
            spec,
            workdir / "clip.mp4",
            out_thumbnail=workdir / "thumb.jpg",
            out_last_frame=workdir / "last.png",
        )
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=8.0, help="clip length in seconds")
    parser.add_argument("--ratio", choices=RATIOS, default="16:9")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; best is shown")
    parser.add_argument("--no-audio", action="store_true", help="render without a soundtrack")
    args = parser.parse_args()

    print(f"sandbox render, {args.duration:g} s clips, ratio {args.ratio}, {os.cpu_count()} CPUs")
    print(f"{'resolution':<11}{'size':>11}{'wall s':>9}{'RTF':>8}{'x realtime':>12}{'MB':>7}")
    with tempfile.TemporaryDirectory(prefix="render-bench-") as tmp:
        workdir = Path(tmp)
        for resolution in ("720p", *(r for r in RESOLUTIONS if r != "720p")):
            width, height = output_size(args.ratio, resolution)
            spec = RenderSpec(
                prompt=PROMPT,
                width=width,
                height=height,
                duration=args.duration,
                seed=2024,
                generate_audio=not args.no_audio,
            )
            seconds = bench_one(spec, workdir, max(1, args.repeat))
            size_mb = (workdir / "clip.mp4").stat().st_size / 1e6
            rtf = seconds / args.duration
            print(
                f"{resolution:<11}{f'{width}x{height}':>11}{seconds:>9.2f}{rtf:>8.3f}"
                f"{1 / rtf:>11.1f}x{size_mb:>7.2f}"
            )


if __name__ == "__main__":
    main()
