"""``devicectl calibrate ... --service URL``: run a procedure through the running service.

The service holds the device's serial line; this command logs the technician in, puts the device
into service mode (unless it already is, for this technician), starts a calibration run, follows
its progress point by point and prints the result; it leaves service mode again if it entered it.
Ctrl-C cancels the run (the service leaves the unit safe). Exit codes as the standalone command:
0 passed, 1 failed, 2 login refused, 3 aborted by a device or instrument problem, 130 interrupted.
"""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from devicectl.client import ServiceClient, ServiceError

console = Console()
POLL_S = 0.2


def service_url_from_config(config: Path) -> str:
    """The URL of the service a configuration file describes (its HTTP address, TLS or not)."""
    data = tomllib.loads(config.read_text())
    host = data.get("http_host", "127.0.0.1")
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    scheme = "https" if data.get("tls_cert") else "http"
    return f"{scheme}://{host}:{data.get('http_port', 8000)}"


def run_remote_calibration(url: str, device: str, user: str, pin: str, options: dict[str, Any],
                           timeout_s: float = 600.0) -> int:
    try:
        client = ServiceClient(url)
    except Exception as exc:  # noqa: BLE001 (a malformed URL, whatever the client library raises: reported, exit 3)
        console.print(f"[red]the service at {url} cannot be used:[/red] {exc}")
        return 3
    with client:
        try:
            client.login(user, pin)
        except ServiceError as exc:
            console.print(f"[red]refused:[/red] {exc}")
            return 2
        except Exception as exc:  # noqa: BLE001 (reported with the next step, exit 3)
            console.print(f"[red]the service at {url} is not reachable[/red] ({exc}). Next: start it "
                          "(`systemctl start devicectl`) or give its URL with --service; without a service, give "
                          "--port and the instrument instead")
            return 3
        try:
            held = client._call("GET", f"/api/devices/{device}/service-mode")
            entered = False
            if not held["service_mode"]:
                client._call("PUT", f"/api/devices/{device}/service-mode",
                             json={"on": True, "reason": "calibration (devicectl calibrate)"})
                entered = True
        except ServiceError as exc:
            console.print(f"[red]{device} cannot be calibrated now:[/red] {exc}")
            return 3
        try:
            return _follow(client, device, options, timeout_s)
        finally:
            if entered:
                try:
                    client._call("PUT", f"/api/devices/{device}/service-mode", json={"on": False})
                except ServiceError as exc:
                    console.print(f"[yellow]{device} is still in service mode:[/yellow] {exc}")


def _follow(client: ServiceClient, device: str, options: dict[str, Any], timeout_s: float) -> int:
    try:
        run = client._call("POST", "/api/calibration-runs", json={"device": device, **options})
    except ServiceError as exc:
        console.print(f"[red]the calibration could not start:[/red] {exc}")
        return 3
    deadline = time.monotonic() + timeout_s
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                      console=console) as bar:
            task = bar.add_task(f"{device}: starting", total=1.0)
            shown = 0
            while run["state"] == "running":
                if time.monotonic() > deadline:
                    raise TimeoutError
                time.sleep(POLL_S)
                run = client._call("GET", f"/api/calibration-runs/{run['id']}")
                bar.update(task, completed=run["progress"], description=f"{device}: {run['step']}")
                for point in run["points"][shown:]:
                    console.log(_point_text(point))
                shown = len(run["points"])
    except (KeyboardInterrupt, TimeoutError):
        client._call("POST", f"/api/calibration-runs/{run['id']}/cancel")
        while run["state"] == "running":
            time.sleep(POLL_S)
            run = client._call("GET", f"/api/calibration-runs/{run['id']}")
        console.print("[yellow]interrupted: the service left the device safe; nothing recorded[/yellow]")
        return 130
    return _summary(run)


def _point_text(point: dict[str, Any]) -> str:
    if "set_mj" in point:
        return f"{point['set_mj']} mJ: emitted {point['gain']:.3f} x set, monitor {point['monitor_ratio']:.3f} x meter"
    return f"{point['target_c']} °C: tip sensor {point['offset_c']:+.2f} °C off the reference"


def _summary(run: dict[str, Any]) -> int:
    if run["state"] == "aborted":
        error = run["error"] or {}
        console.print(f"[red]calibration aborted:[/red] {error.get('what', '')} at {error.get('address', '')}: "
                      f"{error.get('cause', '')}")
        console.print(f"next: {error.get('next_step', '')}")
        return 3
    if run["state"] == "cancelled":
        console.print("[yellow]cancelled: the device was left safe; nothing recorded[/yellow]")
        return 130
    result = run["result"] or {}
    for key in ("gain", "monitor_ratio", "monitor_correction", "offset_c"):
        if key in result:
            console.print(f"{key}: {result[key]}")
    if run["state"] == "passed":
        console.print("[green]PASSED[/green]")
    else:
        console.print("[red]FAILED[/red]: " + "; ".join(run["reasons"]))
        console.print("treatment with this device is refused until it passes a calibration")
    console.print(f"certificate: {run['certificate']}")
    return 0 if run["state"] == "passed" else 1
