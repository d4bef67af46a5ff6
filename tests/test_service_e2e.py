"""The service end to end: real processes (bench + service), httpx against the API."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.service_harness import (
    ALL_CHECKED,
    Api,
    BenchProcess,
    ServiceProcess,
    laser_session,
    measured_calibration,
    ready,
    running_system,
    set_up_users,
)


@pytest.fixture
def system(tmp_path: Path) -> Iterator[tuple[BenchProcess, ServiceProcess, Api, Api, Api]]:
    with running_system(tmp_path) as running:
        yield running


def test_whole_laser_session(system) -> None:  # type: ignore[no-untyped-def]
    bench, service, admin, practitioner, technician = system
    sid = laser_session(practitioner)
    plan = practitioner.call("GET", f"/api/sessions/{sid}")["plan"]
    assert plan["wavelength_nm"] == 1064 and plan["pulse_budget"] == 5
    practitioner.call("POST", f"/api/sessions/{sid}/start")
    refused = practitioner.call("POST", f"/api/sessions/{sid}/arm", 409)
    assert "identity" in refused["error"] and refused["hazard"] == "H07"
    session = practitioner.call("PUT", f"/api/sessions/{sid}/checklist", json=ALL_CHECKED)
    assert session["open_items"] == []
    ready(practitioner, sid)
    device = bench.laser("truth")
    assert device["state"] == "READY"
    bench.laser("set_input", name="foot", value=1)
    session = practitioner.wait(f"/api/sessions/{sid}", lambda s: s["pulses_recorded"] == 5)
    bench.laser("set_input", name="foot", value=0)
    time.sleep(0.5)
    session = practitioner.call("GET", f"/api/sessions/{sid}")
    assert session["pulses_recorded"] == 5 and session["live"]["remaining"] == 0
    assert bench.laser("truth")["count"] == 5 and bench.laser("truth")["state"] == "STANDBY"
    refused = practitioner.call("POST", f"/api/sessions/{sid}/arm", 409)
    assert "budget" in refused["error"]
    ended = practitioner.call("POST", f"/api/sessions/{sid}/end")
    assert ended["state"] == "ended" and any("2 weeks" in line for line in ended["aftercare"])
    assert admin.call("GET", "/api/audit/verify")["ok"] is True
    actions = [e["action"] for e in admin.call("GET", "/api/audit")]
    assert {"session.started", "arm", "arm.refused", "session.ended", "calibration.recorded", "login"} <= set(actions)


def test_whole_cryo_session(system) -> None:  # type: ignore[no-untyped-def]
    bench, service, admin, practitioner, technician = system
    patient = practitioner.call("POST", "/api/patients", 201)["patient_id"]
    sid = practitioner.call("POST", "/api/sessions", 201, json={
        "patient_id": patient, "device": "cryo", "indication": "age_wart", "skin_type": 2, "area_cm2": 0.5, "site": "back",
    })["id"]
    practitioner.call("PUT", f"/api/sessions/{sid}/checklist", json=ALL_CHECKED)
    practitioner.call("POST", f"/api/sessions/{sid}/start")
    assert bench.cryo("executed")[-3:] == ["TARGET -50", "THAWMIN 20", "LIMIT FREEZE 15.0"]
    practitioner.call("POST", f"/api/sessions/{sid}/freeze", json={"seconds": 3.0})
    session = practitioner.wait(f"/api/sessions/{sid}", lambda s: len(s["freezes"]) == 1, timeout=8)
    assert session["freezes"][0]["cause"] == "timeout"
    assert session["freezes"][0]["dur_s"] == pytest.approx(3.0, abs=0.05)
    refused = practitioner.call("POST", f"/api/sessions/{sid}/freeze", 409, json={"seconds": 3.0})
    assert "cycles" in refused["error"]  # one cycle for an age wart
    ended = practitioner.call("POST", f"/api/sessions/{sid}/end")
    assert any("Scales fall off" in line for line in ended["aftercare"])
    assert bench.cryo("truth")["valve_open"] is False


def test_refusals(system) -> None:  # type: ignore[no-untyped-def]
    bench, service, admin, practitioner, technician = system
    sid = laser_session(practitioner)
    practitioner.call("PUT", f"/api/sessions/{sid}/checklist", json=ALL_CHECKED)
    over = practitioner.call("POST", f"/api/sessions/{sid}/edit", 422, json={"pulse_budget": 9999})
    assert "pulse budget" in over["error"]
    hot = practitioner.call("POST", f"/api/sessions/{sid}/edit", 422, json={"energy_mj": 900})
    assert "fluence cap" in hot["error"]
    patient = practitioner.call("POST", "/api/patients", 201)["patient_id"]
    green = practitioner.call("POST", "/api/sessions", 422, json={
        "patient_id": patient, "device": "laser", "indication": "tattoo", "skin_type": 2, "area_cm2": 2, "site": "arm",
        "inks": ["green"]})
    assert "no suitable wavelength" in green["error"]
    large = practitioner.call("POST", "/api/sessions", 422, json={
        "patient_id": patient, "device": "cryo", "indication": "age_pigmentation", "skin_type": 2, "area_cm2": 30, "site": "arm"})
    assert "small areas" in large["error"]
    practitioner.call("POST", f"/api/sessions/{sid}/start")
    assert "practitioner" in technician.call("POST", f"/api/sessions/{sid}/arm", 403)["error"]
    technician.call("POST", "/api/users", 403, json={"name": "y", "role": "admin", "pin": "1234"})
    practitioner.call("POST", "/api/calibrations/measured", 403, json=measured_calibration("laser", "X"))
    technician.call("POST", "/api/calibrations", 405, json={"device_serial": "X", "device_kind": "laser", "passed": True,
                                                           "results": {"gain": 1.0}})  # a verdict is never typed in
    # STOP is accepted from every role
    for api in (admin, practitioner, technician):
        assert api.call("POST", "/api/stop", json={"origin": "test"})["stopped"] == ["laser", "cryo"]
    assert httpx.get(f"{service.url}/api/devices").status_code == 401
    # STOP needs no login from the treatment-room screen (this test's client is on loopback, a kiosk)
    assert httpx.post(f"{service.url}/api/stop").status_code == 200
    # clear 4xx for bad input, never 5xx
    assert practitioner.client.post("/api/sessions", json={"patient_id": patient}).status_code == 422
    assert practitioner.client.post("/api/sessions", content=b"{not json").status_code == 422
    assert practitioner.client.post(f"/api/sessions/{sid}/freeze", json={"seconds": -1}).status_code == 422
    assert practitioner.client.get("/api/sessions/999999").status_code == 404


def test_interlock_mid_treatment_stops_and_nothing_rearms(system) -> None:  # type: ignore[no-untyped-def]
    bench, service, admin, practitioner, technician = system
    sid = laser_session(practitioner, budget=30)
    practitioner.call("PUT", f"/api/sessions/{sid}/checklist", json=ALL_CHECKED)
    practitioner.call("POST", f"/api/sessions/{sid}/start")
    ready(practitioner, sid)
    bench.laser("set_input", name="foot", value=1)
    practitioner.wait(f"/api/sessions/{sid}", lambda s: s["pulses_recorded"] >= 3)
    bench.laser("set_input", name="interlock", value=0)
    session = practitioner.wait(f"/api/sessions/{sid}", lambda s: not s["live"]["armed"])
    assert bench.laser("truth")["shutter_open"] is False
    bench.laser("set_input", name="interlock", value=1)
    fired = practitioner.call("GET", f"/api/sessions/{sid}")["pulses_recorded"]
    time.sleep(1.5)
    session = practitioner.call("GET", f"/api/sessions/{sid}")
    assert session["pulses_recorded"] == fired and session["live"]["state"] == "STANDBY" and not session["live"]["armed"]
    bench.laser("set_input", name="foot", value=0)
    ready(practitioner, sid)  # a practitioner's new request arms again
    practitioner.call("POST", "/api/stop")


def test_simulator_reboot_pauses_and_reprograms(system) -> None:  # type: ignore[no-untyped-def]
    bench, service, admin, practitioner, technician = system
    sid = laser_session(practitioner, budget=10)
    practitioner.call("PUT", f"/api/sessions/{sid}/checklist", json=ALL_CHECKED)
    practitioner.call("POST", f"/api/sessions/{sid}/start")
    ready(practitioner, sid)
    bench.laser("set_input", name="foot", value=1)
    practitioner.wait(f"/api/sessions/{sid}", lambda s: s["pulses_recorded"] >= 2)
    bench.laser("set_input", name="foot", value=0)
    fired = practitioner.call("GET", f"/api/sessions/{sid}")["pulses_recorded"]
    bench.laser("power_cycle")
    session = practitioner.wait(f"/api/sessions/{sid}", lambda s: s["live"]["paused"])
    assert "restarted" in session["live"]["paused"]
    assert "paused" in practitioner.call("POST", f"/api/sessions/{sid}/arm", 409)["error"]
    time.sleep(1.0)
    assert bench.laser("truth")["state"] == "STANDBY"
    executed = bench.laser("executed")
    assert f"LIMIT PULSES {10 - fired}" in executed  # the remaining budget, programmed again
    practitioner.call("POST", f"/api/sessions/{sid}/reconfirm")
    assert bench.laser("truth")["state"] == "STANDBY"  # re-confirming does not arm
    ready(practitioner, sid)
    practitioner.call("POST", "/api/stop")


def test_kill9_device_safe_session_interrupted_audit_clean(tmp_path: Path) -> None:
    bench = BenchProcess(tmp_path)
    service = ServiceProcess(tmp_path, bench).start(users=True)
    try:
        admin, practitioner, technician = set_up_users(service, bench)
        sid = laser_session(practitioner, budget=200, area_cm2=20.0)
        practitioner.call("PUT", f"/api/sessions/{sid}/checklist", json=ALL_CHECKED)
        practitioner.call("POST", f"/api/sessions/{sid}/start")
        ready(practitioner, sid)
        bench.laser("set_input", name="foot", value=1)
        practitioner.wait(f"/api/sessions/{sid}", lambda s: s["pulses_recorded"] >= 3)
        assert bench.laser("truth")["emitting"] is True
        confirmed = practitioner.call("GET", f"/api/sessions/{sid}")["pulses_recorded"]
        service.kill9()
        truth = bench.laser("truth")
        deadline = time.monotonic() + 10
        while (truth["emitting"] or not truth["watchdog_fired_at"]) and time.monotonic() < deadline:
            time.sleep(0.05)
            truth = bench.laser("truth")
        assert truth["emitting"] is False and truth["shutter_open"] is False
        # the unit's own record, not the observer's clock: its watchdog fired 1000 ms after the
        # last request it heard, and no pulse came after that
        fired = truth["watchdog_fired_at"][-1]
        assert abs(fired - (truth["last_valid_request_at"] + 1.0)) < 1e-6
        assert all(truth["boot_time"] + p["t_ms"] / 1000 <= fired + 1e-3 for p in truth["pulses"])
        bench.laser("set_input", name="foot", value=0)
        service.start()
        assert any(f"interrupted by the last stop: [{sid}]" in line for line in service.output)
        practitioner = Api(service.url, "pat", "4827")
        session = practitioner.call("GET", f"/api/sessions/{sid}")
        assert session["state"] == "interrupted"
        assert session["pulses_recorded"] >= confirmed  # no confirmed record lost
        time.sleep(1.0)
        assert bench.laser("truth")["state"] == "STANDBY"  # nothing re-armed
        executed = bench.laser("executed")
        since_restart = executed[len(executed) - 1 - executed[::-1].index("IDN?"):]  # IDN? opens every link-up
        assert "LIMIT PULSES 0" in since_restart  # fail-safe limits on start
        service.stop()
        result = subprocess.run([sys.executable, "-m", "devicectl.cli", "audit", "verify", "--data-dir", str(service.data_dir)],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0 and "intact" in result.stdout
    finally:
        service.stop()
        bench.stop()


def test_audit_tampering_is_detected(system) -> None:  # type: ignore[no-untyped-def]
    bench, service, admin, practitioner, technician = system
    service.stop()
    db = service.data_dir / "devicectl.sqlite3"

    def audit_verify() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "devicectl.cli", "audit", "verify", "--data-dir", str(service.data_dir)],
                              capture_output=True, text=True, timeout=30)

    assert audit_verify().returncode == 0
    conn = sqlite3.connect(db)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit SET actor = 'mallory' WHERE id = 3")
    original = conn.execute("SELECT actor FROM audit WHERE id = 3").fetchone()[0]
    conn.execute("DROP TRIGGER audit_no_update")  # someone with file access goes around the triggers
    conn.execute("UPDATE audit SET actor = 'mallory' WHERE id = 3")
    conn.commit()
    result = audit_verify()
    assert result.returncode == 1 and "entry 3" in result.stderr and "changed" in result.stderr
    conn.execute("UPDATE audit SET actor = ? WHERE id = 3", (original,))
    conn.commit()
    conn.execute("DROP TRIGGER audit_no_delete")
    conn.execute("DELETE FROM audit WHERE id = 5")
    conn.commit()
    result = audit_verify()
    assert result.returncode == 1 and "entry 5 is missing" in result.stderr
    conn.close()


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[devices]]\nname = "laser"\ntype = "plasma"\nport = "/dev/null"\n')
    result = subprocess.run([sys.executable, "-m", "devicectl.cli", "serve", "--config", str(config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "devices.0.type" in result.stderr
    config.write_text("http_port = 'eighty'\n")
    result = subprocess.run([sys.executable, "-m", "devicectl.cli", "serve", "--config", str(config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "http_port" in result.stderr


def test_serve_simulate_is_what_make_run_starts(tmp_path: Path) -> None:
    import os
    import signal

    from tests.service_harness import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "devicectl.cli", "serve", "--simulate", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        lines = []
        while not any("log in" in line for line in lines):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        text = "".join(lines)
        assert f"http://127.0.0.1:{port}" in text and "device laser" in text and "device cryo" in text
        pin = text.split("one-time PIN ")[1].split()[0]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            health = httpx.get(f"http://127.0.0.1:{port}/api/health").json()
            if all(health["devices"].values()):
                break
            time.sleep(0.1)
        assert health["devices"] == {"laser": True, "cryo": True}
        admin = Api(f"http://127.0.0.1:{port}", "admin", pin)
        admin.call("POST", "/api/me/pin", json={"old_pin": pin, "new_pin": "902137"})  # nothing else before that
        calibrations = admin.call("GET", "/api/calibrations")
        assert {c["device_kind"] for c in calibrations} == {"laser", "cryo"}  # the units' factory records
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    sim_dir = tmp_path / "data" / "sim"
    time.sleep(0.5)
    assert not (sim_dir / "laser").exists()  # the bench went down with the service
