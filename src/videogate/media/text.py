"""Text for the overlay: Pillow's bundled font, user text made safe to draw, and wrapping.

The prompt is arbitrary user input (any length, any code points), so it is cleaned to one line
of drawable characters, capped, and word-wrapped to a fixed number of lines with an ellipsis.
"""

from __future__ import annotations

import unicodedata
from typing import Final, TypeAlias

from PIL import ImageFont

Font: TypeAlias = ImageFont.FreeTypeFont | ImageFont.ImageFont

_MAX_PROMPT_CHARS: Final = 2000  # more can never fit in the box; bounds the wrapping work


def load_font(size: int, cache: dict[int, Font]) -> Font:
    """Pillow's bundled scalable font (Pillow >= 10.1): no font files to ship or find."""
    size = max(8, size)
    if size not in cache:
        cache[size] = ImageFont.load_default(size=size)
    return cache[size]


def clean_text(text: str, limit: int = _MAX_PROMPT_CHARS) -> str:
    """Make arbitrary user text safe to draw: one line, no control characters.

    Lone surrogates (legal in a Python str, e.g. from JSON "\\ud800") cannot be encoded for
    FreeType, and control/format characters would draw as boxes or break the layout.
    """
    text = text[: limit * 2].encode("utf-8", "replace").decode("utf-8")
    chars = (" " if unicodedata.category(c)[0] in "CZ" else c for c in text)
    return " ".join("".join(chars).split())[:limit]


def _fit_prefix(text: str, font: Font, max_width: int) -> int:
    """Length of the longest prefix of ``text`` that fits in ``max_width`` (at least 1)."""
    lo, hi = 1, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if font.getlength(text[:mid]) <= max_width:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _ellipsize(line: str, font: Font, max_width: int) -> str:
    """``line`` shortened so that it plus "..." fits (ASCII dots: the font may lack U+2026)."""
    while line and font.getlength(line + "...") > max_width:
        line = line[:-1]
    return line.rstrip() + "..."


def wrap(text: str, font: Font, max_width: int, max_lines: int) -> list[str]:
    """Greedy word wrap to at most ``max_lines`` lines; words wider than a line (URLs, CJK
    without spaces) are broken by characters; overflow ends the last line with "..."."""
    words = text.split(" ") if text else []
    lines: list[str] = []
    current = ""
    index = 0
    while index < len(words) and len(lines) < max_lines:
        word = words[index]
        candidate = f"{current} {word}" if current else word
        if font.getlength(candidate) <= max_width:
            current, index = candidate, index + 1
        elif current:
            lines.append(current)
            current = ""
        else:
            cut = _fit_prefix(word, font, max_width)
            lines.append(word[:cut])
            words[index] = word[cut:]
            if not words[index]:
                index += 1
    truncated = index < len(words)
    if current:
        if len(lines) < max_lines:
            lines.append(current)
        else:
            truncated = True
    if truncated and lines:
        lines[-1] = _ellipsize(lines[-1], font, max_width)
    return lines


def text_top(font: Font, box_height: int) -> int:
    """y at which to draw a line of ``font`` so that it is vertically centred in the box."""
    _, top, _, bottom = font.getbbox("Ag")
    return int((box_height - (bottom - top)) // 2 - top)
