"""Calibration records: only what the procedure could have produced is stored, and a stored correction
the kernel cannot use stops a session from starting (H02, H12)."""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from devicectl.calibration import procedures as calibration
from devicectl.calibration import records as calibration_records
from devicectl.calibration.procedures import CryoPoint, LaserPoint, analyse_cryo, analyse_laser
from devicectl.calibration.records import (
    CalibrationError,
    check_results,
    record_calibration,
    usable_monitor_correction,
)
from devicectl.core.config import DeviceConfig, load_settings
from devicectl.core.service import Service
from devicectl.web.api import create_app
from simulators.host import SimulatorHost, SimulatorThread
from simulators.units import build_unit
from tests.service_harness import ALL_CHECKED, measured_calibration

VALID_DAYS = 90
LASER = {"gain": 0.97, "monitor_ratio": 1.04, "monitor_correction": 0.9615}
CRYO = {"offset_c": 1.2}


def login(client: TestClient, user: str, pin: str) -> dict[str, str]:
    answer = client.post("/api/login", json={"user": user, "pin": pin})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def users(client: TestClient, service: Service) -> tuple[dict[str, str], dict[str, str]]:
    """(practitioner, technician) headers, set up by the first admin."""
    pin = service.first_admin_pin
    assert pin
    admin = login(client, "admin", pin)
    assert client.post("/api/me/pin", json={"old_pin": pin, "new_pin": "480913"}, headers=admin).status_code == 200
    for name, role, user_pin in (("pat", "practitioner", "4827"), ("tech", "technician", "3916")):
        assert client.post("/api/users", json={"name": name, "role": role, "pin": "583920"}, headers=admin).status_code == 201
        first = login(client, name, "583920")  # each new user sets their own PIN at the first login
        assert client.post("/api/me/pin", json={"old_pin": "583920", "new_pin": user_pin}, headers=first).status_code == 200
    return login(client, "pat", "4827"), login(client, "tech", "3916")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, Service, dict[str, str], dict[str, str]]]:
    service = Service(load_settings(None, data_dir=tmp_path, calibration_valid_days=VALID_DAYS))
    with TestClient(create_app(service)) as client:
        practitioner, technician = users(client, service)
        yield client, service, practitioner, technician


def post(client: TestClient, headers: dict[str, str], body: dict[str, Any] | str) -> Any:
    """A record from measurements, the only way a client records a calibration."""
    if isinstance(body, str):  # raw JSON: NaN and Infinity are not JSON, but a client can send them
        return client.post("/api/calibrations/measured", content=body, headers=headers | {"content-type": "application/json"})
    return client.post("/api/calibrations/measured", json=body, headers=headers)


def laser(*points: dict[str, Any], **body: Any) -> dict[str, Any]:
    return measured_calibration("laser", "QS-0001", list(points) or None) | body


def cryo(*points: dict[str, Any], **body: Any) -> dict[str, Any]:
    return measured_calibration("cryo", "CP-0001", list(points) or None) | body


def refused(answer: Any, field: str) -> str:
    assert answer.status_code == 422, answer.text
    assert field in answer.text, answer.text
    return str(answer.text)


def test_a_record_is_computed_from_its_measurements_with_the_service_expiry(api) -> None:  # type: ignore[no-untyped-def]
    client, service, _, technician = api
    assert post(client, technician, laser(note="bench 2")).status_code == 201
    assert post(client, technician, cryo()).status_code == 201
    records = client.get("/api/calibrations", headers=technician).json()
    assert {r["device_kind"] for r in records} == {"laser", "cryo"}
    assert {r["expires_on"] for r in records} == {(date.today() + timedelta(days=VALID_DAYS)).isoformat()}
    stored = next(r for r in records if r["device_kind"] == "laser")
    assert stored["passed"] and stored["results"]["source"] == "measurements" and stored["results"]["note"] == "bench 2"
    assert stored["results"]["gain"] == pytest.approx(1.0, abs=0.01) and [p["n"] for p in stored["results"]["points"]] == [2, 2]


def test_an_expiry_or_a_verdict_from_the_client_is_refused(api) -> None:  # type: ignore[no-untyped-def]
    client, service, _, technician = api
    for expires_on in ("2099-12-31", None, (date.today() + timedelta(days=30)).isoformat()):
        refused(post(client, technician, laser(expires_on=expires_on)), "expires_on")
    refused(post(client, technician, laser(passed=True)), "passed")
    refused(post(client, technician, laser(results={"gain": 1.0, "monitor_ratio": 1.0, "monitor_correction": 1.0})), "results")
    assert service.calibrations() == []


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", '"nan"', '"NaN"', '"inf"', "1e400", '"0.98"', "true",
                                 "null", "[1.0]"])
def test_a_measurement_that_is_not_a_finite_number_is_refused(api, raw: str) -> None:  # type: ignore[no-untyped-def]
    client, service, _, technician = api
    for field in ("meter_mj", "monitor_mj"):
        readings = {"meter_mj": "[500.0, 501.0]", "monitor_mj": "[500.0, 501.0]"} | {field: f"[500.0, {raw}]"}
        body = ('{"device_serial": "QS-0001", "device_kind": "laser", "points": [{"set_mj": 500, '
                '"meter_mj": %s, "monitor_mj": %s}]}' % (readings["meter_mj"], readings["monitor_mj"]))
        answer = post(client, technician, body)
        assert answer.status_code == 422, (raw, answer.text)
    assert service.calibrations() == []


def test_drifted_measurements_make_a_failed_record_never_a_pass(api) -> None:  # type: ignore[no-untyped-def]
    """The verdict is the service's: a unit outside a tolerance is recorded as failed, with the reason."""
    client, service, _, technician = api
    cases = [
        ({"set_mj": 500, "meter_mj": [250.0], "monitor_mj": [250.0]}, "emitted energy is 0.500 x the setting"),
        ({"set_mj": 500, "meter_mj": [556.0], "monitor_mj": [556.0]}, "emitted energy is 1.112 x the setting"),
        ({"set_mj": 500, "meter_mj": [500.0], "monitor_mj": [530.0]}, "monitor reads 1.060 x the meter"),
    ]
    for point, reason in cases:
        answer = post(client, technician, laser(point))
        assert answer.status_code == 201 and answer.json()["passed"] is False, answer.text
        assert reason in answer.json()["reasons"][0]
    answer = post(client, technician, cryo({"target_c": -50, "sensor_c": [-52.5], "reference_c": [-50.0]}))
    assert answer.status_code == 201 and answer.json()["passed"] is False and "-2.50 degC off" in answer.json()["reasons"][0]
    assert [r["passed"] for r in service.calibrations()] == [False] * 4


def test_measurements_must_be_complete_and_of_the_kind(api) -> None:  # type: ignore[no-untyped-def]
    client, service, _, technician = api
    refused(post(client, technician, {"device_serial": "QS-0001", "device_kind": "laser"}), "points")
    refused(post(client, technician, laser() | {"points": []}), "points")
    refused(post(client, technician, laser({"set_mj": 500, "meter_mj": [500.0]})), "points.0.monitor_mj")
    refused(post(client, technician, laser({"set_mj": 500, "meter_mj": [500.0, 501.0], "monitor_mj": [500.0]})),
            "one monitor reading per meter reading")
    refused(post(client, technician, laser({"set_mj": 5, "meter_mj": [5.0], "monitor_mj": [5.0]})), "set_mj 10-2000")
    refused(post(client, technician, laser({"set_mj": True, "meter_mj": [5.0], "monitor_mj": [5.0]})), "set_mj 10-2000")
    refused(post(client, technician, laser({"set_mj": 500, "meter_mj": [-1.0], "monitor_mj": [500.0]})), "energies above 0")
    refused(post(client, technician, laser({"set_mj": 500, "meter_mj": [500.0], "monitor_mj": [500.0], "offset_c": 0.1})),
            "not a field of a laser point")
    refused(post(client, technician, cryo({"target_c": -50, "sensor_c": [-50.0], "reference_c": [-50.0], "set_mj": 500})),
            "not a field of a cryo point")
    refused(post(client, technician, cryo({"target_c": -50, "sensor_c": [-50.0, -50.1], "reference_c": [-50.0]})),
            "as many sensor as reference readings")
    refused(post(client, technician, laser({"set_mj": 500, "meter_mj": [500.0] * 1001, "monitor_mj": [500.0] * 1001})),
            "1-1000 measured values")
    refused(post(client, technician, laser(note="x" * 501)), "note")
    refused(post(client, technician, laser() | {"device_kind": "plasma"}), "device_kind")
    assert service.calibrations() == []


def test_a_practitioner_is_refused(api) -> None:  # type: ignore[no-untyped-def]
    client, service, practitioner, _ = api
    assert post(client, practitioner, laser()).status_code == 403
    assert service.calibrations() == []


def test_a_typed_in_verdict_has_no_route(api) -> None:  # type: ignore[no-untyped-def]
    """The withdrawn route: a passing record with gain 0.5 and no measurements once lifted a failed-calibration block."""
    client, service, _, technician = api
    answer = client.post("/api/calibrations", headers=technician, json={
        "device_serial": "QS-0001", "device_kind": "laser", "passed": True,
        "results": {"gain": 0.5, "monitor_ratio": 10.0, "monitor_correction": 0.1}})
    assert answer.status_code == 405
    assert service.calibrations() == []


# ---------------------------------------------------------------------- the store, for every writer


def test_the_store_refuses_what_the_api_would(tmp_path: Path) -> None:
    service = Service(load_settings(None, data_dir=tmp_path))
    store, audit = service.store, service.audit
    expires = (date.today() + timedelta(days=180)).isoformat()
    points = [{"set_mj": 200, "meter_mean_mj": float("nan"), "monitor_mean_mj": 195.0, "n": 10}]
    with pytest.raises(CalibrationError, match=r"results\.points\.0\.meter_mean_mj: must be a finite number"):
        record_calibration(store, audit, "tech", "QS-1", "laser", False, LASER | {"points": points}, expires)
    with pytest.raises(CalibrationError, match=r"results\.monitor_correction: must be a finite"):
        record_calibration(store, audit, "tech", "QS-1", "laser", True, {"monitor_correction": float("inf")}, expires)
    with pytest.raises(CalibrationError, match=r"results\.gain: 0\.5 is outside the tolerance of a passing record"):
        record_calibration(store, audit, "tech", "QS-1", "laser", True, LASER | {"gain": 0.5}, expires)
    with pytest.raises(CalibrationError, match="expires_on: 2099-01-01 is not within 730 days"):
        record_calibration(store, audit, "tech", "QS-1", "laser", True, LASER, "2099-01-01")
    with pytest.raises(CalibrationError, match="expires_on: .* is not within"):
        record_calibration(store, audit, "tech", "QS-1", "laser", True, LASER, (date.today() - timedelta(days=1)).isoformat())
    with pytest.raises(CalibrationError, match="expires_on: 'soon' is not a date"):
        record_calibration(store, audit, "tech", "QS-1", "laser", True, LASER, "soon")
    with pytest.raises(CalibrationError, match="device_kind"):
        record_calibration(store, audit, "tech", "QS-1", "plasma", True, LASER, expires)
    assert service.calibrations() == []
    # a simulated unit's factory record (serve --simulate) and the procedure's own results with points
    service.record_calibration(None, "QS-1", "laser", True, {"source": "factory (simulated unit)", "monitor_correction": 1.0})
    procedure = analyse_laser("QS-1", [LaserPoint(200, [186.0, 188.0], [194.0, 195.0])])
    record_calibration(store, audit, "tech", "QS-1", "laser", procedure.passed, procedure.results, expires)
    assert [r["technician"] for r in service.calibrations()] == ["tech", "factory"]
    assert service.calibrations()[0]["expires_on"] == expires
    service.store.close()


def test_the_tolerances_are_the_procedures() -> None:
    assert calibration_records.GAIN_TOLERANCE == calibration.GAIN_TOLERANCE
    assert calibration_records.MONITOR_TOLERANCE == calibration.MONITOR_TOLERANCE
    assert calibration_records.TIP_OFFSET_TOLERANCE_C == calibration.TIP_OFFSET_TOLERANCE_C


readings = st.lists(st.floats(0.8, 1.2), min_size=1, max_size=4)


@settings(max_examples=200, deadline=None)
@given(gain=st.floats(0.5, 1.5), monitor=st.floats(0.8, 1.25), noise=readings, setpoints=st.lists(
    st.sampled_from([200, 500, 800]), min_size=1, max_size=3))
def test_every_record_the_procedure_produces_is_accepted_as_it_is(gain: float, monitor: float, noise: list[float],
                                                                  setpoints: list[int]) -> None:
    """The checks agree with the procedure, tolerance edges and rounding included: its record is stored as
    it is, and the measurements alone make a complete API record with the same verdict."""
    points = [LaserPoint(s, [s * gain * n for n in noise], [s * gain * n * monitor for n in noise]) for s in setpoints]
    result = analyse_laser("QS-1", points)
    check_results("laser", result.passed, result.results, complete=False)
    measurements = {key: result.results[key] for key in ("gain", "monitor_ratio", "monitor_correction")}
    check_results("laser", result.passed, measurements)
    if result.passed:
        assert usable_monitor_correction(result.results["monitor_correction"])


@settings(max_examples=100, deadline=None)
@given(offset=st.floats(-4.0, 4.0))
def test_every_cryo_record_the_procedure_produces_is_accepted(offset: float) -> None:
    result = analyse_cryo("CP-1", [CryoPoint(-50, [-50.0 + offset], [-50.0])])
    check_results("cryo", result.passed, result.results, complete=False)
    check_results("cryo", result.passed, {"offset_c": result.results["offset_c"]})


def test_only_a_finite_correction_within_tolerance_reaches_the_kernel() -> None:
    assert usable_monitor_correction(1.0) and usable_monitor_correction(1) and usable_monitor_correction(0.9524)
    for bad in (float("nan"), float("inf"), "nan", "1.0", None, True, 0.1, 0.95, 1.06, 2.0, -1.0):
        assert not usable_monitor_correction(bad), bad


# ---------------------------------------------------------------------- defence in depth at session start


def store_passed_record(service: Service, serial: str, results_json: str) -> None:
    """A record written before these checks existed, or by hand into the database."""
    with service.store.transaction() as tx:
        tx.execute("INSERT INTO calibrations (device_serial, device_kind, passed, results, technician, performed, expires_on)"
                   " VALUES (?, 'laser', 1, ?, 'tech', ?, ?)",
                   (serial, results_json, time.time(), (date.today() + timedelta(days=30)).isoformat()))


@pytest.mark.parametrize("results_json", ['{"monitor_correction": NaN}', '{"monitor_correction": "nan"}',
                                          '{"monitor_correction": 0.1}', '{"monitor_correction": Infinity}'])
def test_a_stored_correction_the_kernel_cannot_use_refuses_the_start(tmp_path: Path, results_json: str) -> None:
    host = SimulatorHost(*build_unit("laser", serial="QS-7"), link=str(tmp_path / "laser"))
    with SimulatorThread(host):
        settings = load_settings(None, data_dir=tmp_path / "data",
                                 devices=[DeviceConfig(name="laser", type="laser", port=str(tmp_path / "laser"))])
        service = Service(settings)
        with TestClient(create_app(service)) as client:
            practitioner, _ = users(client, service)
            deadline = time.monotonic() + 10
            while not client.get("/api/health").json()["devices"]["laser"]:
                assert time.monotonic() < deadline, "the laser did not connect"
                time.sleep(0.05)
            store_passed_record(service, "QS-7", results_json)
            patient = client.post("/api/patients", headers=practitioner).json()["patient_id"]
            sid = client.post("/api/sessions", headers=practitioner, json={
                "patient_id": patient, "device": "laser", "indication": "tattoo", "skin_type": 2, "area_cm2": 2.0,
                "site": "arm", "inks": ["black"]}).json()["id"]
            assert client.put(f"/api/sessions/{sid}/checklist", headers=practitioner, json=ALL_CHECKED).status_code == 200
            answer = client.post(f"/api/sessions/{sid}/start", headers=practitioner)
            assert answer.status_code == 409, answer.text
            assert "unusable monitor correction" in answer.json()["error"] and answer.json()["hazard"] == "H12"
            kernel = service.supervisors["laser"].kernel
            assert kernel.plan is None and kernel.monitor_correction == 1.0  # the kernel never saw the value
            assert client.post(f"/api/sessions/{sid}/arm", headers=practitioner).status_code == 409
            assert not kernel.armed
