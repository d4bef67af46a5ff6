"""decisions: every Stop, Lockout, Pause and Refuse of the kernel, with its session (if any) and fact.

Databases written before versions may have the table already (it was created at start-up then).
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "decisions" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("sessions.id")),
        sa.Column("device", sa.Text, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("hazard", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("fact", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("decisions")
