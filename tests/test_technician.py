"""Technicians inside the running service: clearing a latched fault, service mode, calibration runs
through the service's own connection — against the simulated bench, service and bench as processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from devicectl.core.fault_clear import FAULTS
from tests.service_harness import (
    ADMIN_PIN,
    ALL_CHECKED,
    PAT_PIN,
    TECH_PIN,
    Api,
    BenchProcess,
    ServiceProcess,
    laser_session,
    running_system,
)


@pytest.fixture
def system(tmp_path: Path) -> Iterator[tuple[BenchProcess, ServiceProcess, Api, Api, Api]]:
    with running_system(tmp_path) as running:
        yield running


def audit_actions(admin: Api) -> list[dict[str, Any]]:
    return admin.call("GET", "/api/audit?limit=1000")


def test_every_icd_fault_has_words() -> None:
    assert sorted(FAULTS) == ["C01", "C02", "C03", "C04", "F01", "F02", "F03", "F04", "F05"]
    for advice in FAULTS.values():
        assert advice.cause.endswith(".") and "clear" in advice.what_to_do


def test_a_technician_clears_a_latched_fault_once_its_cause_is_gone(system) -> None:  # type: ignore[no-untyped-def]
    bench, service, admin, practitioner, technician = system
    bench.laser("inject_fault", code="F04")
    technician.wait("/api/devices", lambda ds: any(d["name"] == "laser" and d["fault"] for d in ds))

    seen_by_practitioner = practitioner.call("GET", "/api/devices/laser/fault")
    assert seen_by_practitioner["code"] == "F04" and "coolant" in seen_by_practitioner["cause"]
    assert seen_by_practitioner["advice"].startswith("Call a technician") and not seen_by_practitioner["can_clear"]
    refused = practitioner.call("POST", "/api/devices/laser/fault/clear", 403, json={"reason": "pressed it"})
    assert "Call a technician" in refused["error"]

    fault = technician.call("GET", "/api/devices/laser/fault")
    assert fault["can_clear"] and "Check the coolant level" in fault["what_to_do"]
    still = technician.call("POST", "/api/devices/laser/fault/clear", 409, json={"reason": "tried before the repair"})
    assert "still present" in still["error"] and "coolant" in still["error"]

    bench.laser("remove_fault_cause", code="F04")
    cleared = technician.call("POST", "/api/devices/laser/fault/clear",
                              json={"reason": "coolant hose was kinked; straightened and refilled"})
    assert cleared == cleared | {"cleared": "F04", "verified": True, "state": "STANDBY", "fault_after": None}
    assert "acknowledge" in cleared["next"]  # the service's own lock-out stays until acknowledged
    assert bench.laser("truth")["state"] == "STANDBY"
    assert technician.call("GET", "/api/devices/laser/fault")["active"] is False
    actions = [(e["action"], e["detail"]) for e in audit_actions(admin)]
    cleared_entry = next(json.loads(d) if isinstance(d, str) else d for a, d in actions if a == "fault.cleared")
    assert cleared_entry["code"] == "F04" and "kinked" in cleared_entry["reason"]
    assert any(a == "fault.clear.refused" for a, _ in actions)


def test_a_fault_is_not_cleared_under_a_session(system) -> None:  # type: ignore[no-untyped-def]
    bench, service, admin, practitioner, technician = system
    sid = laser_session(practitioner)
    practitioner.call("PUT", f"/api/sessions/{sid}/checklist", json=ALL_CHECKED)
    practitioner.call("POST", f"/api/sessions/{sid}/start")
    bench.cryo("inject_fault", code="C03")
    bench.laser("inject_fault", code="F03")
    technician.wait("/api/devices", lambda ds: any(d["name"] == "laser" and d["fault"] for d in ds))
    bench.laser("remove_fault_cause", code="F03")
    refused = technician.call("POST", "/api/devices/laser/fault/clear", 409, json={"reason": "head cooled down"})
    assert f"session {sid} is open" in refused["error"]
    assert bench.laser("truth")["state"] == "FAULT"
    # the cryo unit has no session: its fault clears once the cylinder is replaced
    technician.wait("/api/devices", lambda ds: any(d["name"] == "cryo" and d["fault"] for d in ds))
    bench.cryo("remove_fault_cause", code="C03")
    assert technician.call("POST", "/api/devices/cryo/fault/clear", json={"reason": "new cylinder"})["state"] == "IDLE"


def wait_run(api: Api, run_id: int, timeout: float = 90.0) -> dict[str, Any]:
    return api.wait(f"/api/calibration-runs/{run_id}", lambda r: r["state"] != "running", timeout=timeout)


def test_service_mode_keeps_sessions_out_and_a_laser_calibrates_through_the_service(system) -> None:  # type: ignore[no-untyped-def]
    bench, service, admin, practitioner, technician = system
    bench.laser("set_gain", gain=0.95)
    bench.laser("set_monitor_gain", gain=1.03)
    practitioner.call("PUT", "/api/devices/laser/service-mode", 403, json={"on": True})
    sid = laser_session(practitioner)
    practitioner.call("PUT", f"/api/sessions/{sid}/checklist", json=ALL_CHECKED)
    practitioner.call("POST", f"/api/sessions/{sid}/start")
    refused = technician.call("PUT", "/api/devices/laser/service-mode", 409, json={"on": True, "reason": "calibration"})
    assert f"session {sid} is open" in refused["error"]
    practitioner.call("POST", f"/api/sessions/{sid}/end")

    technician.call("POST", "/api/calibration-runs", 409, json={"device": "laser"})  # service mode first
    held = technician.call("PUT", "/api/devices/laser/service-mode", json={"on": True, "reason": "6-monthly calibration"})
    assert held["service_mode"] and held["technician"] == "tech"
    second = laser_session(practitioner)
    practitioner.call("PUT", f"/api/sessions/{second}/checklist", json=ALL_CHECKED)
    assert "service mode" in practitioner.call("POST", f"/api/sessions/{second}/start", 409)["error"]

    run = technician.call("POST", "/api/calibration-runs", 201,
                          json={"device": "laser", "setpoints": [300, 700], "pulses": 5, "rate": 10.0})
    seen_progress = {run["progress"]}
    deadline = time.monotonic() + 90
    while run["state"] == "running" and time.monotonic() < deadline:
        run = technician.call("GET", f"/api/calibration-runs/{run['id']}")
        seen_progress.add(run["progress"])
        time.sleep(0.1)
    assert run["state"] == "passed", run
    assert len({p for p in seen_progress if 0 < p < 1}) >= 3  # the bar advances per pulse, not per setpoint
    assert [p["set_mj"] for p in run["points"]] == [300, 700]
    assert run["result"]["gain"] == pytest.approx(0.95, abs=0.02)
    assert run["result"]["monitor_ratio"] == pytest.approx(1.03, abs=0.02)
    assert Path(run["certificate"]).exists()
    record = technician.call("GET", "/api/calibrations")[0]
    assert record["id"] == run["record_id"] and record["passed"] and record["technician"] == "tech"
    truth = bench.laser("truth")
    assert truth["state"] == "STANDBY" and truth["service"] is False
    # the service stayed connected all along, and its kernel neither stopped nor locked the procedure
    laser = next(d for d in technician.call("GET", "/api/devices") if d["name"] == "laser")
    assert laser["connected"] and not laser["locked"] and laser["service_mode"] == "tech"

    left = technician.call("PUT", "/api/devices/laser/service-mode", json={"on": False})
    assert not left["service_mode"] and left["stop_confirmed"]
    practitioner.call("POST", f"/api/sessions/{second}/start")
    actions = [e["action"] for e in audit_actions(admin)]
    assert {"service_mode.entered", "service_mode.left", "calibration.started", "calibration.recorded"} <= set(actions)
    # the run's work off the loop (instruments, the certificate, the record) ran on threads started
    # from the service loop after start-up: none of them behind it, where it would hold the devices'
    # loop at the GIL while it waits for a CPU behind the machine's other programs (H26)
    page = technician.client.get(f"/api/calibrations/{run['record_id']}/certificate.html")
    assert page.status_code == 200 and "Calibration certificate" in page.text
    assert technician.call("GET", "/api/calibrations/999999/certificate.html", 404)["error"] == "no calibration record 999999"
    nice = service.thread_nice()
    assert len(nice) >= 4 and set(nice.values()) == {nice[service.proc.pid]}, nice


def test_stop_cancels_a_run_and_a_cancelled_run_records_nothing(system) -> None:  # type: ignore[no-untyped-def]
    bench, service, admin, practitioner, technician = system
    technician.call("PUT", "/api/devices/laser/service-mode", json={"on": True})
    run = technician.call("POST", "/api/calibration-runs", 201,
                          json={"device": "laser", "setpoints": [200, 400, 600], "pulses": 20, "rate": 5.0})
    technician.wait(f"/api/calibration-runs/{run['id']}", lambda r: r["progress"] > 0.05, timeout=30)
    practitioner.call("POST", "/api/stop", json={"origin": "touchscreen"})  # STOP still stops a unit in service mode
    stopped = wait_run(technician, run["id"], timeout=30)
    assert stopped["state"] == "aborted" and "laser" in stopped["error"]["what"]
    assert bench.laser("truth")["state"] == "STANDBY"

    run = technician.call("POST", "/api/calibration-runs", 201,
                          json={"device": "laser", "setpoints": [200, 400, 600], "pulses": 20, "rate": 5.0})
    technician.wait(f"/api/calibration-runs/{run['id']}", lambda r: r["progress"] > 0.05, timeout=30)
    technician.call("POST", f"/api/calibration-runs/{run['id']}/cancel")
    assert wait_run(technician, run["id"], timeout=30)["state"] == "cancelled"
    truth = bench.laser("truth")
    assert truth["state"] == "STANDBY" and truth["service"] is False
    assert technician.call("GET", "/api/calibrations")[0]["technician"] != "tech" or \
        not any(r["technician"] == "tech" and r.get("certificate") for r in technician.call("GET", "/api/calibrations"))


def test_a_cryo_calibration_runs_through_the_service(system) -> None:  # type: ignore[no-untyped-def]
    bench, service, admin, practitioner, technician = system
    bench.cryo("set_sensor_offset", celsius=1.2)
    technician.call("PUT", "/api/devices/cryo/service-mode", json={"on": True})
    run = technician.call("POST", "/api/calibration-runs", 201, json={"device": "cryo", "targets": [-40], "freeze": 4.0})
    done = wait_run(technician, run["id"])
    assert done["state"] == "passed", done
    assert done["result"]["offset_c"] == pytest.approx(1.2, abs=0.3), done["result"]
    assert len(done["points"]) == 1
    technician.call("PUT", "/api/devices/cryo/service-mode", json={"on": False})
    cryo = next(d for d in technician.call("GET", "/api/devices") if d["name"] == "cryo")
    assert cryo["connected"] and not cryo["locked"] and cryo["service_mode"] is None


def test_the_calibrate_command_runs_through_the_service(system) -> None:  # type: ignore[no-untyped-def]
    bench, service, admin, practitioner, technician = system
    command = [sys.executable, "-m", "devicectl.cli", "calibrate", "laser", "--user", "tech", "--setpoints", "300,600",
               "--pulses", "3", "--rate", "10"]
    env = {**os.environ, "DEVICECTL_PIN": "3916", "COLUMNS": "200"}
    answer = subprocess.run([*command, "--service", service.url], capture_output=True, text=True, env=env, timeout=120)
    assert answer.returncode == 0, answer.stdout
    assert "PASSED" in answer.stdout and "300 mJ: emitted" in answer.stdout and "certificate:" in answer.stdout
    laser = next(d for d in technician.call("GET", "/api/devices") if d["name"] == "laser")
    assert laser["connected"] and laser["service_mode"] is None  # entered and left by the command
    # the service's own configuration file names the service to use
    by_config = subprocess.run([*command, "--config", str(service.config)], capture_output=True, text=True, env=env,
                               timeout=120)
    assert by_config.returncode == 0, by_config.stdout
    # a practitioner's session keeps the command out, with the reason
    sid = laser_session(practitioner)
    practitioner.call("PUT", f"/api/sessions/{sid}/checklist", json=ALL_CHECKED)
    practitioner.call("POST", f"/api/sessions/{sid}/start")
    refused = subprocess.run([*command, "--service", service.url], capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode == 3 and f"session {sid} is open" in " ".join(refused.stdout.split())


def test_records_come_from_measurements_or_a_confirmed_external_certificate(system) -> None:  # type: ignore[no-untyped-def]
    bench, service, admin, practitioner, technician = system
    serial = bench.addresses["laser_serial"]
    drifted = {"device_serial": serial, "device_kind": "laser",
               "points": [{"set_mj": 500, "meter_mj": [410.0, 412.0], "monitor_mj": [415.0, 416.0]}]}
    measured = technician.call("POST", "/api/calibrations/measured", 201, json=drifted)
    assert measured["passed"] is False and "0.822" in measured["reasons"][0]  # the service's verdict, not the client's
    technician.call("POST", "/api/calibrations/measured", 422, json={**drifted, "passed": True})
    record = technician.call("GET", "/api/calibrations")[0]
    assert record["id"] == measured["id"] and not record["passed"] and record["results"]["source"] == "measurements"

    proposal = technician.call("POST", "/api/calibrations/external", 202, json={
        "device_serial": serial, "device_kind": "laser", "external_certificate": "DKD-K-4711-2026",
        "laboratory": "Manufacturer's service centre", "performed_on": "2026-11-20", "passed": True})
    assert technician.call("GET", "/api/calibrations")[0]["id"] == measured["id"]  # nothing recorded yet
    technician.call("POST", f"/api/calibrations/external/{proposal['id']}/confirm", 403)  # only an admin confirms
    confirmed = admin.call("POST", f"/api/calibrations/external/{proposal['id']}/confirm", 201)
    record = technician.call("GET", "/api/calibrations")[0]
    assert record["id"] == confirmed["id"] and record["passed"]
    assert record["results"]["source"] == "external" and record["results"]["external_certificate"] == "DKD-K-4711-2026"
    assert record["results"]["confirmed_by"] == "admin" and "external" in record["technician"]
    assert "has no certificate on file" in technician.call(  # the laboratory's certificate is on paper
        "GET", f"/api/calibrations/{record['id']}/certificate.pdf", 404)["error"]


def test_service_mode_and_a_waiting_external_record_survive_a_crash(system) -> None:  # type: ignore[no-untyped-def]
    """A unit under repair is not handed back to treatment by a crash; an entered certificate is not lost."""
    bench, service, admin, practitioner, technician = system
    technician.call("PUT", "/api/devices/laser/service-mode", json={"on": True, "reason": "handpiece replaced"})
    proposal = technician.call("POST", "/api/calibrations/external", 202, json={
        "device_serial": bench.addresses["cryo_serial"], "device_kind": "cryo", "external_certificate": "CAL-2026-118",
        "laboratory": "Manufacturer's service centre", "performed_on": "2026-11-20", "passed": True})
    service.kill9()
    service.start()
    admin, practitioner, technician = (Api(service.url, name, pin) for name, pin in
                                       (("admin", ADMIN_PIN), ("pat", PAT_PIN), ("tech", TECH_PIN)))
    held = technician.call("GET", "/api/devices/laser/service-mode")
    assert held == {"device": "laser", "service_mode": True, "technician": "tech", "reason": "handpiece replaced"}
    sid = laser_session(practitioner)
    practitioner.call("PUT", f"/api/sessions/{sid}/checklist", json=ALL_CHECKED)
    assert "service mode (tech)" in practitioner.call("POST", f"/api/sessions/{sid}/start", 409)["error"]
    assert [p["external_certificate"] for p in admin.call("GET", "/api/calibrations/external")] == ["CAL-2026-118"]
    confirmed = admin.call("POST", f"/api/calibrations/external/{proposal['id']}/confirm", 201)
    admin.call("POST", f"/api/calibrations/external/{proposal['id']}/confirm", 404)  # taken once
    assert admin.call("GET", "/api/calibrations/external") == []
    assert technician.call("GET", "/api/calibrations")[0]["id"] == confirmed["id"]
    left = technician.call("PUT", "/api/devices/laser/service-mode", json={"on": False})
    assert not left["service_mode"] and left["stop_confirmed"]
    practitioner.call("POST", f"/api/sessions/{sid}/start")
    actions = [e["action"] for e in admin.call("GET", "/api/audit?limit=1000")]
    assert {"service_mode.restored", "calibration.external.confirmed", "service_mode.left"} <= set(actions)
