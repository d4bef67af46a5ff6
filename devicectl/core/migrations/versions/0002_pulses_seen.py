"""pulses.seen: pulses the unit counted but the host never saw are stored with seen = 0.

Databases written before versions may have the column already (it was added at start-up then).
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("pulses")}
    if "seen" not in columns:
        op.add_column("pulses", sa.Column("seen", sa.Integer, nullable=False, server_default=sa.text("1")))


def downgrade() -> None:
    with op.batch_alter_table("pulses") as batch:
        batch.drop_column("seen")
