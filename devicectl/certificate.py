"""Calibration certificate: an HTML page with the results and a matplotlib plot of measured vs set."""

from __future__ import annotations

import base64
import html
import io
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .calibration import CryoPoint, LaserPoint, Result  # noqa: E402


def plot_png(result: Result) -> bytes:
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    if result.kind == "laser":
        points: list[LaserPoint] = result.points
        sets = [p.set_mj for p in points]
        ax.plot(sets, sets, "k--", label="ideal (emitted = set)")
        for p in points:
            ax.scatter([p.set_mj] * len(p.meter_mj), p.meter_mj, s=10, color="tab:blue")
            ax.scatter([p.set_mj] * len(p.monitor_mj), p.monitor_mj, s=10, marker="x", color="tab:orange")
        ax.scatter([], [], s=10, color="tab:blue", label="meter (emitted)")
        ax.scatter([], [], s=10, marker="x", color="tab:orange", label="laser monitor")
        ax.set_xlabel("set energy (mJ)")
        ax.set_ylabel("energy (mJ)")
    else:
        cpoints: list[CryoPoint] = result.points
        for p in cpoints:
            ax.scatter(p.reference_c, p.sensor_c, s=14, color="tab:blue")
        refs = [r for p in cpoints for r in p.reference_c] or [0.0]
        lo, hi = min(refs) - 5, max(refs) + 5
        ax.plot([lo, hi], [lo, hi], "k--", label="ideal (sensor = reference)")
        ax.scatter([], [], s=14, color="tab:blue", label="tip sensor")
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


def write_certificate(directory: Path, result: Result, technician: str, expires_on: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    png = plot_png(result)
    plot_path = directory / f"{result.kind}-{result.serial}-{stamp}.png"
    plot_path.write_bytes(png)
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in result.results.items() if k != "points")
    points = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in p.values()) + "</tr>"
                     for p in result.results["points"])
    head = "".join(f"<th>{html.escape(k)}</th>" for k in result.results["points"][0]) if result.results["points"] else ""
    verdict = "PASSED" if result.passed else "FAILED: " + "; ".join(result.reasons)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Calibration certificate {html.escape(result.serial)}</title>
<style>body{{font-family:sans-serif;max-width:900px;margin:2em auto}}td,th{{border-bottom:1px solid #ccc;padding:4px 10px;text-align:left}}</style></head>
<body><h1>Calibration certificate</h1>
<p>Device: {html.escape(result.kind)} serial <b>{html.escape(result.serial)}</b><br>
Technician: {html.escape(technician)}<br>Date: {time.strftime("%Y-%m-%d %H:%M")}<br>Valid until: {html.escape(expires_on)}</p>
<h2>Result: {html.escape(verdict)}</h2><table>{rows}</table>
<h2>Measurements</h2><table><tr>{head}</tr>{points}</table>
<img alt="measured vs set" src="data:image/png;base64,{base64.b64encode(png).decode()}">
</body></html>"""
    certificate = directory / f"{result.kind}-{result.serial}-{stamp}.html"
    certificate.write_text(page)
    return certificate, plot_path
