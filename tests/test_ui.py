"""The touchscreen in a real browser: Playwright drives Debian's Chromium against the service and
the simulated bench. Each screen is saved at 1280x800 in pytest's temporary folder (tests never write
tracked files, and leave nothing behind that pytest does not clear); `make screenshots` runs these tests with DEVICECTL_SCREENSHOTS=docs/screenshots to refresh the docs."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.service_harness import BenchProcess, ServiceProcess, set_up_users

CHROMIUM = "/usr/bin/chromium"
#: a bound for a screen to show what it should, not a figure under test: a starved CI host draws late
expect.set_options(timeout=10_000)

#: where ``shot`` saves: DEVICECTL_SCREENSHOTS, or a folder of pytest's (set by ``browser``, which every screen needs)
SHOTS = Path(os.environ["DEVICECTL_SCREENSHOTS"]) if os.environ.get("DEVICECTL_SCREENSHOTS") else None
ARGS = ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-gpu", "--no-first-run"]



@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    global SHOTS
    if SHOTS is None:
        SHOTS = tmp_path_factory.mktemp("screens")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def system(tmp_path: Path) -> Iterator[tuple[BenchProcess, ServiceProcess]]:
    bench = BenchProcess(tmp_path)
    service = ServiceProcess(tmp_path, bench).start(users=True)
    set_up_users(service, bench)
    try:
        yield bench, service
    finally:
        service.stop()
        bench.stop()


#: every screen a test reaches is checked: each visible button at least 48 x 48 px (touch targets)
TOUCH_TARGETS_JS = """(() => {
  const seen = new Set();
  const small = (b) => {
    if (!b.isConnected || (b.offsetParent === null && getComputedStyle(b).position !== "fixed")) return null;
    const r = b.getBoundingClientRect();
    return r.width > 0 && (r.width < 48 || r.height < 48) ? r : null;
  };
  const scan = () => {
    for (const b of document.querySelectorAll("button")) {
      if (!small(b)) continue;
      setTimeout(() => {  // still small once laid out (not a frame caught mid-layout)
        const r = small(b);
        if (!r) return;
        const h = document.querySelector("h1, h2");
        const key = `${h ? h.innerText : "(no heading)"}: "${b.innerText || b.id}" ${Math.round(r.width)}x${Math.round(r.height)}`;
        if (!seen.has(key)) { seen.add(key); window.__touchTarget(key); }
      }, 300);
    }
  };
  let queued = false;
  const later = () => { if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; scan(); }); } };
  document.addEventListener("DOMContentLoaded", () => {
    new MutationObserver(later).observe(document.body, { childList: true, subtree: true, attributes: true });
    scan();
  });
})();"""


_SMALL: dict[int, list[str]] = {}


def checked_context(browser: Browser, **options: object) -> BrowserContext:
    """A browser context whose every page reports the buttons under 48 x 48 px of every screen it
    shows, across reloads (``assert_touch_targets``)."""
    context = browser.new_context(**({"viewport": {"width": 1280, "height": 800}} | options))  # type: ignore[arg-type]
    found = _SMALL.setdefault(id(context), [])
    context.expose_function("__touchTarget", lambda key: found.append(str(key)))
    context.add_init_script(TOUCH_TARGETS_JS)
    return context


def assert_touch_targets(context: BrowserContext) -> None:
    """No screen any page of ``context`` showed had a visible button under 48 x 48 px."""
    for page in context.pages:  # the last screen's scan and its re-check have run
        if not page.is_closed():
            page.evaluate("new Promise((done) => requestAnimationFrame(() => setTimeout(done, 400)))")
    small = _SMALL.pop(id(context), [])
    assert not small, f"buttons under 48 x 48 px: {small}"


@pytest.fixture
def page(browser: Browser, system: tuple[BenchProcess, ServiceProcess]) -> Iterator[Page]:
    context = checked_context(browser)
    page = context.new_page()
    page.set_default_timeout(10000)
    page.goto(system[1].url)
    yield page
    assert_touch_targets(context)
    context.close()


def test_the_touch_target_check_sees_every_screen(browser: Browser) -> None:
    context = checked_context(browser)
    page = context.new_page()
    page.goto("data:text/html,<h1>Home</h1><button style='width:60px;height:60px'>big</button>")
    page.evaluate("""document.body.innerHTML = "<h1>Plan</h1><button style='width:30px;height:20px'>tiny</button>" """)
    with pytest.raises(AssertionError, match='Plan: "tiny" 30x20'):
        assert_touch_targets(context)
    context.close()


def shot(page: Page, name: str) -> None:
    assert SHOTS is not None, "the browser fixture sets the folder"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def login(page: Page, user: str, pin: str) -> None:
    page.fill("#user", user)
    for digit in pin:
        page.click(f"[data-key='{digit}']")
    page.click("[data-key='ok']")
    expect(page.locator("#conn")).to_have_text("live")


def plan(page: Page, device: str, indication: str, skin: str, area: str, site: str, inks: tuple[str, ...] = ()) -> None:
    page.click("#new")
    page.click("#newpatient")
    expect(page.locator("#patient")).to_have_value(re.compile(r"^P-"))
    page.click(f"[data-choice=device] [data-value={device}]")
    page.click(f"[data-choice=indication] [data-value={indication}]")
    page.click(f"[data-choice=skin_type] [data-value='{skin}']")
    for ink in inks:
        page.click(f"[data-choice=inks] [data-value={ink}]")
    page.fill("#area", area)
    page.fill("#site", site)


def checklist(page: Page) -> None:
    page.click("#tochecklist")
    for button in page.locator("[id^=chk-]").all():
        button.click()


def emitting(page: Page, bench: BenchProcess, site: str, ink: str) -> None:
    """A practitioner plans, checks, arms; the footswitch (through the backdoor) fires."""
    login(page, "pat", "4827")
    plan(page, "laser", "tattoo", "2", "5", site, (ink,))
    page.click("#makeplan")
    checklist(page)
    page.click("#savechecklist")
    time.sleep(1.2)  # the handpiece's spot is read once a second
    page.click("#arm")
    expect(page.locator("#device-state")).to_contain_text("READY", timeout=5000)
    bench.laser("set_input", name="foot", value=1)
    expect(page.locator("#device-state")).to_contain_text("EMITTING")


def test_touch_targets_and_login_screen(page: Page) -> None:
    shot(page, "01-login")
    for button in page.locator("button:visible").all():
        box = button.bounding_box()
        assert box and box["height"] >= 48 and box["width"] >= 48, button.inner_text()


def test_refused_plan_is_explained(page: Page) -> None:
    login(page, "pat", "4827")
    plan(page, "laser", "tattoo", "2", "3", "left arm", ("green",))
    page.click("#makeplan")
    expect(page.locator("#message")).to_contain_text("no suitable wavelength")
    shot(page, "03-plan-refused")


def test_whole_laser_session_on_screen(page: Page, system: tuple[BenchProcess, ServiceProcess]) -> None:
    bench, service = system
    login(page, "pat", "4827")
    shot(page, "02-home")
    plan(page, "laser", "tattoo", "2", "0.3", "left forearm", ("black",))
    page.click("#makeplan")
    expect(page.locator("h1")).to_contain_text("Plan")
    expect(page.locator("table")).to_contain_text("1064 nm")
    shot(page, "04-plan")
    checklist(page)
    shot(page, "05-checklist")
    page.click("#savechecklist")
    expect(page.locator("#device-state")).to_contain_text("standby")
    budget = int(page.locator("#pulse-count small").inner_text().strip("/ "))
    time.sleep(1.2)  # the handpiece's spot is read once a second
    page.click("#arm")
    expect(page.locator("#device-state")).to_contain_text("READY", timeout=5000)
    bench.laser("set_input", name="foot", value=1)
    expect(page.locator("#device-state")).to_contain_text("EMITTING")
    shot(page, "06-laser-emitting")
    expect(page.locator("#pulse-count")).to_contain_text(f"{budget} / {budget}", timeout=15000)
    bench.laser("set_input", name="foot", value=0)
    expect(page.locator("#remaining")).to_have_text("0")
    assert bench.laser("truth")["count"] == budget
    page.click("#endsession")
    page.click("#end-yes")
    expect(page.locator("#aftercare")).to_contain_text("No sun or solarium for 2 weeks")
    shot(page, "09-aftercare")


def test_stop_from_the_screen_reaches_the_simulator(page: Page, system: tuple[BenchProcess, ServiceProcess]) -> None:
    bench, service = system
    emitting(page, bench, "back", "blue")
    page.click("#stop")
    expect(page.locator("#device-state")).to_contain_text("standby")
    assert bench.laser("truth")["emitting"] is False
    assert "STOP" in bench.laser("executed")[-4:]


def test_stop_works_on_the_login_screen_after_a_logout(page: Page, system: tuple[BenchProcess, ServiceProcess]) -> None:
    """A reload or a logout mid-treatment must never leave the room without STOP."""
    bench, service = system
    emitting(page, bench, "calf", "black")
    page.reload()  # a reload lands on the login screen: the laser is still firing
    expect(page.locator("h1")).to_contain_text("Log in")
    expect(page.locator("#stop")).to_be_visible()
    page.click("#stop")
    deadline = time.monotonic() + 5
    while bench.laser("truth")["emitting"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert bench.laser("truth")["emitting"] is False
    assert "STOP" in bench.laser("executed")[-6:]
    bench.laser("set_input", name="foot", value=0)


def test_interlock_opened_mid_treatment_is_shown_and_recovered(page: Page, system: tuple[BenchProcess, ServiceProcess]) -> None:
    bench, service = system
    emitting(page, bench, "shoulder", "black")
    bench.laser("set_input", name="interlock", value=0)
    expect(page.locator("#banners")).to_contain_text("Door interlock open")
    expect(page.locator("#device-state")).to_contain_text("standby")
    shot(page, "07-interlock-open")
    bench.laser("set_input", name="foot", value=0)
    bench.laser("set_input", name="interlock", value=1)
    expect(page.locator("#banners")).not_to_contain_text("Door interlock open")
    time.sleep(1.0)
    expect(page.locator("#device-state")).to_contain_text("standby")  # nothing re-armed
    page.click("#arm")
    expect(page.locator("#device-state")).to_contain_text("READY", timeout=5000)
    page.click("#stop")


def test_whole_cryo_freeze_on_screen(page: Page, system: tuple[BenchProcess, ServiceProcess]) -> None:
    bench, service = system
    login(page, "pat", "4827")
    plan(page, "cryo", "scar", "3", "1", "chest")
    page.click("#makeplan")
    expect(page.locator("table")).to_contain_text("-50 °C")
    checklist(page)
    page.click("#savechecklist")
    expect(page.locator("#device-state")).to_contain_text("idle")
    page.fill("#seconds", "4")
    time.sleep(1.0)  # the live panel re-renders meanwhile: the typed value must survive
    page.click("#freeze")
    expect(page.locator("#device-state")).to_contain_text("FREEZING")
    time.sleep(3.0)
    shot(page, "08-cryo-freezing")
    expect(page.locator("#cycles")).to_contain_text("1 / 2", timeout=8000)
    assert bench.cryo("truth")["freezes"][-1]["dur_s"] == pytest.approx(4.0, abs=0.05)  # what was typed
    expect(page.locator("#device-state")).to_contain_text("thawing")
    page.click("#endsession")
    page.click("#end-yes")
    expect(page.locator("#aftercare")).to_contain_text("Scales fall off in 2-3 weeks")


def test_technician_calibration_view_and_connection_lost(page: Page, system: tuple[BenchProcess, ServiceProcess]) -> None:
    bench, service = system
    login(page, "tech", "3916")
    page.click("#cal")
    expect(page.locator("table")).to_contain_text(bench.addresses["laser_serial"])
    expect(page.locator("table")).to_contain_text("passed")
    shot(page, "10-calibration-status")
    service.stop()
    expect(page.locator("#conn")).to_have_text("CONNECTION LOST")
    expect(page.locator("#banners")).to_contain_text("Connection to the service lost")
    shot(page, "11-connection-lost")
