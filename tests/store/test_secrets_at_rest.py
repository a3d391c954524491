"""Webhook signing secrets are stored sealed with the service secret; API keys as hashes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import update

from conftest import TEST_BASE
from videogate.api.app import create_app
from videogate.ids import new_id, new_webhook_secret
from videogate.service.keys import create_key
from videogate.settings import Settings
from videogate.signing import hash_api_key
from videogate.store.sealing import SecretBox, SecretUnreadable, is_sealed
from videogate.store.tables import ApiKey

COLUMN_LENGTH = 100  # api_keys.webhook_secret is String(100); PostgreSQL enforces it
assert ApiKey.__table__.c.webhook_secret.type.length == COLUMN_LENGTH  # type: ignore[attr-defined]


def make_settings(tmp_path: Path, **kw: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "var",
        public_url=TEST_BASE,
        render_processes=1,
        key_cache_seconds=0,
        **kw,  # type: ignore[arg-type]
    )


def stored_rows(settings: Settings) -> dict[str, tuple[str, str]]:
    """What someone holding the database file reads: id → (key_hash, webhook_secret)."""
    with sqlite3.connect(settings.data_dir / "videogate.db") as db:
        rows = db.execute("SELECT id, key_hash, webhook_secret FROM api_keys").fetchall()
    return {row[0]: (row[1], row[2]) for row in rows}


async def test_the_database_holds_neither_the_key_nor_the_webhook_secret(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path)
    app = create_app(settings, run_worker=False)
    async with app.router.lifespan_context(app):
        store = app.state.api.ctx.store
        new = await create_key(store, name="a")
        row = await store.keys.get(new.id)
        assert row is not None
        assert await store.keys.webhook_secret(row) == new.webhook_secret
    key_hash, sealed = stored_rows(settings)[new.id]
    assert key_hash == hash_api_key(new.key) and new.key not in key_hash
    assert is_sealed(sealed) and new.webhook_secret not in sealed
    secret_part = new.webhook_secret.removeprefix("whsec_")
    assert secret_part not in sealed
    # It fits its column (PostgreSQL enforces the length).
    assert len(sealed) <= COLUMN_LENGTH


async def test_secrets_stored_in_clear_are_sealed_at_start_up(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    app = create_app(settings, run_worker=False)
    async with app.router.lifespan_context(app):
        store = app.state.api.ctx.store
        new = await create_key(store, name="old")
        # As an older version stored it: in clear.
        async with store.sessions.begin() as s:
            stmt = update(ApiKey).where(ApiKey.id == new.id)
            await s.execute(stmt.values(webhook_secret=new.webhook_secret))
        row = await store.keys.get(new.id)
        assert row is not None and row.webhook_secret == new.webhook_secret
        assert await store.keys.webhook_secret(row) == new.webhook_secret  # still usable
    assert stored_rows(settings)[new.id][1] == new.webhook_secret
    app = create_app(settings, run_worker=False)
    async with app.router.lifespan_context(app):
        store = app.state.api.ctx.store
        sealed = stored_rows(settings)[new.id][1]
        assert is_sealed(sealed) and new.webhook_secret not in sealed
        row = await store.keys.get(new.id)
        assert row is not None and await store.keys.webhook_secret(row) == new.webhook_secret
        assert await store.keys.seal_plaintext_secrets() == 0  # nothing left to do


async def test_setting_a_secret_key_later_reseals_with_it(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    app = create_app(settings, run_worker=False)
    async with app.router.lifespan_context(app):
        new = await create_key(app.state.api.ctx.store, name="before")
        generated = await app.state.api.ctx.store.service_secret()
    before = stored_rows(settings)[new.id][1]
    configured = make_settings(tmp_path, secret_key="an operator's secret " + "x" * 20)
    app = create_app(configured, run_worker=False)
    async with app.router.lifespan_context(app):
        store = app.state.api.ctx.store
        after = stored_rows(settings)[new.id][1]
        assert after != before
        row = await store.keys.get(new.id)
        assert row is not None and await store.keys.webhook_secret(row) == new.webhook_secret
    # The generated secret (which sits in the database) no longer opens it.
    with pytest.raises(SecretUnreadable):
        SecretBox(generated).open(after, f"api_keys/{new.id}")


def test_a_sealed_secret_opens_only_with_its_secret_and_on_its_own_row() -> None:
    box = SecretBox("service secret")
    plain = new_webhook_secret()
    sealed = box.seal(plain, "api_keys/key_a")
    assert box.open(sealed, "api_keys/key_a") == plain
    assert box.seal(plain, "api_keys/key_a") != sealed  # a fresh nonce each time
    with pytest.raises(SecretUnreadable):
        SecretBox("another secret").open(sealed, "api_keys/key_a")
    with pytest.raises(SecretUnreadable):  # copied onto another key's row
        box.open(sealed, "api_keys/key_b")
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(SecretUnreadable):
        box.open(tampered, "api_keys/key_a")
    # Rotation: the new secret seals, the old one still opens what it sealed.
    rotated = SecretBox("new secret", "service secret")
    assert rotated.open(sealed, "api_keys/key_a") == plain
    assert rotated.needs_sealing(sealed, "api_keys/key_a")
    assert not rotated.needs_sealing(rotated.seal(plain, "api_keys/key_a"), "api_keys/key_a")
    # The longest id we make still fits the column.
    longest = box.seal(new_webhook_secret(), f"api_keys/{new_id('key')}")
    assert len(longest) <= COLUMN_LENGTH
