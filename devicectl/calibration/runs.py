"""Calibration runs inside the service: the procedure on the service's own connection to the
device (the supervisor's driver) and the bench instrument configured as ``meter`` or
``thermometer``, with live progress on the hub, the record and certificate at the end.

A run needs the device in service mode (devicectl/core/service_mode.py), held by the technician who
starts it. One run per device at a time; cancelling it cancels the procedure, whose ``finally``
leaves the unit safe (laser: STOP, STANDBY, SERVICE off; cryo: STOP, LIMIT FREEZE 0). A device or
instrument problem aborts the run with a ``BenchError`` in words (audited, not recorded).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devicectl.calibration.bench_errors import BenchError, explain_device, explain_instrument, open_instrument
from devicectl.calibration.procedures import Result, calibrate_cryo, calibrate_laser
from devicectl.calibration.records import expiry
from devicectl.core.auth import User
from devicectl.core.sessions import SessionError
from drivers import CryoDriver, DriverError, LaserDriver
from drivers.scpi import AsyncInstrument

if TYPE_CHECKING:
    from devicectl.core.service import Service

log = logging.getLogger(__name__)
ROLE = {"laser": "meter", "cryo": "thermometer"}


@dataclass
class CalibrationRun:
    id: int
    device: str
    kind: str
    technician: str
    options: dict[str, Any]
    state: str = "running"  # running, passed, failed, aborted, cancelled
    progress: float = 0.0
    step: str = "starting"
    points: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, str] | None = None
    result: dict[str, Any] | None = None
    reasons: list[str] = field(default_factory=list)
    record_id: int | None = None
    certificate: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    task: asyncio.Task[None] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "device": self.device, "kind": self.kind, "technician": self.technician,
                "options": self.options, "state": self.state, "progress": round(self.progress, 4), "step": self.step,
                "points": self.points, "error": self.error, "result": self.result, "reasons": self.reasons,
                "record_id": self.record_id, "certificate": self.certificate, "started": self.started,
                "finished": self.finished}


class CalibrationRuns:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.runs: dict[int, CalibrationRun] = {}
        self._ids = itertools.count(1)

    def running_on(self, device: str) -> CalibrationRun | None:
        return next((r for r in self.runs.values() if r.device == device and r.state == "running"), None)

    def get(self, run_id: int) -> CalibrationRun:
        run = self.runs.get(run_id)
        if run is None:
            raise SessionError(f"no calibration run {run_id}", 404)
        return run

    def start(self, user: User, device: str, options: dict[str, Any]) -> CalibrationRun:
        service = self.service
        service.accounts.require(user, "technician", action="calibration.run")
        supervisor = service.supervisors.get(device)
        if supervisor is None:
            raise SessionError(f"no device named {device!r}", 404)
        if supervisor.service_mode is None:
            raise SessionError(f"put {device} into service mode first (no session can start while it lasts)")
        if supervisor.service_mode != user.name:
            raise SessionError(f"{device} is in service mode for {supervisor.service_mode}, not for {user.name}")
        if self.running_on(device):
            raise SessionError(f"a calibration is already running on {device}")
        if not supervisor.driver.connected or not supervisor.status.connected:
            raise SessionError(f"{device} is not connected: check its cable and power; it reconnects by itself")
        kind = supervisor.config.type
        role = ROLE[kind]
        resource = getattr(service.settings, role)
        if not resource:
            raise SessionError(f"no {'energy meter' if kind == 'laser' else 'reference thermometer'} is configured: "
                               f"set `{role} = \"TCPIP::HOST::5025::SOCKET\"` in the service's configuration", 409)
        run = CalibrationRun(next(self._ids), device, kind, user.name, options)
        self.runs[run.id] = run
        service.audit.append(user.name, "calibration.started", device=device, serial=supervisor.status.serial,
                             run=run.id, options=options, instrument=resource)
        run.task = asyncio.get_running_loop().create_task(self._run(run, user, resource))
        self._publish(run)
        return run

    def cancel(self, user: User, run_id: int) -> CalibrationRun:
        self.service.accounts.require(user, "technician", action="calibration.cancel")
        run = self.get(run_id)
        if run.state == "running" and run.task is not None:
            run.task.cancel()
        return run

    async def wait(self, run_id: int) -> CalibrationRun:
        run = self.get(run_id)
        if run.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(run.task)
        return run

    async def close(self) -> None:
        for run in self.runs.values():
            if run.task is not None and not run.task.done():
                run.task.cancel()
                with contextlib.suppress(BaseException):
                    await run.task

    # ------------------------------------------------------------------ the run
    def _publish(self, run: CalibrationRun) -> None:
        self.service.hub.publish({"type": "calibration", "run": run.as_dict()})

    async def _run(self, run: CalibrationRun, user: User, resource: str) -> None:
        service = self.service
        supervisor = service.supervisors[run.device]
        role = ROLE[run.kind]
        reference = service.settings.instrument_info(role) if hasattr(service.settings, "instrument_info") else {}
        last_publish = 0.0

        def progress(what: str, done: float) -> None:
            nonlocal last_publish
            run.step, run.progress = what, max(run.progress, done)
            now = time.monotonic()
            if now - last_publish > 0.1 or done >= 1.0:
                last_publish = now
                self._publish(run)

        def on_point(point: dict[str, Any]) -> None:
            run.points.append(point)
            self._publish(run)

        instrument: Any = None
        try:
            try:
                instrument = await asyncio.to_thread(open_instrument, role, resource, reference.get("serial"), 1000,
                                                     reference.get("calibration_due"))
            except BenchError:
                raise
            except Exception as exc:
                raise explain_instrument(exc, role, resource) from exc
            driver = supervisor.driver
            options = run.options
            if isinstance(driver, LaserDriver):
                result = await calibrate_laser(driver, AsyncInstrument(instrument), options["setpoints"],
                                               options["pulses"], options["rate"], progress, on_point)
            else:
                assert isinstance(driver, CryoDriver)
                result = await calibrate_cryo(driver, AsyncInstrument(instrument), options["targets"], options["freeze"],
                                              progress=progress, on_point=on_point)
            identity = await asyncio.to_thread(instrument.idn)
            result.results["instrument"] = {"role": role, "resource": resource, **identity, **reference}
            await self._finish(run, user, result, await self._device_identity(supervisor))
        except asyncio.CancelledError:
            run.state, run.step = "cancelled", "cancelled: the device was left safe; nothing recorded"
            await service.audit.append(run.technician, "calibration.cancelled", device=run.device, run=run.id)
        except BenchError as exc:
            self._abort(run, exc)
        except Exception as exc:  # never swallowed: reported in words, audited, not recorded
            log.exception("calibration run %s failed", run.id)
            self._abort(run, explain_device(exc, run.kind, supervisor.config.port))
        finally:
            if instrument is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(instrument.close)
            run.finished = time.time()
            self._publish(run)

    async def _device_identity(self, supervisor: Any) -> dict[str, Any]:
        try:
            idn = await supervisor.driver.idn()
        except DriverError:  # the unit was identified at link-up: the certificate names it from then
            return {"serial": supervisor.status.serial, "model": supervisor.status.model}
        return {"vendor": idn.vendor, "model": idn.model, "serial": idn.serial, "firmware": idn.fw}

    def _abort(self, run: CalibrationRun, exc: BenchError) -> None:
        run.state, run.error = "aborted", exc.as_dict()
        run.step = f"aborted: {exc}"
        self.service.audit.append(run.technician, "calibration.aborted", device=run.device, run=run.id, error=str(exc))

    async def _finish(self, run: CalibrationRun, user: User, result: Result, device: dict[str, Any]) -> None:
        service = self.service
        expires_on = expiry(service.settings.calibration_valid_days)
        result.results["device"] = device
        # plotting takes a while: off the event loop, which feeds every unit's watchdog
        certificate = await asyncio.to_thread(_write_certificate, Path(service.settings.data_dir) / "certificates",
                                              result, run.technician, expires_on)
        run.record_id = await asyncio.to_thread(service.record_calibration, user, result.serial, run.kind,
                                                result.passed, result.results, expires_on, str(certificate))
        run.certificate = str(certificate)
        run.result = {k: v for k, v in result.results.items() if k != "points"}
        run.reasons = result.reasons
        run.state = "passed" if result.passed else "failed"
        run.progress, run.step = 1.0, "done"


def _write_certificate(directory: Path, result: Result, technician: str, expires_on: str) -> Path:
    """In a worker thread: importing matplotlib and plotting take seconds, and the event loop
    must keep feeding every unit's watchdog meanwhile."""
    from devicectl.calibration.certificate_files import certificates

    return certificates().write_certificate(directory, result, technician, expires_on)[0]  # type: ignore[no-any-return]
