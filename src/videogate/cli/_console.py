"""The CLI's consoles: one rule for stdout and stderr alike.

On a terminal Rich wraps to the terminal's width. Anywhere else (a pipe, a log file, a test)
a line is never wrapped mid-message, so the text does not depend on an assumed width of 80
columns (a long path in an error would otherwise break across lines).
"""

from __future__ import annotations

from rich.console import Console

PIPE_WIDTH = 200


def make_console(*, stderr: bool = False, highlight: bool = True) -> Console:
    """A console for stdout (or stderr) that wraps only on a real terminal."""
    console = Console(stderr=stderr, highlight=highlight)
    if console.is_terminal:
        return console
    return Console(stderr=stderr, highlight=highlight, width=PIPE_WIDTH, soft_wrap=True)
