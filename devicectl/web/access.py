"""Least privilege: who may call which route, in one table, enforced for every route of the app.

``POLICY`` maps (method, route path) to the roles allowed (``PUBLIC``: no login; ``OWN_AUTH``: the
route checks its login itself, as STOP and the WebSocket do). A route missing from the table is
refused (403) for everyone, and tests/test_access.py fails on it: a new route needs a row here.

* technicians: devices, faults, service mode, calibrations and calibration runs;
* practitioners: patients and sessions, and of the sessions only their own (the ones they
  planned): another practitioner's session, and a patient they never planned for, are refused;
* admins: users and the audit log (and confirming external calibrations);
* everyone logged in: their own login, STOP, the device overview (a session's patient and site only
  for the practitioner whose session it is) and the planning lists.

A login with a one-time PIN not yet changed may only do what choosing the new PIN needs (``FIRST_LOGIN``).
Every refusal is audited (``Accounts.require``).
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from fastapi.requests import HTTPConnection

if TYPE_CHECKING:
    from devicectl.core.service import Service

PUBLIC = "public"
OWN_AUTH = "own-auth"
P, T, A = "practitioner", "technician", "admin"
ANY = (P, T, A)

POLICY: dict[tuple[str, str], Any] = {
    # accounts
    ("POST", "/api/login"): PUBLIC,
    ("POST", "/api/logout"): ANY,
    ("GET", "/api/me"): ANY,
    ("POST", "/api/me/pin"): ANY,
    ("POST", "/api/users"): (A,),
    ("GET", "/api/users"): (A,),
    ("POST", "/api/users/{name}/unlock"): (A,),
    ("POST", "/api/users/{name}/deactivate"): (A,),
    ("POST", "/api/users/{name}/pin"): (A,),
    # devices and STOP
    ("GET", "/api/devices"): ANY,
    ("POST", "/api/stop"): OWN_AUTH,
    ("POST", "/api/devices/{device}/acknowledge"): (P, T),
    ("GET", "/api/overview"): ANY,
    ("GET", "/api/options"): ANY,
    ("GET", "/api/sites"): ANY,
    ("GET", "/api/clinic"): ANY,
    ("GET", "/api/health"): PUBLIC,
    ("WEBSOCKET", "/ws"): OWN_AUTH,
    # patients and sessions: practitioners, their own
    ("POST", "/api/patients"): (P,),
    ("GET", "/api/patients"): (P,),
    ("GET", "/api/patients/{patient_id}/history"): (P,),
    ("GET", "/api/patients/{patient_id}/last-plan"): (P,),
    ("POST", "/api/sessions"): (P,),
    ("GET", "/api/sessions/{session_id}"): (P,),
    ("POST", "/api/sessions/{session_id}/edit"): (P,),
    ("PUT", "/api/sessions/{session_id}/checklist"): (P,),
    ("POST", "/api/sessions/{session_id}/start"): (P,),
    ("POST", "/api/sessions/{session_id}/arm"): (P,),
    ("POST", "/api/sessions/{session_id}/freeze"): (P,),
    ("POST", "/api/sessions/{session_id}/acknowledge"): (P,),
    ("POST", "/api/sessions/{session_id}/reconfirm"): (P,),
    ("POST", "/api/sessions/{session_id}/end"): (P,),
    ("POST", "/api/sessions/{session_id}/close"): (P,),
    ("POST", "/api/sessions/{session_id}/cancel"): (P,),
    # calibration, faults, service mode: technicians (status readable by all)
    ("GET", "/api/calibrations"): ANY,
    ("POST", "/api/calibrations/measured"): (T,),
    ("POST", "/api/calibrations/external"): (T,),
    ("GET", "/api/calibrations/external"): (T, A),
    ("POST", "/api/calibrations/external/{proposal_id}/confirm"): (A,),
    ("GET", "/api/calibrations/{record_id}/certificate.html"): (T, A),
    ("GET", "/api/calibrations/{record_id}/certificate.pdf"): (T, A),
    ("GET", "/api/devices/{device}/fault"): (P, T),
    ("POST", "/api/devices/{device}/fault/clear"): (T,),
    ("GET", "/api/devices/{device}/service-mode"): (P, T),
    ("PUT", "/api/devices/{device}/service-mode"): (T,),
    ("POST", "/api/calibration-runs"): (T,),
    ("GET", "/api/calibration-runs"): (T,),
    ("GET", "/api/calibration-runs/{run_id}"): (T,),
    ("POST", "/api/calibration-runs/{run_id}/cancel"): (T,),
    # audit
    ("GET", "/api/audit"): (A,),
    ("GET", "/api/audit/verify"): (A,),
    # the simulator panel (only with serve --simulate)
    ("GET", "/api/sim"): ANY,
    ("POST", "/api/sim/{device}"): (P, T),
    # the schema and its pages, the touchscreen's files
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
}

#: a refusal that says what to do instead (the route's own words)
HINTS = {("POST", "/api/devices/{device}/fault/clear"): "Call a technician: only a technician may clear a device fault."}

#: what a login with a one-time PIN may do: choose the new PIN (the screens it passes through), STOP, log out
FIRST_LOGIN = {("GET", "/api/me"), ("POST", "/api/me/pin"), ("POST", "/api/logout"), ("GET", "/api/options"),
               ("GET", "/api/sim")}


def rule(method: str, path: str) -> Any:
    """The roles allowed for ``method path`` (None: no row, refused)."""
    return POLICY.get((method, path))


def _owner_of_session(conn: sqlite3.Connection, session_id: int) -> str | None:
    row = conn.execute("SELECT practitioner FROM sessions WHERE id = ?", (session_id,)).fetchone()
    return None if row is None else str(row["practitioner"])


def _practitioner_knows_patient(conn: sqlite3.Connection, patient_id: str, name: str) -> bool | None:
    row = conn.execute("SELECT created_by FROM patients WHERE id = ?", (patient_id,)).fetchone()
    if row is None:
        return None
    return row["created_by"] == name or conn.execute(
        "SELECT 1 FROM sessions WHERE patient_id = ? AND practitioner = ? LIMIT 1", (patient_id, name)).fetchone() is not None


def install(service: Service) -> Any:
    """The app-wide dependency enforcing ``POLICY`` (FastAPI ``dependencies=[Depends(...)]``)."""
    from devicectl.web.api import current_user, token_of

    async def enforce(connection: HTTPConnection) -> None:
        route = connection.scope.get("route")
        path = getattr(route, "path", None)
        if path is None:
            return  # not a route of the API (the touchscreen's files)
        method = "WEBSOCKET" if connection.scope["type"] == "websocket" else connection.scope["method"]
        if method == "HEAD":
            method = "GET"
        allowed = rule(method, path)
        if allowed in (PUBLIC, OWN_AUTH):
            return
        user = await current_user(connection, await token_of(connection.headers.get("authorization")))  # type: ignore[arg-type]
        action = f"{method} {path}"
        if allowed is None:
            service.accounts._refuse(user, action, "this route has no access rule: refused for everyone", 403)
        if user.must_change and (method, path) not in FIRST_LOGIN:
            service.accounts._refuse(user, action, "change your one-time PIN first", 403)
        if user.role not in allowed:
            service.accounts._refuse(user, action, HINTS.get((method, path), f"only a {' or '.join(allowed)} may do this"), 403)
        params = connection.path_params
        if user.role == P and "session_id" in params:
            try:
                session_id = int(params["session_id"])
            except ValueError:
                return  # the route answers 422
            if not 1 <= session_id < 2**63:
                return  # not an id SQLite holds: the route answers 422
            owner = await service.store.read(lambda conn: _owner_of_session(conn, session_id))
            if owner is not None and owner != user.name:
                service.accounts._refuse(user, action, f"session {session_id} is {owner}'s: not yours to see or change", 403)
        if user.role == P and "patient_id" in params:
            patient_id = str(params["patient_id"])
            known = await service.store.read(lambda conn: _practitioner_knows_patient(conn, patient_id, user.name))
            if known is False:
                service.accounts._refuse(user, action, f"patient {patient_id} is not one of yours", 403)

    return enforce

