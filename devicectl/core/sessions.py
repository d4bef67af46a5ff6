"""Treatment sessions: patient, plan, checklist, arm/treat, pause, end, aftercare; and their records.

A session is ``planned`` (plan approved by the kernel's planner), ``active`` (open on its device),
then ``ended`` or ``interrupted`` (the service stopped while it was active: marked on restart).
Every pulse and freeze is recorded against it; every change is audited.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import sqlite3
import time
from collections.abc import Awaitable
from datetime import date
from typing import Any

from devicectl.calibration.records import usable_monitor_correction
from devicectl.core.audit import AuditLog
from devicectl.core.auth import Accounts, User
from devicectl.core.store import Store
from devicectl.core.supervisor import DeviceSupervisor, Refused
from drivers import DriverError
from safety import facts as F
from safety import sites
from safety.checklist import (
    Calibration,
    ChecklistAnswers,
    ChecklistContext,
    PreviousSession,
    TestSpot,
    aftercare,
    open_items,
)
from safety.decisions import Decision, Lockout, Pause, Refuse, Stop
from safety.hazards import Hazard
from safety.plans import (
    CryoPlan,
    Indication,
    Ink,
    LaserPlan,
    Modality,
    Plan,
    PlanRefused,
    PlanRequest,
    ProtocolTable,
    continue_course,
    edit_plan,
    plan_treatment,
)

#: decisions that are safety decisions: each is stored with the session and audited
RECORDED_DECISIONS = (Stop, Lockout, Pause, Refuse)

ACTIVE = "active"


class SessionError(Exception):
    def __init__(self, message: str, status: int = 409, hazard: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.hazard = hazard


def _refusal_status(decision: Any) -> int:
    """403 when the person may not do it; 409 when the unit's or session's state forbids it for now."""
    return 403 if getattr(decision, "hazard", None) == Hazard.H20_UNAUTHORISED_OPERATOR else 409


def last_treated(conn: sqlite3.Connection, patient_id: str, site_key: str, modality: str | None = None) -> Any:
    """The patient's last treated (opened) session on this site, of ``modality`` if given, or None."""
    rows = conn.execute("SELECT * FROM sessions WHERE patient_id = ? AND opened IS NOT NULL ORDER BY id DESC",
                        (patient_id,)).fetchall()
    for row in rows:
        if sites.same_site(row["site_key"] or row["site"], site_key) and modality in (None, row["modality"]):
            return row
    return None


def plan_to_json(plan: Plan) -> str:
    data = dataclasses.asdict(plan)
    return json.dumps(data, default=lambda v: v.value if hasattr(v, "value") else list(v))


def plan_from_json(text: str) -> Plan:
    return plan_from_dict(json.loads(text))


def plan_from_dict(data: dict[str, Any]) -> Plan:
    """A stored plan, as parsed from its JSON (``data`` is left as it is)."""
    fields = data | {"indication": Indication(data["indication"]), "modality": Modality(data["modality"]),
                     "warnings": tuple(data["warnings"])}
    return LaserPlan(**fields) if fields["modality"] == "laser" else CryoPlan(**fields)


def answers_from_dict(data: dict[str, Any]) -> ChecklistAnswers:
    spot = data.get("test_spot")
    return ChecklistAnswers(
        identity_confirmed=bool(data.get("identity_confirmed")),
        consent_signed=bool(data.get("consent_signed")),
        eye_protection_all=bool(data.get("eye_protection_all")),
        no_sun_last_4_weeks=bool(data.get("no_sun_last_4_weeks")),
        benign_assessed=bool(data.get("benign_assessed")),
        test_spot=TestSpot(date.fromisoformat(spot["done_on"]), bool(spot["reviewed"]), bool(spot["darkened"])) if spot else None,
    )


class Sessions:
    def __init__(self, store: Store, audit: AuditLog, accounts: Accounts, supervisors: dict[str, DeviceSupervisor],
                 table: ProtocolTable) -> None:
        self.store = store
        self.audit = audit
        self.accounts = accounts
        self.supervisors = supervisors
        self.table = table
        #: the first safety reason a session was stopped for (a lock-out, an unconfirmed STOP)
        self._safety_stops: dict[int, str] = {}
        for name, supervisor in supervisors.items():
            supervisor.record = self._recorder(name)
            supervisor.decision_listeners.append(self._decision_recorder(name))

    # ------------------------------------------------------------------ restart
    async def mark_interrupted(self) -> list[int]:
        """Sessions left active by a crash or kill: interrupted, never resumed."""

        def work(conn: sqlite3.Connection) -> list[int]:
            rows = conn.execute("SELECT id FROM sessions WHERE state = ?", (ACTIVE,)).fetchall()
            for row in rows:
                conn.execute("UPDATE sessions SET state = 'interrupted', closed = ?, outcome = ? WHERE id = ?",
                             (time.time(), "the service stopped during the session", row["id"]))
                self.audit.append_in(conn, "system", "session.interrupted", session=row["id"])
            return [row["id"] for row in rows]

        return list(await self.store.write(work))

    # ------------------------------------------------------------------ patients and plans
    async def new_patient(self, user: User) -> str:
        self.accounts.require(user, "practitioner", action="patient.create")
        patient_id = "P-" + secrets.token_hex(4).upper()
        now = time.time()

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO patients (id, created, created_by) VALUES (?, ?, ?)", (patient_id, now, user.name))
            self.audit.append_in(conn, user.name, "patient.created", patient=patient_id)

        await self.store.write(work)
        return patient_id

    async def create(self, user: User, patient_id: str, device: str, request: dict[str, Any]) -> dict[str, Any]:
        self.accounts.require(user, "practitioner", action="session.create")
        if not await self.store.read(lambda conn: conn.execute("SELECT id FROM patients WHERE id = ?", (patient_id,)).fetchone()):
            raise SessionError(f"no patient {patient_id}", 404)
        supervisor = self._supervisor(device)
        site_key = sites.normalise(str(request["site"]))  # a key from the picker, or free text read best-effort
        plan_request = PlanRequest(
            indication=Indication(request["indication"]),
            skin_type=int(request["skin_type"]),
            sensitive_skin=bool(request.get("sensitive_skin", False)),
            area_cm2=float(request["area_cm2"]),
            site=sites.label(site_key),
            inks=frozenset(Ink(i) for i in request.get("inks", [])),
        )
        plan = plan_treatment(plan_request, self.table)
        if isinstance(plan, PlanRefused):
            await self.audit.append(user.name, "plan.refused", patient=patient_id, reason=plan.reason, hazard=plan.hazard.value)
            raise SessionError(plan.reason, 422, plan.hazard.value)
        if plan.modality.value != supervisor.config.type:
            raise SessionError(f"{plan.indication.value} is treated with the {plan.modality.value}, not {device}", 422)
        if isinstance(plan, LaserPlan):  # a tattoo course on this site: from the last session's energy, one step up at most
            last = await self.store.read(lambda conn: last_treated(conn, patient_id, site_key, "laser"))
            if last is not None:
                previous = plan_from_json(last["plan"])
                if isinstance(previous, LaserPlan):
                    plan = continue_course(plan, previous)
        planned = plan
        now = time.time()

        def work(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "INSERT INTO sessions (patient_id, device, modality, site, plan, state, created, practitioner,"
                " site_key, site_note, skin_type, request) VALUES (?, ?, ?, ?, ?, 'planned', ?, ?, ?, ?, ?, ?)",
                (patient_id, device, planned.modality.value, planned.site, plan_to_json(planned), now, user.name,
                 site_key, str(request.get("site_note") or "") or None, plan_request.skin_type, json.dumps(
                     {k: request.get(k) for k in ("indication", "skin_type", "sensitive_skin", "area_cm2", "inks")})),
            )
            session_id = int(cursor.lastrowid or 0)
            self.audit.append_in(conn, user.name, "session.planned", session=session_id, patient=patient_id,
                                 protocol=planned.protocol, device=device)
            return session_id

        return await self.get(await self.store.write(work))

    async def edit(self, user: User, session_id: int, changes: dict[str, float]) -> dict[str, Any]:
        self.accounts.require(user, "practitioner", action="session.edit")
        row = await self._row(session_id)
        if row["state"] != "planned":
            raise SessionError("only a planned session can be edited")
        result = edit_plan(plan_from_json(row["plan"]), **changes)
        if isinstance(result, PlanRefused):
            await self.audit.append(user.name, "plan.edit.refused", session=session_id, changes=changes, reason=result.reason)
            raise SessionError(result.reason, 422, result.hazard.value)
        edited = plan_to_json(result)

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE sessions SET plan = ? WHERE id = ?", (edited, session_id))
            self.audit.append_in(conn, user.name, "plan.edited", session=session_id, changes=changes)

        await self.store.write(work)
        return await self.get(session_id)

    # ------------------------------------------------------------------ checklist
    async def set_checklist(self, user: User, session_id: int, answers: dict[str, Any]) -> dict[str, Any]:
        self.accounts.require(user, "practitioner", action="checklist")
        row = await self._row(session_id)
        answers_from_dict(answers)  # refuse malformed answers before storing them
        text = json.dumps(answers)

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE sessions SET checklist = ? WHERE id = ?", (text, session_id))
            self.audit.append_in(conn, user.name, "checklist.answered", session=session_id, answers=answers)

        await self.store.write(work)
        return await self.get(row["id"])

    async def context(self, row: Any) -> ChecklistContext:
        serial = self.supervisors[row["device"]].status.serial
        return await self.store.read(lambda conn: _context(conn, row, serial))

    async def calibration_correction(self, row: Any) -> float:
        """The monitor correction of the device's latest passed calibration (1.0 without one)."""
        serial = self.supervisors[row["device"]].status.serial
        cal = await self.store.read(lambda conn: conn.execute(
            "SELECT results FROM calibrations WHERE device_serial = ? AND passed = 1 ORDER BY performed DESC LIMIT 1", (serial,)
        ).fetchone())
        if cal is None:
            return 1.0
        correction = json.loads(cal["results"]).get("monitor_correction", 1.0)
        if not usable_monitor_correction(correction):  # never a NaN or out-of-range value to the kernel (H02, H12)
            raise SessionError(f"the device's calibration holds an unusable monitor correction ({correction!r}): "
                               "calibrate it again", 409, "H12")
        return float(correction)

    # ------------------------------------------------------------------ treatment
    async def start(self, user: User, session_id: int) -> dict[str, Any]:
        """Open the session on its device: STOP confirmed and every limit programmed and echoed,
        or the session stays planned and the reason is answered."""
        self.accounts.require(user, "practitioner", action="session.start")
        row = await self._row(session_id)
        if row["state"] != "planned":
            raise SessionError(f"the session is {row['state']}")
        device = row["device"]
        supervisor = self.supervisors[device]
        if supervisor.session_id is not None:
            raise SessionError(f"{device} is in session {supervisor.session_id}")
        if supervisor.status.refused:
            raise SessionError(supervisor.status.refused)
        if supervisor.service_mode is not None:
            raise SessionError(f"{device} is in service mode ({supervisor.service_mode}): no treatment until the "
                               "technician ends it")
        if not supervisor.status.connected:
            raise SessionError(f"{device} is not connected")
        if supervisor.kernel.locked:
            raise SessionError(f"{device} is locked: {supervisor.kernel.locked}; acknowledge it first", 409, "H16")
        correction = await self.calibration_correction(row)
        if supervisor.session_id is not None:  # another start got there while the calibration was read
            raise SessionError(f"{device} is in session {supervisor.session_id}")
        supervisor.session_id = session_id
        try:
            _, confirmed = await supervisor.run_decisions(F.SessionOpened(plan_from_json(row["plan"]), supervisor.clock(),
                                                                          correction))
            if not confirmed:
                raise DriverError(f"the {device} did not confirm STOP")
        except DriverError as exc:
            await self._abandon_start(supervisor)
            await self.audit.append(user.name, "session.start.failed", session=session_id, reason=str(exc))
            raise SessionError(f"the {device} could not be prepared: {exc}; the session was not started") from None
        opened = time.time()

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE sessions SET state = ?, opened = ? WHERE id = ?", (ACTIVE, opened, session_id))
            self.audit.append_in(conn, user.name, "session.started", session=session_id)

        await self.store.write(work)
        return await self.get(session_id)

    async def _abandon_start(self, supervisor: DeviceSupervisor) -> None:
        """A session that could not be opened: the kernel closes it and the unit gets its
        fail-safe limits back (best effort: the kernel refuses arming without a plan anyway)."""
        try:
            await supervisor.run_decisions(F.SessionClosed(supervisor.clock()))
        except DriverError:
            pass
        finally:
            supervisor.session_id = None
            supervisor._failsafe_pending = True
            await supervisor._program_failsafe()

    async def arm(self, user: User, session_id: int) -> dict[str, Any]:
        row, supervisor = await self._active(session_id)
        context = await self.context(row)
        fact = F.ArmRequested(user.role, answers_from_dict(json.loads(row["checklist"])), context, supervisor.clock())
        await self._request(user, session_id, supervisor, fact, "arm")
        return await self.get(session_id)

    async def freeze(self, user: User, session_id: int, seconds: float) -> dict[str, Any]:
        row, supervisor = await self._active(session_id)
        context = await self.context(row)
        fact = F.FreezeRequested(user.role, seconds, answers_from_dict(json.loads(row["checklist"])), context,
                                 supervisor.clock())
        await self._request(user, session_id, supervisor, fact, "freeze", seconds=seconds)
        return await self.get(session_id)

    async def _request(self, user: User, session_id: int, supervisor: DeviceSupervisor, fact: Any, action: str,
                       **detail: Any) -> None:
        if user.must_change:
            self.accounts.require(user, "practitioner", action=action)
        try:
            await supervisor.request(fact)
        except Refused as exc:
            await self.audit.append(user.name, f"{action}.refused", session=session_id, reason=exc.reason, hazard=exc.hazard)
            raise SessionError(exc.reason, 403 if exc.hazard == "H20" else 409, exc.hazard) from None
        await self.audit.append(user.name, action, session=session_id, **detail)

    def stop(self, user: User, origin: str, device: str | None = None) -> Awaitable[dict[str, list[str]]]:
        """STOP, accepted for every logged-in role, on one device or all: decided before this
        returns. Await the result: a device is reported stopped only when it confirmed its safe
        state; the others are listed as unconfirmed."""
        names = [device] if device else list(self.supervisors)
        confirmations = [self._supervisor(name).stop_and_confirm(f"{origin} by {user.name}") for name in names]
        return self._stop_result(user, origin, names, confirmations)

    async def _stop_result(self, user: User, origin: str, names: list[str],
                           confirmations: list[asyncio.Future[bool]]) -> dict[str, list[str]]:
        results = await asyncio.gather(*confirmations)
        stopped = [name for name, ok in zip(names, results) if ok]
        unconfirmed = [name for name, ok in zip(names, results) if not ok]
        await self.audit.append(user.name, "stop", origin=origin, devices=names, confirmed=stopped, unconfirmed=unconfirmed)
        return {"stopped": stopped, "unconfirmed": unconfirmed}

    async def acknowledge_device(self, user: User, device: str) -> dict[str, Any]:
        """Clear a device's lock-out (with or without a session): audited, never an arming."""
        supervisor = self._supervisor(device)
        reason = supervisor.kernel.locked
        if reason is None:
            raise SessionError(f"{device} is not locked")
        decisions = supervisor.handle(F.LockoutAcknowledged(user.role, supervisor.clock()))
        if decisions:
            await self.audit.append(user.name, "lockout.acknowledge.refused", device=device,
                                    reason=getattr(decisions[0], "reason", ""))
            raise SessionError(getattr(decisions[0], "reason", "refused"), _refusal_status(decisions[0]))
        supervisor.status.alarm = None
        snapshot = supervisor.snapshot()
        await self.audit.append(user.name, "lockout.acknowledged", device=device, lockout=reason, session=supervisor.session_id)
        return snapshot

    async def acknowledge(self, user: User, session_id: int) -> dict[str, Any]:
        return await self._confirm(user, session_id, F.LockoutAcknowledged, "lockout.acknowledged")

    async def reconfirm(self, user: User, session_id: int) -> dict[str, Any]:
        return await self._confirm(user, session_id, F.Reconfirmed, "session.reconfirmed")

    async def _confirm(self, user: User, session_id: int, fact: Any, action: str) -> dict[str, Any]:
        """A person's acknowledgement (never an arming): the kernel answers nothing, or why not."""
        _, supervisor = await self._active(session_id)
        lockout = supervisor.kernel.locked
        decisions = supervisor.handle(fact(user.role, supervisor.clock()))
        if decisions:
            raise SessionError(getattr(decisions[0], "reason", "refused"), _refusal_status(decisions[0]))
        if fact is F.LockoutAcknowledged:
            supervisor.status.alarm = None
            await self.audit.append(user.name, action, session=session_id, device=supervisor.config.name, lockout=lockout)
        else:
            await self.audit.append(user.name, action, session=session_id)
        return await self.get(session_id)

    async def end(self, user: User, session_id: int) -> dict[str, Any]:
        """End the session: STOP first; its outcome says what happened. It never ends
        "completed" while the unit was not confirmed safe."""
        self.accounts.require(user, "practitioner", action="session.end")
        _, supervisor = await self._active(session_id)
        device = supervisor.config.name
        try:
            _, confirmed = await supervisor.run_decisions(F.SessionClosed(supervisor.clock()))
        except DriverError:
            confirmed = False
        supervisor.session_id = None
        supervisor._failsafe_pending = True
        await supervisor._program_failsafe()
        safety = self._safety_stops.pop(session_id, None)
        if not confirmed and not supervisor.status.connected:
            outcome = f"interrupted: the {device} was not reachable at the end (its own watchdog stops it)"
        elif not confirmed:
            outcome = f"stopped by safety: the {device} did not confirm STOP — use its emergency stop"
        elif safety is not None:
            outcome = f"stopped by safety: {safety}"
        else:
            outcome = "completed"
        closed = time.time()

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE sessions SET state = 'ended', closed = ?, outcome = ? WHERE id = ?", (closed, outcome, session_id))
            self.audit.append_in(conn, user.name, "session.ended", session=session_id, outcome=outcome)

        await self.store.write(work)  # after every record of the session queued before it
        return await self.get(session_id)

    # ------------------------------------------------------------------ reading
    async def get(self, session_id: int) -> dict[str, Any]:
        """A session as the screens show it. Everything but the live part is read and built in the
        store's worker thread: building it took up to 1.8 ms of CPU, which on the service loop was
        as long as an interlock's event could wait to be read (H26, bench/reaction_load.py)."""
        serials = {name: supervisor.status.serial for name, supervisor in self.supervisors.items()}
        out = await self.store.read(lambda conn: _session_out(conn, session_id, serials))
        if out is None:
            raise SessionError(f"no session {session_id}", 404)
        supervisor = self.supervisors.get(out["device"])
        if supervisor is not None and supervisor.session_id == session_id:
            out["live"] = supervisor.snapshot()
        return out

    async def device_of(self, session_id: int) -> str:
        """The device of a session (404 for an unknown session)."""
        return str((await self._row(session_id))["device"])

    async def _row(self, session_id: int) -> Any:
        row = await self.store.read(lambda conn: conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone())
        if row is None:
            raise SessionError(f"no session {session_id}", 404)
        return row

    async def _active(self, session_id: int) -> tuple[Any, DeviceSupervisor]:
        row = await self._row(session_id)
        if row["state"] != ACTIVE:
            raise SessionError(f"the session is {row['state']}, not active")
        return row, self.supervisors[row["device"]]

    def _supervisor(self, name: str) -> DeviceSupervisor:
        if name not in self.supervisors:
            raise SessionError(f"no device {name!r}", 404)
        return self.supervisors[name]

    def _recorder(self, device: str) -> Any:
        """The supervisor's record callback, on the device-event path: it only queues the record
        to the store's writer (never waits for the disk: the STOP of a bad pulse is not behind it)."""

        def record(kind: str, data: dict[str, Any]) -> None:
            session_id = self.supervisors[device].session_id
            if session_id is None:
                if kind == "pulse":  # no session: uncommanded, and kept as evidence
                    evidence = dict(data)
                    self.store.record(lambda conn: self.audit.append_in(conn, "system", "pulse.outside_session",
                                                                        device=device, **evidence))
                elif kind == "pulses_unseen":
                    count = data["count"]
                    self.store.record(lambda conn: self.audit.append_in(conn, "system", "pulses.unseen", device=device,
                                                                        count=count))
                return
            now = time.time()
            if kind == "pulse":
                pulse = (session_id, data["n"], data["energy_mj"], data["set_mj"], data["t_ms"], now)
                self.store.record(lambda conn: conn.execute(
                    "INSERT INTO pulses (session_id, n, energy_mj, set_mj, t_ms, at) VALUES (?, ?, ?, ?, ?, ?)", pulse))
            elif kind == "freeze":
                freeze = (session_id, data["dur_s"] or 0.0, data["cause"] or "unknown", now)
                self.store.record(lambda conn: conn.execute(
                    "INSERT INTO freezes (session_id, dur_s, cause, at) VALUES (?, ?, ?, ?)", freeze))
            elif kind == "pulses_unseen":
                count = data["count"]

                def unseen(conn: sqlite3.Connection) -> None:
                    conn.executemany(
                        "INSERT INTO pulses (session_id, n, energy_mj, set_mj, t_ms, at, seen) VALUES (?, -1, 0, 0, 0, ?, 0)",
                        [(session_id, now)] * int(count),
                    )
                    self.audit.append_in(conn, "system", "pulses.unseen", session=session_id, device=device, count=count)

                self.store.record(unseen)

        return record

    def _decision_recorder(self, device: str) -> Any:
        """Every Stop, Lockout, Pause and Refuse the kernel decides: stored with the session (if
        any) and appended to the audit log, with the fact that caused it (queued, never waited for)."""

        def record(fact: Any, decisions: list[Decision]) -> None:
            safety = [d for d in decisions if isinstance(d, RECORDED_DECISIONS)]
            if not safety:
                return
            session_id = self.supervisors[device].session_id
            now = time.time()
            fact_text = repr(fact)[:500]
            fact_name = type(fact).__name__
            rows = [(type(d).__name__, d.hazard.value, d.reason) for d in safety]
            for d in safety:
                if isinstance(d, Lockout) and session_id is not None:
                    self._safety_stops.setdefault(session_id, d.reason)

            def work(conn: sqlite3.Connection) -> None:
                for kind, hazard, reason in rows:
                    conn.execute("INSERT INTO decisions (session_id, device, at, kind, hazard, reason, fact) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (session_id, device, now, kind, hazard, reason, fact_text))
                    self.audit.append_in(conn, "kernel", f"safety.{kind.lower()}", device=device, session=session_id,
                                         hazard=hazard, reason=reason, fact=fact_name)

            self.store.record(work)

        return record


def _context(conn: sqlite3.Connection, row: Any, serial: str | None) -> ChecklistContext:
    """What the checklist is checked against: the device's latest calibration, the patient's earlier sessions."""
    calibration = None
    cal = conn.execute(
        "SELECT * FROM calibrations WHERE device_serial = ? ORDER BY performed DESC, id DESC LIMIT 1", (serial,)
    ).fetchone() if serial else None
    if cal is not None:
        calibration = Calibration(cal["device_serial"], bool(cal["passed"]), date.fromisoformat(cal["expires_on"]))
    previous = tuple(
        PreviousSession(r["site_key"] or r["site"], Modality(r["modality"]), date.fromtimestamp(r["opened"]))
        for r in conn.execute(
            "SELECT site, site_key, modality, opened FROM sessions WHERE patient_id = ? AND id != ? AND opened IS NOT NULL",
            (row["patient_id"], row["id"]),
        )
    )
    return ChecklistContext(date.today(), calibration, previous)


def _session_out(conn: sqlite3.Connection, session_id: int, serials: dict[str, str | None]) -> dict[str, Any] | None:
    """A session's view but its live part, read and built in one go (in a worker thread)."""
    row = conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
    if row is None:
        return None
    plan_data, checklist = json.loads(row["plan"]), json.loads(row["checklist"])
    plan = plan_from_dict(plan_data)
    context = _context(conn, row, serials.get(row["device"])) if row["device"] in serials else None
    items = open_items(plan, answers_from_dict(checklist), context) if context is not None else []
    return {
        "id": row["id"], "patient_id": row["patient_id"], "device": row["device"], "state": row["state"],
        "decisions": [dict(r) for r in conn.execute(
            "SELECT at, kind, hazard, reason FROM decisions WHERE session_id = ? AND kind != 'Refuse' ORDER BY id",
            (session_id,))],
        "pulses_not_seen": conn.execute("SELECT COUNT(*) AS n FROM pulses WHERE session_id = ? AND seen = 0",
                                        (session_id,)).fetchone()["n"],
        "plan": plan_data, "checklist": checklist,
        "open_items": [{"item": i.item, "reason": i.reason, "hazard": i.hazard.value} for i in items],
        "pulses_recorded": conn.execute("SELECT COUNT(*) AS n FROM pulses WHERE session_id = ?", (session_id,)).fetchone()["n"],
        "freezes": [dict(r) for r in conn.execute("SELECT dur_s, cause, at FROM freezes WHERE session_id = ? ORDER BY id",
                                                  (session_id,))],
        "outcome": row["outcome"],
        "aftercare": aftercare(plan),
        "site_key": row["site_key"], "site_note": row["site_note"], "skin_type": row["skin_type"],
        "course_number": course_number(conn, row),
    }


def course_number(conn: sqlite3.Connection, row: Any) -> int:
    """The session's number in its patient's course on its site ("tattoo, left forearm — session 3"):
    the patient's sessions on the same site with the same indication, cancelled ones aside."""
    indication = json.loads(row["plan"]).get("indication")
    others = conn.execute("SELECT plan FROM sessions WHERE patient_id = ? AND site_key IS ? AND id <= ? AND state != 'cancelled'",
                          (row["patient_id"], row["site_key"], row["id"])).fetchall()
    return sum(1 for r in others if json.loads(r["plan"]).get("indication") == indication)
