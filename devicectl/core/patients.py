"""A patient's history and course, and the body-site picker's lists: what the touchscreen's patient
screen reads. Every session of a pseudonymous patient, by site: date, device, indication, settings,
pulses or freezes, outcome, the kernel's safety decisions, the session's number in its course and
the earliest date of the next session on that site. A new plan for a site starts from the last one.

Routes are added to the app by ``install`` (kept out of ``api.py``); each declares its roles."""

from __future__ import annotations

import json
import sqlite3
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from devicectl.core.auth import User
from devicectl.core.sessions import SessionError, course_number, last_treated
from safety import sites

if TYPE_CHECKING:
    from fastapi import FastAPI

    from devicectl.core.service import Service

SETTINGS = {"laser": ("wavelength_nm", "spot_mm", "energy_mj", "fluence_j_cm2", "fluence_cap_j_cm2", "rate_hz", "pulse_budget"),
            "cryo": ("target_c", "freeze_s", "cycles", "thaw_min_s")}


def site_lists() -> dict[str, Any]:
    """The picker: regions in order (key, label, whether it has a side) and the sides."""
    return {"regions": [{"key": k, "label": label, "sided": sided} for k, (label, sided) in sites.REGIONS.items()],
            "sides": list(sites.SIDES)}


def _day(ts: float | None) -> str | None:
    return date.fromtimestamp(ts).isoformat() if ts else None


def history(conn: sqlite3.Connection, patient_id: str) -> dict[str, Any] | None:
    if conn.execute("SELECT id FROM patients WHERE id = ?", (patient_id,)).fetchone() is None:
        return None
    rows = conn.execute("SELECT * FROM sessions WHERE patient_id = ? ORDER BY id", (patient_id,)).fetchall()
    by_site: dict[str, dict[str, Any]] = {}
    for row in rows:
        plan = json.loads(row["plan"])
        key = row["site_key"] or sites.normalise(row["site"])
        counts = conn.execute("SELECT (SELECT COUNT(*) FROM pulses WHERE session_id = :id) AS pulses,"
                              " (SELECT COUNT(*) FROM freezes WHERE session_id = :id) AS freezes", {"id": row["id"]}).fetchone()
        decisions = [dict(d) for d in conn.execute(
            "SELECT at, kind, hazard, reason FROM decisions WHERE session_id = ? AND kind != 'Refuse' ORDER BY id", (row["id"],))]
        entry = {
            "id": row["id"], "date": _day(row["opened"] or row["created"]), "treated": row["opened"] is not None,
            "device": row["device"], "modality": row["modality"], "indication": plan.get("indication"),
            "state": row["state"], "outcome": row["outcome"], "practitioner": row["practitioner"],
            "site_key": key, "site": sites.label(key), "site_note": row["site_note"], "skin_type": row["skin_type"],
            "settings": {k: plan.get(k) for k in SETTINGS.get(row["modality"], ())},
            "pulses": counts["pulses"], "freezes": counts["freezes"], "decisions": decisions,
            "course_number": course_number(conn, row), "interval_days": plan.get("interval_days"),
            "request": json.loads(row["request"]) if row["request"] else None,
        }
        site = by_site.setdefault(key, {"site_key": key, "site": sites.label(key), "sessions": [], "next_from": None})
        site["sessions"].append(entry)
        if row["opened"] is not None and entry["interval_days"]:
            next_from = (date.fromtimestamp(row["opened"]) + timedelta(days=int(entry["interval_days"]))).isoformat()
            site["next_from"] = max(site["next_from"] or next_from, next_from)
    skin = next((r["skin_type"] for r in reversed(rows) if r["skin_type"]), None)
    return {"patient_id": patient_id, "skin_type": skin, "sites": list(by_site.values())}


def last_plan(conn: sqlite3.Connection, patient_id: str, site: str) -> dict[str, Any] | None:
    """The last treated session's request and settings on this site (what a new plan starts from)."""
    key = sites.normalise(site)
    row = last_treated(conn, patient_id, key)
    if row is None:
        return None
    plan = json.loads(row["plan"])
    return {"session": row["id"], "device": row["device"], "site_key": row["site_key"] or key,
            "request": json.loads(row["request"]) if row["request"] else None,
            "settings": {k: plan.get(k) for k in SETTINGS.get(row["modality"], ())}}


def install(app: FastAPI, service: Service) -> None:
    from fastapi import Depends

    from devicectl.web.api import current_user

    login = Depends(current_user)

    @app.get("/api/sites")
    async def get_sites(user: User = login) -> dict[str, Any]:
        """The body-site picker's regions and sides (a site is the key ``region`` or ``region:side``)."""
        service.accounts.require(user, "practitioner", "technician", "admin", action="sites.read")
        return site_lists()

    @app.get("/api/clinic")
    async def clinic(user: User = login) -> dict[str, Any]:
        """The clinic's name, contact and date locale (config [clinic]): printed on aftercare sheets."""
        service.accounts.require(user, "practitioner", "technician", "admin", action="clinic.read")
        return service.settings.clinic.model_dump()

    @app.get("/api/patients")
    async def find_patients(q: str = "", user: User = login) -> list[dict[str, Any]]:
        """Patients whose pseudonymous id contains ``q`` (at most 20), newest first."""
        service.accounts.require(user, "practitioner", action="patient.search")
        pattern = "%" + q.strip().upper().replace("%", "").replace("_", "") + "%"
        rows = await service.store.read(lambda conn: conn.execute(
            "SELECT patients.id, patients.created, COUNT(sessions.id) AS sessions FROM patients"
            " LEFT JOIN sessions ON sessions.patient_id = patients.id WHERE patients.id LIKE ?"
            " GROUP BY patients.id ORDER BY patients.created DESC LIMIT 20", (pattern,)).fetchall())
        return [{"patient_id": r["id"], "created": _day(r["created"]), "sessions": r["sessions"]} for r in rows]

    @app.get("/api/patients/{patient_id}/history")
    async def patient_history(patient_id: str, user: User = login) -> dict[str, Any]:
        """Every session of the patient by site, with the earliest date of the next session on each."""
        service.accounts.require(user, "practitioner", action="patient.history")
        found = await service.store.read(lambda conn: history(conn, patient_id))
        if found is None:
            raise SessionError(f"no patient {patient_id}", 404)
        return found

    @app.get("/api/patients/{patient_id}/last-plan")
    async def patient_last_plan(patient_id: str, site: str, user: User = login) -> dict[str, Any]:
        """The last treated session on ``site``: a new plan starts from its request (the planner
        still refuses what is above the protocol's cap)."""
        service.accounts.require(user, "practitioner", action="patient.history")
        found = await service.store.read(lambda conn: last_plan(conn, patient_id, site))
        return found or {"session": None}
