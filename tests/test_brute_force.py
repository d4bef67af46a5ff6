"""PIN guessing: slowed per client (429 + Retry-After), locked per user and client (a stranger
cannot lock staff out), PIN change counted like login, one-time PINs that work once, no trivial PINs."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from devicectl.core.config import load_settings
from devicectl.core.guard import weak_pin
from devicectl.core.service import Service
from devicectl.web.api import create_app


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, Service, Clock]]:
    service = Service(load_settings(None, data_dir=tmp_path))
    clock = Clock()
    service.accounts.guard.clock = clock
    with TestClient(create_app(service)) as client:
        yield client, service, clock


def from_address(client: TestClient, host: str) -> None:
    client._transport.client = (host, 50000)  # type: ignore[attr-defined]


def log_in(client: TestClient, name: str, pin: str) -> dict[str, str]:
    answer = client.post("/api/login", json={"user": name, "pin": pin})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def admin(client: TestClient, service: Service) -> dict[str, str]:
    headers = log_in(client, "admin", service.first_admin_pin or "")
    assert client.post("/api/me/pin", json={"old_pin": service.first_admin_pin, "new_pin": "480913"},
                       headers=headers).status_code == 200
    return headers


def practitioner(client: TestClient, admin_headers: dict[str, str], pin: str = "4827") -> None:
    assert client.post("/api/users", json={"name": "pat", "role": "practitioner", "pin": "583920"},
                       headers=admin_headers).status_code == 201
    headers = log_in(client, "pat", "583920")
    assert client.post("/api/me/pin", json={"old_pin": "583920", "new_pin": pin}, headers=headers).status_code == 200


def test_a_stranger_cannot_lock_staff_out(app: tuple[TestClient, Service, Clock]) -> None:
    client, service, clock = app
    admin_headers = admin(client, service)
    practitioner(client, admin_headers)
    from_address(client, "10.0.0.66")  # the reception PC, someone guessing
    codes = []
    for _ in range(7):
        codes.append(client.post("/api/login", json={"user": "pat", "pin": "9183"}).status_code)
        clock.now += 60  # waiting out the address's delays: the user's lock-out (15 minutes) holds
    assert codes[:4] == [401] * 4 and codes[4:] == [423] * 3
    from_address(client, "10.0.0.20")  # the treatment-room screen: pat logs in as ever
    log_in(client, "pat", "4827")
    users = {u["name"]: u for u in client.get("/api/users", headers=admin_headers).json()}
    assert not users["pat"]["locked"] and [lock["client"] for lock in users["pat"]["locked_from"]] == ["10.0.0.66"]
    assert 0 < users["pat"]["locked_from"][0]["seconds_left"] <= 15 * 60  # the admin sees where from, and how long
    assert client.post("/api/users/pat/unlock", headers=admin_headers).status_code == 200
    assert client.get("/api/users", headers=admin_headers).json()[-1]["locked_from"] == []


def test_guessing_from_one_address_is_slowed_with_retry_after(app: tuple[TestClient, Service, Clock]) -> None:
    client, service, clock = app
    from_address(client, "10.0.0.66")
    for attempt in range(5):  # a different name each time: spraying PINs over users
        assert client.post("/api/login", json={"user": f"user{attempt}", "pin": "9183"}).status_code == 401
    waits = []
    for attempt in range(5, 10):
        refused = client.post("/api/login", json={"user": "admin", "pin": service.first_admin_pin})
        assert refused.status_code == 429  # even the right PIN is not tried before the delay ends
        waits.append(int(refused.headers["Retry-After"]))
        clock.now += waits[-1]
        assert client.post("/api/login", json={"user": f"user{attempt}", "pin": "9183"}).status_code == 401
    assert waits == sorted(waits) and waits[-1] >= 8 * waits[0]  # growing delays
    from_address(client, "10.0.0.20")  # another screen is not slowed
    log_in(client, "admin", service.first_admin_pin or "")


def test_pin_change_counts_failures_like_login(app: tuple[TestClient, Service, Clock]) -> None:
    client, service, clock = app
    headers = admin(client, service)  # a stolen token of a logged-in admin
    codes = [client.post("/api/me/pin", json={"old_pin": f"{918273 + i}", "new_pin": "615243"},
                         headers=headers).status_code for i in range(7)]
    assert codes == [403] * 4 + [423] * 3
    assert client.post("/api/me/pin", json={"old_pin": "480913", "new_pin": "615243"}, headers=headers).status_code == 423


def test_one_time_pins_work_once_and_new_users_choose_their_own(app: tuple[TestClient, Service, Clock]) -> None:
    client, service, clock = app
    pin = service.first_admin_pin or ""
    first = log_in(client, "admin", pin)
    assert client.post("/api/login", json={"user": "admin", "pin": pin}).status_code == 401  # truly one-time
    assert client.post("/api/me/pin", json={"old_pin": pin, "new_pin": "480913"}, headers=first).status_code == 200
    assert client.post("/api/users", json={"name": "pat", "role": "practitioner", "pin": "583920"},
                       headers=first).status_code == 201
    pat = client.post("/api/login", json={"user": "pat", "pin": "583920"}).json()
    assert pat["must_change_pin"] is True
    pat_headers = {"Authorization": f"Bearer {pat['token']}"}
    assert client.post("/api/patients", headers=pat_headers).status_code == 403  # their own PIN first
    assert client.post("/api/login", json={"user": "pat", "pin": "583920"}).status_code == 401
    assert client.post("/api/me/pin", json={"old_pin": "583920", "new_pin": "4827"}, headers=pat_headers).status_code == 200
    assert client.post("/api/patients", headers=pat_headers).status_code == 201
    log_in(client, "pat", "4827")


def test_trivial_pins_are_refused(app: tuple[TestClient, Service, Clock]) -> None:
    client, service, clock = app
    pin = service.first_admin_pin or ""
    headers = log_in(client, "admin", pin)
    for weak in ("111111", "123456", "987654", "890123", pin, "48091"):  # the last: admins need 6 digits
        answer = client.post("/api/me/pin", json={"old_pin": pin, "new_pin": weak}, headers=headers)
        assert answer.status_code == 422, weak
    assert client.post("/api/me/pin", json={"old_pin": pin, "new_pin": "480913"}, headers=headers).status_code == 200
    for weak in ("1111", "1234", "4321", "0000"):
        answer = client.post("/api/users", json={"name": "pat", "role": "practitioner", "pin": weak}, headers=headers)
        assert answer.status_code == 422 and "guessed first" in answer.json()["error"], weak
    assert client.post("/api/users", json={"name": "boss", "role": "admin", "pin": "4827"}, headers=headers).status_code == 422
    assert weak_pin("4827", "practitioner") is None and weak_pin("4827", "admin") is not None
