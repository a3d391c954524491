"""tasks.request_id: the X-Request-Id of the request that created the task

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 12:10:00

The worker binds it to every log line about the task, so one id follows a request from
the API into the engine's lines (submit, polls, transitions, webhook deliveries).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("request_id", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("request_id")
