"""indexes for the engine's claims and per-key counts

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 08:30:00

The in-flight count of a route (``tasks.route`` + ``status``, and ``attempts.route`` +
``state`` for submits in progress) runs in every submit's transaction, and a key's
unfinished-task count (``tasks.key_id`` + ``status``) in every create of a capped key;
without these they scan the whole table.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tasks_route_status", "tasks", ["route", "status"])
    op.create_index("ix_tasks_key_status", "tasks", ["key_id", "status"])
    op.create_index("ix_attempts_route_state", "attempts", ["route", "state"])


def downgrade() -> None:
    op.drop_index("ix_attempts_route_state", table_name="attempts")
    op.drop_index("ix_tasks_key_status", table_name="tasks")
    op.drop_index("ix_tasks_route_status", table_name="tasks")
