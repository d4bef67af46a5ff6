"""The touchscreen a clinic runs all day (#18), in Debian's Chromium: reasons that stay until
dismissed, a screen bound to its session, the home overview, interrupted sessions closed with
their aftercare, the simulator panel, user admin, structured sites and patient history.

Fixtures, helpers and the screenshot mechanism are those of ``tests/test_ui.py``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.service_harness import Api, BenchProcess, ServiceProcess
from tests.test_ui import CHROMIUM, browser, checklist, login, page, plan, shot, system  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is installed by `make test`")

System = tuple[BenchProcess, ServiceProcess]


def touch_targets(page: Page) -> None:
    """Every visible button is at least 48 x 48 px."""
    for button in page.locator("button:visible").all():
        box = button.bounding_box()
        assert box and box["height"] >= 48 and box["width"] >= 48, button.inner_text()


def laser_on_screen(page: Page, site: str = "left forearm") -> None:
    plan(page, "laser", "tattoo", "2", "0.3", site, ("black",))
    page.click("#makeplan")
    checklist(page)
    page.click("#savechecklist")
    expect(page.locator("#device-state")).to_contain_text("standby")


# ------------------------------------------------------------------ reasons stay
def test_values_outside_the_plan_turn_red_and_arm_says_why(page: Page, system: System) -> None:
    bench, service = system
    login(page, "pat", "1111")
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
    Api(service.url, "pat", "1111").call("POST", "/api/stop", json={"origin": "front desk"})
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
    login(page, "pat", "1111")
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
    login(page, "pat", "1111")
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
