"""User admin, PIN entry, the body-site picker and a patient's history on the touchscreen (#18), in
Debian's Chromium. Fixtures and helpers are those of ``tests/test_ui.py``; the system (the users of
``tests/service_harness.py``) that of ``tests/test_patients_api.py``."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.service_harness import ADMIN_PIN, PAT_PIN, Api, BenchProcess, ServiceProcess, set_up_users
from tests.test_patients_api import System, system, treated  # noqa: F401 (fixtures)
from tests.test_ui import CHROMIUM, assert_touch_targets, browser, checked_context, checklist, shot  # noqa: F401 (fixtures)
from tests.test_ui_clinic import touch_targets


@pytest.fixture
def page(browser: Browser, system: System) -> Iterator[Page]:  # noqa: F811
    context = checked_context(browser, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(10000)
    page.goto(system[1].url)
    yield page
    assert_touch_targets(context)
    context.close()


def type_on_screen(page: Page, field: str, text: str) -> None:
    """Type with the on-screen keyboard of ``field`` (no physical keyboard)."""
    page.click(f"#{field}-kbd")
    for char in text:
        page.click(f"#kbd-{field} [data-kbd='{char}']")
    touch_targets(page)
    page.click(f"#kbd-{field} [data-kbd=done]")


def keypad(page: Page, digits: str) -> None:
    for digit in digits:
        page.click(f"[data-pin='{digit}']")


def log_in(page: Page, user: str, pin: str) -> None:
    type_on_screen(page, "user", user)
    for digit in pin:
        page.click(f"[data-key='{digit}']")
    page.click("[data-key='ok']")
    expect(page.locator("#conn")).to_have_text("live")


def test_an_admin_creates_resets_and_deactivates_users_on_the_touchscreen(page: Page, system: System) -> None:  # noqa: F811
    bench, service, admin, practitioner = system
    log_in(page, "admin", ADMIN_PIN)
    touch_targets(page)
    page.click("#users-btn")
    expect(page.locator("#users [data-user=pat]")).to_contain_text("practitioner")
    touch_targets(page)
    page.click("#newuser")
    type_on_screen(page, "username", "sam")
    expect(page.locator("#username")).to_have_value("sam")
    page.click("[data-role=practitioner]")
    keypad(page, "583920")
    page.click("[data-pin=next]")
    keypad(page, "583921")
    page.click("#createuser")
    expect(page.locator("#message")).to_contain_text("The two PINs differ")
    page.click("#userpin2")
    page.click("[data-pin=clear]")
    keypad(page, "583920")
    touch_targets(page)
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "18-new-user")
    page.click("#createuser")
    row = page.locator("#users [data-user=sam]")
    expect(row).to_contain_text("practitioner")
    shot(page, "19-users")
    # a forgotten PIN: reset to a one-time PIN with the keypad, typed twice
    row.locator("[data-reset=sam]").click()
    keypad(page, "720461")
    page.click("[data-pin=next]")
    keypad(page, "720461")
    touch_targets(page)
    page.click("#resetpin")
    expect(row.locator(".user-state")).to_contain_text("one-time PIN")
    # deactivated after a confirmation
    row.locator("[data-deactivate=sam]").click()
    page.click("#deact-yes")
    expect(row.locator(".user-state")).to_contain_text("deactivated")
    expect(page.locator("#users [data-user=admin] [data-deactivate]")).to_have_count(0)  # never oneself
    actions = [e["action"] for e in admin.call("GET", "/api/audit")]
    assert {"user.created", "user.pin_reset", "user.deactivated"} <= set(actions)


def test_a_new_user_chooses_their_pin_with_the_keypad_and_a_confirmation(page: Page, system: System) -> None:  # noqa: F811
    bench, service, admin, practitioner = system
    admin.call("POST", "/api/users", 201, json={"name": "lee", "role": "practitioner", "pin": "582913"})
    admin.call("POST", "/api/users/lee/pin", json={"pin": "582913"})  # one-time, whatever the rules of creation
    log_in(page, "lee", "582913")
    expect(page.locator("h1")).to_contain_text("Choose your own PIN")
    keypad(page, "640275")
    page.click("[data-pin=next]")
    keypad(page, "640275")
    touch_targets(page)
    shot(page, "20-choose-pin")
    page.click("#setpin")
    expect(page.locator("h1")).to_contain_text("Home")
    Api(service.url, "lee", "640275").call("GET", "/api/me")
    # and later, from Home: the current PIN, then the new one twice
    page.click("#mypin")
    keypad(page, "640275")
    page.click("[data-pin=next]")
    keypad(page, "640276")
    page.click("[data-pin=next]")
    keypad(page, "640279")
    page.click("#setpin")
    expect(page.locator("#message")).to_contain_text("The two PINs differ")


def test_a_returning_patients_history_and_a_new_plan_from_the_last_settings(page: Page, system: System) -> None:  # noqa: F811
    bench, service, admin, pat = system
    patient = pat.call("POST", "/api/patients", 201)["patient_id"]
    first = treated(pat, patient, "Left forearm", skin_type=3)
    pat.call("POST", f"/api/sessions/{first}/edit", 409, json={"energy_mj": 300})  # ended: never edited
    treated(pat, patient, "right forearm", skin_type=3)
    log_in(page, "pat", PAT_PIN)
    page.click("#patients")
    type_on_screen(page, "patient-q", patient[2:6])
    page.click(f"[data-patient='{patient}']")
    expect(page.locator("h1")).to_contain_text(f"Patient {patient} skin type III")
    left = page.locator("[data-site='forearm:left']")
    expect(left.locator("h2")).to_have_text("left forearm")
    expect(left.locator(f"[data-history='{first}']")).to_contain_text("tattoo — session 1")
    expect(left.locator(f"[data-history='{first}']")).to_contain_text("0 pulses")
    expect(left.locator(".next")).to_contain_text(re.compile(r"not before \d{4}-\d{2}-\d{2}"))
    expect(page.locator("[data-site='forearm:right']")).to_be_visible()
    touch_targets(page)
    shot(page, "21-patient-history")
    # a new plan for the same site: patient, site and skin type filled; the last settings offered
    left.locator("[data-plan-site]").click()
    expect(page.locator("#patient")).to_have_value(patient)
    expect(page.locator("#site")).to_have_value("left forearm")
    expect(page.locator("#site-reads")).to_contain_text("site: left forearm")
    page.click("#use-last")
    expect(page.locator("[data-choice=device] [data-value=laser]")).to_have_class(re.compile("selected"))
    expect(page.locator("[data-choice=inks] [data-value=black]")).to_have_class(re.compile("selected"))
    touch_targets(page)
    page.click("#makeplan")
    head = page.locator("#plan-head")
    expect(head).to_contain_text("tattoo, left forearm — session 2")
    expect(page.locator("#plan-patient")).to_contain_text(f"patient {patient} · skin type III")
    assert page.evaluate("window.scrollY") == 0  # the plan opens at its header
    touch_targets(page)
    shot(page, "22-plan-course")
    # the interval rule: the same skin, however the site was written
    checklist(page)
    page.click("#savechecklist")
    expect(page.locator("#openitems")).to_contain_text(f"the last session on this site was {date.today().isoformat()}")


def test_the_site_picker_writes_a_structured_site(page: Page, system: System) -> None:  # noqa: F811
    bench, service, admin, pat = system
    log_in(page, "pat", PAT_PIN)
    page.click("#new")
    page.click("#newpatient")
    expect(page.locator("#patient")).to_have_value(re.compile(r"^P-"))
    page.click("[data-region=cheek]")
    page.click("[data-side=left]")
    expect(page.locator("#site")).to_have_value("left cheek")
    page.fill("#site", "cheek, left ")
    expect(page.locator("#site-reads")).to_contain_text("site: left cheek")
    page.fill("#site", "behind the ear lobe")
    expect(page.locator("#site-reads")).to_contain_text("not a site of the list")
    page.click("[data-region=nose]")
    expect(page.locator("#site")).to_have_value("nose")
    expect(page.locator("#site-sides")).to_have_count(0)  # the nose has no side
    page.fill("#site-note", "below the bridge")
    page.click("[data-choice=device] [data-value=laser]")
    page.click("[data-choice=indication] [data-value=pigment_spot]")
    page.click("[data-choice=skin_type] [data-value='2']")
    page.fill("#area", "1")
    touch_targets(page)
    page.locator("#site-note").scroll_into_view_if_needed()
    shot(page, "23-site-picker")
    page.click("#makeplan")
    expect(page.locator("#plan-head")).to_contain_text("nose — session 1")
    expect(page.locator("#plan-patient")).to_contain_text("below the bridge")


# ------------------------------------------------------------------ aftercare and print
CLINIC = '[clinic]\nname = "Lakeside Skin Clinic"\ncontact = "+41 44 555 01 02"\nlocale = "de-CH"\n'


@pytest.fixture
def clinic_page(browser: Browser, tmp_path: Path) -> Iterator[tuple[Page, Api]]:  # noqa: F811
    bench = BenchProcess(tmp_path)
    service = ServiceProcess(tmp_path, bench, extra_config=CLINIC).start(users=True)
    admin, practitioner, _ = set_up_users(service, bench)
    context = checked_context(browser, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(10000)
    page.goto(service.url)
    try:
        yield page, practitioner
        assert_touch_targets(context)
    finally:
        context.close()
        service.stop()
        bench.stop()


def test_the_aftercare_sheet_names_the_clinic_in_its_locale_and_prints_plainly(clinic_page: tuple[Page, Api]) -> None:
    page, pat = clinic_page
    log_in(page, "pat", PAT_PIN)
    page.click("#new")
    page.click("#newpatient")
    expect(page.locator("#patient")).to_have_value(re.compile(r"^P-"))
    page.click("[data-choice=device] [data-value=cryo]")
    page.click("[data-choice=indication] [data-value=scar]")
    page.click("[data-choice=skin_type] [data-value='3']")
    page.click("[data-region=chest]")
    page.fill("#area", "1")
    page.click("#makeplan")
    touch_targets(page)
    checklist(page)
    touch_targets(page)
    page.click("#savechecklist")
    expect(page.locator("#device-state")).to_contain_text("idle")
    expect(page.locator("#treatment h1")).to_contain_text("skin type III · course session 1")
    touch_targets(page)
    # the chart: one canvas pixel per CSS pixel, so its 16 px labels are 16 px on the screen
    assert page.evaluate("(() => { const c = document.querySelector('#curve'); return c.width === c.clientWidth; })()")
    page.click("#endsession")
    touch_targets(page)
    page.click("#end-yes")
    sheet = page.locator("#aftercare")
    expect(sheet.locator("#clinic-name")).to_have_text("Lakeside Skin Clinic")
    expect(sheet.locator("#clinic-contact")).to_contain_text("+41 44 555 01 02")
    today = date.today()
    expect(sheet).to_contain_text(f"{today.day:02d}.{today.month:02d}.{today.year}")  # de-CH, not ISO
    expect(page.locator("#next-session")).to_contain_text(re.compile(r"not before \d{2}\.\d{2}\.\d{4} \(\d+ days\)"))
    expect(sheet).to_contain_text("0 freezes recorded")
    touch_targets(page)
    page.emulate_media(media="print")
    expect(page.locator("#stop")).to_be_hidden()
    expect(page.locator("#print")).to_be_hidden()
    expect(page.locator("#topbar")).to_be_hidden()
    shot(page, "24-aftercare-print")
    page.emulate_media(media="screen")
