"""First start of ``videogate serve``: migrate, make a local key, print how to use it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from videogate.providers import route_problem
from videogate.routing import configured_routes
from videogate.service.keys import create_key
from videogate.settings import LOCAL_KEY_FILE, Settings
from videogate.signing import hash_api_key
from videogate.store import Store
from videogate.store.migrate import upgrade

MODEL = "doubao-seedance-2-0-fast-260128"


async def prepare(settings: Settings, console: Console) -> None:
    report_unusable_routes(settings, console)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await upgrade(settings.effective_database_url)
    store = Store.open(settings.effective_database_url, secret_key=settings.secret_key)
    try:
        key = await _local_key(settings.local_key_path, store)
    finally:
        await store.close()
    base = settings.effective_public_url
    if key is None:
        console.print(f"videogate on {base} — create a key with 'videogate keys create'")
        return
    # soft_wrap: never break the pasteable commands at the terminal width.
    console.print(banner(base, key), markup=False, highlight=False, soft_wrap=True)


def report_unusable_routes(settings: Settings, console: Console) -> None:
    """Say at start which local-model routes cannot run (a missing model directory…)."""
    for route in configured_routes(settings, os.environ):
        problem = route_problem(route)
        if problem is not None:
            console.print(f"[red]route {escape(route.name)} cannot run:[/red] {escape(problem)}")


async def _local_key(path: Path, store: Store) -> str | None:
    """The key kept for local use; created on the first start of an empty database."""
    if path.exists():  # noqa: ASYNC240 - a tiny file read once at start-up
        secret = path.read_text().strip()  # noqa: ASYNC240
        row = await store.keys.by_hash(hash_api_key(secret))
        if row is not None and row.revoked_at is None:
            return secret
        return None
    if await store.keys.count_active() > 0:
        return None
    new = await create_key(store, name="local")
    # Kept so that later starts can print it again; readable by this user only.
    path.write_text(new.key + "\n")  # noqa: ASYNC240
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    return new.key


def banner(base: str, key: str) -> str:
    return f"""
videogate is starting on {base}
Local API key: {key}  (kept in the data dir as {LOCAL_KEY_FILE})
Web console:   {base}/  (on this machine: "Sign in with the local key")

Try it (curl):
  export VIDEOGATE_API_KEY={key}
  curl -s {base}/v1/videos -H "Authorization: Bearer $VIDEOGATE_API_KEY" \\
    -H "Content-Type: application/json" \\
    -d '{{"model": "{MODEL}", "prompt": "a red fox running through snow",
         "ratio": "16:9", "duration": 8, "generate_audio": true}}'
  curl -s {base}/v1/videos/<id> -H "Authorization: Bearer $VIDEOGATE_API_KEY"
  curl -L "<video_url>" -o out.mp4

Or Python:
  import time, requests
  H = {{"Authorization": "Bearer {key}"}}
  t = requests.post("{base}/v1/videos", headers=H,
                    json={{"model": "{MODEL}", "prompt": "a red fox", "duration": 8}}).json()
  while t["status"] not in ("completed", "failed"):
      time.sleep(3)
      t = requests.get(f"{base}/v1/videos/{{t['id']}}", headers=H).json()
  open("out.mp4", "wb").write(requests.get(t["video_url"]).content)
"""
