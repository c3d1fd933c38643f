"""handled_interaction: each Slack or Discord interaction acted on once, across replicas and retries

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "handled_interaction",
        sa.Column("platform", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("interaction_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("platform", "interaction_id"),
    )
    op.create_index("ix_handled_interaction_handled_at", "handled_interaction", ["handled_at"])


def downgrade() -> None:
    op.drop_index("ix_handled_interaction_handled_at", table_name="handled_interaction")
    op.drop_table("handled_interaction")
