"""The calibration certificate an inspector accepts: words and units, the unit and the reference
instruments, points with deviation and pass/fail, the verdict, signatures, print and PDF."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from devicectl.calibration import certificate
from devicectl.calibration.certificate import certificate_pdf, write_certificate
from devicectl.core.loops import BEHIND_NICE
from devicectl.calibration.procedures import CryoPoint, LaserPoint, analyse_cryo, analyse_laser

DEVICE = {"vendor": "Simulated Lasers", "model": "QS-1064", "serial": "QS1064-0001", "firmware": "2.4.1"}
METER = {"role": "meter", "resource": "TCPIP::10.0.0.20::5025::SOCKET", "vendor": "Radiometrix", "model": "EM-1",
         "serial": "EM1-0042", "calibration_due": "2027-03-31", "certificate": "DKD-K-12345"}


def laser_result(gain: float) -> object:
    points = [LaserPoint(s, [s * gain * f for f in (0.99, 1.0, 1.01)], [s * gain * 1.02] * 3) for s in (200, 500, 800)]
    result = analyse_laser("QS1064-0001", points)
    result.results |= {"device": DEVICE, "instrument": METER}
    return result


def text_of(page: str) -> str:
    page = re.sub(r"<style>.*?</style>", "", page, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"data:image/png;base64,[^\"]+", "", page)))


def test_a_passed_certificate_names_everything_an_inspector_checks(tmp_path: Path) -> None:
    page, _ = write_certificate(tmp_path, laser_result(0.97), "tech", "2027-05-25")  # type: ignore[arg-type]
    text = text_of(page.read_text())
    assert "PASSED — valid until 2027-05-25" in text
    for words in ("Manufacturer Simulated Lasers", "Model QS-1064", "Serial number QS1064-0001", "Firmware 2.4.1",
                  "Energy meter Radiometrix EM-1 EM1-0042 2027-03-31 DKD-K-12345",
                  "Emitted energy within ±10% of the set energy", "energy monitor within ±5% of the energy meter",
                  "Emitted energy / set energy 0.970", "Correction applied to the monitor from now on × 0.9804",
                  "Technician: tech", "Reviewed by"):
        assert words in text, words
    assert "500 mJ 3 485.0 mJ 0.970 -3.0 % pass" in text
    assert "{" not in text and "set_mj" not in text and "monitor_correction" not in text  # no Python in sight
    assert "@media print" in page.read_text() and "@page" in page.read_text()


def test_a_failed_certificate_is_red_with_what_to_do_and_no_due_date(tmp_path: Path) -> None:
    page, _ = write_certificate(tmp_path, laser_result(0.82), "tech", "2027-05-25")  # type: ignore[arg-type]
    source = page.read_text()
    text = text_of(source)
    assert '<div class="verdict failed">FAILED</div>' in source and "color: #c00000" in source
    assert "valid until" not in text and "2027-05-25" not in text
    assert "Do not treat with this laser" in text and "calibrate again" in text
    assert "-18.0 % FAIL" in text


def test_a_cryo_certificate_in_degrees(tmp_path: Path) -> None:
    result = analyse_cryo("CP2-0001", [CryoPoint(-30, [-28.6, -28.4], [-30.0, -30.0]), CryoPoint(-50, [-48.5], [-50.0])])
    page, _ = write_certificate(tmp_path, result, "tech", "2027-05-25")
    text = text_of(page.read_text())
    assert "Tip sensor offset (sensor − reference) +1.50 °C" in text
    assert "-30 °C 2 -30.00 °C -28.50 °C +1.50 °C pass" in text
    assert "within ±2.0 °C of the reference thermometer" in text
    assert "not recorded" in text  # no instrument records: said so, not left blank


def test_the_certificate_prints_to_pdf(tmp_path: Path) -> None:
    page, _ = write_certificate(tmp_path, laser_result(0.82), "tech", "2027-05-25")  # type: ignore[arg-type]
    pdf = certificate_pdf(page)
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 10_000
    assert certificate_pdf(page) == pdf  # made once, then kept


def test_the_browser_that_prints_it_runs_behind_the_service(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Printing takes a second of CPU: behind the service, never beside the loop that carries STOP (H26)."""
    browser = tmp_path / "browser"
    browser.write_text(f"#!{sys.executable}\nimport os, sys\n"
                       "out = next(a for a in sys.argv if a.startswith('--print-to-pdf=')).split('=', 1)[1]\n"
                       "open(out, 'w').write(f'%PDF nice {os.nice(0)}')\n")
    browser.chmod(0o755)
    monkeypatch.setattr(certificate, "chromium", lambda: str(browser))
    page, _ = write_certificate(tmp_path, laser_result(0.97), "tech", "2027-05-25")  # type: ignore[arg-type]
    assert certificate_pdf(page).read_text() == f"%PDF nice {min(os.nice(0) + BEHIND_NICE, 19)}"
