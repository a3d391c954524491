"""tasks.poll_errors becomes tasks.errors_in_a_row: the name says what it counts

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 13:25:00

The column counts the failed tries in a row at a task's current step (submit rounds every
route refused, polls, other step errors, the follow-up of an ended task's upstream job),
not polls only. ``ALTER TABLE ... RENAME COLUMN`` (SQLite 3.25+, PostgreSQL) keeps the
data and the column's place, and copies nothing.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE tasks RENAME COLUMN poll_errors TO errors_in_a_row")


def downgrade() -> None:
    op.execute("ALTER TABLE tasks RENAME COLUMN errors_in_a_row TO poll_errors")
