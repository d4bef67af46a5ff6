"""Service mode: a technician takes one device out of treatment use, inside the running service.

Only one program may hold a serial line, so calibration runs through the service's own
connection to the device (the supervisor's driver). While a device is in service mode:

- no session can start on it, and service mode is refused while a session is open on it;
- the supervisor neither polls it nor programs its fail-safe limits, and the procedure's own
  pulses, freezes and state changes are not handed to the safety kernel as a treatment's;
- the unit's watchdog is still fed only while the supervisor is alive, and a STOP from any
  screen, MQTT or the API still stops it at once (the kernel hears STOP, faults, the link,
  reboots and the hardware inputs as always).

Leaving service mode stops the unit (confirmed), switches the laser's SERVICE mode off, programs
the fail-safe limits again and counts the unit's pulses afresh. Entering and leaving are audited
and stored with the audit entry in one transaction, answered once committed: a restarted service
keeps the device in service mode (a unit under repair is not handed back to treatment by a crash
or a power cut) until a technician brings it back.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from devicectl.core.auth import User
from devicectl.core.sessions import SessionError
from drivers import DriverError, LaserDriver

if TYPE_CHECKING:
    from devicectl.core.service import Service
    from devicectl.core.supervisor import DeviceSupervisor


class ServiceModes:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.reasons: dict[str, str] = {}

    def _supervisor(self, device: str) -> DeviceSupervisor:
        supervisor = self.service.supervisors.get(device)
        if supervisor is None:
            raise SessionError(f"no device named {device!r}", 404)
        return supervisor

    def status(self, device: str) -> dict[str, Any]:
        supervisor = self._supervisor(device)
        return {"device": device, "service_mode": supervisor.service_mode is not None,
                "technician": supervisor.service_mode, "reason": self.reasons.get(device)}

    async def restore(self) -> list[str]:
        """At start-up, before the devices link up: every device left in service mode stays in it."""
        rows = await self.service.store.read(
            lambda conn: conn.execute("SELECT device, technician, reason FROM service_modes").fetchall())
        restored = []
        for row in rows:
            supervisor = self.service.supervisors.get(row["device"])
            if supervisor is None:  # a device no longer configured: its row waits for it
                continue
            supervisor.service_mode = row["technician"]
            self.reasons[row["device"]] = row["reason"]
            restored.append(row["device"])
        if restored:
            await self.service.audit.append("system", "service_mode.restored", devices=restored)
        return restored

    async def enter(self, user: User, device: str, reason: str = "") -> dict[str, Any]:
        self.service.accounts.require(user, "technician", action="service_mode.enter")
        supervisor = self._supervisor(device)
        if supervisor.service_mode is not None:
            if supervisor.service_mode == user.name:
                return self.status(device)
            raise SessionError(f"{device} is already in service mode ({supervisor.service_mode})")
        if supervisor.session_id is not None:
            why = f"session {supervisor.session_id} is open on {device}: the practitioner ends it first"
            await self.service.audit.append(user.name, "service_mode.refused", device=device, reason=why)
            raise SessionError(why)
        if supervisor.kernel.armed:
            raise SessionError(f"{device} is armed: STOP it first")
        supervisor.service_mode = user.name  # no await since the checks: no session can slip in between
        self.reasons[device] = reason
        serial, audit = supervisor.status.serial, self.service.audit

        def store(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO service_modes (device, technician, reason, since) VALUES (?, ?, ?, ?)",
                         (device, user.name, reason, time.time()))
            audit.append_in(conn, user.name, "service_mode.entered", device=device, serial=serial, reason=reason)

        supervisor._publish_status()
        await self.service.store.write(store)
        return self.status(device)

    async def leave(self, user: User, device: str) -> dict[str, Any]:
        self.service.accounts.require(user, "technician", action="service_mode.leave")
        supervisor = self._supervisor(device)
        if supervisor.service_mode is None:
            raise SessionError(f"{device} is not in service mode")
        runs = getattr(self.service, "calibration_runs", None)
        if runs is not None and runs.running_on(device):
            raise SessionError(f"a calibration is running on {device}: cancel it or let it finish first")
        confirmed = await self._make_safe(supervisor)
        supervisor.service_mode = None
        self.reasons.pop(device, None)
        supervisor._failsafe_pending = True
        await supervisor._program_failsafe()
        supervisor._total_offset = None  # the procedure's pulses are its own: count afresh from here
        with contextlib.suppress(DriverError):
            async with supervisor._exec_lock:
                await supervisor._reconcile_counts()
        serial, audit = supervisor.status.serial, self.service.audit

        def store(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM service_modes WHERE device = ?", (device,))
            audit.append_in(conn, user.name, "service_mode.left", device=device, serial=serial, stop_confirmed=confirmed)

        supervisor._publish_status()
        await self.service.store.write(store)
        return self.status(device) | {"stop_confirmed": confirmed}

    @staticmethod
    async def _make_safe(supervisor: DeviceSupervisor) -> bool:
        if not supervisor.driver.connected:
            return False
        confirmed = await supervisor.stop_and_confirm("service mode left")
        if isinstance(supervisor.driver, LaserDriver):
            with contextlib.suppress(DriverError):
                await supervisor.driver.set_service(False)
        return confirmed
