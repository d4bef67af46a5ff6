"""User admin beyond create/unlock, structured sites and a patient's history over the API (#18),
against the service and the simulated bench."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.service_harness import ALL_CHECKED, Api, BenchProcess, ServiceProcess, set_up_users

System = tuple[BenchProcess, ServiceProcess, Api, Api]


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    bench = BenchProcess(tmp_path)
    service = ServiceProcess(tmp_path, bench).start(users=True)
    admin, practitioner, _ = set_up_users(service, bench)
    try:
        yield bench, service, admin, practitioner
    finally:
        service.stop()
        bench.stop()


def treated(api: Api, patient: str, site: str, **request: object) -> int:
    """A laser tattoo session on ``site`` started and ended (treated today, no pulse)."""
    body = {"patient_id": patient, "device": "laser", "indication": "tattoo", "skin_type": 2, "area_cm2": 1.0,
            "site": site, "inks": ["black"]} | request
    sid = api.call("POST", "/api/sessions", 201, json=body)["id"]
    api.call("PUT", f"/api/sessions/{sid}/checklist", json=ALL_CHECKED)
    api.call("POST", f"/api/sessions/{sid}/start")
    api.call("POST", f"/api/sessions/{sid}/end")
    return int(sid)


def test_user_admin_list_deactivate_reset_pin_and_one_name_field(system: System) -> None:
    bench, service, admin, practitioner = system
    # name is canonical; user is accepted in both places for one release
    admin.call("POST", "/api/users", 201, json={"user": "kim", "role": "practitioner", "pin": "582913"})
    kim = Api(service.url, "kim", "582913")  # (a one-time PIN may log in once only)
    assert httpx.post(f"{service.url}/api/login", json={"user": "kim", "name": "pat", "pin": "582913"}).status_code == 422
    users = {u["name"]: u for u in admin.call("GET", "/api/users")}
    assert users["kim"]["role"] == "practitioner" and users["kim"]["active"] and not users["kim"]["locked"]
    assert set(users) == {"admin", "pat", "tech", "kim"}
    practitioner.call("GET", "/api/users", 403)
    practitioner.call("POST", "/api/users/kim/deactivate", 403)
    practitioner.call("POST", "/api/users/kim/pin", 403, json={"pin": "692047"})
    # a reset PIN is one-time: its user chooses their own at the next login
    admin.call("POST", "/api/users/pat/pin", 422, json={"pin": "1111"})  # the role's PIN rules hold for a reset too
    admin.call("POST", "/api/users/admin/pin", 422, json={"pin": "6920"})  # an admin's PIN: 6 digits at least
    admin.call("POST", "/api/users/pat/pin", json={"pin": "692047"})
    practitioner.call("GET", "/api/me", 401)  # the reset ended pat's logins
    pat = Api(service.url, "pat", "692047")
    assert pat.call("GET", "/api/me")["must_change_pin"] is True
    pat.call("POST", "/api/me/pin", json={"old_pin": "692047", "new_pin": "815306"})
    # deactivated: no login, its logins end
    admin.call("POST", "/api/users/kim/deactivate")
    kim.call("GET", "/api/me", 401)
    assert httpx.post(f"{service.url}/api/login", json={"user": "kim", "pin": "582913"}).status_code == 401
    assert {u["name"]: u for u in admin.call("GET", "/api/users")}["kim"]["active"] is False
    admin.call("POST", "/api/users/admin/deactivate", 409)  # never oneself
    admin.call("POST", "/api/users/nobody/deactivate", 404)
    actions = [e["action"] for e in admin.call("GET", "/api/audit")]
    assert "user.deactivated" in actions and "user.pin_reset" in actions


def test_sites_are_structured_and_the_interval_rule_reads_any_spelling(system: System) -> None:
    bench, service, admin, pat = system
    offer = pat.call("GET", "/api/sites")
    assert {"key": "cheek", "label": "cheek", "sided": True} in offer["regions"] and offer["sides"] == ["left", "right", "both"]
    patient = pat.call("POST", "/api/patients", 201)["patient_id"]
    first = treated(pat, patient, "left cheek", site_note="under the scar")
    session = pat.call("GET", f"/api/sessions/{first}")
    assert (session["site_key"], session["plan"]["site"], session["site_note"]) == ("cheek:left", "left cheek", "under the scar")
    for spelling in ("Left cheek", "left cheek ", "cheek, left", "cheek:left"):
        sid = pat.call("POST", "/api/sessions", 201, json={"patient_id": patient, "device": "laser", "indication": "tattoo",
                                                           "skin_type": 2, "area_cm2": 1.0, "site": spelling, "inks": ["black"]})["id"]
        items = pat.call("PUT", f"/api/sessions/{sid}/checklist", json=ALL_CHECKED)["open_items"]
        assert [i["item"] for i in items] == ["interval"], spelling
        pat.call("POST", f"/api/sessions/{sid}/cancel")


def test_a_patients_history_by_site_with_course_numbers_and_the_next_date(system: System) -> None:
    bench, service, admin, pat = system
    patient = pat.call("POST", "/api/patients", 201)["patient_id"]
    first = treated(pat, patient, "forearm:left", skin_type=3)
    other = treated(pat, patient, "right forearm", skin_type=3)
    assert pat.call("GET", f"/api/sessions/{first}")["course_number"] == 1
    assert pat.call("GET", f"/api/sessions/{first}")["skin_type"] == 3
    found = pat.call("GET", "/api/patients", params={"q": patient[2:6].lower()})
    assert [p["patient_id"] for p in found] == [patient] and found[0]["sessions"] == 2
    history = pat.call("GET", f"/api/patients/{patient}/history")
    assert history["skin_type"] == 3
    by_site = {s["site_key"]: s for s in history["sites"]}
    assert set(by_site) == {"forearm:left", "forearm:right"}
    left = by_site["forearm:left"]
    (entry,) = left["sessions"]
    assert entry["id"] == first and entry["device"] == "laser" and entry["indication"] == "tattoo"
    assert entry["course_number"] == 1 and entry["pulses"] == 0 and entry["settings"]["energy_mj"] > 0
    assert entry["state"] == "ended" and any(d["kind"] == "Stop" for d in entry["decisions"])
    assert left["next_from"] and left["next_from"] > entry["date"]
    last = pat.call("GET", f"/api/patients/{patient}/last-plan", params={"site": "left forearm"})
    assert last["session"] == first and last["request"]["skin_type"] == 3 and last["request"]["inks"] == ["black"]
    assert pat.call("GET", f"/api/patients/{patient}/last-plan", params={"site": "nose"}) == {"session": None}
    assert other != first
    admin.call("GET", f"/api/patients/{patient}/history", 403)  # patients are the practitioners'
    pat.call("GET", "/api/patients/P-NOBODY/history", 404)


def test_a_tattoo_course_starts_from_the_last_session_and_rises_one_step_at_most(system: System) -> None:
    bench, service, admin, pat = system
    patient = pat.call("POST", "/api/patients", 201)["patient_id"]
    body = {"patient_id": patient, "device": "laser", "indication": "tattoo", "skin_type": 2, "area_cm2": 1.0,
            "site": "forearm:left", "inks": ["black"]}
    first = pat.call("POST", "/api/sessions", 201, json=body)
    default = {k: first["plan"][k] for k in ("energy_mj", "energy_cap_mj")}
    assert first["plan"]["fluence_cap_j_cm2"] == 8.0  # no course yet: the protocol's cap
    pat.call("POST", f"/api/sessions/{first['id']}/edit", json={"energy_mj": 320})  # 4.53 J/cm² with the 3 mm spot
    pat.call("PUT", f"/api/sessions/{first['id']}/checklist", json=ALL_CHECKED)
    pat.call("POST", f"/api/sessions/{first['id']}/start")
    pat.call("POST", f"/api/sessions/{first['id']}/end")
    second_session = pat.call("POST", "/api/sessions", 201, json=body)
    second = second_session["plan"]
    assert second["energy_mj"] == 320  # from the last session's setting
    too_much = pat.call("POST", f"/api/sessions/{second_session['id']}/edit", 422, json={"energy_mj": 600})
    assert "energy must be" in too_much["error"] and too_much["hazard"] == "H02"
    pat.call("POST", f"/api/sessions/{second_session['id']}/edit", json={"energy_mj": second["energy_cap_mj"]})
    assert second["fluence_cap_j_cm2"] == pytest.approx(4.53 * 1.25, abs=0.02)  # one step, well under the 8.0 cap
    assert any("one step" in w for w in second["warnings"])
    other_site = pat.call("POST", "/api/sessions", 201, json=body | {"site": "back"})["plan"]
    assert {k: other_site[k] for k in default} == default  # another site: no course
    red = pat.call("POST", "/api/sessions", 201, json=body | {"inks": ["red"]})["plan"]
    assert red["wavelength_nm"] == 532 and red["fluence_cap_j_cm2"] == 4.0  # another ink: another protocol, no course
