"""A provider is one file: a provider module copied under a new name, and nothing else
changed, serves a route of that new kind end to end; unknown kinds fail at start-up."""

from __future__ import annotations

import shutil
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

import videogate.providers as providers_pkg
from conftest import TEST_BASE, wait_for_status
from fakes import FakeArk
from videogate.api.app import create_app
from videogate.errors import ConfigurationError
from videogate.routing import build_catalog_and_routes
from videogate.service.keys import create_key
from videogate.settings import RouteConfig, Settings

MODEL = "doubao-seedance-2-0-fast-260128"
BODY: dict[str, Any] = {"model": MODEL, "prompt": "a fox", "duration": 4, "resolution": "480p"}


# The slow tier (make test, not make test-fast): copied providers serving routes end to end.
pytestmark = pytest.mark.slow


@pytest.fixture
def copy_provider() -> Iterator[Callable[..., None]]:
    """Copy ``providers/<source>.py`` to ``providers/<kind>.py`` in the installed package,
    as a developer adding a provider would (render processes import it by name), and remove
    the copy afterwards."""
    package = Path(providers_pkg.__file__).parent
    made: list[Path] = []

    def copy(source: str, kind: str) -> None:
        target = package / f"{kind}.py"
        assert not target.exists(), f"{target} exists: a leftover of an interrupted test run?"
        shutil.copy(package / f"{source}.py", target)
        made.append(target)

    try:
        yield copy
    finally:
        for target in made:
            target.unlink(missing_ok=True)
            sys.modules.pop(f"videogate.providers.{target.stem}", None)


@asynccontextmanager
async def running(
    tmp_path: Path, route: RouteConfig
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    app = create_app(
        Settings(
            data_dir=tmp_path / "var",
            public_url=TEST_BASE,
            allow_private_urls=True,
            worker_poll_interval=0.05,
            render_processes=1,
            key_cache_seconds=0,
            routes=(route,),
        )
    )
    async with app.router.lifespan_context(app):
        key = (await create_key(app.state.api.ctx.store, balance="100")).key
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=TEST_BASE) as client:
            yield client, {"Authorization": f"Bearer {key}"}


async def test_a_copied_http_provider_serves_its_new_kind(
    tmp_path: Path, copy_provider: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_provider("ark", "zz_test_ark_twin")
    monkeypatch.setenv("TWIN_KEY", "ark-test-key")
    with FakeArk(queued_seconds=0.05, running_seconds=0.2) as ark:
        route = RouteConfig(
            name="twin",
            model=MODEL,
            provider="zz_test_ark_twin",
            base_url=ark.base_url,
            api_key_env="TWIN_KEY",
            timeout_seconds=5.0,
        )
        async with running(tmp_path, route) as (client, auth):
            r = await client.post("/v1/videos", json=BODY, headers=auth)
            assert r.status_code == 200, r.text
            done = await wait_for_status(client, r.json()["id"], auth, timeout=30)
            assert done["status"] == "completed", done
            [create] = ark.requests_to("create")
            assert create.bearer == "ark-test-key"
            # the capabilities came with the class: the copy takes callbacks like Ark does
            assert create.json["callback_url"].startswith(f"{TEST_BASE}/v1/callbacks/ark/")
            billing = done["billing_detail"]
            assert isinstance(billing, dict) and billing["state"] == "settled"


async def test_a_copied_local_provider_is_free_and_needs_no_base_url(
    tmp_path: Path, copy_provider: Callable[..., None]
) -> None:
    copy_provider("sandbox", "zz_test_local_twin")
    route = RouteConfig(name="local", model=MODEL, provider="zz_test_local_twin")
    async with running(tmp_path, route) as (client, auth):
        r = await client.post("/v1/videos", json=BODY, headers=auth)
        assert r.status_code == 200, r.text
        done = await wait_for_status(client, r.json()["id"], auth, timeout=60)
        assert done["status"] == "completed", done
        assert done["video_url"]
        routes = await client.get("/v1/models", headers=auth)
        assert routes.status_code == 200


def test_an_unknown_kind_is_refused_at_start_naming_the_kinds() -> None:
    settings = Settings(
        routes=(RouteConfig(name="x", model=MODEL, provider="arc", base_url="http://u"),)
    )
    with pytest.raises(ConfigurationError, match=r"route 'x': unknown provider kind 'arc'.*ark"):
        build_catalog_and_routes(settings, {})


def test_an_http_kind_without_base_url_is_refused_at_start() -> None:
    settings = Settings(routes=(RouteConfig(name="x", model=MODEL, provider="ark"),))
    with pytest.raises(ConfigurationError, match="route 'x' needs a base_url"):
        build_catalog_and_routes(settings, {})


def test_known_kinds_are_the_modules_of_the_package() -> None:
    assert {"ark", "openai", "sandbox"} <= set(providers_pkg.known_kinds())
    assert "base" not in providers_pkg.known_kinds()
