"""What a restart must not forget: devices a technician took into service mode (a unit under
repair stays out of treatment use until a technician brings it back), and external calibrations
entered and waiting for an admin's confirmation."""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_modes",
        sa.Column("device", sa.Text, primary_key=True),
        sa.Column("technician", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("since", sa.Float, nullable=False),
    )
    op.create_table(
        "calibration_proposals",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("proposal", sa.Text, nullable=False),  # JSON: device, certificate, laboratory, verdict, who, when
    )


def downgrade() -> None:
    op.drop_table("calibration_proposals")
    op.drop_table("service_modes")
