"""One supervisor per device: the only place where a driver and a safety kernel meet.

It connects and identifies the unit, programs fail-safe limits, keeps the heartbeat alive only
while it is itself alive (owner lease), turns every driver event into a kernel fact, and executes
the kernel's decisions at once: STOP first (never queued behind anything), then lock-outs and
programming, then records. A unit that disconnects, reboots or faults is shown as such; nothing
re-arms on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from drivers import CryoDriver, DeviceError, DriverError, LaserDriver, NotConnected
from drivers.linedriver import LineFactory
from drivers.transport import SerialLine
from drivers.events import (
    Booted,
    CryoInputs,
    CryogenLevel,
    EventGap,
    FaultLatched,
    FreezePhase,
    HeadTemperature,
    LaserInputs,
    LinkDown,
    LinkUp,
    MalformedEvent,
    Pulse,
    StateChanged,
    TipTelemetry,
    WatchdogExpired,
)
from safety import facts as F
from safety.cryo_kernel import CryoKernel
from safety.decisions import AllowArm, AllowFreeze, Decision, Lockout, Pause, Program, Refuse, Stop
from safety.laser_kernel import LaserKernel

from .config import DeviceConfig
from .hub import Hub

log = logging.getLogger(__name__)
TICK_S = 0.1
POLL_S = 1.0


@dataclass
class DeviceStatus:
    name: str
    kind: str
    connected: bool = False
    serial: str | None = None
    model: str | None = None
    state: str = "UNKNOWN"
    fault: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    last_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "connected": self.connected, "serial": self.serial,
            "model": self.model, "state": self.state, "fault": self.fault, "details": self.details,
            "last_reason": self.last_reason,
        }


class Refused(Exception):
    """The kernel or the device refused a request; the reason is for the practitioner."""

    def __init__(self, reason: str, hazard: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hazard = hazard


Recorder = Callable[[str, dict[str, Any]], None]


class DeviceSupervisor:
    def __init__(self, config: DeviceConfig, hub: Hub, record: Recorder, clock: Callable[[], float] = time.monotonic,
                 line_factory: LineFactory = SerialLine) -> None:
        self.config = config
        self.hub = hub
        self.record = record  # (kind, data): pulses, freezes, device events -> the session's records
        self.clock = clock
        heartbeat = config.watchdog_ms / 4000
        lease = config.watchdog_ms / 2000
        driver_cls = LaserDriver if config.type == "laser" else CryoDriver
        self.driver: LaserDriver | CryoDriver = driver_cls(config.port, heartbeat_s=heartbeat, owner_lease_s=lease,
                                                           line_factory=line_factory, clock=clock)
        self.kernel: LaserKernel | CryoKernel = LaserKernel() if config.type == "laser" else CryoKernel()
        self.status = DeviceStatus(config.name, config.type)
        self.session_id: int | None = None
        self._exec_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._failsafe_pending = True
        self.decision_listeners: list[Callable[[Any, list[Decision]], None]] = []

    # ------------------------------------------------------------------ life
    async def start(self) -> None:
        self.driver.add_listener(self._on_event)
        self._spawn(self._connect_loop())
        self._spawn(self._tick_loop())

    async def close(self) -> None:
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            if self.driver.connected:
                await self.driver.stop()
        await self.driver.close()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: task failed", self.config.name, exc_info=task.exception())

    async def _connect_loop(self) -> None:
        delay = 0.2
        while not self._closing:
            try:
                await self.driver.connect()
                break
            except NotConnected as exc:
                self.status.connected = False
                self.status.last_reason = str(exc)
                self._publish_status()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 3.0)
        await self._on_link_up()
        self._spawn(self._poll_loop())

    async def _on_link_up(self) -> None:
        self.status.connected = True
        with contextlib.suppress(DriverError):
            await self.driver.stop()
            idn = await self.driver.idn()
            self.status.serial, self.status.model = idn.serial, idn.model
            await self.driver.set_watchdog(self.config.watchdog_ms)
        self._failsafe_pending = self.kernel.plan is None
        await self._program_failsafe()
        self._publish_status()

    async def _program_failsafe(self) -> None:
        """No session: the unit may neither emit nor freeze (its power-on values, set again)."""
        if not self._failsafe_pending or not self.driver.connected:
            return
        try:
            if isinstance(self.driver, LaserDriver):
                await self.driver.limit_pulses(0)
            else:
                await self.driver.limit_freeze(0)
            self._failsafe_pending = False
        except DeviceError:
            pass  # e.g. still thawing: the poll loop tries again

    # ------------------------------------------------------------------ time and polling
    async def _tick_loop(self) -> None:
        while not self._closing:
            await asyncio.sleep(TICK_S)
            self.driver.owner_alive()  # the device's watchdog is fed only while this loop runs
            self.handle(F.ClockTick(self.clock()))

    async def _poll_loop(self) -> None:
        while not self._closing:
            await asyncio.sleep(POLL_S)
            if not self.driver.connected:
                continue
            try:
                state = await self.driver.state()
            except DriverError:
                continue
            details = state.model_dump(mode="json")
            self.status.state = details["state"]
            self.status.details = details
            if isinstance(self.driver, LaserDriver):
                self.handle(F.SpotSeen(details["spot_mm"], self.clock()))
            await self._program_failsafe()
            self._publish_status()

    # ------------------------------------------------------------------ events -> facts
    def _on_event(self, event: Any) -> None:
        now = self.clock()
        fact: Any = None
        record: tuple[str, dict[str, Any]] | None = None
        if isinstance(event, StateChanged):
            self.status.state = event.state
            fact = F.DeviceStateSeen(event.state, event.cause, now)
        elif isinstance(event, Pulse):
            fact = F.PulseSeen(event.n, event.energy_mj, event.set_mj, now)
            record = ("pulse", {"n": event.n, "energy_mj": event.energy_mj, "set_mj": event.set_mj, "t_ms": event.t_ms})
        elif isinstance(event, LaserInputs):
            self.status.details.update(key=event.key, interlock=event.interlock, estop=event.estop, foot=event.foot)
            fact = F.LaserInputsSeen(event.key, event.interlock, event.estop, event.foot, now)
        elif isinstance(event, TipTelemetry):
            self.status.details.update(tip_c=event.tip_c, valve=event.valve, target_c=event.target_c)
            fact = F.TipSeen(event.tip_c, event.valve, now)
        elif isinstance(event, FreezePhase):
            if event.phase == "start":
                fact = F.FreezeStartSeen(now)
            else:
                fact = F.FreezeEndSeen(event.cause or "unknown", event.dur_s or 0.0, now)
                record = ("freeze", {"dur_s": event.dur_s, "cause": event.cause})
        elif isinstance(event, CryoInputs):
            self.status.details.update(estop=event.estop, probe=event.probe)
            fact = F.CryoInputsSeen(event.estop, event.probe, now)
        elif isinstance(event, (HeadTemperature, CryogenLevel)):
            self.status.details.update({k: v for k, v in event.model_dump().items() if k not in ("evseq", "kind")})
            fact = F.TelemetrySeen(now)
        elif isinstance(event, FaultLatched):
            self.status.fault = f"{event.code} {event.text}"
            fact = F.FaultSeen(event.code, event.text, now)
        elif isinstance(event, WatchdogExpired):
            fact = F.WatchdogSeen(now)
        elif isinstance(event, Booted):
            self.status.fault = None
            fact = F.BootSeen(now)
        elif isinstance(event, (EventGap, MalformedEvent)):
            fact = F.EventGapSeen(getattr(event, "missing", 1), now)  # a lost or unreadable event
        elif isinstance(event, LinkDown):
            self.status.connected = False
            self.status.last_reason = event.reason
            fact = F.LinkLost(event.reason, now)
        elif isinstance(event, LinkUp):
            self._spawn(self._on_link_up())
            fact = F.LinkRestored(now)
        if fact is not None:
            self.handle(fact)  # the kernel first: a STOP must never wait for a record or a screen
        if record is not None and self.session_id is not None:
            try:
                self.record(*record)
            except Exception:
                log.exception("%s: could not record %s %s", self.config.name, *record)
                self.status.last_reason = f"could not record a {record[0]}: see the service log"
        if self.hub.listening:
            self.hub.publish({"type": "event", "device": self.config.name, "event": event.model_dump(mode="json")})

    # ------------------------------------------------------------------ decisions
    def handle(self, fact: Any) -> list[Decision]:
        """Ask the kernel; STOP goes out at once, everything else runs in order behind it."""
        decisions = self.kernel.handle(fact)
        if not decisions:
            return decisions
        if any(isinstance(d, Stop) for d in decisions):
            self._spawn(self._stop_now())
        rest = [d for d in decisions if isinstance(d, (Program, Lockout, Pause))]
        if rest and not isinstance(fact, (F.ArmRequested, F.FreezeRequested)):
            # only limits really programmed again (after a reboot or reconnect) let a practitioner
            # re-confirm; a pause with nothing to program (the link is down) does not
            reprogram = any(isinstance(d, Pause) for d in decisions) and any(isinstance(d, Program) for d in decisions)
            self._spawn(self._execute(rest, reprogram=reprogram))
        self._report(fact, decisions)
        return decisions

    async def _stop_now(self) -> None:
        if not self.driver.connected:
            return
        try:
            await self.driver.stop()
        except DriverError as exc:
            log.error("%s: STOP failed: %s", self.config.name, exc)

    async def _execute(self, decisions: list[Decision], reprogram: bool = False) -> None:
        async with self._exec_lock:
            try:
                for decision in decisions:
                    if isinstance(decision, Program):
                        await self._program(decision)
            except DriverError as exc:
                log.warning("%s: programming failed: %s", self.config.name, exc)
                self.status.last_reason = f"programming failed: {exc}"
                return
            if reprogram and self.kernel.plan is not None:
                self.handle(F.LimitsReprogrammed(self.clock()))

    async def _program(self, decision: Program) -> None:
        driver, value = self.driver, decision.value
        if isinstance(driver, LaserDriver):
            actions = {
                "wavelength_nm": lambda: driver.set_wavelength(int(value)),
                "energy_limit_mj": lambda: driver.limit_energy(int(value)),
                "energy_mj": lambda: driver.set_energy(int(value)),
                "rate_hz": lambda: driver.set_rate(float(value)),
                "count_reset": driver.reset_count,
                "pulse_limit": lambda: driver.limit_pulses(int(value)),
            }
        else:
            cryo = driver
            actions = {
                "telemetry_hz": lambda: cryo.set_telemetry(int(value)),
                "target_c": lambda: cryo.set_target(int(value)),
                "thaw_min_s": lambda: cryo.set_thaw_min(int(value)),
                "freeze_limit_s": lambda: cryo.limit_freeze(float(value)),
            }
        await actions[decision.setting]()

    async def request(self, fact: Any) -> list[Decision]:
        """A person's request (arm, freeze): refused with the reason, or carried out on the unit."""
        decisions = self.handle(fact)
        refusal = next((d for d in decisions if isinstance(d, Refuse)), None)
        if refusal is not None:
            raise Refused(refusal.reason, refusal.hazard.value)
        allow = next((d for d in decisions if isinstance(d, (AllowArm, AllowFreeze))), None)
        if allow is None:
            return decisions
        try:
            async with self._exec_lock:
                for decision in decisions:
                    if isinstance(decision, Program):
                        await self._program(decision)
                if isinstance(allow, AllowArm):
                    assert isinstance(self.driver, LaserDriver)
                    await self.driver.ready()
                else:
                    assert isinstance(self.driver, CryoDriver)
                    await self.driver.freeze(allow.seconds)
        except DriverError as exc:
            self.handle(F.StopRequested(f"device refused: {exc}", self.clock()))
            raise Refused(f"the device refused: {exc}") from exc
        return decisions

    async def run_decisions(self, fact: Any) -> list[Decision]:
        """Open or close a session: program every limit, in order, before returning."""
        decisions = self.kernel.handle(fact)
        if any(isinstance(d, Stop) for d in decisions):
            await self._stop_now()
        await self._execute([d for d in decisions if isinstance(d, Program)])
        self._report(fact, decisions)
        return decisions

    def _report(self, fact: Any, decisions: list[Decision]) -> None:
        for listener in self.decision_listeners:
            listener(fact, decisions)
        for decision in decisions:
            if isinstance(decision, (Stop, Lockout, Pause, Refuse)):
                self.hub.publish({
                    "type": "decision", "device": self.config.name, "decision": type(decision).__name__,
                    "reason": decision.reason, "hazard": decision.hazard.value,
                })

    def _publish_status(self) -> None:
        self.hub.publish({"type": "status", "device": self.config.name, "status": self.snapshot()})

    def snapshot(self) -> dict[str, Any]:
        kernel = self.kernel
        out = self.status.as_dict() | {
            "armed": kernel.armed, "locked": kernel.locked, "paused": kernel.paused,
            "session_id": self.session_id,
        }
        if isinstance(kernel, LaserKernel) and kernel.plan is not None:
            out |= {"pulses": kernel.pulses, "budget": kernel.laser_plan.pulse_budget, "remaining": kernel.remaining}
        if isinstance(kernel, CryoKernel) and kernel.plan is not None:
            out |= {"cycles_done": kernel.cycles_done, "cycles": kernel.cryo_plan.cycles, "exposure_s": round(kernel.exposure_s, 2),
                    "exposure_cap_s": kernel.cryo_plan.total_exposure_cap_s}
        return out
