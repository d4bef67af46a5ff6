"""Calibration records from outside a calibration run: only from measurements, or confirmed.

- From measurements (``record_measured``): the client sends the measured points; the service
  computes the results and pass/fail itself with the documented tolerances (the same analysis as
  the procedures, devicectl/calibration/procedures.py). A client never says "passed".
- Calibrated elsewhere (``propose_external`` then ``confirm_external``): a technician enters the
  external certificate's number and verdict; it is recorded only once an admin confirms it, and
  it is marked as such (``source: external``) in the record and the audit log. Proposals are
  stored (they survive a restart) and taken exactly once: the record, the proposal's removal and
  both audit entries commit together.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from devicectl.calibration.procedures import CryoPoint, LaserPoint, analyse_cryo, analyse_laser
from devicectl.calibration.records import expiry, record_calibration
from devicectl.core.auth import User
from devicectl.core.sessions import SessionError

if TYPE_CHECKING:
    from devicectl.core.service import Service

MAX_POINTS = 20
MAX_SAMPLES = 1000
POINT_FIELDS = {"laser": {"set_mj", "meter_mj", "monitor_mj"}, "cryo": {"target_c", "sensor_c", "reference_c"}}


def _numbers(values: Any, where: str) -> list[float]:
    if not isinstance(values, list) or not 1 <= len(values) <= MAX_SAMPLES:
        raise SessionError(f"{where}: a list of 1-{MAX_SAMPLES} measured values", 422)
    out = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or abs(value) > 1e6 or not math.isfinite(value):
            raise SessionError(f"{where}: {value!r} is not a measured value", 422)
        out.append(float(value))
    return out


def analyse_points(kind: str, serial: str, points: list[dict[str, Any]]) -> Any:
    """The procedure's own analysis of measured points (laser: set_mj, meter_mj, monitor_mj;
    cryo: target_c, sensor_c, reference_c)."""
    if not isinstance(points, list) or not 1 <= len(points) <= MAX_POINTS:
        raise SessionError(f"points: 1-{MAX_POINTS} measured points", 422)
    if kind not in POINT_FIELDS:
        raise SessionError(f"device_kind: {kind!r} is neither laser nor cryo", 422)
    for i, p in enumerate(points):  # nothing sent is silently dropped: a field of the other kind is refused
        if not isinstance(p, dict) or set(p) - POINT_FIELDS[kind]:
            unknown = sorted(set(p) - POINT_FIELDS[kind]) if isinstance(p, dict) else p
            raise SessionError(f"points.{i}: {unknown} not a field of a {kind} point "
                               f"({', '.join(sorted(POINT_FIELDS[kind]))})", 422)
    if kind == "laser":
        laser = []
        for i, p in enumerate(points):
            meter = _numbers(p.get("meter_mj"), f"points.{i}.meter_mj")
            monitor = _numbers(p.get("monitor_mj"), f"points.{i}.monitor_mj")
            if isinstance(p.get("set_mj"), bool) or not isinstance(p.get("set_mj"), int) or not 10 <= p["set_mj"] <= 2000 \
                    or min(meter) <= 0 or min(monitor) <= 0 or len(meter) != len(monitor):
                raise SessionError(f"points.{i}: set_mj 10-2000, energies above 0, one monitor reading per meter reading", 422)
            laser.append(LaserPoint(p["set_mj"], meter, monitor))
        return analyse_laser(serial, laser)
    cryo = []  # the kind was checked above: laser or cryo
    for i, p in enumerate(points):
        sensor, reference = _numbers(p.get("sensor_c"), f"points.{i}.sensor_c"), _numbers(
            p.get("reference_c"), f"points.{i}.reference_c")
        if isinstance(p.get("target_c"), bool) or not isinstance(p.get("target_c"), int) \
                or not -196 <= p["target_c"] <= 0 or len(sensor) != len(reference):
            raise SessionError(f"points.{i}: target_c -196-0 degC and as many sensor as reference readings", 422)
        cryo.append(CryoPoint(p["target_c"], sensor, reference))
    return analyse_cryo(serial, cryo)


class CalibrationEntries:
    def __init__(self, service: Service) -> None:
        self.service = service

    async def record_measured(self, user: User, kind: str, serial: str, points: list[dict[str, Any]],
                              note: str = "") -> dict[str, Any]:
        self.service.accounts.require(user, "technician", action="calibration.record")
        result = analyse_points(kind, serial, points)
        results = result.results | {"source": "measurements", "note": note}
        record = await asyncio.to_thread(self.service.record_calibration, user, serial, kind, result.passed, results)
        return {"id": record, "passed": result.passed, "reasons": result.reasons,
                "results": {k: v for k, v in results.items() if k != "points"}}

    async def propose_external(self, user: User, kind: str, serial: str, certificate: str, laboratory: str,
                               passed: bool, performed_on: str) -> dict[str, Any]:
        self.service.accounts.require(user, "technician", action="calibration.external.propose")
        proposal = {"device_kind": kind, "device_serial": serial, "passed": passed, "external_certificate": certificate,
                    "laboratory": laboratory, "performed_on": performed_on, "entered_by": user.name, "entered": time.time()}
        audit = self.service.audit

        def store(conn: sqlite3.Connection) -> int:
            proposal_id = int(conn.execute("INSERT INTO calibration_proposals (proposal) VALUES (?)",
                                           (json.dumps(proposal),)).lastrowid or 0)
            audit.append_in(conn, user.name, "calibration.external.proposed", id=proposal_id, **proposal)
            return proposal_id

        proposal_id = await self.service.store.write(store)
        return {"id": proposal_id} | proposal | {"state": "waiting for an admin's confirmation"}

    async def pending(self) -> list[dict[str, Any]]:
        rows = await self.service.store.read(
            lambda conn: conn.execute("SELECT id, proposal FROM calibration_proposals ORDER BY id").fetchall())
        return [{"id": row["id"]} | json.loads(row["proposal"]) for row in rows]

    async def confirm_external(self, user: User, proposal_id: int) -> dict[str, Any]:
        self.service.accounts.require(user, "admin", action="calibration.external.confirm")
        proposal = next((p for p in await self.pending() if p["id"] == proposal_id), None)
        if proposal is None:
            raise SessionError(f"no external calibration {proposal_id} waits for confirmation", 404)
        if proposal["entered_by"] == user.name:
            raise SessionError("another person confirms an external calibration than the one who entered it", 403)
        results = {"source": "external", "external_certificate": proposal["external_certificate"],
                   "laboratory": proposal["laboratory"], "performed_on": proposal["performed_on"],
                   "entered_by": proposal["entered_by"], "confirmed_by": user.name}
        if proposal["device_kind"] == "laser":
            results["monitor_correction"] = 1.0
        audit = self.service.audit

        def take(conn: sqlite3.Connection, record: int) -> None:
            """The proposal is taken once: a second confirmation racing this one finds it gone."""
            if conn.execute("DELETE FROM calibration_proposals WHERE id = ?", (proposal_id,)).rowcount != 1:
                raise SessionError(f"external calibration {proposal_id} was confirmed meanwhile", 409)
            audit.append_in(conn, user.name, "calibration.external.confirmed", proposal=proposal_id, record=record)

        service = self.service
        record = await asyncio.to_thread(
            record_calibration, service.store, service.audit, f"{proposal['entered_by']} (external, confirmed by "
            f"{user.name})", proposal["device_serial"], proposal["device_kind"], proposal["passed"], results,
            expiry(service.settings.calibration_valid_days), None, take)
        return {"id": record, "source": "external", "passed": proposal["passed"]}
