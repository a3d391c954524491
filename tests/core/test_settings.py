"""Settings come from VIDEOGATE_* variables and an optional TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from videogate.settings import load_settings, to_async_url


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VIDEOGATE_CONFIG", "VIDEOGATE_DATA_DIR", "VIDEOGATE_PORT", "VIDEOGATE_HOST"):
        monkeypatch.delenv(name, raising=False)
    s = load_settings()
    assert s.data_dir == Path("./var") and s.port == 8000 and s.host == "127.0.0.1"
    assert s.effective_database_url.startswith("sqlite+aiosqlite:///")
    assert s.effective_database_url.endswith("var/videogate.db")
    assert s.effective_public_url == "http://127.0.0.1:8000"
    assert s.allow_private_urls is False


def test_environment_and_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "videogate.toml"
    config.write_text('port = 9001\nhost = "0.0.0.0"\npublic_url = "https://v.example.com/"\n')
    monkeypatch.setenv("VIDEOGATE_CONFIG", str(config))
    monkeypatch.setenv("VIDEOGATE_PORT", "9002")  # the environment wins over the file
    monkeypatch.setenv("VIDEOGATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VIDEOGATE_ALLOW_PRIVATE_URLS", "1")
    monkeypatch.setenv("VIDEOGATE_DATABASE_URL", "postgresql://u@db/videogate")
    s = load_settings()
    assert s.port == 9002 and s.host == "0.0.0.0"
    assert s.public_url == "https://v.example.com"
    assert s.data_dir == tmp_path / "data" and s.allow_private_urls is True
    assert s.effective_database_url == "postgresql+asyncpg://u@db/videogate"


def test_bad_values_are_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("VIDEOGATE_PORT", "not-a-port")
    with pytest.raises(ValidationError, match="port"):
        load_settings()


def test_async_url_mapping() -> None:
    assert to_async_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert to_async_url("postgres://a@b/c") == "postgresql+asyncpg://a@b/c"
    assert to_async_url("postgresql+asyncpg://a@b/c") == "postgresql+asyncpg://a@b/c"


def test_misspelt_toml_key_names_the_nearest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pydantic import ValidationError

    config = tmp_path / "videogate.toml"
    config.write_text("worker_concurency = 3\n")
    monkeypatch.setenv("VIDEOGATE_CONFIG", str(config))
    with pytest.raises(
        ValidationError, match="'worker_concurency'; did you mean 'worker_concurrency'"
    ):
        load_settings()


def test_misspelt_environment_variable_names_the_nearest(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("VIDEOGATE_WORKER_CONCURENCY", "3")
    with pytest.raises(ValidationError, match="did you mean 'VIDEOGATE_WORKER_CONCURRENCY'"):
        load_settings()


def test_unknown_key_far_from_any_points_at_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("VIDEOGATE_ZZZ_QQQ", "1")
    with pytest.raises(ValidationError, match=r"VIDEOGATE_ZZZ_QQQ.*Settings table"):
        load_settings()


def test_client_variables_are_not_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDEOGATE_API_KEY", "vg-x")
    monkeypatch.setenv("VIDEOGATE_BASE_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("VIDEOGATE_ACCESS_LOG", "1")
    assert load_settings().access_log is True


def test_cli_reports_an_unknown_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from videogate.cli.main import main

    monkeypatch.setenv("VIDEOGATE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VIDEOGATE_WORKER_CONCURENCY", "3")
    monkeypatch.setattr("sys.argv", ["videogate", "migrate"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "invalid settings: unknown setting 'VIDEOGATE_WORKER_CONCURENCY'" in out
    assert "did you mean 'VIDEOGATE_WORKER_CONCURRENCY'?" in out
