"""Least privilege, for every route of the app: one table says who may call what; every route of
``app.routes`` must have a row (a new route without one fails here), and each row is checked by
calling the route as each role, as another practitioner, as a login with its one-time PIN not
yet changed, and without a login."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.routing import APIWebSocketRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount
from starlette.websockets import WebSocketDisconnect

from devicectl.core.config import load_settings
from devicectl.core.service import Service
from devicectl.core.sessions import plan_to_json
from devicectl.web import sim_panel
from devicectl.web.api import create_app
from safety.plans import Indication, Ink, PlanRequest, load_protocols, plan_treatment

P, T, A = "practitioner", "technician", "admin"
ANY = {P, T, A}
PUBLIC, OWN = "public", "own login check"  # OWN: STOP and the WebSocket check the login themselves
#: what a login with a one-time PIN may call (choosing its own PIN and the screens on the way)
FIRST = "first login too"

#: (method, path) -> roles allowed (and FIRST when a one-time-PIN login may call it too)
TABLE: dict[tuple[str, str], Any] = {
    ("POST", "/api/login"): PUBLIC,
    ("POST", "/api/logout"): ANY | {FIRST},
    ("GET", "/api/me"): ANY | {FIRST},
    ("POST", "/api/me/pin"): ANY | {FIRST},
    ("POST", "/api/users"): {A},
    ("GET", "/api/users"): {A},
    ("POST", "/api/users/{name}/unlock"): {A},
    ("POST", "/api/users/{name}/deactivate"): {A},
    ("POST", "/api/users/{name}/pin"): {A},
    ("GET", "/api/devices"): ANY,
    ("POST", "/api/stop"): OWN,
    ("POST", "/api/devices/{device}/acknowledge"): {P, T},
    ("GET", "/api/overview"): ANY,
    ("GET", "/api/options"): ANY | {FIRST},
    ("GET", "/api/sites"): ANY,
    ("GET", "/api/clinic"): ANY,
    ("GET", "/api/health"): PUBLIC,
    ("WEBSOCKET", "/ws"): OWN,
    ("POST", "/api/patients"): {P},
    ("GET", "/api/patients"): {P},
    ("GET", "/api/patients/{patient_id}/history"): {P},
    ("GET", "/api/patients/{patient_id}/last-plan"): {P},
    ("POST", "/api/sessions"): {P},
    ("GET", "/api/sessions/{session_id}"): {P},
    ("POST", "/api/sessions/{session_id}/edit"): {P},
    ("PUT", "/api/sessions/{session_id}/checklist"): {P},
    ("POST", "/api/sessions/{session_id}/start"): {P},
    ("POST", "/api/sessions/{session_id}/arm"): {P},
    ("POST", "/api/sessions/{session_id}/freeze"): {P},
    ("POST", "/api/sessions/{session_id}/acknowledge"): {P},
    ("POST", "/api/sessions/{session_id}/reconfirm"): {P},
    ("POST", "/api/sessions/{session_id}/end"): {P},
    ("POST", "/api/sessions/{session_id}/close"): {P},
    ("POST", "/api/sessions/{session_id}/cancel"): {P},
    ("GET", "/api/calibrations"): ANY,
    ("POST", "/api/calibrations/measured"): {T},
    ("POST", "/api/calibrations/external"): {T},
    ("GET", "/api/calibrations/external"): {T, A},
    ("POST", "/api/calibrations/external/{proposal_id}/confirm"): {A},
    ("GET", "/api/calibrations/{record_id}/certificate.html"): {T, A},
    ("GET", "/api/calibrations/{record_id}/certificate.pdf"): {T, A},
    ("GET", "/api/devices/{device}/fault"): {P, T},
    ("POST", "/api/devices/{device}/fault/clear"): {T},
    ("GET", "/api/devices/{device}/service-mode"): {P, T},
    ("PUT", "/api/devices/{device}/service-mode"): {T},
    ("POST", "/api/calibration-runs"): {T},
    ("GET", "/api/calibration-runs"): {T},
    ("GET", "/api/calibration-runs/{run_id}"): {T},
    ("POST", "/api/calibration-runs/{run_id}/cancel"): {T},
    ("GET", "/api/audit"): {A},
    ("GET", "/api/audit/verify"): {A},
    ("GET", "/api/sim"): ANY | {FIRST},
    ("POST", "/api/sim/{device}"): {P, T},
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("MOUNT", "/"): PUBLIC,  # the touchscreen's files
}


def routes_of(app: Any) -> list[tuple[str, str]]:
    out = []
    for route in app.routes:
        if isinstance(route, APIWebSocketRoute):
            out.append(("WEBSOCKET", route.path))
        elif isinstance(route, Mount):
            out.append(("MOUNT", route.path or "/"))
        else:
            out += [(method, route.path) for method in sorted(route.methods or ()) if method != "HEAD"]
    return out


def log_in(client: TestClient, name: str, pin: str) -> dict[str, str]:
    answer = client.post("/api/login", json={"name": name, "pin": pin})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def new_user(client: TestClient, admin: dict[str, str], name: str, role: str, pin: str | None) -> dict[str, str]:
    assert client.post("/api/users", json={"name": name, "role": role, "pin": "583920"}, headers=admin).status_code == 201
    headers = log_in(client, name, "583920")
    if pin is not None:
        assert client.post("/api/me/pin", json={"old_pin": "583920", "new_pin": pin}, headers=headers).status_code == 200
    return headers


def test_every_route_has_a_row_and_each_role_gets_exactly_its_rows(tmp_path: Path) -> None:
    service = Service(load_settings(None, data_dir=tmp_path))
    app = create_app(service)
    sim_panel.install(app, service, {})  # the simulator panel's routes (serve --simulate) are routes too
    with TestClient(app) as client:
        routes = routes_of(app)
        missing = [route for route in routes if route not in TABLE]
        assert not missing, f"routes without a row in the access table: {missing}"
        assert not [row for row in TABLE if row not in routes], "rows for routes that no longer exist"

        pin = service.first_admin_pin or ""
        admin = log_in(client, "admin", pin)
        assert client.post("/api/me/pin", json={"old_pin": pin, "new_pin": "480913"}, headers=admin).status_code == 200
        callers = {A: admin, P: new_user(client, admin, "pat", P, "4827"), T: new_user(client, admin, "tech", T, "3916"),
                   "other practitioner": new_user(client, admin, "kim", P, "6150"),
                   "one-time PIN": new_user(client, admin, "new", P, None), "nobody": {}}
        patient = client.post("/api/patients", headers=callers[P]).json()["patient_id"]
        plan = plan_to_json(plan_treatment(PlanRequest(Indication("tattoo"), 2, False, 2.0, "back", frozenset({Ink("black")})),
                                           load_protocols()))
        service.store.write_sync(lambda conn: conn.execute(
            "INSERT INTO sessions (patient_id, device, modality, site, plan, state, created, practitioner)"
            " VALUES (?, 'laser', 'laser', 'back', ?, 'ended', 0, 'pat')", (patient, plan)))
        session = service.store.one("SELECT id FROM sessions WHERE practitioner = 'pat'")["id"]  # type: ignore[index]
        values = {"session_id": session, "patient_id": patient, "device": "laser", "name": "nobody", "run_id": 999,
                  "record_id": 999, "proposal_id": 999}

        wrong: list[str] = []
        for method, path in sorted(routes, key=lambda r: r[1] == "/api/logout"):  # logging out last
            rule = TABLE[(method, path)]
            if method == "MOUNT" or rule == PUBLIC:
                continue
            if method == "WEBSOCKET":
                for who, headers in callers.items():
                    token = headers.get("Authorization", "Bearer x")[7:] if headers else ""
                    try:
                        with client.websocket_connect(f"/ws?token={token}") as ws:
                            assert ws.receive_json()["type"] == "hello"
                            accepted = True
                    except WebSocketDisconnect:
                        accepted = False
                    if accepted != (who != "nobody"):
                        wrong.append(f"/ws as {who}: accepted={accepted}")
                continue
            url = path.format(**values)
            for who, headers in callers.items():
                status = client.request(method, url, headers=headers, json={}).status_code
                if rule == OWN:  # any login, even a one-time PIN's (STOP never waits for a PIN change)
                    if who != "nobody" and status in (401, 403):
                        wrong.append(f"{method} {path} as {who}: {status}")
                    continue
                if who == "nobody":
                    allowed = False
                elif who == "one-time PIN":
                    allowed = FIRST in rule
                elif who == "other practitioner":
                    allowed = P in rule and "{session_id}" not in path and "{patient_id}" not in path
                else:
                    allowed = who in rule
                refused = status in (401, 403)
                if refused == allowed:
                    wrong.append(f"{method} {path} as {who}: {status} (allowed: {allowed})")
        assert not wrong, "\n".join(wrong)
        refusals = [e for e in client.get("/api/audit?limit=1000", headers=log_in(client, "admin", "480913")).json()
                    if e["action"] == "refused"]
        assert {e["actor"] for e in refusals} >= {"pat", "tech", "kim", "new"}  # every refusal audited



def test_home_shows_patient_and_site_only_to_the_practitioner_whose_session_it_is(tmp_path: Path) -> None:
    service = Service(load_settings(None, data_dir=tmp_path))
    with TestClient(create_app(service)) as client:
        pin = service.first_admin_pin or ""
        admin = log_in(client, "admin", pin)
        assert client.post("/api/me/pin", json={"old_pin": pin, "new_pin": "480913"}, headers=admin).status_code == 200
        viewers = {"pat": new_user(client, admin, "pat", P, "4827"), "kim": new_user(client, admin, "kim", P, "6150"),
                   "tech": new_user(client, admin, "tech", T, "3916"), "admin": admin}
        patient = client.post("/api/patients", headers=viewers["pat"]).json()["patient_id"]
        plan = plan_to_json(plan_treatment(PlanRequest(Indication("tattoo"), 2, False, 2.0, "back", frozenset({Ink("black")})),
                                           load_protocols()))
        service.store.write_sync(lambda conn: conn.execute(
            "INSERT INTO sessions (patient_id, device, modality, site, plan, state, created, practitioner)"
            " VALUES (?, 'laser', 'laser', 'back', ?, 'planned', 0, 'pat')", (patient, plan)))
        for name, headers in viewers.items():
            (line,) = client.get("/api/overview", headers=headers).json()["open_sessions"]
            assert line["practitioner"] == "pat" and line["device"] == "laser"  # everyone sees the device is taken
            if name == "pat":
                assert line["own"] and line["patient_id"] == patient and line["site"] == "back"
            else:
                assert not line["own"] and "patient_id" not in line and "site" not in line, name
