"""Remix, edit and extend with the real ``openai`` SDK against a live server; the sandbox
really works from the source video's frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np
import openai
import pytest
from openai import OpenAI
from openai.types import Video

from openai_support import assert_openai_video, client, key, live, raw_get

pytestmark = pytest.mark.slow

__all__ = ["client", "key", "live"]  # fixtures: the live server, a key and an SDK client
MINI = "dreamina-seedance-2-0-mini-260615"
BAND = 0.15  # the caption band at the bottom of reworked frames is left out of comparisons


def frames(path: Path) -> tuple[list[np.ndarray[Any, Any]], float]:
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        duration = (container.duration or 0) / 1_000_000
    return decoded, duration


def top(frame: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return frame[: int(frame.shape[0] * (1 - BAND))].astype(np.int16)


def by_id(c: OpenAI, operation: str, **fields: Any) -> Video:
    """``client.videos.extend/edit(video={"id": …})``; the installed SDK refuses a dict
    client-side (newer ones send it), so then the same fields go as a JSON body."""
    method = c.videos.extend if operation == "extensions" else c.videos.edit
    try:
        return method(**fields)
    except RuntimeError as exc:
        assert "video" in str(exc)
    return c.post(f"/videos/{operation}", body=fields, cast_to=Video)


def download(c: OpenAI, video_id: str, path: Path) -> Path:
    c.videos.download_content(video_id).write_to_file(path)
    return path


def test_remix_uses_the_source_frames(client: OpenAI, tmp_path: Path) -> None:
    source = client.videos.create_and_poll(model="sora-2", prompt="a red fox", seconds="4")
    assert source.status == "completed"
    remix = client.videos.remix(source.id, prompt="the same fox, at night")
    created = raw_get(client, remix.id)
    assert_openai_video(created)
    assert (created["remixed_from_video_id"], created["model"]) == (source.id, "sora-2")
    done = client.videos.poll(remix.id)
    assert done.status == "completed", done
    assert done.remixed_from_video_id == source.id and done.size == source.size
    src, _ = frames(download(client, source.id, tmp_path / "src.mp4"))
    out, duration = frames(download(client, remix.id, tmp_path / "remix.mp4"))
    assert abs(duration - 4) < 0.2 and len(out) == len(src)
    for i in (0, len(src) // 2, len(src) - 1):
        # each remix frame is its source frame mirrored with the colour channels rotated
        expected = src[i][:, ::-1, :]
        rotated = [np.roll(expected, shift, axis=2) for shift in (1, 2)]
        diff = min(float(np.mean(np.abs(top(out[i]) - top(r)))) for r in rotated)
        assert diff < 8, (i, diff)
        assert float(np.mean(np.abs(top(out[i]) - top(src[i])))) > diff


def test_extend_continues_the_source_and_edit_regrades_it(client: OpenAI, tmp_path: Path) -> None:
    source = client.videos.create_and_poll(model="sora-2-pro", prompt="a kite", seconds="4")
    extended = by_id(client, "extensions", prompt="more", seconds="4", video={"id": source.id})
    body = raw_get(client, extended.id)
    assert_openai_video(body)
    assert body["seconds"] == "8"  # OpenAI: the stitched total
    extended = client.videos.poll(extended.id)
    assert (extended.status, extended.seconds) == ("completed", "8"), extended
    src, _ = frames(download(client, source.id, tmp_path / "src.mp4"))
    out, duration = frames(download(client, extended.id, tmp_path / "ext.mp4"))
    assert abs(duration - 8) < 0.2
    assert float(np.mean(np.abs(out[0].astype(np.int16) - src[0].astype(np.int16)))) < 6

    edited = client.videos.poll(by_id(client, "edits", prompt="sepia", video={"id": source.id}).id)
    assert edited.status == "completed", edited
    out, _ = frames(download(client, edited.id, tmp_path / "edit.mp4"))
    frame, original = top(out[len(out) // 2]), top(src[len(src) // 2])
    red, green, blue = (frame[..., k].mean() for k in range(3))
    assert red > green > blue  # toned
    luma = original.mean(axis=2).ravel()
    assert np.corrcoef(frame.mean(axis=2).ravel(), luma)[0, 1] > 0.9  # same picture


def test_rework_refusals_name_the_model_or_the_video(client: OpenAI) -> None:
    mini = client.videos.create_and_poll(model=MINI, prompt="p", seconds="4")
    assert mini.status == "completed"
    with pytest.raises(openai.BadRequestError) as exc:
        by_id(client, "extensions", prompt="more", seconds="4", video={"id": mini.id})
    assert exc.value.param == "model" and MINI in exc.value.message
    with pytest.raises(openai.BadRequestError) as exc:
        by_id(client, "edits", prompt="x", video={"id": mini.id})
    assert MINI in exc.value.message
    # the multipart form newer SDKs send: video[id]
    form = {"prompt": (None, "x"), "video[id]": (None, mini.id)}
    r = client._client.post(
        f"{client.base_url}videos/edits", files=form, headers=client.auth_headers
    )
    assert r.status_code == 400 and MINI in r.json()["error"]["message"], r.text
    pending = client.videos.create(model="sora-2", prompt="p", seconds="12")
    with pytest.raises(openai.BadRequestError) as exc:
        client.videos.remix(pending.id, prompt="x")
    assert "not a completed video" in exc.value.message
    with pytest.raises(openai.NotFoundError):
        client.videos.remix("video_nosuchvideo", prompt="x")
