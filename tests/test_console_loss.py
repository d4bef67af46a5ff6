"""A laser armed from a screen is stopped when that screen goes away (its WebSocket closes, its
login ends or expires); a cryo freeze runs to its programmed end; every other screen is told."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest
from websockets.sync.client import ClientConnection, connect

from devicectl.core.auth import User
from devicectl.core.consoles import Consoles
from devicectl.core.hub import Hub
from tests.service_harness import (
    ALL_CHECKED,
    Api,
    BenchProcess,
    ServiceProcess,
    laser_session,
    ready,
    running_system,
)


@pytest.fixture
def system(tmp_path: Path) -> Iterator[tuple[BenchProcess, ServiceProcess, Api, Api, Api]]:
    with running_system(tmp_path) as running:
        yield running


def console(service: ServiceProcess, api: Api) -> ClientConnection:
    # max_queue=None: the client keeps reading what the service sends while the test does not look
    # (as a browser does); a full queue would stall the service's writes and with them the close handshake
    ws = connect(f"ws://127.0.0.1:{service.port}/ws?token={api.token}", open_timeout=10, legacy=True, max_queue=None)
    assert json.loads(ws.recv(timeout=10))["type"] == "hello"
    return ws


def until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.05)


def next_message(ws: ClientConnection, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if message["type"] == kind:
            return message


def stops(admin: Api) -> list[dict[str, Any]]:
    return [e for e in admin.call("GET", "/api/audit") if e["action"] == "stop"]


def test_closing_the_arming_screen_stops_the_laser_and_tells_the_other_screens(system) -> None:  # type: ignore[no-untyped-def]
    bench, service, admin, practitioner, technician = system
    sid = laser_session(practitioner)
    practitioner.call("POST", f"/api/sessions/{sid}/start")
    practitioner.call("PUT", f"/api/sessions/{sid}/checklist", json=ALL_CHECKED)
    screen, front_desk = console(service, practitioner), console(service, admin)
    ready(practitioner, sid)
    assert bench.laser("truth")["state"] == "READY"
    screen.close()  # the treatment screen is reloaded or closed: nobody holds the laser any more
    until(lambda: bench.laser("truth")["state"] != "READY")
    lost = next_message(front_desk, "console_lost")
    assert lost["user"] == "pat" and lost["stopped"] == ["laser"] and "screen closed" in lost["reason"]
    session = practitioner.wait(f"/api/sessions/{sid}", lambda s: not s["live"]["armed"])
    bench.laser("set_input", name="foot", value=1)  # the footswitch fires nothing now
    time.sleep(0.5)
    bench.laser("set_input", name="foot", value=0)
    assert bench.laser("truth")["count"] == 0 and session["pulses_recorded"] == 0
    until(lambda: any("console lost" in e["detail"]["origin"] for e in stops(admin)))  # recorded once verified
    screen = console(service, practitioner)  # a reload re-arms nothing: the practitioner arms again
    assert practitioner.call("GET", f"/api/sessions/{sid}")["live"]["armed"] is False
    ready(practitioner, sid)
    screen.close()
    front_desk.close()


def test_a_second_screen_of_the_same_login_keeps_the_arm_and_logout_stops(system) -> None:  # type: ignore[no-untyped-def]
    bench, service, admin, practitioner, technician = system
    sid = laser_session(practitioner)
    practitioner.call("POST", f"/api/sessions/{sid}/start")
    practitioner.call("PUT", f"/api/sessions/{sid}/checklist", json=ALL_CHECKED)
    first, second = console(service, practitioner), console(service, practitioner)
    ready(practitioner, sid)
    first.close()  # the login's other screen is still open
    time.sleep(0.5)
    assert bench.laser("truth")["state"] == "READY"
    practitioner.call("POST", "/api/logout")  # the login ends while armed: STOP
    until(lambda: bench.laser("truth")["state"] != "READY")
    until(lambda: any("logged out" in e["detail"]["origin"] for e in stops(admin)))  # recorded once verified
    second.close()


def test_a_freeze_runs_to_its_programmed_end_when_its_screen_closes(system) -> None:  # type: ignore[no-untyped-def]
    bench, service, admin, practitioner, technician = system
    patient = practitioner.call("POST", "/api/patients", 201)["patient_id"]
    sid = practitioner.call("POST", "/api/sessions", 201, json={
        "patient_id": patient, "device": "cryo", "indication": "age_wart", "skin_type": 2, "area_cm2": 0.5, "site": "back",
    })["id"]
    practitioner.call("PUT", f"/api/sessions/{sid}/checklist", json=ALL_CHECKED)
    practitioner.call("POST", f"/api/sessions/{sid}/start")
    screen, front_desk = console(service, practitioner), console(service, admin)
    practitioner.call("POST", f"/api/sessions/{sid}/freeze", json={"seconds": 3.0})
    screen.close()
    lost = next_message(front_desk, "console_lost")
    assert lost["freezing"] == ["cryo"] and lost["stopped"] == [] and "programmed end" in lost["message"]
    session = practitioner.wait(f"/api/sessions/{sid}", lambda s: len(s["freezes"]) == 1, timeout=10)
    assert session["freezes"][0]["cause"] == "timeout"  # the unit's timer ended it, not a STOP
    assert session["freezes"][0]["dur_s"] == pytest.approx(3.0, abs=0.05)
    front_desk.close()


def test_an_arm_whose_login_expires_is_stopped() -> None:
    """In process, with a kernel that says armed: the token's expiry STOPs the laser it armed."""
    stopped: list[tuple[str, str, str | None]] = []

    async def stop(user: User, origin: str, device: str | None = None) -> dict[str, list[str]]:
        stopped.append((user.name, origin, device))
        return {"stopped": [device or ""], "unconfirmed": []}

    async def scenario() -> dict[str, Any]:
        laser = SimpleNamespace(config=SimpleNamespace(type="laser"), kernel=SimpleNamespace(armed=True))
        hub = Hub()
        queue = hub.subscribe()

        async def token_expiry(token: str) -> float:
            return time.time() + 0.2

        service = SimpleNamespace(supervisors={"laser": laser}, hub=hub, sessions=SimpleNamespace(stop=stop),
                                  accounts=SimpleNamespace(token_expiry=token_expiry))
        consoles = Consoles(service)  # type: ignore[arg-type]
        await consoles.arming("tok", User(2, "pat", "practitioner", False), "laser")
        message = await asyncio.wait_for(queue.get(), 5)
        await consoles.close()
        return message

    message = asyncio.run(scenario())
    assert stopped == [("pat", "console lost (its login expired)", "laser")]
    assert message["type"] == "console_lost" and message["stopped"] == ["laser"]
