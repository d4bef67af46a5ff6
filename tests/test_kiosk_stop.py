"""STOP from the treatment-room screen needs no login; from anywhere else it needs a token."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fastapi.testclient import TestClient

from devicectl.core.config import load_settings
from devicectl.core.service import Service
from devicectl.web.api import create_app
from devicectl.web.kiosk import KIOSK_STOPS_PER_WINDOW, KioskStopGate


def test_a_kiosk_stops_without_a_token_or_with_an_expired_one_and_is_audited(tmp_path: Path) -> None:
    service = Service(load_settings(None, data_dir=tmp_path, kiosk_addresses=["testclient"]))
    with TestClient(create_app(service)) as client:
        answer = client.post("/api/stop", json={"origin": "screen"})
        assert answer.status_code == 200 and answer.json() == {"stopped": [], "unconfirmed": []}
        expired = client.post("/api/stop", json={"origin": "screen"}, headers={"Authorization": "Bearer stale"})
        assert expired.status_code == 200
    db = sqlite3.connect(tmp_path / "devicectl.sqlite3")  # the service has stopped: everything committed
    actors = [row[0] for row in db.execute("SELECT actor FROM audit WHERE action = 'stop'")]
    db.close()
    assert actors == ["kiosk@testclient", "kiosk@testclient"]


def test_elsewhere_stop_needs_a_token(tmp_path: Path) -> None:
    service = Service(load_settings(None, data_dir=tmp_path))  # kiosks: loopback only
    with TestClient(create_app(service)) as client:  # the test client is not on loopback
        assert client.post("/api/stop", json={"origin": "screen"}).status_code == 401
        token = client.post("/api/login", json={"user": "admin", "pin": service.first_admin_pin}).json()["token"]
        answer = client.post("/api/stop", json={"origin": "screen"}, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200  # any valid token; never a PIN change first


def test_a_flood_of_tokenless_stops_is_answered_429_without_queueing(tmp_path: Path) -> None:
    service = Service(load_settings(None, data_dir=tmp_path, kiosk_addresses=["testclient"]))
    with TestClient(create_app(service)) as client:
        codes = [client.post("/api/stop").status_code for _ in range(KIOSK_STOPS_PER_WINDOW + 3)]
    assert codes[:1] == [200] and 429 in codes


def test_the_gate_counts_per_address_within_its_window() -> None:
    now = [0.0]
    gate = KioskStopGate(["10.1.1.5"], clock=lambda: now[0])
    assert gate.is_kiosk("10.1.1.5") and not gate.is_kiosk("10.1.1.6") and not gate.is_kiosk(None)
    assert all(gate.allow("10.1.1.5") for _ in range(KIOSK_STOPS_PER_WINDOW))
    assert not gate.allow("10.1.1.5") and gate.allow("10.1.1.7")
    now[0] = 1.5
    assert gate.allow("10.1.1.5")
