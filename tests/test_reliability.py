"""Reliability under faults, bounded in time: the service killed mid-freeze, a device unplugged
mid-treatment. (Mid-emission kill: tests/test_service_e2e.py.)"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.service_harness import (
    ALL_CHECKED,
    Api,
    BenchProcess,
    ServiceProcess,
    laser_session,
    ready,
    set_up_users,
)


def cryo_session(api: Api) -> int:
    patient = api.call("POST", "/api/patients", 201)["patient_id"]
    sid = api.call("POST", "/api/sessions", 201, json={
        "patient_id": patient, "device": "cryo", "indication": "scar", "skin_type": 2, "area_cm2": 1.0, "site": "chest"})["id"]
    api.call("PUT", f"/api/sessions/{sid}/checklist", json=ALL_CHECKED)
    api.call("POST", f"/api/sessions/{sid}/start")
    return sid


def test_kill9_mid_freeze(tmp_path: Path) -> None:
    bench = BenchProcess(tmp_path)
    service = ServiceProcess(tmp_path, bench).start(users=True)
    try:
        _, practitioner, _ = set_up_users(service, bench)
        sid = cryo_session(practitioner)
        practitioner.call("POST", f"/api/sessions/{sid}/freeze", json={"seconds": 20.0})
        time.sleep(1.5)
        assert bench.cryo("truth")["state"] == "FREEZING"
        service.kill9()
        killed = time.monotonic()
        while bench.cryo("truth")["state"] == "FREEZING" and time.monotonic() - killed < 3:
            time.sleep(0.05)
        truth = bench.cryo("truth")
        assert truth["state"] == "THAW" and truth["valve_cmd"] is False
        assert time.monotonic() - killed < 1.6  # the unit's own 1000 ms watchdog ended the freeze
        assert truth["freezes"][-1]["cause"] == "wdt"
        executed_before = len(bench.cryo("executed"))
        service.start()
        practitioner = Api(service.url, "pat", "4827")
        assert practitioner.call("GET", f"/api/sessions/{sid}")["state"] == "interrupted"
        time.sleep(1.0)
        assert bench.cryo("truth")["state"] in ("THAW", "IDLE")  # nothing froze again
        since = bench.cryo("executed")[executed_before:]
        assert "STOP" in since and not any(c.startswith("FREEZE") for c in since)
        service.stop()
        verify = subprocess.run([sys.executable, "-m", "devicectl.cli", "audit", "verify", "--data-dir", str(service.data_dir)],
                                capture_output=True, text=True, timeout=30)
        assert verify.returncode == 0, verify.stderr
    finally:
        service.stop()
        bench.stop()


def test_device_unplugged_and_replugged_mid_treatment(tmp_path: Path) -> None:
    bench = BenchProcess(tmp_path)
    service = ServiceProcess(tmp_path, bench).start(users=True)
    try:
        _, practitioner, _ = set_up_users(service, bench)
        sid = laser_session(practitioner, budget=34)  # the whole budget of 2 cm2
        practitioner.call("PUT", f"/api/sessions/{sid}/checklist", json=ALL_CHECKED)
        practitioner.call("POST", f"/api/sessions/{sid}/start")
        ready(practitioner, sid)
        bench.laser("set_input", name="foot", value=1)
        practitioner.wait(f"/api/sessions/{sid}", lambda s: s["pulses_recorded"] >= 2)
        bench.laser("unplug")
        session = practitioner.wait(f"/api/sessions/{sid}", lambda s: not s["live"]["connected"])
        assert not session["live"]["armed"] and session["live"]["paused"]
        time.sleep(1.3)
        assert bench.laser("truth")["emitting"] is False  # no heartbeat reaches it: its watchdog stopped it
        bench.laser("set_input", name="foot", value=0)
        bench.laser("replug")
        session = practitioner.wait(f"/api/sessions/{sid}", lambda s: s["live"]["connected"], timeout=10)
        paused = session["live"]["paused"]
        assert paused and ("reconnected" in paused or "lost" in paused)
        # the pulses the unit fired until its watchdog stopped it were never seen: they are read
        # from the unit's own counter, counted against the budget, recorded, and they lock
        fired = bench.laser("truth")["total"]  # the unit's lifetime count: this bench fired only here
        session = practitioner.wait(f"/api/sessions/{sid}", lambda s: s["pulses_recorded"] == fired)
        assert session["live"]["pulses"] == fired
        if session["pulses_not_seen"]:
            assert "did not see" in session["live"]["locked"]
            assert "locked" in practitioner.call("POST", f"/api/sessions/{sid}/arm", 409)["error"]
            practitioner.call("POST", f"/api/sessions/{sid}/acknowledge")
        assert "paused" in practitioner.call("POST", f"/api/sessions/{sid}/arm", 409)["error"]
        time.sleep(1.0)
        assert bench.laser("truth")["state"] == "STANDBY"  # nothing re-armed by itself
        practitioner.call("POST", f"/api/sessions/{sid}/reconfirm")
        ready(practitioner, sid)
        practitioner.call("POST", "/api/stop")
    finally:
        service.stop()
        bench.stop()
