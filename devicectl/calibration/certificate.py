"""Calibration certificate: an HTML page an inspector accepts, its plot, and a PDF of it.

It names the unit (vendor, model, serial, firmware), every reference instrument with its serial
and its own calibration due date (traceability), the procedure and its tolerances in words, each
measured point with its deviation and pass/fail, the verdict (a due date only on a PASSED
certificate; a FAILED one in red with what to do), and signature lines for the technician and a
reviewer. It prints on A4 (print stylesheet); ``certificate_pdf`` prints it to PDF with Debian's
Chromium, headless.
"""

from __future__ import annotations

import base64
import html
import io
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from devicectl.calibration.procedures import (
    GAIN_TOLERANCE,
    MONITOR_TOLERANCE,
    TIP_OFFSET_TOLERANCE_C,
    CryoPoint,
    LaserPoint,
    Result,
)
from devicectl.core.loops import behind

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
ROLE_NAMES = {"meter": "Energy meter", "thermometer": "Reference thermometer"}
#: each result in words and with its unit
LABELS = {
    "gain": ("Emitted energy / set energy", "", "{:.3f}"),
    "monitor_ratio": ("Laser's energy monitor / energy meter", "", "{:.3f}"),
    "monitor_correction": ("Correction applied to the monitor from now on", "", "× {:.4f}"),
    "offset_c": ("Tip sensor offset (sensor − reference)", "°C", "{:+.2f}"),
}
PROCEDURES = {
    "laser": ("Laser energy calibration",
              ("The laser in SERVICE mode at 1064 nm fires a series of pulses at each set energy into the energy meter "
               "(wavelength correction 1064 nm, a range with 25 % headroom). The meter measures what was really "
               "emitted; the laser's own monitor reports each pulse as well.")),
    "cryo": ("Cryo tip temperature calibration",
             ("The reference thermometer (type T thermocouple) is clamped on the tip. At each target the unit freezes; "
              "half-way through, the tip sensor and the reference are read together eight times.")),
}
TOLERANCES = {
    "laser": [(f"Emitted energy within ±{GAIN_TOLERANCE:.0%} of the set energy (half the ±20 % delivered-energy "
               "accuracy IEC 60601-2-22 asks for, leaving room for drift until the next calibration)."),
              f"The laser's energy monitor within ±{MONITOR_TOLERANCE:.0%} of the energy meter."],
    "cryo": [f"The tip sensor within ±{TIP_OFFSET_TOLERANCE_C:.1f} °C of the reference thermometer."],
}
WHAT_TO_DO = {
    "laser": "Do not treat with this laser. Check the flashlamp, the optics and the energy monitor (service manual), "
             "then calibrate again; treatment is refused until a calibration passes.",
    "cryo": "Do not treat with this unit. Check the probe's thermocouple and its seating, replace the probe if needed, "
            "then calibrate again; treatment is refused until a calibration passes.",
}
STYLE = """
body { font: 11pt/1.4 "DejaVu Sans", Arial, sans-serif; color: #000; max-width: 190mm; margin: 12mm auto; }
h1 { font-size: 18pt; margin: 0 0 2mm; } h2 { font-size: 12.5pt; margin: 6mm 0 2mm; border-bottom: 1px solid #888; }
table { border-collapse: collapse; width: 100%; } td, th { border: 1px solid #aaa; padding: 1.5mm 2.5mm; text-align: left; }
th { background: #eee; } .num { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { font-size: 16pt; font-weight: bold; padding: 3mm 4mm; border: 2px solid; margin: 4mm 0; }
.verdict.passed { color: #146c2e; border-color: #146c2e; }
.verdict.failed, .fail { color: #c00000; border-color: #c00000; }
.pass { color: #146c2e; } .failed-note { color: #c00000; font-weight: bold; }
.signatures { display: grid; grid-template-columns: 1fr 1fr; gap: 12mm; margin-top: 14mm; }
.signatures div { border-top: 1px solid #000; padding-top: 1.5mm; } .muted { color: #555; font-size: 9pt; }
img { max-width: 100%; } table.points td, table.points th { padding: 1mm 1.5mm; font-size: 9.5pt; }
@page { size: A4; margin: 12mm; }
@media print { body { margin: 0; max-width: none; } h2, table, .signatures { break-inside: avoid; }
  .verdict.failed, .fail, .failed-note { -webkit-print-color-adjust: exact; print-color-adjust: exact; } }
"""


def plot_png(result: Result) -> bytes:
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=100)
    if result.kind == "laser":
        points: list[LaserPoint] = result.points
        sets = [p.set_mj for p in points]
        ax.plot(sets, sets, "k--", label="ideal (emitted = set)")
        for p in points:
            ax.scatter([p.set_mj] * len(p.meter_mj), p.meter_mj, s=10, color="tab:blue")
            ax.scatter([p.set_mj] * len(p.monitor_mj), p.monitor_mj, s=10, marker="x", color="tab:orange")
        ax.scatter([], [], s=10, color="tab:blue", label="energy meter (emitted)")
        ax.scatter([], [], s=10, marker="x", color="tab:orange", label="laser's monitor")
        ax.set_xlabel("set energy (mJ)")
        ax.set_ylabel("energy (mJ)")
    else:
        cpoints: list[CryoPoint] = result.points
        for c in cpoints:  # window means with their spread: the two sides are not sampled in pairs
            ax.errorbar(statistics.fmean(c.reference_c), statistics.fmean(c.sensor_c), fmt="o", color="tab:blue",
                        xerr=statistics.pstdev(c.reference_c), yerr=statistics.pstdev(c.sensor_c), capsize=3)
        refs = [r for p in cpoints for r in p.reference_c] or [0.0]
        lo, hi = min(refs) - 5, max(refs) + 5
        ax.plot([lo, hi], [lo, hi], "k--", label="ideal (sensor = reference)")
        ax.errorbar([], [], fmt="o", color="tab:blue", label="tip sensor, mean and spread")
        ax.set_xlabel("reference thermometer (°C)")
        ax.set_ylabel("tip sensor (°C)")
    ax.set_title(f"{result.kind} {result.serial}: {'PASSED' if result.passed else 'FAILED'}")
    ax.grid(True, alpha=0.3)
    ax.legend()
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _e(value: Any) -> str:
    return html.escape(str(value))


def _mark(ok: bool) -> str:
    return '<td class="pass">pass</td>' if ok else '<td class="fail">FAIL</td>'


def point_rows(result: Result) -> tuple[str, str]:
    """The measured points' table head and rows, each with its deviation and pass/fail."""
    if result.kind == "laser":
        head = ("<tr><th>Set energy</th><th>Pulses</th><th>Meter, mean</th><th>Emitted / set</th><th>Deviation</th>"
                "<th></th><th>Monitor, mean</th><th>Monitor / meter</th><th>Deviation</th><th></th></tr>")
        rows = []
        for p in result.points:
            gain, ratio = p.gain, p.monitor_ratio
            rows.append(
                f'<tr><td class="num">{p.set_mj} mJ</td><td class="num">{len(p.meter_mj)}</td>'
                f'<td class="num">{sum(p.meter_mj) / len(p.meter_mj):.1f} mJ</td><td class="num">{gain:.3f}</td>'
                f'<td class="num">{(gain - 1) * 100:+.1f} %</td>{_mark(abs(gain - 1) <= GAIN_TOLERANCE)}'
                f'<td class="num">{sum(p.monitor_mj) / len(p.monitor_mj):.1f} mJ</td><td class="num">{ratio:.3f}</td>'
                f'<td class="num">{(ratio - 1) * 100:+.1f} %</td>{_mark(abs(ratio - 1) <= MONITOR_TOLERANCE)}</tr>')
        return head, "".join(rows)
    head = ("<tr><th>Target</th><th>Samples</th><th>Reference, mean</th><th>Tip sensor, mean</th>"
            "<th>Deviation</th><th></th></tr>")
    rows = []
    for c in result.points:
        offset = c.offset_c
        rows.append(
            f'<tr><td class="num">{c.target_c} °C</td><td class="num">{len(c.sensor_c)}</td>'
            f'<td class="num">{sum(c.reference_c) / len(c.reference_c):.2f} °C</td>'
            f'<td class="num">{sum(c.sensor_c) / len(c.sensor_c):.2f} °C</td>'
            f'<td class="num">{offset:+.2f} °C</td>{_mark(abs(offset) <= TIP_OFFSET_TOLERANCE_C)}</tr>')
    return head, "".join(rows)


def render_certificate(result: Result, technician: str, expires_on: str, png: bytes, performed: str,
                       number: str) -> str:
    results = result.results
    device = results.get("device") or {"serial": result.serial}
    title, procedure = PROCEDURES[result.kind]
    device_rows = "".join(
        f"<tr><th>{label}</th><td>{_e(device.get(key) or '—')}</td></tr>"
        for label, key in (("Manufacturer", "vendor"), ("Model", "model"), ("Serial number", "serial"),
                           ("Firmware", "firmware")))
    instruments = [results["instrument"]] if isinstance(results.get("instrument"), dict) else []
    instrument_rows = "".join(
        f"<tr><td>{_e(ROLE_NAMES.get(i.get('role', ''), i.get('role', '')))}</td><td>{_e(i.get('vendor', ''))} "
        f"{_e(i.get('model', ''))}</td><td>{_e(i.get('serial') or '—')}</td>"
        f"<td>{_e(i.get('calibration_due') or 'not recorded: add it to the configuration')}</td>"
        f"<td>{_e(i.get('certificate') or '—')}</td></tr>" for i in instruments
    ) or '<tr><td colspan="5">not recorded (standalone bench without instrument records)</td></tr>'
    values = "".join(
        f"<tr><th>{label}</th><td class=\"num\">{fmt.format(results[key])}{(' ' + unit) if unit else ''}</td></tr>"
        for key, (label, unit, fmt) in LABELS.items() if isinstance(results.get(key), (int, float)))
    tolerances = "".join(f"<li>{_e(t)}</li>" for t in TOLERANCES[result.kind])
    head, rows = point_rows(result)
    if result.passed:
        verdict = (f'<div class="verdict passed">PASSED — valid until {_e(expires_on)}</div>'
                   "<p>The unit may be used for treatment until that date.</p>")
    else:
        reasons = "".join(f"<li>{_e(r)}</li>" for r in result.reasons)
        verdict = (f'<div class="verdict failed">FAILED</div><ul class="failed-note">{reasons}</ul>'
                   f'<p class="failed-note">{_e(WHAT_TO_DO[result.kind])}</p>')
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Calibration certificate {_e(number)}</title><style>{STYLE}</style></head><body>
<h1>Calibration certificate</h1>
<p class="muted">No. {_e(number)} · {_e(title)} · performed {_e(performed)} by {_e(technician)}</p>
{verdict}
<h2>Unit calibrated</h2><table>{device_rows}</table>
<h2>Reference instruments</h2>
<table><tr><th>Instrument</th><th>Model</th><th>Serial number</th><th>Own calibration due</th><th>Its certificate</th></tr>
{instrument_rows}</table>
<h2>Procedure</h2><p>{_e(procedure)}</p><p>Acceptance:</p><ul>{tolerances}</ul>
<h2>Results</h2><table>{values}</table>
<h2>Measured points</h2><table class="points">{head}{rows}</table>
<p><img alt="measured against set" src="data:image/png;base64,{base64.b64encode(png).decode()}"></p>
<div class="signatures"><div>Technician: {_e(technician)}<br><span class="muted">signature and date</span></div>
<div>Reviewed by<br><span class="muted">name, signature and date</span></div></div>
</body></html>"""


def write_certificate(directory: Path, result: Result, technician: str, expires_on: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    png = plot_png(result)
    plot_path = directory / f"{result.kind}-{result.serial}-{stamp}.png"
    plot_path.write_bytes(png)
    number = f"{result.kind.upper()}-{result.serial}-{stamp}"
    page = render_certificate(result, technician, expires_on, png, time.strftime("%Y-%m-%d %H:%M"), number)
    certificate = directory / f"{result.kind}-{result.serial}-{stamp}.html"
    certificate.write_text(page)
    return certificate, plot_path


def chromium() -> str | None:
    for candidate in (*CHROMIUM, shutil.which("chromium") or ""):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def certificate_pdf(certificate: Path, timeout_s: float = 60.0) -> Path:
    """Print the certificate to PDF (A4) with headless Chromium, next to the HTML; kept once made."""
    pdf = certificate.with_suffix(".pdf")
    if pdf.exists() and pdf.stat().st_mtime >= certificate.stat().st_mtime:
        return pdf
    browser = chromium()
    if browser is None:
        raise FileNotFoundError("Chromium is not installed (Debian: apt-get install chromium): no PDF export")
    with tempfile.TemporaryDirectory(prefix="devicectl-pdf-") as profile:
        answer = subprocess.run(behind(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             f"--user-data-dir={profile}", "--no-pdf-header-footer", f"--print-to-pdf={pdf}",
             certificate.resolve().as_uri()]),  # a second's CPU of its own, behind the service (H26)
            capture_output=True, text=True, timeout=timeout_s, check=False)  # its failure is explained below
    if answer.returncode != 0 or not pdf.exists() or pdf.stat().st_size == 0:
        raise RuntimeError(f"Chromium could not print {certificate.name} to PDF: {answer.stderr.strip()[-300:]}")
    return pdf
