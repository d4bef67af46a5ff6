"""The technician's screens in a real browser (Playwright, Debian's Chromium): a latched fault
cleared, service mode, a laser calibration with live progress and the result, its certificate."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.service_harness import BenchProcess, ServiceProcess, set_up_users
from tests.test_ui import assert_touch_targets, checked_context

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]



@pytest.fixture
def page(tmp_path: Path) -> Iterator[tuple[Page, BenchProcess, ServiceProcess]]:
    bench = BenchProcess(tmp_path)
    service = ServiceProcess(tmp_path, bench).start(users=True)
    set_up_users(service, bench)
    with sync_playwright() as p:
        browser: Browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = checked_context(browser)
        page = context.new_page()
        page.set_default_timeout(15000)
        page.goto(service.url)
        try:
            yield page, bench, service
            assert_touch_targets(context)
        finally:
            context.close()
            browser.close()
            service.stop()
            bench.stop()


def login(page: Page, user: str, pin: str) -> None:
    page.fill("#user", user)
    for digit in pin:
        page.click(f"[data-key='{digit}']")
    page.click("[data-key='ok']")
    expect(page.locator("#conn")).to_have_text("live")


def test_a_technician_clears_a_fault_and_calibrates_from_the_touchscreen(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page, bench, service = page
    bench.laser("inject_fault", code="F04")
    login(page, "tech", "3916")
    page.click("#tech-btn")
    expect(page.locator("#tech-laser [data-fault=laser]")).to_be_visible()
    bench.laser("remove_fault_cause", code="F04")
    page.click("#tech-laser [data-fault=laser]")
    expect(page.locator("#fault-cause")).to_contain_text("coolant flow was lost")
    page.fill("#fault-reason", "hose kinked, straightened")
    page.click("#fault-clear")
    expect(page.locator("#fault-result")).to_contain_text("STANDBY and no fault: verified")
    page.screenshot(path=str(tmp_path / "fault-cleared.png"))

    page.click("#back")
    page.click("[data-service-on=laser]")
    page.click("[data-cal=laser]")
    page.fill("#cal-setpoints", "300,600")
    page.fill("#cal-pulses", "4")
    page.click("#cal-start")
    expect(page.locator("#run-step")).to_contain_text("pulse")  # the bar moves per pulse
    expect(page.locator("#run-result")).to_contain_text("PASSED", timeout=60000)
    expect(page.locator("#run-points tr")).to_have_count(3)  # a head and a row per setpoint, as they came
    page.screenshot(path=str(tmp_path / "calibration-passed.png"))
    with page.expect_popup() as popup:
        page.click("#run-cert")
    certificate = popup.value
    expect(certificate.locator("h1")).to_have_text("Calibration certificate")
    expect(certificate.locator(".verdict.passed")).to_contain_text("valid until")
    page.click("#back")
    page.click("[data-service-off=laser]")
    expect(page.locator("[data-service-on=laser]")).to_be_visible()


def test_a_practitioner_is_told_to_call_a_technician(page) -> None:  # type: ignore[no-untyped-def]
    page, bench, service = page
    bench.cryo("inject_fault", code="C03")
    login(page, "pat", "4827")
    expect(page.locator("#tech-btn")).to_be_hidden()
    page.wait_for_timeout(100)
    page.evaluate("faultScreen('cryo')")
    expect(page.locator("#fault")).to_contain_text("Call a technician")
    expect(page.locator("#fault-clear")).to_have_count(0)
