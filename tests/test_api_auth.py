"""Accounts and the API's guard rails, in process (FastAPI TestClient, no devices)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from devicectl.core.config import load_settings
from devicectl.core.service import Service
from devicectl.web.api import create_app
from tests.service_harness import measured_calibration


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, Service]]:
    service = Service(load_settings(None, data_dir=tmp_path))
    with TestClient(create_app(service)) as client:
        yield client, service


@pytest.fixture
def short_tokens(tmp_path: Path) -> Iterator[tuple[TestClient, Service]]:
    """Logins that expire after about a second (new users' first-login PIN change takes longer on a busy machine)."""
    service = Service(load_settings(None, data_dir=tmp_path, token_hours=0.0003))
    with TestClient(create_app(service)) as client:
        yield client, service


def login(client: TestClient, user: str, pin: str) -> dict[str, str]:
    answer = client.post("/api/login", json={"user": user, "pin": pin})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def admin(client: TestClient, service: Service) -> dict[str, str]:
    pin = service.first_admin_pin
    assert pin and len(pin) == 6
    headers = login(client, "admin", pin)
    assert client.post("/api/me/pin", json={"old_pin": pin, "new_pin": "480913"}, headers=headers).status_code == 200
    return headers


def new_user(client: TestClient, admin_headers: dict[str, str], name: str, role: str, pin: str) -> dict[str, str]:
    """A user the admin creates with a one-time PIN, who sets ``pin`` at the first login."""
    assert client.post("/api/users", json={"name": name, "role": role, "pin": "583920"}, headers=admin_headers).status_code == 201
    headers = login(client, name, "583920")
    assert client.post("/api/me/pin", json={"old_pin": "583920", "new_pin": pin}, headers=headers).status_code == 200
    return headers


def test_first_admin_must_change_the_one_time_pin(app: tuple[TestClient, Service]) -> None:
    client, service = app
    pin = service.first_admin_pin
    headers = login(client, "admin", pin)  # type: ignore[arg-type]
    assert client.get("/api/me", headers=headers).json()["must_change_pin"] is True
    refused = client.post("/api/users", json={"name": "p", "role": "practitioner", "pin": "1234"}, headers=headers)
    assert refused.status_code == 403 and "one-time PIN" in refused.json()["error"]
    assert client.post("/api/me/pin", json={"old_pin": "000000" if pin != "000000" else "1", "new_pin": "5555"},
                       headers=headers).status_code == 403
    assert client.post("/api/me/pin", json={"old_pin": pin, "new_pin": "12"}, headers=headers).status_code == 422
    assert client.post("/api/me/pin", json={"old_pin": pin, "new_pin": "480913"}, headers=headers).status_code == 200
    assert client.post("/api/users", json={"name": "p", "role": "practitioner", "pin": "4827"}, headers=headers).status_code == 201


def test_five_wrong_pins_lock_the_user_until_an_admin_unlocks(app: tuple[TestClient, Service]) -> None:
    client, service = app
    headers = admin(client, service)
    new_user(client, headers, "pat", "practitioner", "4827")
    for attempt in range(5):
        answer = client.post("/api/login", json={"user": "pat", "pin": "9999"})
        assert answer.status_code == (423 if attempt == 4 else 401)
    locked = client.post("/api/login", json={"user": "pat", "pin": "4827"})
    assert locked.status_code == 423 and "locked" in locked.json()["error"]
    assert client.post("/api/users/pat/unlock", headers=headers).status_code == 200
    login(client, "pat", "4827")
    actions = [e["action"] for e in client.get("/api/audit", headers=headers).json()]
    assert actions.count("login.refused") == 6 and "user.unlocked" in actions


def test_tokens_expire_and_unknown_tokens_are_refused(short_tokens: tuple[TestClient, Service]) -> None:
    client, service = short_tokens
    headers = admin(client, service)
    assert client.get("/api/me", headers=headers).status_code == 200
    assert client.get("/api/me").status_code == 401
    assert client.get("/api/me", headers={"Authorization": "Bearer nope"}).status_code == 401
    time.sleep(1.2)  # token_hours=0.0003: about a second
    expired = client.get("/api/me", headers=headers)
    assert expired.status_code == 401 and "expired" in expired.json()["error"]


def test_roles_are_enforced_and_refusals_audited(app: tuple[TestClient, Service]) -> None:
    client, service = app
    headers = admin(client, service)
    pat, tech = new_user(client, headers, "pat", "practitioner", "4827"), new_user(client, headers, "tech", "technician", "3916")
    assert client.post("/api/users", json={"name": "x", "role": "admin", "pin": "1234"}, headers=pat).status_code == 403
    assert client.post("/api/patients", headers=tech).status_code == 403
    assert client.post("/api/patients", headers=pat).status_code == 201
    assert client.post("/api/calibrations/measured", json=measured_calibration("laser", "S"), headers=pat).status_code == 403
    assert client.post("/api/calibrations/measured", json=measured_calibration("laser", "S"), headers=tech).status_code == 201
    assert client.get("/api/audit", headers=tech).status_code == 403
    assert client.post("/api/stop", headers=tech).json() == {"stopped": [], "unconfirmed": []}
    refused = [e for e in client.get("/api/audit", headers=headers).json() if e["action"] == "refused"]
    assert {e["actor"] for e in refused} == {"pat", "tech"}
    verify = client.get("/api/audit/verify", headers=headers).json()
    assert verify["ok"] is True and verify["entries"] > 10


def test_bad_input_is_a_clear_4xx(app: tuple[TestClient, Service]) -> None:
    client, service = app
    headers = admin(client, service)
    assert client.post("/api/users", json={"name": "bad name!", "role": "practitioner", "pin": "1234"}, headers=headers).status_code == 422
    assert client.post("/api/users", json={"name": "ok", "role": "wizard", "pin": "1234"}, headers=headers).status_code == 422
    assert client.post("/api/users", json={"name": "ok", "role": "admin", "pin": "12ab"}, headers=headers).status_code == 422
    assert client.post("/api/login", json={"user": "", "pin": "1"}).status_code == 422
    assert client.post("/api/login", content=b"\xff\xfe").status_code == 422


def test_websocket_needs_a_token_and_streams(app: tuple[TestClient, Service]) -> None:
    client, service = app
    headers = admin(client, service)
    with pytest.raises(WebSocketDisconnect):
        with client.websocket_connect("/ws?token=nope") as ws:
            ws.receive_json()
    token = headers["Authorization"].split()[1]
    with client.websocket_connect(f"/ws?token={token}") as ws:
        assert ws.receive_json()["type"] == "hello"
        service.hub.publish({"type": "event", "device": "laser", "event": {"kind": "PULSE"}})
        assert ws.receive_json()["event"]["kind"] == "PULSE"


def test_openapi_schema_lists_the_api(app: tuple[TestClient, Service]) -> None:
    client, _ = app
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/login", "/api/sessions", "/api/stop", "/api/sessions/{session_id}/arm"} <= set(paths)
