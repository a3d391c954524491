"""Fake upstream servers for the provider tests: real HTTP on 127.0.0.1, in a thread.

* :class:`FakeArk` — Volcengine Ark / BytePlus ModelArk ``/api/v3/contents/generations/tasks``.
* :class:`FakeRelay` — an OpenAI-compatible Seedance relay, ``/v1/videos``.

Both record every request, keep tasks in memory, advance them on a controllable schedule,
accept forced transitions, and can be told to fail (:class:`Fault`).
"""

from .ark import DEFAULT_MODELS, ArkTask, FakeArk, model_family
from .relay import FakeRelay, RelayTask
from .server import (
    CallbackAttempt,
    Fault,
    FaultRule,
    RecordedRequest,
    UploadedFile,
    read_mp4_tag,
    sample_mp4,
    sample_png,
    tag_mp4,
)

__all__ = [
    "DEFAULT_MODELS",
    "ArkTask",
    "CallbackAttempt",
    "FakeArk",
    "FakeRelay",
    "Fault",
    "FaultRule",
    "RecordedRequest",
    "RelayTask",
    "UploadedFile",
    "model_family",
    "read_mp4_tag",
    "sample_mp4",
    "sample_png",
    "tag_mp4",
]
