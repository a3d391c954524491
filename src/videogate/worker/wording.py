"""What a failed task tells its client: the surface's words, never the engine's.

Engine and provider errors are written for operators: they name routes, upstream hosts and
internal states. A task keeps a message its client can act on, in words every surface
shares; the operator's detail goes to the log line of the transition (which carries the
task's route, bound per worker step).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: The client's wording per error code where the detail is only the operator's business.
PUBLIC_WORDING = {
    "upstream_unreachable": "the video generation service could not be reached",
    "upstream_timeout": "the video generation service did not answer in time",
    "upstream_malformed": "the video generation service sent an answer that could not be read",
    "upstream_key_missing": "the video generation service is not set up for this model here",
    "upstream_error": "the video generation service refused the task",
    "route_removed": "the service that was generating this video is no longer configured "
    "here, so the task cannot be followed",
    "submit_interrupted": "submitting the task was interrupted and it could not be told "
    "whether the video generation service took it; it was not sent again, so it is never "
    "paid twice: create the task again",
    "submit_uncertain": "it could not be told whether the video generation service took the task",
    "result_fetch_failed": "the finished video could not be downloaded from the video "
    "generation service",
    "result_invalid": "the video generation service delivered a result that is not a video",
    "internal_error": "an internal error stopped the task",
}
# Words of the engine no surface uses: its routes and the state between done and stored.
_INTERNAL = re.compile(r"\broutes?\b|\bfetching\b|\bits status is\b|\bworker\b", re.IGNORECASE)
# Shorter route names ("a", "us") are too likely to be ordinary words to look for.
_MIN_NAME = 3


def public_message(code: str, message: str, route_names: Iterable[str] = ()) -> str:
    """``message`` when it is fit for a client, else the wording for ``code``."""
    leaks = _INTERNAL.search(message) or any(
        len(name) >= _MIN_NAME and name in message for name in route_names
    )
    if not leaks:
        return message
    return PUBLIC_WORDING.get(code, f"the video could not be generated ({code})")
