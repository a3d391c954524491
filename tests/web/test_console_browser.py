"""The console in a real browser: Debian's Chromium driven by Playwright against a live
server (issue 15's "How it is checked"). Skipped, saying why, only where Chromium is not
installed (``.ci/run`` installs it)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from conftest import LiveServer, make_live_key, run_live_server
from fakes.ark import FakeArk
from media_factory import png_bytes
from videogate.service.keys import create_key
from videogate.settings import ModelConfig, PriceConfig, RouteConfig
from videogate.store import Store
from webhook_support import Receiver, receiver_server

T = TypeVar("T")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ADMIN_TOKEN = "browser-admin-token"
PRICED = "doubao-seedance-2-0-260128"  # served by a fake Ark route with a price
KEY_ENV = "KEY_CONSOLE_ARK"
WAIT_MS = 90_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Chromium is not installed at /usr/bin/chromium: "
        "apt-get install -y chromium (.ci/run does) to run the browser tests",
    ),
]

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def ark() -> Iterator[FakeArk]:
    with FakeArk(queued_seconds=0.05, running_seconds=0.2) as fake:
        yield fake


@pytest.fixture
def console_server(
    tmp_path: Path, ark: FakeArk, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveServer]:
    monkeypatch.setenv(KEY_ENV, "ark-test-key")
    with run_live_server(
        tmp_path / "live",
        admin_token=ADMIN_TOKEN,
        webhook_retry_base_seconds=0.05,
        models=(
            ModelConfig(name=PRICED, price=PriceConfig(unit="token", per_million=Decimal("7.0"))),
        ),
        routes=(
            RouteConfig(
                name="ark-fake",
                model=PRICED,
                provider="ark",
                base_url=ark.base_url,
                api_key_env=KEY_ENV,
                timeout_seconds=5.0,
            ),
        ),
    ) as live:
        yield live


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` in another thread: Playwright's sync API keeps an event loop running in
    this one, so ``asyncio.run`` (the store helpers) cannot run here."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


def new_page(browser: Any, base: str, width: int = 1280, height: int = 900) -> Any:
    context = browser.new_context(viewport={"width": width, "height": height}, base_url=base)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: d.accept())
    page.errors = errors
    return page


def sign_in(page: Any, *, key: str = "", admin: str = "") -> None:
    page.goto("/")
    if key:
        page.get_by_label("API key").fill(key)
    if admin:
        page.get_by_label("Admin token").fill(admin)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("button", name="Sign out").wait_for()


def stored_session(page: Any) -> str:
    return str(page.evaluate("() => sessionStorage.getItem('videogate.session') || ''"))


def task_id_of(page: Any, before: int) -> str:
    """The id of the task the form just created, or the errors the form shows."""
    page.wait_for_function(
        "(n) => document.querySelectorAll('article.task-live').length > n || "
        "[...document.querySelectorAll('form .error')].some((e) => e.textContent)",
        arg=before,
    )
    errors = [t for t in page.locator("form .error").all_inner_texts() if t.strip()]
    assert not errors, errors
    return str(page.locator("article.task-live h2").first.inner_text()).strip()


def generate(page: Any, model: str, prompt: str, image: Path | None = None) -> str:
    page.get_by_role("link", name="Generate").click()
    page.get_by_label("Model").select_option(model)
    page.get_by_label("Prompt").fill(prompt)
    page.get_by_label("Resolution").select_option("480p")
    page.get_by_label("Duration (seconds)").fill("4")
    if image is not None:
        with page.expect_file_chooser() as chooser:
            page.get_by_role("button", name="Add reference files").click()
        chooser.value.set_files(str(image))
        refs = page.get_by_role("list", name="References")
        refs.get_by_text("image 1").wait_for()
        refs.get_by_text("ready").wait_for()
        assert page.get_by_role("button", name="Remove image 1").is_visible()
    before = page.locator("article.task-live").count()
    page.get_by_role("button", name="Generate", exact=True).click()
    return task_id_of(page, before)


def test_a_user_generates_watches_plays_and_finds_a_video(
    console_server: LiveServer, browser: Any, tmp_path: Path
) -> None:
    base = console_server.base_url
    key = off_loop(make_live_key, console_server)
    image = tmp_path / "cat.png"
    image.write_bytes(png_bytes(640, 360, (30, 160, 60)))
    page = new_page(browser, base)

    # Sign in; the key is in no URL and not in the page.
    sign_in(page, key=key)
    assert key not in page.url and key not in page.content()
    assert page.get_by_role("heading", name="Generate a video").is_visible()

    # Generate with an uploaded reference; live status, then the video plays inline.
    prompt = "the cat in image 1 jumps onto the sofa"
    task_id = generate(page, "sandbox", prompt, image)
    assert task_id.startswith("video_")
    live = page.locator("article.task-live").first
    live.get_by_text("completed").wait_for()
    video = page.get_by_label(f"Video of {task_id}")
    video.wait_for()
    page.wait_for_function(
        "(el) => el.readyState >= 1 && Number.isFinite(el.duration)",
        arg=video.element_handle(),
    )
    duration = float(video.evaluate("el => el.duration"))
    assert abs(duration - 4.0) < 0.25, duration
    video.evaluate("el => { el.muted = true; return el.play(); }")
    page.wait_for_function("(el) => el.currentTime > 0", arg=video.element_handle())

    # A priced model, for a cost that shows in Usage.
    priced_id = generate(page, PRICED, "a red fox running through snow")
    page.locator("article.task-live").first.get_by_text("completed").wait_for()

    # Tasks: newest first, filter, search, detail.
    page.get_by_role("link", name="Tasks").click()
    rows = page.get_by_role("list", name="Task list").get_by_role("listitem")
    rows.first.wait_for()
    assert rows.nth(0).get_attribute("data-id") == priced_id
    assert rows.nth(1).get_attribute("data-id") == task_id
    page.get_by_label("Search tasks").fill("onto the SOFA")
    page.get_by_role("button", name="Search").click()
    page.wait_for_function("() => document.querySelectorAll('.task-row').length === 1")
    assert rows.first.get_attribute("data-id") == task_id
    page.get_by_label("Status", exact=True).select_option("failed")
    page.get_by_text("No tasks match.").wait_for()
    page.get_by_label("Status", exact=True).select_option("completed")
    page.get_by_role("link", name=f"Open task {task_id}").click()
    page.get_by_role("heading", name=f"Task {task_id}").wait_for()
    request = page.get_by_role("region", name="Request")
    assert prompt in request.inner_text()
    timeline = page.get_by_role("region", name="Timeline")
    timeline.get_by_text("succeeded").first.wait_for()
    assert "created" in timeline.inner_text()
    download = page.get_by_role("link", name="Download video")
    with httpx.Client() as http:
        got = http.get(str(download.get_attribute("href")))
    assert got.status_code == 200 and got.headers["content-type"] == "video/mp4"
    assert page.get_by_role("link", name="Download thumbnail").is_visible()
    assert page.get_by_role("button", name="Delete task").is_visible()

    # Gallery: the clip plays on hover.
    page.get_by_role("link", name="Gallery").click()
    tile = page.get_by_role("button", name=f"Play {prompt}")
    tile.hover()
    playing = page.get_by_label(f"Video of {task_id}")
    playing.wait_for()
    page.wait_for_function("(el) => el.readyState >= 2", arg=playing.element_handle())

    # Usage: the priced task's cost, as charts and per model.
    with httpx.Client() as http:
        cost = http.get(
            f"{base}/v1/videos/{priced_id}", headers={"Authorization": f"Bearer {key}"}
        ).json()["billing_detail"]["amount"]
    assert Decimal(cost) > 0
    page.get_by_role("link", name="Usage").click()
    per_model = page.get_by_role("table", name="Usage per model")
    row = per_model.get_by_role("row").filter(has_text=PRICED)
    row.wait_for()
    shown = re.search(r"([\d.]+) USD", row.inner_text())
    assert shown and abs(Decimal(shown.group(1)) - Decimal(cost)) < Decimal("0.01"), shown
    assert page.locator("figure svg.chart").count() == 2
    spend_bars = page.locator("figure").first.locator("rect")
    assert spend_bars.count() >= 1
    assert page.get_by_role("table", name="Ledger").get_by_text(priced_id).first.is_visible()

    # Cancel from the detail page of an unfinished task.
    with httpx.Client() as http:
        slow = http.post(
            f"{base}/v1/videos",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "sandbox", "prompt": "a long one", "duration": 15},
        ).json()
    page.goto(f"/#/tasks/{slow['id']}")
    page.get_by_role("button", name="Cancel task").click()
    page.get_by_role("region", name="Error").get_by_text("cancelled").first.wait_for()
    # Delete: gone for good, and the console goes back to the list.
    page.get_by_role("button", name="Delete task").click()
    page.get_by_role("heading", name="Tasks", exact=True).wait_for()
    with httpx.Client() as http:
        gone = http.get(
            f"{base}/v1/videos/{slow['id']}", headers={"Authorization": f"Bearer {key}"}
        )
    assert gone.status_code == 404

    # Sign out: the session is gone.
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    assert stored_session(page) == ""
    assert page.errors == []


def test_an_operator_manages_keys_routes_and_webhooks(
    console_server: LiveServer, browser: Any
) -> None:
    base = console_server.base_url
    page = new_page(browser, base)
    sign_in(page, admin=ADMIN_TOKEN)
    assert ADMIN_TOKEN not in page.url and ADMIN_TOKEN not in page.content()
    page.get_by_role("heading", name="Overview").wait_for()
    page.get_by_text("Queue depth").wait_for()

    # Create a key: the secret is shown once, and works.
    page.get_by_role("link", name="Keys").click()
    page.get_by_label("Key name").fill("from-the-browser")
    page.get_by_label("Starting balance").fill("3")
    page.get_by_role("button", name="Create key").click()
    secret = str(page.locator("code.secret").inner_text()).strip()
    assert secret.startswith("vg-")
    assert page.get_by_role("button", name="Copy key").is_visible()
    with httpx.Client() as http:
        me = http.get(f"{base}/v1/account", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200 and me.json()["balance"] == "3.00"
    keys = page.get_by_role("table", name="Keys")
    keys.get_by_role("row").filter(has_text="from-the-browser").wait_for()

    # The new key's owner signs in elsewhere; revoking signs them out.
    user = new_page(browser, base)
    sign_in(user, key=secret)
    user.get_by_role("link", name="Usage").click()
    user.get_by_role("heading", name="Usage").wait_for()

    page.get_by_role("button", name="Top up from-the-browser").click()
    page.get_by_label("Amount").fill("2")
    page.get_by_role("button", name="Add to balance").click()
    keys.get_by_role("row").filter(has_text="from-the-browser").get_by_text("5.00 USD").wait_for()
    page.get_by_role("button", name="Set limits of from-the-browser").click()
    page.get_by_label("Requests per minute limit").fill("30")
    page.get_by_role("button", name="Save limits").click()
    keys.get_by_role("row").filter(has_text="from-the-browser").get_by_text("30 rpm").wait_for()

    page.get_by_role("button", name="Revoke from-the-browser").click()
    keys.get_by_role("row").filter(has_text="from-the-browser").get_by_text("revoked").wait_for()
    with httpx.Client() as http:
        gone = http.get(f"{base}/v1/account", headers={"Authorization": f"Bearer {secret}"})
    assert gone.status_code == 401
    user.get_by_role("link", name="Tasks").click()
    user.get_by_text("You were signed out").wait_for()
    user.get_by_role("heading", name="Sign in").wait_for()
    assert stored_session(user) == ""

    # Routes: health, and a test of each route.
    page.get_by_role("link", name="Routes").click()
    routes = page.get_by_role("table", name="Routes")
    row = routes.get_by_role("row").filter(has_text="ark-fake")
    row.get_by_text("ok", exact=True).wait_for()
    page.get_by_role("button", name="Test route ark-fake").click()
    row.get_by_text(re.compile(r"^ok in \d+ ms")).wait_for()

    # Webhooks: a delivered event, resent from the console, arrives again.
    with receiver_server() as receiver:
        task_id = _task_with_callback(console_server, receiver)
        page.get_by_role("link", name="Webhooks").click()
        page.get_by_label("Task", exact=True).fill(task_id)
        page.get_by_role("button", name="Show attempts").click()
        table = page.get_by_role("table", name="Webhook attempts")
        deadline = time.monotonic() + 60
        while "succeeded" not in table.inner_text():
            assert time.monotonic() < deadline, "the completed event was never delivered"
            page.get_by_role("button", name="Show attempts").click()
            page.wait_for_timeout(200)
        event_row = table.get_by_role("row").filter(has_text="succeeded").first
        resend = event_row.get_by_role("button", name=re.compile(r"^Resend event \d+$"))
        before = len(receiver.got)
        resend.click()
        page.locator("main").get_by_text(re.compile(r"queued for delivery")).wait_for()
        while len(receiver.got) == before:
            assert time.monotonic() < deadline, "the resent event never arrived"
            time.sleep(0.05)
        assert receiver.got[-1].verified and receiver.got[-1].status == "completed"

    # At phone width every page is usable: no horizontal scroll of the page itself.
    phone = new_page(browser, base, width=375, height=812)
    sign_in(phone, admin=ADMIN_TOKEN)
    for name in ("Overview", "Keys", "Routes", "Webhooks"):
        phone.get_by_role("link", name=name).click()
        phone.locator("main h1").wait_for()
        overflow = phone.evaluate("() => document.documentElement.scrollWidth")
        assert overflow <= 375, (name, overflow)
    assert page.errors == [] and user.errors == [] and phone.errors == []


def test_keyboard_only_sign_in_and_navigation(console_server: LiveServer, browser: Any) -> None:
    key = off_loop(make_live_key, console_server)
    page = new_page(browser, console_server.base_url, width=375, height=812)
    page.goto("/")
    page.get_by_label("API key").wait_for()
    page.keyboard.type(key)  # the key field has focus on arrival
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Generate a video").wait_for()
    page.reload()  # the session lasts as long as the tab; focus starts at the top again
    page.get_by_role("heading", name="Generate a video").wait_for()
    # From the top of the page, Tab reaches the main navigation, and Enter follows a link.
    for _ in range(12):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => document.activeElement && document.activeElement.textContent"
        )
        if focused == "Tasks":
            break
    else:
        raise AssertionError("Tab never reached the Tasks link")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Tasks").wait_for()
    for name in ("Generate", "Tasks", "Gallery", "Usage"):
        page.get_by_role("link", name=name).click()
        page.locator("main h1").wait_for()
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 375, name
    assert page.errors == []


NAMELESS_CONTROLS = """() => [...document.querySelectorAll(
    'a[href], button, input, select, textarea, video, [role=button]')]
  .filter((el) => el.getClientRects().length && el.type !== 'hidden')
  .filter((el) => {
    const label = el.getAttribute('aria-label') || el.getAttribute('title')
      || (el.labels && [...el.labels].map((l) => l.textContent).join(' '))
      || (el.getAttribute('aria-labelledby') || '').split(' ')
           .map((id) => (document.getElementById(id) || {}).textContent || '').join(' ')
      || el.textContent;
    return !(label || '').trim();
  })
  .map((el) => el.outerHTML.slice(0, 120))"""


def test_every_control_has_a_name_and_errors_sit_by_their_field(
    console_server: LiveServer, browser: Any, tmp_path: Path
) -> None:
    key = off_loop(make_live_key, console_server)
    page = new_page(browser, console_server.base_url)
    page.goto("/")
    assert page.evaluate(NAMELESS_CONTROLS) == []
    sign_in(page, key=key, admin=ADMIN_TOKEN)
    for name in ("Generate", "Tasks", "Gallery", "Usage", "Overview", "Keys", "Routes", "Webhooks"):
        page.get_by_role("link", name=name, exact=True).click()
        page.locator("main h1").wait_for()
        page.wait_for_load_state("networkidle")
        assert page.evaluate(NAMELESS_CONTROLS) == [], name

    # The model's limits are checked before anything is sent ...
    page.get_by_role("link", name="Generate", exact=True).click()
    page.get_by_label("Model").select_option("sandbox")
    page.get_by_label("Prompt").fill("a fox")
    page.get_by_label("Duration (seconds)").fill("99")
    page.get_by_role("button", name="Generate", exact=True).click()
    duration_error = page.locator("#gen-duration-error")
    assert "4 to 15 s" in duration_error.inner_text()
    assert page.get_by_label("Duration (seconds)").get_attribute("aria-invalid") == "true"
    assert page.locator("article.task-live").count() == 0
    # ... and the server's own error is shown next to the field it names.
    page.get_by_label("Duration (seconds)").fill("4")
    tiny = tmp_path / "tiny.png"
    tiny.write_bytes(png_bytes(64, 64))
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Add reference files").click()
    chooser.value.set_files(str(tiny))
    page.get_by_role("list", name="References").get_by_text("ready").wait_for()
    page.get_by_role("button", name="Generate", exact=True).click()
    refs_error = page.locator("#gen-files-error")
    refs_error.get_by_text("image 1").wait_for()
    assert "px" in refs_error.inner_text()
    assert page.locator("article.task-live").count() == 0
    assert page.errors == []


def _task_with_callback(live: LiveServer, receiver: Receiver) -> str:
    async def make() -> tuple[str, str]:
        store = Store.open(live.settings.effective_database_url)
        try:
            new = await create_key(store, name="hooks")
        finally:
            await store.close()
        return new.key, new.webhook_secret

    key, secret = off_loop(asyncio.run, make())
    receiver.secret = secret
    with httpx.Client() as http:
        r = http.post(
            f"{live.base_url}/v1/videos",
            headers={"Authorization": f"Bearer {key}"},
            json={
                "model": "sandbox",
                "prompt": "a fox",
                "duration": 4,
                "resolution": "480p",
                "callback_url": receiver.url,
            },
        )
    assert r.status_code == 200, r.text
    return str(r.json()["id"])
