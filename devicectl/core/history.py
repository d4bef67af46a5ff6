"""What the touchscreen's Home and patient screens read, and the closing of sessions nobody can
resume: the overview (every device with its live state, its session, lock-out and calibration;
every open or interrupted session), closing an interrupted session with its aftercare and the
pulses actually recorded, cancelling a planned one. Every change is audited.

Routes are added to the app by ``install`` (kept out of ``api.py``)."""

from __future__ import annotations

import sqlite3
import time
from datetime import date
from typing import TYPE_CHECKING, Any

from devicectl.core.auth import User
from devicectl.core.ids import SessionId
from devicectl.core.sessions import SessionError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from devicectl.core.service import Service

OPEN_STATES = ("planned", "active", "interrupted")


def calibration_status(conn: sqlite3.Connection, serial: str | None) -> dict[str, Any]:
    """The device's latest calibration: ``status`` is passed, failed, expired or missing; ``due`` its expiry."""
    if not serial:
        return {"status": "unknown", "due": None}
    row = conn.execute(
        "SELECT passed, expires_on FROM calibrations WHERE device_serial = ? ORDER BY performed DESC, id DESC LIMIT 1",
        (serial,)).fetchone()
    if row is None:
        return {"status": "missing", "due": None}
    if not row["passed"]:
        return {"status": "failed", "due": row["expires_on"]}
    if date.fromisoformat(row["expires_on"]) < date.today():
        return {"status": "expired", "due": row["expires_on"]}
    return {"status": "passed", "due": row["expires_on"]}


def _session_summary(row: Any, viewer: User) -> dict[str, Any]:
    """A session's line on Home. Patient, site and outcome only for the practitioner whose session it
    is (least privilege: everyone else sees that the device is busy, since when and whose it is)."""
    summary = {"id": row["id"], "device": row["device"], "state": row["state"], "practitioner": row["practitioner"],
               "created": row["created"], "opened": row["opened"], "own": False}
    if viewer.role == "practitioner" and viewer.name == row["practitioner"]:
        summary |= {"patient_id": row["patient_id"], "site": row["site"], "outcome": row["outcome"], "own": True}
    return summary


async def overview(service: Service, viewer: User) -> dict[str, Any]:
    snaps = [(s.snapshot(), s.session_id) for s in service.supervisors.values()]

    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        devices = []
        for snap, session_id in snaps:
            session = None
            if session_id is not None:
                row = conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
                session = _session_summary(row, viewer) if row is not None else {"id": session_id, "own": False}
            devices.append(snap | {"session": session, "calibration": calibration_status(conn, snap.get("serial"))})
        rows = conn.execute(f"SELECT * FROM sessions WHERE state IN ({','.join('?' * len(OPEN_STATES))})"
                            " ORDER BY id DESC LIMIT 100", OPEN_STATES).fetchall()
        return {"devices": devices, "open_sessions": [_session_summary(r, viewer) for r in rows]}

    return await service.store.read(read)


async def close_interrupted(service: Service, user: User, session_id: int) -> dict[str, Any]:
    """An interrupted session (the service stopped during it) is closed by a practitioner after
    review: ended, its outcome kept as "interrupted: ...", with the pulses and freezes recorded."""
    service.accounts.require(user, "practitioner", action="session.close")
    row = await service.store.read(
        lambda conn: conn.execute("SELECT state, outcome FROM sessions WHERE id = ?", (session_id,)).fetchone())
    if row is None:
        raise SessionError(f"no session {session_id}", 404)
    if row["state"] != "interrupted":
        raise SessionError(f"the session is {row['state']}: only an interrupted session is closed here")
    reason = row["outcome"] or "the service stopped during the session"
    outcome = reason if reason.startswith("interrupted") else f"interrupted: {reason}"

    def work(conn: sqlite3.Connection) -> None:
        if conn.execute("UPDATE sessions SET state = 'ended', outcome = ? WHERE id = ? AND state = 'interrupted'",
                        (outcome, session_id)).rowcount:
            service.audit.append_in(conn, user.name, "session.closed", session=session_id, outcome=outcome)

    await service.store.write(work)
    return await service.sessions.get(session_id)


async def cancel_planned(service: Service, user: User, session_id: int) -> dict[str, Any]:
    """A planned session that will not be treated: cancelled (never started, nothing recorded)."""
    service.accounts.require(user, "practitioner", action="session.cancel")
    row = await service.store.read(lambda conn: conn.execute("SELECT state FROM sessions WHERE id = ?", (session_id,)).fetchone())
    if row is None:
        raise SessionError(f"no session {session_id}", 404)
    if row["state"] != "planned":
        raise SessionError(f"the session is {row['state']}: only a planned session can be cancelled")
    now = time.time()

    def work(conn: sqlite3.Connection) -> None:
        if conn.execute("UPDATE sessions SET state = 'cancelled', closed = ?, outcome = 'cancelled before treatment'"
                        " WHERE id = ? AND state = 'planned'", (now, session_id)).rowcount:
            service.audit.append_in(conn, user.name, "session.cancelled", session=session_id)

    await service.store.write(work)
    return await service.sessions.get(session_id)


def install(app: FastAPI, service: Service) -> None:
    from fastapi import Depends

    from devicectl.web.api import current_user  # the app's own login dependency

    login = Depends(current_user)

    @app.get("/api/overview")
    async def get_overview(user: User = login) -> dict[str, Any]:
        """Home: every device (live state, session, lock-out, calibration) and every open session
        (patient and site only on the viewer's own sessions)."""
        return await overview(service, user)

    @app.post("/api/sessions/{session_id}/close")
    async def close_session(session_id: SessionId, user: User = login) -> dict[str, Any]:
        """Close an interrupted session after review: its aftercare and what was recorded (audited)."""
        return await close_interrupted(service, user, session_id)

    @app.post("/api/sessions/{session_id}/cancel")
    async def cancel_session(session_id: SessionId, user: User = login) -> dict[str, Any]:
        """Cancel a planned session (audited)."""
        return await cancel_planned(service, user, session_id)
