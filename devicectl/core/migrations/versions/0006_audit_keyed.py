"""The audit log is keyed: each entry says whether its MAC is keyed (HMAC-SHA-256 with the audit
key) or, written before this version, the plain SHA-256 of the old rule (``keyed = 0``: those
keep verifying by the old rule up to the first keyed entry)."""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit", sa.Column("keyed", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("audit") as batch:
        batch.drop_column("keyed")
