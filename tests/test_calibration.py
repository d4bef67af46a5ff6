"""Calibration procedures on the simulated bench, their records, certificates and consequences."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Iterator

import pytest

from devicectl.calibration.procedures import CryoPoint, LaserPoint, analyse_cryo, analyse_laser
from devicectl.calibration.standalone import run_calibration
from tests.service_harness import ALL_CHECKED, Api, BenchProcess, ServiceProcess, set_up_users


def test_analysis_finds_gain_monitor_and_offset() -> None:
    points = [LaserPoint(200, [186.0, 188.0], [194.0, 195.0]), LaserPoint(800, [744.0, 746.0], [774.0, 776.0])]
    result = analyse_laser("L1", points)
    assert result.results["gain"] == pytest.approx(0.933, abs=0.002)
    assert result.results["monitor_ratio"] == pytest.approx(1.04, abs=0.002)
    assert result.passed
    drifted = analyse_laser("L1", [LaserPoint(500, [420.0], [420.0])])
    assert not drifted.passed and "0.840" in drifted.reasons[0]
    cryo = analyse_cryo("C1", [CryoPoint(-50, [-48.0, -48.2], [-50.0, -50.1])])
    assert cryo.results["offset_c"] == pytest.approx(1.95, abs=0.01) and cryo.passed
    assert not analyse_cryo("C1", [CryoPoint(-50, [-46.0], [-50.0])]).passed


@pytest.fixture
def bench_with_users(tmp_path: Path) -> Iterator[tuple[BenchProcess, ServiceProcess]]:
    """A bench and a data folder with users (the service stopped again: calibration owns the ports)."""
    bench = BenchProcess(tmp_path)
    service = ServiceProcess(tmp_path, bench).start()
    try:
        set_up_users(service, bench, calibrate=False)
    finally:
        service.stop()
    try:
        yield bench, service
    finally:
        service.stop()
        bench.stop()


def calibrations(data_dir: Path) -> list[dict]:  # type: ignore[type-arg]
    conn = sqlite3.connect(data_dir / "devicectl.sqlite3")
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute("SELECT * FROM calibrations ORDER BY id")]
    conn.close()
    return rows


def test_laser_gain_drift_and_monitor_error_are_found(bench_with_users) -> None:  # type: ignore[no-untyped-def]
    bench, service = bench_with_users
    bench.laser("set_gain", gain=0.93)
    bench.laser("set_monitor_gain", gain=1.04)
    code = run_calibration("laser", str(bench.link_dir / "laser"), bench.addresses["meter"], "tech", "3916", service.data_dir,
                           180, setpoints=[200, 500, 800], pulses=10, rate=10.0)
    assert code == 0
    record = calibrations(service.data_dir)[-1]
    results = json.loads(record["results"])
    assert record["passed"] == 1 and record["technician"] == "tech"
    assert results["gain"] == pytest.approx(0.93, abs=0.012)
    assert results["monitor_ratio"] == pytest.approx(1.04, abs=0.012)
    assert results["monitor_correction"] == pytest.approx(1 / 1.04, abs=0.012)
    certificate = Path(record["certificate"])
    assert certificate.exists() and "PASSED" in certificate.read_text() and "data:image/png;base64," in certificate.read_text()
    assert list(certificate.parent.glob("laser-*.png"))
    truth = bench.laser("truth")
    assert truth["state"] == "STANDBY" and truth["service"] is False


def test_drift_beyond_tolerance_fails_and_treatment_is_refused(bench_with_users) -> None:  # type: ignore[no-untyped-def]
    bench, service = bench_with_users
    bench.laser("set_gain", gain=0.82)
    code = run_calibration("laser", str(bench.link_dir / "laser"), bench.addresses["meter"], "tech", "3916", service.data_dir,
                           180, setpoints=[300, 700], pulses=5, rate=10.0)
    assert code == 1
    assert calibrations(service.data_dir)[-1]["passed"] == 0
    service.start()
    practitioner = Api(service.url, "pat", "4827")
    patient = practitioner.call("POST", "/api/patients", 201)["patient_id"]
    sid = practitioner.call("POST", "/api/sessions", 201, json={
        "patient_id": patient, "device": "laser", "indication": "tattoo", "skin_type": 2, "area_cm2": 2.0, "site": "arm",
        "inks": ["black"]})["id"]
    session = practitioner.call("PUT", f"/api/sessions/{sid}/checklist", json=ALL_CHECKED)
    assert [i["item"] for i in session["open_items"]] == ["calibration"]
    practitioner.call("POST", f"/api/sessions/{sid}/start")
    refused = practitioner.call("POST", f"/api/sessions/{sid}/arm", 409)
    assert "failed its last calibration" in refused["error"] and refused["hazard"] == "H12"


def test_cryo_sensor_offset_is_found(bench_with_users) -> None:  # type: ignore[no-untyped-def]
    bench, service = bench_with_users
    bench.cryo("set_sensor_offset", celsius=1.5)
    due = (date.today() + timedelta(days=200)).isoformat()
    code = run_calibration("cryo", str(bench.link_dir / "cryo"), bench.addresses["thermometer"], "tech", "3916",
                           service.data_dir, 180, {"calibration_due": due, "certificate": "DKD-K-0815"},
                           targets=[-30, -50], freeze=4.0)
    assert code == 0
    record = calibrations(service.data_dir)[-1]
    assert json.loads(record["results"])["offset_c"] == pytest.approx(1.5, abs=0.3)
    certificate = Path(record["certificate"]).read_text()  # the reference's own due date: traceable without a service
    assert due in certificate and "DKD-K-0815" in certificate and "not recorded" not in certificate


def test_a_reference_instrument_overdue_for_its_own_calibration_is_refused(bench_with_users, capsys) -> None:  # type: ignore[no-untyped-def]
    bench, service = bench_with_users
    overdue = (date.today() - timedelta(days=1)).isoformat()
    code = run_calibration("laser", str(bench.link_dir / "laser"), bench.addresses["meter"], "tech", "3916",
                           service.data_dir, 180, {"calibration_due": overdue}, setpoints=[200], pulses=2, rate=5.0)
    assert code == 3
    said = " ".join(capsys.readouterr().out.split())
    assert f"its own calibration was due on {overdue}" in said and "have the instrument calibrated" in said
    assert calibrations(service.data_dir) == [] and bench.laser("truth")["count"] == 0  # refused before a pulse


def test_only_a_technician_calibrates(bench_with_users) -> None:  # type: ignore[no-untyped-def]
    bench, service = bench_with_users
    assert run_calibration("laser", str(bench.link_dir / "laser"), bench.addresses["meter"], "pat", "4827",
                           service.data_dir, 180, setpoints=[200], pulses=2, rate=5.0) == 2
    assert run_calibration("laser", str(bench.link_dir / "laser"), bench.addresses["meter"], "tech", "9999",
                           service.data_dir, 180, setpoints=[200], pulses=2, rate=5.0) == 2
    assert calibrations(service.data_dir) == []


def test_ctrl_c_mid_run_leaves_the_laser_safe(bench_with_users) -> None:  # type: ignore[no-untyped-def]
    bench, service = bench_with_users
    proc = subprocess.Popen(
        [sys.executable, "-m", "devicectl.cli", "calibrate", "laser", "--port", str(bench.link_dir / "laser"),
         "--meter", bench.addresses["meter"], "--user", "tech", "--data-dir", str(service.data_dir),
         "--setpoints", "200,400,600,800", "--pulses", "30", "--rate", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "DEVICECTL_PIN": "3916", "COLUMNS": "200"},
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if bench.laser("truth")["emitting"]:
            break
        time.sleep(0.05)
    assert bench.laser("truth")["emitting"] is True and bench.laser("truth")["service"] is True
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=20)[0]
    assert proc.returncode == 130, output
    assert "left safe" in output
    truth = bench.laser("truth")
    assert truth["state"] == "STANDBY" and truth["service"] is False and truth["shutter_open"] is False
    assert calibrations(service.data_dir) == []  # an interrupted run records nothing


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_example_scripts_work(bench_with_users) -> None:  # type: ignore[no-untyped-def]
    bench, service = bench_with_users
    direct = subprocess.run(
        [sys.executable, str(EXAMPLES / "measure_pulses.py"), "--port", str(bench.link_dir / "laser"),
         "--meter", bench.addresses["meter"], "--energy", "300", "--pulses", "3"],
        capture_output=True, text=True, timeout=60,
    )
    assert direct.returncode == 0, direct.stderr
    assert "fired 3 pulses at 300 mJ" in direct.stdout and direct.stdout.count("monitor/meter") == 3
    assert bench.laser("truth")["service"] is False
    service.start()
    status = subprocess.run(
        [sys.executable, str(EXAMPLES / "service_status.py"), "--url", service.url, "--user", "tech"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "DEVICECTL_PIN": "3916"},
    )
    assert status.returncode == 0, status.stderr
    assert "laser" in status.stdout and "cryo" in status.stdout and "no calibration" in status.stdout
