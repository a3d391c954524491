"""``videogate mcp``: an MCP server that lets AI agents make videos through videogate.

It is a thin layer over the SDK (:mod:`videogate.client`): every tool is one SDK call
against the videogate server named by ``VIDEOGATE_BASE_URL`` with ``VIDEOGATE_API_KEY``.
Errors come back as MCP tool errors carrying the server's own message, so an agent can
read what was wrong and try again. Needs the ``[mcp]`` extra (the official ``mcp`` SDK).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from videogate.client import (
    DEFAULT_MODEL,
    APIStatusError,
    AsyncClient,
    AsyncTask,
    Audio,
    Image,
    Reference,
    TaskFailed,
    TaskState,
    TaskTimeout,
    Video,
    VideogateClientError,
    mp4_duration,
)

INSTRUCTIONS = """\
videogate makes short videos (4-15 s) from a text prompt, optionally guided by reference
images, videos and audio. A video takes from seconds (the `sandbox` model) to minutes.
Typical flow: list_models -> create_video -> wait_for_task (repeat while it reports
`done: false`) -> download_video. Task ids look like `task_...`; get_task and list_tasks
read tasks again later. Costs are charged to the API key's balance."""

WAIT_DEFAULT = 300.0
WAIT_MAX = 3600.0


@dataclass
class Connection:
    """Where the tools send their requests (one SDK client per server process)."""

    base_url: str | None = None
    api_key: str | None = None
    poll_interval: float | None = None


class ReferenceInput(BaseModel):
    """One reference file for create_video."""

    source: str = Field(
        description=(
            "A local file path (uploaded for you) or an http(s):// URL the server can fetch."
        )
    )
    kind: Literal["image", "video", "audio"] | None = Field(
        None, description="image, video or audio; omitted: guessed from the file extension."
    )
    role: Literal["first_frame", "last_frame", "reference_image"] | None = Field(
        None,
        description=(
            "Images only. first_frame / last_frame pin the video's first or last frame; "
            "reference_image guides the look. Omitted: a single image with no video or "
            "audio becomes the first frame, several images are reference images."
        ),
    )

    def to_reference(self) -> Reference | str:
        if self.kind is None:
            if self.role is not None:
                return Image(self.source, role=self.role)
            return self.source  # the SDK types it by extension
        if self.kind == "image":
            return Image(self.source, role=self.role)
        if self.role is not None:
            raise ToolError(f"role {self.role!r} applies to images only, not to a {self.kind}")
        return Video(self.source) if self.kind == "video" else Audio(self.source)


def tool_error(exc: VideogateClientError) -> ToolError:
    """The SDK's error as an MCP tool error, with the server's message and field."""
    if isinstance(exc, APIStatusError):
        parts = [f"HTTP {exc.status}"]
        if exc.code:
            parts.append(exc.code)
        text = f"{' '.join(parts)}: {exc.message}"
        if exc.param:
            text += f" (parameter: {exc.param})"
        return ToolError(text)
    return ToolError(exc.message)


def task_view(state: TaskState) -> dict[str, Any]:
    """What an agent needs from a task, with ``done`` to decide whether to wait more."""
    view = state.to_dict()
    view["done"] = state.done
    return {k: v for k, v in view.items() if v is not None}


def build_server(conn: Connection) -> MCPServer[AsyncClient]:
    """The MCP server with its tools; the SDK client opens with the MCP session."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[AsyncClient]) -> AsyncIterator[AsyncClient]:
        client = AsyncClient(conn.base_url, conn.api_key, poll_interval=conn.poll_interval)
        try:
            yield client
        finally:
            await client.aclose()

    server: MCPServer[AsyncClient] = MCPServer(
        "videogate", instructions=INSTRUCTIONS, lifespan=lifespan
    )

    def client_of(ctx: Context[AsyncClient]) -> AsyncClient:
        client: AsyncClient = ctx.request_context.lifespan_context
        return client

    read_only = ToolAnnotations(readOnlyHint=True, openWorldHint=True)

    @server.tool(annotations=read_only)
    async def list_models(ctx: Context[AsyncClient]) -> list[dict[str, Any]]:
        """List the video models this API key can use, with what each accepts and costs.

        Each model has `capabilities` (resolutions such as 480p/720p/1080p, ratios such
        as 16:9, 9:16, 1:1 or adaptive, duration min/max in seconds, whether it makes
        audio, and how many reference images/videos/audios it takes) and `price` (the
        price per second or per million tokens for this key's group, in the currency
        shown). Use a model's `id` as create_video's `model`."""
        try:
            return await client_of(ctx).models()
        except VideogateClientError as exc:
            raise tool_error(exc) from None

    @server.tool(annotations=ToolAnnotations(destructiveHint=False, openWorldHint=True))
    async def create_video(
        ctx: Context[AsyncClient],
        prompt: Annotated[
            str,
            Field(
                description=(
                    "What the video shows and how it moves. Refer to references in order, "
                    "e.g. 'the cat in image 1 walks to the music of audio 1'."
                )
            ),
        ],
        model: Annotated[str, Field(description="A model id from list_models.")] = DEFAULT_MODEL,
        ratio: Annotated[
            str | None,
            Field(
                description=(
                    "Aspect ratio: 16:9, 4:3, 1:1, 3:4, 9:16, 21:9, or adaptive (follow the "
                    "first image). Omitted: 16:9."
                )
            ),
        ] = None,
        duration: Annotated[
            int | None,
            Field(
                description=(
                    "Length in whole seconds within the model's range (usually 4-15), or -1 "
                    "to let the model choose. Omitted: 5."
                )
            ),
        ] = None,
        resolution: Annotated[
            str | None,
            Field(description="480p, 720p or 1080p (if the model lists it). Omitted: 720p."),
        ] = None,
        generate_audio: Annotated[
            bool | None,
            Field(description="Whether the video has a generated soundtrack. Omitted: true."),
        ] = None,
        seed: Annotated[
            int | None, Field(description="A fixed seed for repeatable results.")
        ] = None,
        references: Annotated[
            list[ReferenceInput] | None,
            Field(
                description=(
                    "Reference images (up to 9), videos (up to 3, 2-15 s, 15 s in all) and "
                    "audio clips (up to 3, 2-15 s), in the order the prompt counts them."
                )
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Start generating a video; returns the new task (status `queued`) at once.

        The video is not ready yet: call wait_for_task with the returned `id`, then
        download_video. Local reference files are uploaded first. A wrong parameter comes
        back as an error naming the parameter and what is allowed."""
        refs = [r.to_reference() for r in references or ()]
        try:
            task = await client_of(ctx).create(
                prompt,
                model=model,
                references=refs,
                ratio=ratio,
                duration=duration,
                resolution=resolution,
                seed=seed,
                generate_audio=generate_audio,
            )
        except VideogateClientError as exc:
            raise tool_error(exc) from None
        assert task.state is not None
        return task_view(task.state)

    @server.tool(annotations=read_only)
    async def get_task(
        ctx: Context[AsyncClient],
        task_id: Annotated[str, Field(description="The task id create_video returned.")],
    ) -> dict[str, Any]:
        """Read a task now: status (queued, running, succeeded, failed, cancelled,
        expired), progress 0-100, the result `video_url` once it succeeded (a signed URL
        that expires at `expires_at`), the error if it failed, and its `cost`."""
        try:
            task = await client_of(ctx).get(task_id)
        except VideogateClientError as exc:
            raise tool_error(exc) from None
        assert task.state is not None
        return task_view(task.state)

    @server.tool(annotations=read_only)
    async def wait_for_task(
        ctx: Context[AsyncClient],
        task_id: Annotated[str, Field(description="The task id create_video returned.")],
        timeout_seconds: Annotated[
            float,
            Field(
                description=(
                    "How long to wait at most (1-3600 s). If the task is still running "
                    "then, the result has `done: false`: call wait_for_task again."
                ),
                ge=1,
                le=WAIT_MAX,
            ),
        ] = WAIT_DEFAULT,
    ) -> dict[str, Any]:
        """Wait until a task finishes, sending progress notifications (0-100) meanwhile.

        Returns the finished task (with `video_url` and `cost`), or the task as it stands
        with `done: false` when `timeout_seconds` ran out (the task keeps running). A
        failed, cancelled or expired task comes back as an error with the reason."""
        task: AsyncTask = client_of(ctx).task(task_id)

        async def on_progress(state: TaskState) -> None:
            percent = state.progress if state.progress is not None else 0
            await ctx.report_progress(percent, 100, f"{state.status} {percent}%")

        try:
            state = await task.wait(timeout_seconds, on_progress=on_progress)
        except TaskTimeout:
            current = task.state
            if current is None:
                raise ToolError(f"task {task_id} could not be read in time") from None
            return task_view(current)
        except TaskFailed as exc:
            raise ToolError(exc.message) from None
        except VideogateClientError as exc:
            raise tool_error(exc) from None
        return task_view(state)

    @server.tool(annotations=ToolAnnotations(destructiveHint=False, openWorldHint=True))
    async def download_video(
        ctx: Context[AsyncClient],
        task_id: Annotated[str, Field(description="A task that succeeded (or is running).")],
        path: Annotated[
            str,
            Field(
                description=(
                    "Where to save the mp4 on this machine (the MCP server's), e.g. "
                    "'~/videos/cat.mp4'. Folders are created; an existing file is replaced."
                )
            ),
        ],
        timeout_seconds: Annotated[
            float,
            Field(description="How long to wait for an unfinished task first.", ge=1),
        ] = WAIT_DEFAULT,
    ) -> dict[str, Any]:
        """Save a task's video as an mp4 at `path` (waits for the task if it is still
        running). Returns the absolute path, its size in bytes and length in seconds."""
        client = client_of(ctx)
        started = time.monotonic()
        try:
            task = await client.get(task_id)
            target = Path(path).expanduser().absolute()  # noqa: ASYNC240 - no I/O
            saved = await task.download(target, timeout=timeout_seconds)
        except VideogateClientError as exc:
            raise tool_error(exc) from None
        seconds = await asyncio.to_thread(mp4_duration, saved)
        size = (await asyncio.to_thread(saved.stat)).st_size
        return {
            "path": str(saved),
            "bytes": size,
            "seconds": seconds,
            "task_id": task_id,
            "download_seconds": round(time.monotonic() - started, 2),
        }

    @server.tool(annotations=ToolAnnotations(destructiveHint=True, openWorldHint=True))
    async def cancel_task(
        ctx: Context[AsyncClient],
        task_id: Annotated[str, Field(description="The task to stop.")],
    ) -> dict[str, Any]:
        """Cancel a queued or running task (its held cost is refunded). A task that has
        already finished is left as it is and returned unchanged."""
        try:
            task = client_of(ctx).task(task_id)
            state = await task.cancel()
        except VideogateClientError as exc:
            raise tool_error(exc) from None
        if state is None:
            return {"id": task_id, "status": "cancelled", "done": True}
        return task_view(state)

    @server.tool(annotations=read_only)
    async def list_tasks(
        ctx: Context[AsyncClient],
        limit: Annotated[int, Field(description="How many tasks (1-100).", ge=1, le=100)] = 10,
        after: Annotated[
            str | None,
            Field(description="`next_after` of a previous call, for the next older page."),
        ] = None,
    ) -> dict[str, Any]:
        """The API key's recent tasks, newest first, with status, progress and cost."""
        try:
            page = await client_of(ctx).list(limit=limit, after=after)
        except VideogateClientError as exc:
            raise tool_error(exc) from None
        return {
            "tasks": [task_view(t) for t in page.tasks],
            "has_more": page.has_more,
            "next_after": page.next_after,
        }

    return server


def run(conn: Connection, *, http: bool, host: str, port: int) -> None:
    """Serve over stdio, or over streamable HTTP at ``http://host:port/mcp``."""
    # Fail before the transport starts when the key or URL is missing or malformed.
    asyncio.run(AsyncClient(conn.base_url, conn.api_key).aclose())
    server = build_server(conn)
    if http:
        server.run("streamable-http", host=host, port=port)
    else:
        server.run("stdio")
