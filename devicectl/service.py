"""The service: store, audit, accounts, one supervisor per device, sessions, the live hub."""

from __future__ import annotations

import json
import logging
import time
from datetime import date
from typing import Any

from safety.plans import load_protocols

from .audit import AuditLog
from .auth import Accounts, User
from .config import Settings
from .hub import Hub
from .sessions import Sessions, calibration_expiry
from .store import Store
from .supervisor import DeviceSupervisor

log = logging.getLogger(__name__)


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings.data_dir / "devicectl.sqlite3")
        self.audit = AuditLog(self.store)
        self.accounts = Accounts(self.store, self.audit, settings.token_hours)
        self.hub = Hub()
        self.supervisors = {
            device.name: DeviceSupervisor(device, self.hub, lambda kind, data: None) for device in settings.devices
        }
        table = load_protocols(settings.protocols) if settings.protocols else load_protocols()
        self.sessions = Sessions(self.store, self.audit, self.accounts, self.supervisors, table)
        self.mqtt: Any = None
        self.first_admin_pin: str | None = None
        self.interrupted: list[int] = []

    async def start(self) -> None:
        self.interrupted = self.sessions.mark_interrupted()
        self.first_admin_pin = self.accounts.ensure_first_admin()
        self.audit.append("system", "service.started", devices=list(self.supervisors))
        for supervisor in self.supervisors.values():
            await supervisor.start()
        if self.settings.mqtt is not None:
            from .mqtt import MqttBridge

            config = self.settings.mqtt
            if config.password is None and config.password_file is not None:
                config = config.model_copy(update={"password": config.password_file.read_text().strip()})
            self.mqtt = MqttBridge(config, self)
            self.mqtt.start()

    async def stop(self) -> None:
        if self.mqtt is not None:
            await self.mqtt.stop()
        for supervisor in self.supervisors.values():
            await supervisor.close()
        self.audit.append("system", "service.stopped")
        self.store.close()

    def devices(self) -> list[dict[str, Any]]:
        return [s.snapshot() for s in self.supervisors.values()]

    # ------------------------------------------------------------------ calibrations
    def record_calibration(self, user: User | None, device_serial: str, device_kind: str, passed: bool,
                           results: dict[str, Any], expires_on: str | None = None, certificate: str | None = None) -> int:
        """A calibration result (technicians; the simulated bench's factory record on first run)."""
        if user is not None:
            self.accounts.require(user, "technician", action="calibration.record")
        expiry = expires_on or calibration_expiry(self.settings.calibration_valid_days)
        date.fromisoformat(expiry)
        who = user.name if user else "factory"
        with self.store.transaction() as tx:
            cursor = tx.execute(
                "INSERT INTO calibrations (device_serial, device_kind, passed, results, technician, performed, expires_on, certificate)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (device_serial, device_kind, int(passed), json.dumps(results), who, time.time(), expiry, certificate),
            )
            self.audit.append(who, "calibration.recorded", tx, device=device_serial, passed=passed, results=results,
                              expires_on=expiry)
        return int(cursor.lastrowid or 0)

    def calibrations(self) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT * FROM calibrations ORDER BY performed DESC, id DESC")
        return [dict(r) | {"results": json.loads(r["results"]), "passed": bool(r["passed"])} for r in rows]
