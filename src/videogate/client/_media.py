"""The length of an mp4, read from its ``mvhd`` box (no media library needed)."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO


def mp4_duration(path: str | os.PathLike[str]) -> float | None:
    """Seconds, from the movie header; None if the file is not an mp4 we can read."""
    try:
        with Path(path).open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            for start, end, kind in _boxes(f, 0, size):
                if kind == b"moov":
                    for child_start, _child_end, child in _boxes(f, start, end):
                        if child == b"mvhd":
                            return _mvhd(f, child_start)
                    return None
    except (OSError, struct.error):
        return None
    return None


def _boxes(f: BinaryIO, pos: int, end: int) -> list[tuple[int, int, bytes]]:
    """(payload start, box end, type) for each box in [pos, end)."""
    found: list[tuple[int, int, bytes]] = []
    while pos + 8 <= end:
        f.seek(pos)
        head = f.read(8)
        if len(head) < 8:
            break
        size, kind = struct.unpack(">I4s", head)
        header = 8
        if size == 1:
            size = struct.unpack(">Q", f.read(8))[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header:
            break
        found.append((pos + header, min(pos + size, end), kind))
        pos += size
    return found


def _mvhd(f: BinaryIO, start: int) -> float | None:
    f.seek(start)
    version = f.read(4)[0]
    if version == 1:
        f.seek(start + 4 + 16)
        timescale, duration = struct.unpack(">IQ", f.read(12))
    else:
        f.seek(start + 4 + 8)
        timescale, duration = struct.unpack(">II", f.read(8))
    if not timescale:
        return None
    return round(int(duration) / int(timescale), 3)
