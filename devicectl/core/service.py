"""The service: store, audit, accounts, one supervisor per device, sessions, the live hub."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from devicectl.calibration.records import expiry, list_calibrations, record_calibration
from devicectl.calibration.runs import CalibrationRuns
from devicectl.core import heap
from devicectl.core.audit import AuditLog, default_checkpoint_file, default_key_file, load_key
from devicectl.core.auth import Accounts, User
from devicectl.core.config import Settings
from devicectl.core.consoles import Consoles
from devicectl.core.hub import Hub
from devicectl.core.loops import Realtime, call_on, run_on
from devicectl.core.service_mode import ServiceModes
from devicectl.core.sessions import Sessions
from devicectl.core.store import Store
from devicectl.core.supervisor import DeviceSupervisor
from safety.plans import load_protocols

log = logging.getLogger(__name__)
T = TypeVar("T")


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings.data_dir / "devicectl.sqlite3", commit_delay_ms=settings.store_commit_delay_ms)
        key = load_key(settings.audit_key_file or default_key_file(settings.data_dir), create=True,
                       next_id=lambda: int((self.store.one("SELECT MAX(id) AS id FROM audit") or {"id": 0})["id"] or 0) + 1)
        self.audit = AuditLog(self.store, key, settings.audit_checkpoint_file or default_checkpoint_file(settings.data_dir),
                              settings.audit_checkpoint_every)
        self.accounts = Accounts(self.store, self.audit, settings.token_hours)
        self.hub = Hub()
        self.supervisors = {
            device.name: DeviceSupervisor(device, self.hub, lambda kind, data: None) for device in settings.devices
        }
        table = load_protocols(settings.protocols) if settings.protocols else load_protocols()
        self.sessions = Sessions(self.store, self.audit, self.accounts, self.supervisors, table)
        self.service_modes = ServiceModes(self)
        self.calibration_runs = CalibrationRuns(self)
        self.consoles = Consoles(self)  # a laser armed from a screen is stopped when that screen goes away
        self.mqtt: Any = None
        self._heap_keeper: asyncio.Task[None] | None = None
        self.first_admin_pin: str | None = None
        self.interrupted: list[int] = []
        #: ``realtime_priority`` as the system answered it (``devicectl serve``): shown at /api/health, so that
        #: a host that runs the devices' loop at less than it was configured for is seen (H26)
        self.realtime: Realtime | None = None
        #: the loop the devices, their kernels and everything of the service run on (set by ``start``)
        self.loop: asyncio.AbstractEventLoop | None = None
        #: the loop of the people's side (HTTP, WebSocket, MQTT) when it has its own (devicectl/core/loops.py)
        self.edge_loop: asyncio.AbstractEventLoop | None = None

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Await ``work`` on the service loop, from whichever loop asks (the edge's hand-over)."""
        return await run_on(self.loop, work)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the service loop, from whichever loop asks."""
        return await call_on(self.loop, fn, *args)

    async def start(self, edge_loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start on this loop (the service loop); ``edge_loop``, when the people's side has a loop of
        its own, runs the MQTT bridge."""
        self.loop = asyncio.get_running_loop()
        self.edge_loop = edge_loop
        if self.settings.mqtt is not None:  # imported now (tenths of a second), not while the devices link up
            from devicectl.mqtt import bridge as mqtt  # noqa: F401
        self.interrupted = await self.sessions.mark_interrupted()
        self.first_admin_pin = await self.accounts.ensure_first_admin()
        await self.audit.append("system", "service.started", devices=list(self.supervisors))
        await self.service_modes.restore()  # before the devices link up: a unit under repair stays out of use
        for supervisor in self.supervisors.values():
            await supervisor.start()
        # full garbage collections only while no device emits or freezes (H26)
        self._heap_keeper = asyncio.get_running_loop().create_task(heap.keep(self.idle), name="heap-keeper")
        if self.settings.mqtt is not None:
            from devicectl.mqtt.bridge import MqttBridge

            config = self.settings.mqtt
            if config.password is None and config.password_file is not None:
                config = config.model_copy(update={"password": config.password_file.read_text().strip()})
            self.mqtt = MqttBridge(config, self)
            await call_on(edge_loop, self.mqtt.start)  # its client's reads and writes on the edge loop
            self.audit.listeners.append(self.mqtt.audit_checkpoint)  # each signed checkpoint, retained

    def idle(self) -> bool:
        """No device is armed or freezing."""
        return not any(s.kernel.treating for s in self.supervisors.values())

    async def stop(self) -> None:
        if self._heap_keeper is not None:
            self._heap_keeper.cancel()
        await self.calibration_runs.close()  # each procedure leaves its unit safe
        await self.consoles.close()
        for supervisor in self.supervisors.values():
            await supervisor.close()
        await self.audit.append("system", "service.stopped")
        await self.audit.checkpoint()  # the head, signed, in the checkpoint file (and over MQTT): a cut tail shows
        if self.mqtt is not None:
            await run_on(self.edge_loop, self.mqtt.stop())  # after the last checkpoint: published, then "offline"
        await asyncio.to_thread(self.store.close)  # the writer commits what is queued, then stops

    def devices(self) -> list[dict[str, Any]]:
        return [s.snapshot() for s in self.supervisors.values()]

    # ------------------------------------------------------------------ calibrations
    def record_calibration(self, user: User | None, device_serial: str, device_kind: str, passed: bool,
                           results: dict[str, Any], expires_on: str | None = None, certificate: str | None = None) -> int:
        """A calibration result (technicians; the simulated bench's factory record on first run)."""
        if user is not None:
            self.accounts.require(user, "technician", action="calibration.record")
        return record_calibration(self.store, self.audit, user.name if user else "factory", device_serial, device_kind,
                                  passed, results, expires_on or expiry(self.settings.calibration_valid_days), certificate)

    def calibrations(self) -> list[dict[str, Any]]:
        return list_calibrations(self.store)
