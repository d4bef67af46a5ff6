"""The touchscreen a clinic runs all day (#18), in Debian's Chromium: reasons that stay until
dismissed, a screen bound to its session, the home overview, interrupted sessions closed with
their aftercare, the simulator panel, user admin, structured sites and patient history.

Fixtures, helpers and the screenshot mechanism are those of ``tests/test_ui.py``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.service_harness import (
    ALL_CHECKED,
    Api,
    BenchProcess,
    ServiceProcess,
    free_port,
    laser_session,
    new_user,
    ready,
)
from tests.test_ui import (  # noqa: F401 (fixtures)
    CHROMIUM,
    assert_touch_targets,
    browser,
    checked_context,
    checklist,
    login,
    page,
    plan,
    shot,
    system,
)


System = tuple[BenchProcess, ServiceProcess]


def touch_targets(page: Page) -> None:
    """Every visible button is at least 48 x 48 px."""
    small = page.evaluate("""() => [...document.querySelectorAll("button")]
        .filter((b) => b.offsetParent !== null || getComputedStyle(b).position === "fixed")
        .map((b) => [b.innerText, b.getBoundingClientRect()])
        .filter(([, r]) => r.width > 0 && (r.width < 48 || r.height < 48))
        .map(([t, r]) => `${t}: ${r.width}x${r.height}`)""")
    assert not small, small


def laser_on_screen(page: Page, site: str = "left forearm") -> None:
    plan(page, "laser", "tattoo", "2", "0.3", site, ("black",))
    page.click("#makeplan")
    checklist(page)
    page.click("#savechecklist")
    expect(page.locator("#device-state")).to_contain_text("standby")


# ------------------------------------------------------------------ reasons stay
def test_values_outside_the_plan_turn_red_and_arm_says_why(page: Page, system: System) -> None:
    bench, service = system
    login(page, "pat", "4827")
    laser_on_screen(page)
    bench.laser("set_input", name="spot", value=2.0)  # the wrong handpiece: fluence above the cap
    expect(page.locator("#values")).to_have_class(re.compile(r"\bout\b"))
    expect(page.locator("#values")).to_contain_text("ABOVE THE PLAN")
    expect(page.locator("#arm")).to_be_disabled()
    expect(page.locator("#arm-reason")).to_contain_text("fit the 3 mm handpiece")
    touch_targets(page)
    shot(page, "12-out-of-plan")
    bench.laser("set_input", name="spot", value=3.0)
    expect(page.locator("#values")).not_to_have_class(re.compile(r"\bout\b"))
    expect(page.locator("#arm")).to_be_enabled()
    page.click("#arm")
    expect(page.locator("#device-state")).to_contain_text("READY", timeout=5000)
    expect(page.locator("#arm")).to_be_disabled()  # never lit while armed
    expect(page.locator("#arm-reason")).to_contain_text("footswitch fires")
    # STOP from another station: the reason stays on this screen until read
    Api(service.url, "pat", "4827").call("POST", "/api/stop", json={"origin": "front desk"})
    stopped = page.locator("#banners [data-note^='Stop:laser']", has_text="front desk")
    expect(stopped).to_contain_text("front desk by pat")
    expect(page.locator("#device-state")).to_contain_text("standby")
    page.wait_for_timeout(1500)  # ~10 live re-renders: the note is still there
    expect(stopped).to_be_visible()
    shot(page, "13-stop-reason")
    stopped.locator("[data-dismiss]").click()
    expect(stopped).to_have_count(0)


def test_a_refusal_survives_the_live_re_render_until_dismissed(page: Page, system: System) -> None:
    bench, service = system
    login(page, "pat", "4827")
    plan(page, "cryo", "scar", "3", "1", "chest")
    page.click("#makeplan")
    checklist(page)
    page.click("#savechecklist")
    expect(page.locator("#device-state")).to_contain_text("idle")
    page.fill("#seconds", "0")
    page.click("#freeze")
    refusal = page.locator("#banners [data-note^='Refuse:cryo']")
    expect(refusal).to_contain_text("Not done")
    page.wait_for_timeout(1500)  # tip telemetry redraws the screen meanwhile
    expect(refusal).to_be_visible()
    refusal.locator("[data-dismiss]").click()
    expect(refusal).to_have_count(0)


def test_an_unconfirmed_stop_is_a_red_alarm_on_every_screen(page: Page, system: System) -> None:
    bench, service = system
    login(page, "pat", "4827")
    laser_on_screen(page, "back")
    page.click("#arm")
    expect(page.locator("#device-state")).to_contain_text("READY", timeout=5000)
    bench.laser("ignore_stop", on=True)
    page.click("#stop")
    alarm = page.locator("#banners [data-note='alarm:laser']")
    expect(alarm).to_contain_text("did not confirm STOP — use its emergency stop", timeout=10000)
    expect(alarm).to_have_class(re.compile(r"\balarm\b"))
    expect(alarm.locator("[data-dismiss]")).to_have_count(0)  # not dismissable while the alarm stands
    shot(page, "14-alarm")
    page.click("#home-btn")
    expect(alarm).to_be_visible()
    bench.laser("ignore_stop", on=False)


# ------------------------------------------------------------------ a screen belongs to one session; Home
def fire(api: Api, bench: BenchProcess, pulses: int) -> int:
    """A laser session (patient A, through the API) that fired ``pulses`` and stays open."""
    sid = laser_session(api, budget=pulses)
    api.call("PUT", f"/api/sessions/{sid}/checklist", json=ALL_CHECKED)
    api.call("POST", f"/api/sessions/{sid}/start")
    ready(api, sid)
    bench.laser("set_input", name="foot", value=1)
    api.wait(f"/api/sessions/{sid}", lambda s: s["pulses_recorded"] == pulses, timeout=15)
    bench.laser("set_input", name="foot", value=0)
    return sid


def test_a_screen_shows_only_its_session_and_home_lists_whose_device_it_is(page: Page, system: System) -> None:
    bench, service = system
    api = Api(service.url, "pat", "4827")
    other = fire(api, bench, 3)
    patient_a = api.call("GET", f"/api/sessions/{other}")["patient_id"]
    login(page, "pat", "4827")
    card = page.locator("[data-device=laser]")
    expect(card.locator(".in-session")).to_contain_text(f"In session {other}: patient {patient_a}, pat, since ")
    expect(card).to_contain_text("calibration passed · due ")
    expect(page.locator(f"#open-sessions [data-session='{other}']")).to_contain_text("active")
    touch_targets(page)
    shot(page, "16-home-sessions")
    # patient B planned on the busy laser: B's screen never shows A's pulses, and says whose the laser is
    laser_on_screen_busy = page.locator("#other-session")
    plan(page, "laser", "tattoo", "2", "0.3", "right forearm", ("black",))
    page.click("#makeplan")
    checklist(page)
    page.click("#savechecklist")
    expect(page.locator("#banners")).to_contain_text(f"laser is in session {other}")
    expect(laser_on_screen_busy).to_contain_text(f"The laser is in session {other}")
    expect(page.locator("#pulse-count")).to_contain_text("0 /")
    expect(page.locator("#arm")).to_be_disabled()
    laser_on_screen_busy.locator("#open-other").click()
    expect(page.locator("#treatment h1")).to_contain_text(f"session {other} · patient {patient_a}")
    expect(page.locator("#pulse-count")).to_contain_text("3 / 3")
    page.click("#endsession")
    page.click("#end-yes")
    expect(page.locator("#aftercare")).to_contain_text("3 pulses recorded")
    page.click("#done")
    expect(card.locator(".in-session")).to_have_count(0)


def test_an_interrupted_session_is_reviewed_and_closed_with_its_aftercare(page: Page, system: System) -> None:
    bench, service = system
    api = Api(service.url, "pat", "4827")
    sid = fire(api, bench, 3)
    service.stop()
    service.start()  # the restart marks the session interrupted
    login(page, "pat", "4827")
    row = page.locator(f"#open-sessions [data-session='{sid}']")
    expect(row).to_contain_text("interrupted")
    row.locator(f"[data-review='{sid}']").click()
    expect(page.locator("#review")).to_contain_text("3 pulses recorded")
    shot(page, "15-interrupted-review")
    page.click("#close-session")
    expect(page.locator("#aftercare")).to_contain_text("3 pulses recorded")
    expect(page.locator("#next-session")).to_contain_text(re.compile(r"not before \d{4}-\d{2}-\d{2} \(\d+ days\)"))
    api = Api(service.url, "pat", "4827")
    session = api.call("GET", f"/api/sessions/{sid}")
    assert session["state"] == "ended" and session["outcome"].startswith("interrupted: ")
    api.call("POST", f"/api/sessions/{sid}/close", 409)  # closed once
    admin = Api(service.url, "admin", "902137")
    assert any(e["action"] == "session.closed" for e in admin.call("GET", "/api/audit"))
    page.click("#done")
    expect(row).to_have_count(0)


# ------------------------------------------------------------------ simulator panel
@pytest.fixture
def simulated(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`devicectl serve --simulate` (as `make run`), its URL and the first admin's one-time PIN."""
    port = free_port()
    config = tmp_path / "devicectl.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nhttp_port = {port}\n')
    proc = subprocess.Popen([sys.executable, "-m", "devicectl.cli", "serve", "--simulate", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    pin = ""
    for line in proc.stdout:
        if "one-time PIN" in line:
            pin = line.split("one-time PIN ")[1].split()[0]
        if "log in" in line:
            break
    url = f"http://127.0.0.1:{port}"
    try:
        ServiceProcess.wait_connected(type("S", (), {"url": url})(), 30)  # type: ignore[arg-type]
        yield url, pin
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_the_simulator_panel_runs_a_treatment_from_the_browser(browser: Browser, simulated: tuple[str, str]) -> None:  # noqa: F811
    url, pin = simulated
    admin = Api(url, "admin", pin)
    admin.call("POST", "/api/me/pin", json={"old_pin": pin, "new_pin": "902137"})
    new_user(url, admin, "pat", "practitioner", "4827")
    admin.call("POST", "/api/sim/laser", 403, json={"op": "set_input", "name": "foot", "value": 1})  # not for admins
    context = checked_context(browser)
    page = context.new_page()
    page.set_default_timeout(10000)
    try:
        page.goto(url)
        login(page, "pat", "4827")
        page.click("#sim-btn")
        expect(page.locator("[data-simdevice=laser]")).to_contain_text("Footswitch")
        expect(page.locator("[data-simdevice=cryo]")).to_contain_text("Probe")
        touch_targets(page)
        shot(page, "17-simulator-panel")
        page.click("#home-btn")
        laser_on_screen(page)
        page.click("#arm")
        expect(page.locator("#device-state")).to_contain_text("READY", timeout=5000)
        page.click("#simbar [data-name=foot][data-value='1']")
        expect(page.locator("#device-state")).to_contain_text("EMITTING")
        page.click("#simbar [data-name=foot][data-value='0']")
        page.click("#simbar [data-name=interlock][data-value='0']")
        expect(page.locator("#banners")).to_contain_text("Door interlock open")
        page.click("#simbar [data-name=interlock][data-value='1']")
        expect(page.locator("#banners")).not_to_contain_text("Door interlock open")
        assert_touch_targets(context)
    finally:
        context.close()
    assert any(e["action"] == "simulator" and e["detail"]["name"] == "foot" for e in admin.call("GET", "/api/audit"))


def test_without_simulate_there_is_no_simulator_route(system: System) -> None:  # noqa: F811
    bench, service = system
    Api(service.url, "pat", "4827").call("GET", "/api/sim", 404)
