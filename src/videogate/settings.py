"""One typed settings object, read from ``VIDEOGATE_*`` environment variables and an
optional TOML file named by ``VIDEOGATE_CONFIG``.

Environment variables win over the TOML file; both win over the defaults. The object is
built once by the entry point (CLI, app factory) and passed down; nothing reads the
environment anywhere else.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

#: In the data dir: the local key (see ``Settings.local_key_path``).
LOCAL_KEY_FILE = "local_api_key"


class GroupConfig(BaseModel):
    """A token group (``[[groups]]`` in the TOML file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    price_multiplier: Decimal = Field(default=Decimal(1), ge=0)
    requests_per_minute: int | None = Field(default=None, ge=1, description="per key")
    max_unfinished_tasks: int | None = Field(default=None, ge=1, description="per key")


class PriceTierConfig(BaseModel):
    """The rates of one resolution tier (``tiers = { "1080p" = { per_million = 7.7 } }``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_million: Decimal = Field(ge=0)
    per_million_with_video: Decimal | None = Field(default=None, ge=0)


class PriceConfig(BaseModel):
    """``price = { unit = "token", per_million = 7.0, … }`` of a ``[[models]]`` entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: Literal["token", "second"]
    per_million: Decimal = Field(default=Decimal(0), ge=0)
    per_million_with_video: Decimal | None = Field(default=None, ge=0)
    per_second: Decimal = Field(default=Decimal(0), ge=0)
    currency: str = Field(default="USD", min_length=3, max_length=10)
    tiers: dict[str, PriceTierConfig] = Field(
        default_factory=dict, description="rates by resolution where they differ"
    )


class ReferenceLimitsConfig(BaseModel):
    """``references = { max_images = 30, … }``: any field of ``catalog.ReferenceLimits``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_images: int | None = Field(default=None, ge=0)
    max_videos: int | None = Field(default=None, ge=0)
    min_video_seconds: float | None = Field(default=None, ge=0)
    max_video_seconds: float | None = Field(default=None, ge=0)
    max_video_total_seconds: float | None = Field(default=None, ge=0)
    max_audios: int | None = Field(default=None, ge=0)
    min_audio_seconds: float | None = Field(default=None, ge=0)
    max_audio_seconds: float | None = Field(default=None, ge=0)
    max_audio_total_seconds: float | None = Field(default=None, ge=0)
    max_image_bytes: int | None = Field(default=None, ge=1)
    max_video_bytes: int | None = Field(default=None, ge=1)
    max_audio_bytes: int | None = Field(default=None, ge=1)


TaskType = Literal[
    "text", "first_frame", "first_last_frame", "reference", "remix", "edit", "extend"
]


class ModelConfig(BaseModel):
    """A ``[[models]]`` entry of the catalog (``catalog.toml``, or a deployment's TOML).

    For a model the catalog already has, only the fields given are replaced; a new name
    is a new model whose unset fields take the Seedance 2.0 defaults.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=500)
    resolutions: tuple[Literal["480p", "720p", "1080p", "4k"], ...] | None = None
    ratios: tuple[Literal["16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "adaptive"], ...] | None = (
        None
    )
    min_duration: int | None = Field(default=None, ge=1)
    max_duration: int | None = Field(default=None, ge=1)
    default_duration: int | None = Field(default=None, ge=1)
    default_resolution: str | None = None
    audio: bool | None = None
    task_types: tuple[TaskType, ...] | None = None
    references: ReferenceLimitsConfig | None = None
    price: PriceConfig | None = None
    source: str | None = Field(default=None, description="where the facts come from")


class AliasConfig(BaseModel):
    """An ``[[aliases]]`` entry: a client-facing model name served by a catalog model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    model: str = Field(min_length=1, max_length=200, description="the catalog model it serves")


class LocalModelConfig(BaseModel):
    """``local = { dir = "…", family = "wan-t2v" }`` of a ``provider = "diffusers"`` route:
    a model on this machine's GPU (see docs/local-models.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dir: Path = Field(description="a diffusers save_pretrained directory (model_index.json)")
    family: Literal["wan-t2v", "wan-i2v", "ltx2"]
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    device: str = Field(default="cuda", min_length=1, description="cuda, cuda:1, cpu, mps")
    cpu_offload: bool = Field(default=False, description="model CPU offload (less VRAM, slower)")
    steps: int | None = Field(default=None, ge=1, le=200, description="default: the family's")
    guidance_scale: float | None = Field(default=None, ge=0, description="default: the family's")
    fps: int | None = Field(default=None, ge=1, le=60, description="default: the family's")
    sizes: tuple[str, ...] | None = Field(
        default=None,
        min_length=1,
        description='"WxH" sizes the model was trained for (e.g. 480p only for Wan 1.3B); '
        "default: the family's",
    )

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for size in value or ():
            w, _, h = size.partition("x")
            if not (w.isdigit() and h.isdigit() and int(w) % 16 == 0 and int(h) % 16 == 0):
                raise ValueError(f"size {size!r} is not WIDTHxHEIGHT in multiples of 16")
        return value

    @property
    def size_pairs(self) -> tuple[tuple[int, int], ...] | None:
        if self.sizes is None:
            return None
        return tuple((int(w), int(h)) for w, _, h in (s.partition("x") for s in self.sizes))


class RouteConfig(BaseModel):
    """One way to serve a public model (``[[routes]]`` in the TOML file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    model: str = Field(min_length=1, max_length=200, description="public model name")
    provider: str = Field(
        min_length=1, max_length=50, description="provider kind: a module of videogate.providers"
    )
    base_url: str = ""
    api_key_env: str = Field(default="", description="environment variable holding the key")
    upstream_model: str = Field(default="", description="model name upstream; default: model")
    priority: int = Field(default=0, description="lower is tried first")
    weight: int = Field(default=1, ge=0, description="weighted random within a priority")
    max_in_flight: int = Field(default=100, ge=1, description="unfinished upstream tasks")
    groups: tuple[str, ...] = ("default",)
    enabled: bool = True
    request_format: Literal["json", "multipart"] = Field(
        default="json", description="openai provider: relay JSON body or OpenAI multipart form"
    )
    timeout_seconds: float = Field(default=30.0, gt=0, description="per upstream request")
    max_concurrent_polls: int = Field(default=32, ge=1, description="per worker")
    local: LocalModelConfig | None = Field(
        default=None, description="a model on this machine (the diffusers provider)"
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


ENV_PREFIX = "VIDEOGATE_"

# Variables of the client side (SDK, CLI client commands, MCP server), not of the service:
# a shell that runs both may hold them, so the service's settings leave them alone.
CLIENT_VARIABLES = frozenset(
    {
        "VIDEOGATE_API_KEY",
        "VIDEOGATE_BASE_URL",
        "VIDEOGATE_API",
        "VIDEOGATE_MODEL",
        "VIDEOGATE_POLL_INTERVAL",
    }
)


def unknown_setting_message(key: str, known: set[str], *, spelled: str | None = None) -> str:
    """Name the unknown key and the nearest known one, so a typo is a one-line fix."""
    shown = spelled or key
    nearest = difflib.get_close_matches(key.lower(), sorted(known), n=1, cutoff=0.6)
    if nearest:
        hint = nearest[0] if spelled is None else ENV_PREFIX + nearest[0].upper()
        return f"unknown setting {shown!r}; did you mean {hint!r}?"
    return f"unknown setting {shown!r}; the settings are listed in the README's Settings table"


def check_environment(environ: Mapping[str, str], known: set[str]) -> None:
    """Refuse ``VIDEOGATE_*`` variables that name no setting (and no client variable)."""
    for name in environ:
        if not name.startswith(ENV_PREFIX) or name in CLIENT_VARIABLES:
            continue
        key = name.removeprefix(ENV_PREFIX).lower()
        if key not in known:
            raise ValueError(unknown_setting_message(key, known, spelled=name))


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
