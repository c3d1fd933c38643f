"""An index on each event's RSVPs by status and queue place: the waitlist's length, end and order, read by every
RSVP that may join it, without reading the event's other RSVPs

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_rsvp_queue", "rsvp", ["event_id", "status", "queued_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_rsvp_queue", table_name="rsvp")
