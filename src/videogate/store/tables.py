"""SQLAlchemy table definitions. Migrations in ``store/migrations`` must match these."""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class Recorded(TypeDecorator[str]):
    """Text we record from elsewhere (an upstream's error, a failed delivery), kept
    storable whatever it holds: a NUL character (PostgreSQL refuses it) becomes U+FFFD
    and it is cut to the column's length. The column itself is a plain String/Text."""

    impl = Text
    cache_ok = True

    def __init__(self, length: int | None = None) -> None:
        super().__init__()
        self.length = length
        if length is not None:
            self.impl = String(length)  # type: ignore[assignment]

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        value = value.replace("\x00", "\ufffd")
        return value[: self.length] if self.length is not None else value


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON}


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    group: Mapped[str] = mapped_column("group_name", String(100), default="default")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(20))
    # Money is kept in millionths of the currency unit to stay exact on every backend.
    balance_micros: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    webhook_secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Per-key limits; None falls back to the group's, then to no limit.
    requests_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_unfinished_tasks: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(40), ForeignKey("api_keys.id"))
    model: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(Recorded(200), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Recorded(), nullable=True)
    route: Mapped[str | None] = mapped_column(String(200), nullable=True)
    provider: Mapped[str | None] = mapped_column(String(50), nullable=True)
    upstream_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Where the finished result is before we copy it (never shown to clients).
    upstream_result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    video_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    thumbnail_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    last_frame_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    media_deleted: Mapped[bool] = mapped_column(default=False)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    seed: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    completed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Set by OpenAI's DELETE: the task is gone for its owner; the row stays while the
    # engine may still have to cancel the upstream job.
    deleted_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    deadline_at: Mapped[float] = mapped_column(Float)
    # The engine's bookkeeping: when the next step is due, who holds the task, for how long.
    next_run_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    steps: Mapped[int] = mapped_column(Integer, default=0)
    # Failed tries in a row at the task's current step, back to 0 on a success: submit rounds
    # every route refused, polls, other step errors, the follow-up of an ended task's upstream
    # job (called poll_errors until migration 0005: it counted more than polls).
    errors_in_a_row: Mapped[int] = mapped_column(Integer, default=0)
    idempotency_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    callback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The X-Request-Id of the create (api/observe.py): bound to the engine's log lines.
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # Billing, in millionths of ``currency``: held at create, charged at completion.
    currency: Mapped[str] = mapped_column(String(10), default="USD")
    hold_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    charged_micros: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    refunded_micros: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # held | settled | refunded
    billing_state: Mapped[str] = mapped_column(String(20), default="held")
    # The price the hold was computed with, applied again to the real usage at the end.
    price: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    __table_args__ = (
        Index("ix_tasks_key_created", "key_id", "created_at", "id"),
        Index("ix_tasks_due", "next_run_at"),
        Index("ix_tasks_route_status", "route", "status"),
        Index("ix_tasks_key_status", "key_id", "status"),
        Index("ix_tasks_idem", "key_id", "idempotency_key", unique=True),
    )


class StoredFile(Base):
    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(40), ForeignKey("api_keys.id"))
    blob_key: Mapped[str] = mapped_column(String(300))
    filename: Mapped[str] = mapped_column(String(300), default="")
    mime_type: Mapped[str] = mapped_column(String(100))
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_files_key", "key_id", "created_at"),)


class Meta(Base):
    """Small shared values (the URL-signing secret) that every process must agree on."""

    __tablename__ = "meta"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Attempt(Base):
    """One try at submitting a task to one route. Recorded *before* the upstream call, so a
    crash in between is visible (``state='submitting'`` with no upstream id) and is resolved
    by looking the job up upstream, never by submitting blind."""

    __tablename__ = "attempts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(40), ForeignKey("tasks.id", ondelete="CASCADE"))
    route: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(50))
    # submitting → submitted | failed | uncertain | orphaned (a job no task went on with)
    state: Mapped[str] = mapped_column(String(20))
    upstream_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    error_code: Mapped[str | None] = mapped_column(Recorded(200), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Recorded(), nullable=True)
    http_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (
        Index("ix_attempts_task", "task_id", "created_at"),
        Index("ix_attempts_route_state", "route", "state"),
    )


class RouteState(Base):
    """Health of a route, shared by every worker: the circuit breaker's memory."""

    __tablename__ = "route_state"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    benched_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Recorded(), nullable=True)
    last_success_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_failure_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class LedgerEntry(Base):
    """One money movement. For a task: a hold, then either a settle and a refund of the
    rest, or a refund of the whole hold — each at most once (unique per task and kind)."""

    __tablename__ = "ledger"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(40), ForeignKey("api_keys.id"))
    task_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # hold | settle | refund | topup
    kind: Mapped[str] = mapped_column(String(20))
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[float] = mapped_column(Float)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        Index(
            "ux_ledger_task_kind",
            "task_id",
            "kind",
            unique=True,
            sqlite_where=text("task_id IS NOT NULL"),
            postgresql_where=text("task_id IS NOT NULL"),
        ),
        Index("ix_ledger_key", "key_id", "created_at"),
    )


class TaskEvent(Base):
    """A status change of a task that has a ``callback_url``: the webhook outbox.
    Written in the same transaction as the change, so none is lost."""

    __tablename__ = "task_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(40), ForeignKey("tasks.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[float] = mapped_column(Float)
    # pending | delivered | failed (gave up) | skipped (status unchanged for the client)
    state: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (Index("ix_task_events_due", "state", "next_attempt_at"),)


class WebhookAttempt(Base):
    """One try at delivering a task event to its callback URL (``videogate webhooks``)."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(Integer, ForeignKey("task_events.id", ondelete="CASCADE"))
    task_id: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(Text)
    webhook_id: Mapped[str] = mapped_column(String(100))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Recorded(), nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_webhook_attempts_task", "task_id", "created_at"),)
