"""``videogate generate``: a prompt and local files in, an mp4 on disk out."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from videogate.cli._client_common import (
    Api,
    ApiKeyOption,
    ApiOption,
    BaseUrlOption,
    Connection,
    JsonOption,
    PollOption,
    TimeoutOption,
    WaitDisplay,
    detach,
    emit_json,
    out,
    resolve_output,
    run,
    saved_json,
    saved_line,
)
from videogate.client import DEFAULT_MODEL, Audio, Image, Reference, Video, mp4_duration


def generate_command(
    prompt: Annotated[str, typer.Argument(help="What the video shows.", show_default=False)],
    model: Annotated[
        str, typer.Option("--model", "-m", envvar="VIDEOGATE_MODEL", help="The model.")
    ] = DEFAULT_MODEL,
    image: Annotated[
        list[str] | None,
        typer.Option(
            "--image",
            "-i",
            metavar="PATH|URL",
            help="A reference image (repeatable; 'image 1' in the prompt is the first).",
            show_default=False,
        ),
    ] = None,
    first_frame: Annotated[
        str | None,
        typer.Option(
            "--first-frame", metavar="PATH|URL", help="The first frame.", show_default=False
        ),
    ] = None,
    last_frame: Annotated[
        str | None,
        typer.Option(
            "--last-frame",
            metavar="PATH|URL",
            help="The last frame (with --first-frame).",
            show_default=False,
        ),
    ] = None,
    video: Annotated[
        list[str] | None,
        typer.Option(
            "--video",
            metavar="PATH|URL",
            help="A reference video (repeatable; a local file only with videogate).",
            show_default=False,
        ),
    ] = None,
    audio: Annotated[
        list[str] | None,
        typer.Option(
            "--audio",
            metavar="PATH|URL",
            help="A reference audio (repeatable).",
            show_default=False,
        ),
    ] = None,
    ratio: Annotated[
        str | None,
        typer.Option(
            help="16:9 9:16 1:1 3:4 4:3 21:9 adaptive (server default 16:9).", show_default=False
        ),
    ] = None,
    duration: Annotated[
        int | None,
        typer.Option(help="Seconds, 4-15, or -1 to let the model choose.", show_default=False),
    ] = None,
    resolution: Annotated[
        str | None, typer.Option(help="480p 720p 1080p (server default 720p).", show_default=False)
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed, -1 for random.", show_default=False)
    ] = None,
    no_audio: Annotated[bool, typer.Option("--no-audio", help="No audio track.")] = False,
    watermark: Annotated[bool, typer.Option("--watermark", help="Ask for a watermark.")] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Where to save the mp4 (default ID.mp4).", show_default=False
        ),
    ] = None,
    timeout: TimeoutOption = None,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
    api: ApiOption = Api.videogate,
    poll_interval: PollOption = None,
    as_json: JsonOption = False,
) -> None:
    """Generate a video from a prompt (and reference files or URLs) and save it.

    Shows status, elapsed time and an estimate while it runs, and the file, its size and
    length at the end. Ctrl-C detaches without cancelling and prints the command that
    picks the task up again.
    """
    conn = Connection(base_url, api_key, api, as_json, poll_interval)
    refs: list[Reference] = []
    if first_frame:
        refs.append(Image(first_frame, role="first_frame"))
    if last_frame:
        refs.append(Image(last_frame, role="last_frame"))
    refs += [Image(x) for x in image or []]
    refs += [Video(x) for x in video or []]
    refs += [Audio(x) for x in audio or []]
    created: list[str] = []

    async def main() -> int:
        async with conn.client() as client:
            with WaitDisplay(None, as_json=as_json, label="video") as display:
                display.note("uploading references" if refs else "creating")
                task = await client.create(
                    prompt,
                    model=model,
                    references=refs,
                    ratio=ratio,
                    duration=duration,
                    resolution=resolution,
                    seed=seed,
                    generate_audio=False if no_audio else None,
                    watermark=True if watermark else None,
                )
                created.append(task.id)
                display.attach(task.id)
                state = await task.wait(timeout, on_progress=display.update)
                path = await task.download(
                    resolve_output(output, task.id), on_bytes=display.downloading
                )
            size = (await asyncio.to_thread(path.stat)).st_size
            seconds = await asyncio.to_thread(mp4_duration, path) or state.duration
        if as_json:
            emit_json(saved_json(path, size, seconds, state))
        else:
            out.print(saved_line(path, size, seconds, state))
        return 0

    try:
        run(conn, main)
    except KeyboardInterrupt:
        detach(conn, created[0] if created else None, output)
