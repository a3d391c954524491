"""The one typed settings object, from ``VIDEOGATE_*`` variables and an optional TOML file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from videogate.settings.checks import check_environment, unknown_setting_message
from videogate.settings.tables import (
    LOCAL_KEY_FILE,
    AliasConfig,
    GroupConfig,
    ModelConfig,
    RouteConfig,
)


def _aws(name: str, *standard: str) -> AliasChoices:
    """``VIDEOGATE_<NAME>`` wins over the standard AWS variables; the TOML key is ``name``."""
    return AliasChoices(name, f"VIDEOGATE_{name.upper()}", *standard)


class Settings(BaseSettings):
    """Every knob videogate has. See the README's "Settings" table."""

    model_config = SettingsConfigDict(
        env_prefix="VIDEOGATE_",
        extra="forbid",
        frozen=True,
        populate_by_name=True,
    )

    data_dir: Path = Field(
        default=Path("./var"), description="Where SQLite, blobs and secrets live"
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; default sqlite in data_dir. postgresql://… for scale-out",
    )
    blob_url: str = Field(
        default="",
        description="Where blobs live: file:///path (default data_dir/blobs) or s3://bucket/prefix",
    )
    s3_endpoint_url: str = Field(
        default="",
        validation_alias=_aws("s3_endpoint_url", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        description="S3 endpoint (R2, MinIO…); empty: AWS. Default AWS_ENDPOINT_URL",
    )
    s3_public_endpoint_url: str = Field(
        default="",
        validation_alias=_aws("s3_public_endpoint_url"),
        description="The store's address as clients reach it, for presigned download URLs, "
        "when it differs from the endpoint videogate uses (http://minio:9000 inside compose, "
        "http://localhost:9000 outside); empty: the same",
    )
    s3_region: str = Field(
        default="",
        validation_alias=_aws("s3_region", "AWS_REGION", "AWS_DEFAULT_REGION"),
        description="S3 region; default AWS_REGION",
    )
    s3_access_key_id: str = Field(
        default="",
        validation_alias=_aws("s3_access_key_id", "AWS_ACCESS_KEY_ID"),
        description="S3 access key; default AWS_ACCESS_KEY_ID",
    )
    s3_secret_access_key: str = Field(
        default="",
        repr=False,
        validation_alias=_aws("s3_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
        description="S3 secret key; default AWS_SECRET_ACCESS_KEY",
    )
    s3_session_token: str = Field(
        default="",
        repr=False,
        validation_alias=_aws("s3_session_token", "AWS_SESSION_TOKEN"),
        description="S3 session token; default AWS_SESSION_TOKEN",
    )
    s3_virtual_hosted_style: bool = Field(
        default=False, description="bucket.host/key URLs instead of host/bucket/key"
    )
    download_mode: Literal["redirect", "presigned", "proxy"] = Field(
        default="redirect",
        description="With S3: video_url is our signed URL that redirects to a presigned S3 "
        "URL (redirect), the presigned S3 URL itself (presigned), or streams through the API "
        "(proxy). The file backend always streams",
    )
    metrics_token: str = Field(
        default="",
        repr=False,
        description="Bearer token for GET /metrics; empty: /metrics is open",
    )
    prometheus_multiproc_dir: str = Field(
        default="",
        validation_alias=AliasChoices("prometheus_multiproc_dir", "PROMETHEUS_MULTIPROC_DIR"),
        description="prometheus-client's multi-process directory (several processes, one port)",
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="text for people, json for log pipelines (one object a line)"
    )
    result_retention_seconds: int = Field(
        default=7 * 86_400,
        ge=0,
        description="Keep results (and stored references) this long after a task ends; 0: forever",
    )
    upload_retention_seconds: int = Field(
        default=7 * 86_400,
        ge=0,
        description="Keep uploads this long (never less than their URLs live); 0: forever",
    )
    task_retention_seconds: int = Field(
        default=30 * 86_400,
        ge=0,
        description="Keep finished task records this long; 0: forever",
    )
    retention_sweep_seconds: float = Field(
        default=300.0, gt=0, description="How often each worker sweeps what expired"
    )
    retention_batch: int = Field(default=200, ge=1, description="Items per sweep batch")
    db_pool_size: int = Field(
        default=5,
        ge=1,
        description="PostgreSQL connections each process keeps open (see docs/performance.md)",
    )
    db_max_overflow: int = Field(
        default=5, ge=0, description="PostgreSQL connections a process may open beyond the pool"
    )
    db_hot_pool_size: int = Field(
        default=3,
        ge=1,
        description="PostgreSQL connections each process keeps beside the pool for polls and "
        "creates (opened on first use; see docs/performance.md)",
    )
    db_statement_cache_size: int = Field(
        default=256,
        ge=0,
        description="Prepared statements cached per PostgreSQL connection; 0 behind PgBouncer "
        "in transaction mode",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = Field(
        default="",
        description="Base URL clients reach this server at; used in signed URLs",
    )
    secret_key: str = Field(
        default="",
        description="Signs result URLs; default: generated once into data_dir/secret_key",
    )
    url_ttl_seconds: int = Field(default=86_400, ge=60, description="Signed result URL lifetime")
    upload_ttl_seconds: int = Field(
        default=7 * 86_400, ge=60, description="Lifetime of URLs issued for uploads"
    )
    allow_private_urls: bool = Field(
        default=False,
        description="Allow reference URLs on loopback/private addresses (tests, local dev)",
    )
    task_deadline_seconds: int = Field(
        default=3 * 3600, ge=10, description="A task not finished by then is expired"
    )
    lease_seconds: float = Field(default=30.0, gt=0, description="Worker lease on a task")
    worker_concurrency: int = Field(
        default=64, ge=1, description="Tasks one worker steps at once (polls, renders, copies)"
    )
    worker_poll_interval: float = Field(
        default=0.5, gt=0, description="How often an idle worker looks for due tasks"
    )
    worker_backoff_max_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Longest wait of a worker between retries after a database, storage or "
        "upstream error (the wait doubles from 0.5 s up to this)",
    )
    ready_worker_stale_seconds: float = Field(
        default=30.0,
        gt=0,
        description="/readyz answers 503 when the in-process worker has not completed a loop "
        "for this long",
    )
    upstream_connect_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Connecting to an upstream (per call)"
    )
    upstream_total_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="One upstream call from start to end, however slowly it trickles; the "
        "read timeout is the route's timeout_seconds",
    )
    poll_max_interval_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Longest wait between two polls of a running task: polling alone sees a "
        "finished job within it (polls come every second near a job's expected finish)",
    )
    poll_failure_window_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How long every poll of a running task may fail (backing off up to 60 s) "
        "before the task fails",
    )
    attempt_sweep_interval_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How often a worker resolves submit attempts left behind by a crash",
    )
    render_processes: int = Field(
        default=0, ge=0, description="Sandbox render processes; 0 = number of CPUs"
    )
    sandbox_fps: int = Field(
        default=24,
        ge=1,
        le=60,
        description="Frame rate of the sandbox's clips; fewer frames render faster (a load "
        "test of a deployment); the clip's length is the same",
    )
    max_upload_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_json_body_bytes: int = Field(
        default=96 * 1024 * 1024,
        ge=1024,
        description="Largest JSON request body (inline data: references included); "
        "counted while it streams in, 413 beyond",
    )
    max_concurrent_requests: int = Field(
        default=512,
        ge=1,
        description="Requests one process serves at once; beyond it requests are shed at "
        "once with 503 and Retry-After (health checks never are)",
    )
    max_reference_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    max_result_bytes: int = Field(
        default=2 * 1024 * 1024 * 1024, ge=1024, description="Largest result we copy"
    )
    result_timeout_seconds: float = Field(
        default=600.0, gt=0, description="Downloading one result from an upstream"
    )
    reference_timeout_seconds: float = Field(default=30.0, gt=0)
    key_cache_seconds: float = Field(
        default=5.0, ge=0, description="How long an API key lookup is cached in-process"
    )
    finished_cache_entries: int = Field(
        default=20_000,
        ge=0,
        description="Finished tasks whose poll response is kept encoded in memory; 0 = off",
    )
    poll_after_ms: int = Field(default=2000, ge=100, description="Suggested wait between polls")
    webhook_max_attempts: int = Field(
        default=8, ge=1, description="Tries to deliver one webhook event before giving up"
    )
    webhook_retry_base_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Wait before the first webhook retry; doubles each time (capped at 1 h)",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Time limit of one webhook delivery attempt"
    )
    http_loop: Literal["auto", "asyncio", "uvloop"] = Field(
        default="auto",
        description="Event loop of the HTTP server (see docs/performance.md)",
    )
    log_level: str = "info"
    access_log: bool = Field(default=False, description="Log every HTTP request (uvicorn)")
    breaker_failures: int = Field(
        default=5, ge=1, description="Consecutive submit failures that bench a route"
    )
    breaker_cooldown_seconds: float = Field(
        default=60.0, gt=0, description="How long a benched route rests"
    )
    admin_token: str = Field(
        default="", description="Bearer token for /admin; empty disables the admin API"
    )
    console_local_sign_in: bool = Field(
        default=True,
        description="Let a browser on this machine sign in to the console with the local key "
        "in one click (loopback only; docs/console.md)",
    )
    rate_limit_storage: str = Field(
        default="memory://",
        description="Where rate-limit counters live: memory:// (one process) or redis://…",
    )
    rate_limit_require_shared: bool = Field(
        default=False,
        description="Refuse to start several API processes whose rate-limit counters are "
        "per process (memory://)",
    )
    api_processes: int = Field(
        default=1,
        ge=1,
        description="API processes serving this database (all hosts); 'videogate api "
        "--workers N' sets it. Rate limits need redis:// when above 1",
    )
    groups: tuple[GroupConfig, ...] = (GroupConfig(name="default"),)
    models: tuple[ModelConfig, ...] = ()
    aliases: tuple[AliasConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()
    config: Path | None = Field(default=None, description="TOML file with more settings")

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        # A misspelt key would otherwise be ignored and its default silently used.
        known = set(cls.model_fields)
        check_environment(os.environ, known)
        if isinstance(data, Mapping):
            for key in data:
                if key not in known:
                    raise ValueError(unknown_setting_message(str(key), known))
        return data

    @model_validator(mode="after")
    def _check_routes(self) -> Settings:
        names = [r.name for r in self.routes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"route names must be unique; repeated: {', '.join(dupes)}")
        groups = {g.name for g in self.groups}
        for route in self.routes:
            unknown = [g for g in route.groups if g not in groups and g != "*"]
            if unknown:
                raise ValueError(
                    f"route {route.name!r} names unknown group(s) {', '.join(unknown)}; "
                    "declare them with [[groups]]"
                )
        return self

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = os.environ.get("VIDEOGATE_CONFIG")
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_path)))
        return tuple(sources)

    # Derived values -------------------------------------------------------------------

    @property
    def effective_database_url(self) -> str:
        """The async SQLAlchemy URL, defaulting to SQLite in the data dir."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'videogate.db').resolve()}"
        return to_async_url(url)

    @property
    def effective_public_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def effective_blob_url(self) -> str:
        return self.blob_url or self.blob_dir.resolve().as_uri()

    @property
    def local_key_path(self) -> Path:
        """The key made on the first start for local use (``make run`` prints it)."""
        return self.data_dir / LOCAL_KEY_FILE


def to_async_url(url: str) -> str:
    """Map plain ``sqlite://`` / ``postgresql://`` URLs onto the async drivers we ship."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url.removeprefix(prefix)
    return url


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment (and ``VIDEOGATE_CONFIG``), plus overrides."""
    return Settings(**overrides)
