"""The technicians' routes: device faults, service mode, calibration runs inside the service.

Registered by ``devicectl.web.api.create_app`` (``register``); the logic lives in
devicectl/core/fault_clear.py, devicectl/core/service_mode.py and devicectl/calibration/runs.py.
"""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations, which name
# the API's ``Auth`` dependency handed to ``register``.

import asyncio
import subprocess
from datetime import date
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from devicectl.calibration.certificate_files import certificate_pdf
from devicectl.calibration.entry import CalibrationEntries
from devicectl.core import fault_clear
from devicectl.core.service import Service
from devicectl.core.sessions import SessionError


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FaultClearBody(_Body):
    reason: str = Field(min_length=3, max_length=500, description="what was found and done about the cause")


class ServiceModeBody(_Body):
    on: bool
    reason: str = Field("", max_length=500)


class CalibrationRunBody(_Body):
    device: str = Field(max_length=32)
    setpoints: list[int] = Field(default_factory=lambda: [200, 500, 800], min_length=1, max_length=10)
    pulses: int = Field(10, ge=2, le=100)
    rate: float = Field(5.0, ge=0.5, le=10.0)
    targets: list[int] = Field(default_factory=lambda: [-30, -50], min_length=1, max_length=10)
    freeze: float = Field(6.0, ge=2.0, le=30.0)

    @model_validator(mode="after")
    def in_range(self) -> "CalibrationRunBody":
        if any(not 10 <= s <= 2000 for s in self.setpoints):
            raise ValueError("setpoints: each within 10-2000 mJ")
        if any(not -196 <= t <= -20 for t in self.targets):
            raise ValueError("targets: each within -196 to -20 degC")
        return self


class MeasuredCalibrationBody(_Body):
    device_serial: str = Field(min_length=1, max_length=64)
    device_kind: Literal["laser", "cryo"]
    points: list[dict[str, Any]] = Field(min_length=1, max_length=20,
                                         description="laser: set_mj, meter_mj[], monitor_mj[]; cryo: target_c, "
                                                     "sensor_c[], reference_c[]")
    note: str = Field("", max_length=500)


class ExternalCalibrationBody(_Body):
    device_serial: str = Field(min_length=1, max_length=64)
    device_kind: Literal["laser", "cryo"]
    external_certificate: str = Field(min_length=3, max_length=64, description="the external certificate's number")
    laboratory: str = Field(min_length=2, max_length=120)
    performed_on: date
    passed: bool


def register(app: FastAPI, service: Service, Auth: Any) -> None:
    entries = CalibrationEntries(service)

    @app.post("/api/calibrations/measured", status_code=201)
    async def record_measured(body: MeasuredCalibrationBody, user: Auth) -> dict[str, Any]:
        """A record from its measurements: the service computes the results and pass/fail."""
        return await entries.record_measured(user, body.device_kind, body.device_serial, body.points, body.note)

    @app.post("/api/calibrations/external", status_code=202)
    async def propose_external(body: ExternalCalibrationBody, user: Auth) -> dict[str, Any]:
        """Calibrated elsewhere: recorded (marked external) only once an admin confirms it."""
        return await entries.propose_external(user, body.device_kind, body.device_serial, body.external_certificate,
                                        body.laboratory, body.passed, body.performed_on.isoformat())

    @app.get("/api/calibrations/external")
    async def pending_external(user: Auth) -> list[dict[str, Any]]:
        """External calibrations entered and waiting for an admin's confirmation."""
        return await entries.pending()

    @app.post("/api/calibrations/external/{proposal_id}/confirm", status_code=201)
    async def confirm_external(proposal_id: int, user: Auth) -> dict[str, Any]:
        return await entries.confirm_external(user, proposal_id)

    @app.get("/api/devices/{device}/fault")
    async def device_fault(device: str, user: Auth) -> dict[str, Any]:
        """The unit's latched fault in words (practitioners: "call a technician")."""
        return await fault_clear.read_fault(service, user, device)

    @app.post("/api/devices/{device}/fault/clear")
    async def device_fault_clear(device: str, body: FaultClearBody, user: Auth) -> dict[str, Any]:
        """Technicians: FAULT CLEAR with a reason, then the unit verified (audited)."""
        return await fault_clear.clear_fault(service, user, device, body.reason)

    @app.get("/api/devices/{device}/service-mode")
    async def service_mode(device: str, user: Auth) -> dict[str, Any]:
        return service.service_modes.status(device)

    @app.put("/api/devices/{device}/service-mode")
    async def set_service_mode(device: str, body: ServiceModeBody, user: Auth) -> dict[str, Any]:
        """Technicians: take the device out of treatment use (refused while a session is open)."""
        if body.on:
            return await service.service_modes.enter(user, device, body.reason)
        return await service.service_modes.leave(user, device)

    @app.post("/api/calibration-runs", status_code=201)
    async def start_calibration(body: CalibrationRunBody, user: Auth) -> dict[str, Any]:
        options = body.model_dump(exclude={"device"})
        kind = service.supervisors[body.device].config.type if body.device in service.supervisors else None
        if kind == "laser":
            options = {k: options[k] for k in ("setpoints", "pulses", "rate")}
        elif kind == "cryo":
            options = {k: options[k] for k in ("targets", "freeze")}
        return service.calibration_runs.start(user, body.device, options).as_dict()

    @app.get("/api/calibration-runs")
    async def calibration_runs(user: Auth) -> list[dict[str, Any]]:
        return [run.as_dict() for run in service.calibration_runs.runs.values()]

    @app.get("/api/calibration-runs/{run_id}")
    async def calibration_run(run_id: int, user: Auth) -> dict[str, Any]:
        return service.calibration_runs.get(run_id).as_dict()

    def on_file(record_id: int) -> Path:
        """A record's certificate file (off the loop: the records and the file are read from disk)."""
        row = next((r for r in service.calibrations() if r["id"] == record_id), None)
        if row is None:
            raise SessionError(f"no calibration record {record_id}", 404)
        path = Path(row["certificate"] or "")
        if not row["certificate"] or not path.is_file():
            raise SessionError(f"calibration record {record_id} has no certificate on file", 404)
        return path

    async def certificate_of(record_id: int) -> Path:
        return await asyncio.to_thread(on_file, record_id)

    @app.get("/api/calibrations/{record_id}/certificate.html")
    async def certificate_html(record_id: int, user: Auth) -> FileResponse:
        return FileResponse(await certificate_of(record_id), media_type="text/html")

    @app.get("/api/calibrations/{record_id}/certificate.pdf")
    async def certificate_pdf_route(record_id: int, user: Auth) -> FileResponse:
        """The certificate printed to PDF by headless Chromium (made once, then kept next to it)."""
        path = await certificate_of(record_id)
        try:
            pdf = await asyncio.to_thread(certificate_pdf, path)
        except (FileNotFoundError, RuntimeError, subprocess.SubprocessError) as exc:
            raise SessionError(f"no PDF: {exc}", 503) from None
        return FileResponse(pdf, media_type="application/pdf", filename=pdf.name)

    @app.post("/api/calibration-runs/{run_id}/cancel")
    async def cancel_calibration(run_id: int, user: Auth) -> dict[str, Any]:
        return service.calibration_runs.cancel(user, run_id).as_dict()

