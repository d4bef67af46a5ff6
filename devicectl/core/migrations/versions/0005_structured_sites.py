"""Structured sites and the patient's course: sessions keep the site's key (region and side, see
safety/sites.py), the free text as a note, the skin type and the plan's request (indication, skin,
inks, area: what a next plan for the same site starts from).

Rows written before: the key read best-effort from the free text, which is kept as the note (and
stays in ``site``); skin type and request are unknown (NULL).
"""

import sqlalchemy as sa
from alembic import op

from safety.sites import normalise

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("sessions")}
    with op.batch_alter_table("sessions") as batch:
        for name, kind in (("site_key", sa.Text), ("site_note", sa.Text), ("skin_type", sa.Integer), ("request", sa.Text)):
            if name not in columns:
                batch.add_column(sa.Column(name, kind))
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, site FROM sessions WHERE site_key IS NULL")).fetchall()
    for session_id, site in rows:
        conn.execute(sa.text("UPDATE sessions SET site_key = :key, site_note = :note WHERE id = :id"),
                     {"key": normalise(site), "note": site, "id": session_id})
    op.create_index("sessions_patient_site", "sessions", ["patient_id", "site_key"])


def downgrade() -> None:
    op.drop_index("sessions_patient_site", "sessions")
    with op.batch_alter_table("sessions") as batch:
        for name in ("request", "skin_type", "site_note", "site_key"):
            batch.drop_column(name)
