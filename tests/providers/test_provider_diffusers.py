"""The diffusers provider on the CPU, with tiny random-weight pipelines built in code and
saved with ``save_pretrained`` (tests/tiny_pipelines.py), loaded exactly as a real model.

End to end through a live videogate: a task completes with an mp4 of the requested frame
count, size and audio; the provider itself: progress follows the steps, a cancel stops
between steps, a killed GPU process fails the task and the next one loads again, a corrupt
or missing model directory fails clearly.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import httpx
import pytest

pytest.importorskip(
    "diffusers",
    reason="the [local] extra (torch, diffusers) is not installed: .ci/install-local-extra "
    "installs it where a CPU build of torch is available",
)

from conftest import make_live_key, run_live_server
from media_factory import png_bytes
from tiny_pipelines import save_ltx2, save_wan_i2v, save_wan_t2v
from videogate.errors import UpstreamError
from videogate.providers import ProviderDeps, route_problem
from videogate.providers.base import Route, TaskContext
from videogate.providers.diffusers import FAMILIES, DiffusersProvider, frame_count
from videogate.request import GenerationRequest
from videogate.routing import configured_routes
from videogate.settings import LocalModelConfig, RouteConfig, Settings

pytestmark = pytest.mark.slow

SIZES = ("64x32", "32x64", "48x48")
FPS = 8
STEPS = 3


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "wan-t2v": save_wan_t2v(root / "wan-t2v"),
        "wan-i2v": save_wan_i2v(root / "wan-i2v"),
        "ltx2": save_ltx2(root / "ltx2"),
    }


def local(
    model_dir: Path, family: str = "wan-t2v", steps: int = STEPS, sizes: tuple[str, ...] = SIZES
) -> LocalModelConfig:
    return LocalModelConfig(
        dir=model_dir,
        family=family,
        dtype="float32",
        device="cpu",
        steps=steps,
        fps=FPS,
        sizes=sizes,
    )


def route_config(name: str, model: str, cfg: LocalModelConfig) -> RouteConfig:
    return RouteConfig(name=name, model=model, provider="diffusers", groups=("*",), local=cfg)


@dataclass
class Live:
    base_url: str
    key: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def start(tmp: Path, routes: tuple[RouteConfig, ...]) -> Iterator[Live]:
    with run_live_server(tmp, start_timeout=60, routes=routes) as server:
        yield Live(server.base_url, make_live_key(server))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, models: dict[str, Path]) -> Iterator[Live]:
    routes = (
        route_config("wan-t2v-local", "wan-tiny", local(models["wan-t2v"])),
        route_config("wan-i2v-local", "wan-tiny-i2v", local(models["wan-i2v"], "wan-i2v")),
        route_config("wan-missing", "wan-gone", local(Path("/nonexistent/wan-model"))),
        # LTX-2 wants sizes in multiples of 32.
        route_config("ltx2-local", "ltx-tiny", local(models["ltx2"], "ltx2", 2, SIZES[:2])),
    )
    yield from start(tmp_path_factory.mktemp("live"), routes)


def wait_done(client: httpx.Client, live: Live, task_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        body: dict[str, object] = client.get(
            f"{live.base_url}/v1/videos/{task_id}", headers=live.headers()
        ).json()
        if body["status"] in ("completed", "failed"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} did not finish")


def video_facts(data: bytes, tmp: Path) -> tuple[int, int, int, bool]:
    path = tmp / "out.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return frames, stream.width, stream.height, bool(container.streams.audio)


def test_text_to_video_end_to_end(live: Live, tmp_path: Path) -> None:
    with httpx.Client(timeout=60) as client:
        models = client.get(f"{live.base_url}/v1/models", headers=live.headers()).json()
        spec = next(m for m in models["data"] if m["id"] == "wan-tiny")
        assert spec["capabilities"]["audio"] is False
        assert spec["capabilities"]["durations"]["max"] == FAMILIES["wan-t2v"].max_seconds

        body = {
            "model": "wan-tiny",
            "prompt": "a red fox runs in snow",
            "duration": 2,
            "ratio": "16:9",
            "resolution": "480p",
            "seed": 7,
        }
        refused = client.post(f"{live.base_url}/v1/videos", headers=live.headers(), json=body)
        assert refused.status_code == 400, refused.text  # generate_audio defaults to true
        assert refused.json()["error"]["param"] == "generate_audio"

        created = client.post(
            f"{live.base_url}/v1/videos",
            headers=live.headers(),
            json={**body, "generate_audio": False},
        )
        assert created.status_code == 200, created.text
        done = wait_done(client, live, created.json()["id"])
        assert done["status"] == "completed", done["error"]
        assert done["size"] == "64x32"  # the nearest size the route supports
        assert done["seed"] == 7
        video = client.get(str(done["video_url"])).content
    frames, width, height, audio = video_facts(video, tmp_path)
    assert frames == frame_count(2, FPS, FAMILIES["wan-t2v"]) == 17
    assert (width, height, audio) == (64, 32, False)


def test_image_to_video_end_to_end(live: Live, tmp_path: Path) -> None:
    with httpx.Client(timeout=60) as client:
        upload = client.post(
            f"{live.base_url}/v1/files",
            headers=live.headers(),
            files={"file": ("first.png", png_bytes(640, 640, (30, 200, 40)))},
        ).json()
        base = {
            "model": "wan-tiny-i2v",
            "prompt": "a dog walks on the beach",
            "duration": 1,
            "ratio": "adaptive",
            "generate_audio": False,
        }
        no_image = client.post(f"{live.base_url}/v1/videos", headers=live.headers(), json=base)
        assert no_image.status_code == 400 and "image" in no_image.json()["error"]["message"]
        created = client.post(
            f"{live.base_url}/v1/videos",
            headers=live.headers(),
            json={
                **base,
                "content": [
                    {"type": "text", "text": base["prompt"]},
                    {
                        "type": "image_url",
                        "image_url": {"url": upload["url"]},
                        "role": "first_frame",
                    },
                ],
            },
        )
        assert created.status_code == 200, created.text
        done = wait_done(client, live, created.json()["id"])
        assert done["status"] == "completed", done["error"]
        assert done["size"] == "48x48"  # adaptive: the square image's shape
        video = client.get(str(done["video_url"])).content
    frames, width, height, audio = video_facts(video, tmp_path)
    assert frames == frame_count(1, FPS, FAMILIES["wan-i2v"]) == 9
    assert (width, height, audio) == (48, 48, False)


@pytest.mark.parametrize("audio", [True, False])
def test_ltx2_makes_sound_when_asked(live: Live, tmp_path: Path, audio: bool) -> None:
    with httpx.Client(timeout=60) as client:
        created = client.post(
            f"{live.base_url}/v1/videos",
            headers=live.headers(),
            json={
                "model": "ltx-tiny",
                "prompt": "a robot dances",
                "duration": 2,
                "ratio": "9:16",
                "generate_audio": audio,
            },
        )
        assert created.status_code == 200, created.text
        done = wait_done(client, live, created.json()["id"])
        assert done["status"] == "completed", done["error"]
        assert done["size"] == "32x64"
        video = client.get(str(done["video_url"])).content
    frames, width, height, has_audio = video_facts(video, tmp_path)
    assert frames == frame_count(2, FPS, FAMILIES["ltx2"]) == 17
    assert (width, height, has_audio) == (32, 64, audio)


def test_a_missing_model_directory_is_a_clear_error_at_create(live: Live) -> None:
    with httpx.Client(timeout=60) as client:
        r = client.post(
            f"{live.base_url}/v1/videos",
            headers=live.headers(),
            json={"model": "wan-gone", "prompt": "a cat", "duration": 2, "generate_audio": False},
        )
    assert r.status_code == 503, r.text
    message = r.json()["error"]["message"]
    assert "/nonexistent/wan-model does not exist" in message
    # the route is the operator's word: the client's message names the model, the log the route
    assert "wan-gone" in message and "wan-missing" not in message


# ---- the provider itself -----------------------------------------------------------------


def make_route(cfg: LocalModelConfig, name: str = "r") -> Route:
    settings = Settings(routes=(route_config(name, "m", cfg),))
    return configured_routes(settings, {})[0]


class Recorder:
    def __init__(self, answer_after: int | None = None) -> None:
        self.values: list[int] = []
        self.answer_after = answer_after  # report "not running any more" from then on

    async def __call__(self, progress: int) -> bool:
        self.values.append(progress)
        return self.answer_after is None or len(self.values) <= self.answer_after


def context(tmp: Path, route: Route, report: Recorder, task_id: str = "t1") -> TaskContext:
    req = GenerationRequest(
        model="m",
        prompt="a robot dances",
        duration=2,
        resolution="480p",
        ratio="16:9",
        generate_audio=False,
    )
    return TaskContext(
        task_id=task_id,
        request=req,
        route=route,
        reference_paths={},
        reference_urls={},
        work_dir=tmp,
        report_progress=report,
    )


@pytest.fixture
async def deps(tmp_path: Path) -> ProviderDeps:
    async def no_cpu(*_args: object) -> None:
        raise AssertionError("the diffusers provider does not use the render pool")

    return ProviderDeps(
        settings=Settings(data_dir=tmp_path), http=httpx.AsyncClient(), run_cpu=no_cpu
    )


async def test_progress_follows_the_steps_and_cancel_stops_between_steps(
    models: dict[str, Path], tmp_path: Path, deps: ProviderDeps
) -> None:
    route = make_route(local(models["wan-t2v"], steps=6))
    provider = DiffusersProvider(route, deps)
    try:
        report = Recorder()
        result = await provider.poll(context(tmp_path, route, report), "local-a")
        assert result.status == "succeeded"
        # Loading 0-5 %, then one report per denoising step (heartbeats repeat a value).
        assert set(report.values) >= {5 + 90 * s // 6 for s in range(1, 7)}
        assert report.values == sorted(report.values) and max(report.values) == 95

        # The task is cancelled (report_progress says it is no longer running) after the
        # first report: the generation stops at the next step boundary.
        stopper = Recorder(answer_after=1)
        cancelled = await provider.poll(context(tmp_path, route, stopper, "t2"), "local-b")
        assert cancelled.status == "cancelled"
        assert len([v for v in stopper.values if v > 5]) < 5
        assert not (tmp_path / "local-b" / "video.mp4").exists()
        # The pipeline stays loaded for the next task: the same process runs it.
        pid = provider._runner.process.pid if provider._runner.process else None
        again = await provider.poll(context(tmp_path, route, Recorder(), "t3"), "local-c")
        assert again.status == "succeeded"
        assert provider._runner.process is not None and provider._runner.process.pid == pid
    finally:
        provider._runner.stop()


async def test_a_killed_gpu_process_fails_the_task_and_the_next_reloads(
    models: dict[str, Path], tmp_path: Path, deps: ProviderDeps
) -> None:
    route = make_route(local(models["wan-t2v"]))
    provider = DiffusersProvider(route, deps)

    class Killer(Recorder):
        async def __call__(self, progress: int) -> bool:
            process = provider._runner.process
            if not self.values and process is not None and process.pid:
                os.kill(process.pid, signal.SIGKILL)
            return await super().__call__(progress)

    try:
        with pytest.raises(UpstreamError) as failed:
            await provider.poll(context(tmp_path, route, Killer()), "local-k")
        assert failed.value.code == "local_model_crashed"
        assert "killed by signal 9" in failed.value.message
        result = await provider.poll(context(tmp_path, route, Recorder(), "t2"), "local-k2")
        assert result.status == "succeeded"
    finally:
        provider._runner.stop()


async def test_a_corrupt_or_wrong_model_directory_fails_clearly(
    models: dict[str, Path], tmp_path: Path, deps: ProviderDeps
) -> None:
    assert route_problem(make_route(local(models["wan-t2v"]))) is None
    wrong = route_problem(make_route(local(models["wan-i2v"], "wan-t2v")))
    assert wrong is not None and "WanImageToVideoPipeline" in wrong and "WanPipeline" in wrong

    corrupt = tmp_path / "corrupt"
    shutil.copytree(models["wan-t2v"], corrupt)
    for weights in (corrupt / "transformer").glob("*.safetensors"):
        weights.write_bytes(b"this is not a safetensors file")
    lacking = tmp_path / "lacking"
    shutil.copytree(models["wan-t2v"], lacking)
    shutil.rmtree(lacking / "vae")
    assert "lacks the vae/ folder" in (route_problem(make_route(local(lacking))) or "")

    route = make_route(local(corrupt))
    assert route_problem(route) is None  # it looks right until it is loaded
    provider = DiffusersProvider(route, deps)
    try:
        with pytest.raises(UpstreamError) as failed:
            await provider.poll(context(tmp_path, route, Recorder()), "local-x")
        assert failed.value.code == "model_load_failed"
        assert f"could not load WanPipeline from {corrupt}" in failed.value.message
    finally:
        provider._runner.stop()


def test_at_start_videogate_names_the_unusable_route(
    models: dict[str, Path], tmp_path: Path
) -> None:
    from rich.console import Console

    from videogate.cli.first_run import report_unusable_routes

    settings = Settings(
        data_dir=tmp_path,
        routes=(
            route_config("ok", "a", local(models["wan-t2v"])),
            route_config("gone", "b", local(tmp_path / "nothing-here")),
        ),
    )
    console = Console(record=True, width=300)
    report_unusable_routes(settings, console)
    text = console.export_text()
    assert "route gone cannot run" in text and "nothing-here does not exist" in text
    assert "route ok" not in text


def test_frame_count_is_on_the_family_grid() -> None:
    wan = FAMILIES["wan-t2v"]
    assert frame_count(5, 16, wan) == 81  # Wan's 81 frames at 16 fps
    assert frame_count(15, 16, wan) == 81  # capped at the family's limit
    assert frame_count(1, 16, wan) == 17
    assert frame_count(5, 24, FAMILIES["ltx2"]) == 121
