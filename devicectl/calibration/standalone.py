"""``devicectl calibrate``: run a procedure with progress bars, record it, write its certificate."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from devicectl.calibration.bench_errors import explain_device, open_instrument
from devicectl.calibration.certificate import write_certificate
from devicectl.calibration.procedures import Result, calibrate_cryo, calibrate_laser
from devicectl.calibration.records import expiry, record_calibration
from devicectl.core.audit import AuditKeyError, AuditLog, default_checkpoint_file, default_key_file, load_key
from devicectl.core.auth import Accounts, AuthError
from devicectl.core.store import Store
from drivers import CryoDriver, LaserDriver
from drivers.scpi import AsyncInstrument

console = Console()


def run_calibration(kind: str, port: str, instrument: str, user: str, pin: str, data_dir: Path, valid_days: int,
                    reference: dict[str, Any] | None = None, **options: Any) -> int:
    """``reference``: the instrument's serial, own calibration due date and certificate number, as the
    service's [instruments.ROLE] gives them (checked against the instrument, printed on the certificate)."""
    try:
        key = load_key(default_key_file(data_dir))
    except AuditKeyError as exc:
        console.print(f"[red]refused:[/red] {exc}")
        return 2
    store = Store(data_dir / "devicectl.sqlite3")
    # the service's key and checkpoints: its entries belong to the same keyed chain
    audit = AuditLog(store, key, default_checkpoint_file(data_dir))
    accounts = Accounts(store, audit)
    try:
        _, technician = asyncio.run(accounts.login(user, pin))
        accounts.require(technician, "technician", action=f"calibrate.{kind}")
    except AuthError as exc:
        console.print(f"[red]refused:[/red] {exc}")
        return 2
    try:
        result = asyncio.run(_run(kind, port, instrument, {k: v for k, v in (reference or {}).items() if v}, options))
    except KeyboardInterrupt:
        audit.append(user, "calibration.interrupted", kind=kind, port=port)
        console.print("[yellow]interrupted: the device was left safe (stopped, service mode off); nothing recorded[/yellow]")
        return 130
    except Exception as exc:  # noqa: BLE001 (a device or instrument problem: reported, recorded as refused, never swallowed)
        exc = explain_device(exc, kind, port)  # what, where, the likely cause, the next step
        audit.append(user, "calibration.aborted", kind=kind, port=port, error=str(exc))
        console.print(f"[red]calibration aborted:[/red] {exc}")
        return 3
    expires_on = expiry(valid_days)
    certificate, _plot = write_certificate(data_dir / "certificates", result, user, expires_on)
    record_calibration(store, audit, user, result.serial, kind, result.passed, result.results, expires_on, str(certificate))
    _summary(result, certificate, expires_on)
    return 0 if result.passed else 1


async def _run(kind: str, port: str, instrument: str, reference: dict[str, Any], options: dict[str, Any]) -> Result:
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(f"{kind} calibration", total=1.0)

        def progress(what: str, done: float) -> None:
            bar.update(task, completed=done, description=f"{kind}: {what}")
            console.log(what)

        role = "meter" if kind == "laser" else "thermometer"
        checked = open_instrument(role, instrument, reference.get("serial"), 1000, reference.get("calibration_due"))
        with contextlib.closing(checked) as bench_instrument:  # before the unit is touched: the right, traceable one
            if kind == "laser":
                async with LaserDriver(port) as laser:
                    result = await calibrate_laser(laser, AsyncInstrument(bench_instrument), options["setpoints"],
                                                   options["pulses"], options["rate"], progress)
            else:
                async with CryoDriver(port) as cryo:
                    result = await calibrate_cryo(cryo, AsyncInstrument(bench_instrument), options["targets"],
                                                  options["freeze"], progress=progress)
            return _traced(result, role, instrument, bench_instrument, reference)


def _traced(result: Result, role: str, resource: str, instrument: Any, reference: dict[str, Any]) -> Result:
    """The certificate names the reference instrument used, with its own calibration due date and
    certificate number (traceability)."""
    result.results["instrument"] = {"role": role, "resource": resource, **instrument.idn(), **reference}
    return result


def _summary(result: Result, certificate: Path, expires_on: str) -> None:
    table = Table(title=f"{result.kind} {result.serial}")
    table.add_column("quantity")
    table.add_column("value")
    for key, value in result.results.items():
        if key not in ("points", "tolerances"):
            table.add_row(key, str(value))
    console.print(table)
    if result.passed:
        console.print(f"[green]PASSED[/green], valid until {expires_on}")
    else:
        console.print("[red]FAILED[/red]: " + "; ".join(result.reasons))
        console.print("treatment with this device is refused until it passes a calibration")
    console.print(f"certificate: {certificate}")
