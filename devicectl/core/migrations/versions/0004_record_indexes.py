"""Indexes on the records read per session (pulses, freezes, decisions): a session's page no longer
scans every pulse ever recorded."""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("pulses_session", "pulses", ["session_id"])
    op.create_index("freezes_session", "freezes", ["session_id"])
    op.create_index("decisions_session", "decisions", ["session_id"])


def downgrade() -> None:
    op.drop_index("decisions_session", "decisions")
    op.drop_index("freezes_session", "freezes")
    op.drop_index("pulses_session", "pulses")
