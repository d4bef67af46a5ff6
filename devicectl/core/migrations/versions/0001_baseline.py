"""Baseline: users, tokens, patients, sessions, pulses, calibrations and the append-only audit log.

The schema of devicectl 0.1 before versions existed (a database without ``alembic_version`` is
this version, whatever columns were added to it since: later migrations check before adding).
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("pin_hash", sa.Text, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("locked_until", sa.Float, nullable=False, server_default=sa.text("0")),
        sa.Column("must_change", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("active", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_table(
        "tokens",
        sa.Column("hash", sa.Text, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("expires", sa.Float, nullable=False),
    )
    op.create_table(
        "patients",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("patient_id", sa.Text, sa.ForeignKey("patients.id"), nullable=False),
        sa.Column("device", sa.Text, nullable=False),
        sa.Column("modality", sa.Text, nullable=False),
        sa.Column("site", sa.Text, nullable=False),
        sa.Column("plan", sa.Text, nullable=False),
        sa.Column("checklist", sa.Text, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("opened", sa.Float),
        sa.Column("closed", sa.Float),
        sa.Column("outcome", sa.Text),
        sa.Column("practitioner", sa.Text, nullable=False),
    )
    op.create_table(
        "pulses",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("energy_mj", sa.Float, nullable=False),
        sa.Column("set_mj", sa.Integer, nullable=False),
        sa.Column("t_ms", sa.Integer, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_table(
        "freezes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("dur_s", sa.Float, nullable=False),
        sa.Column("cause", sa.Text, nullable=False),
        sa.Column("min_tip_c", sa.Float),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_table(
        "calibrations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("device_serial", sa.Text, nullable=False),
        sa.Column("device_kind", sa.Text, nullable=False),
        sa.Column("passed", sa.Integer, nullable=False),
        sa.Column("results", sa.Text, nullable=False),
        sa.Column("technician", sa.Text, nullable=False),
        sa.Column("performed", sa.Float, nullable=False),
        sa.Column("expires_on", sa.Text, nullable=False),
        sa.Column("certificate", sa.Text),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.Text, nullable=False),
        sa.Column("hash", sa.Text, nullable=False),
    )
    if op.get_bind().dialect.name == "sqlite":  # the append-only rule (PostgreSQL: a trigger function)
        op.execute("CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit "
                   "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END")
        op.execute("CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit "
                   "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END")


def downgrade() -> None:
    for table in ("audit", "calibrations", "freezes", "pulses", "sessions", "patients", "tokens", "users"):
        op.drop_table(table)
