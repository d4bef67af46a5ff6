"""One supervisor per device: the only place where a driver and a safety kernel meet.

It connects and identifies the unit, programs fail-safe limits, keeps the heartbeat alive only
while it is itself alive (owner lease), turns every driver event into a kernel fact, and executes
the kernel's decisions at once: STOP first (never queued behind anything), then lock-outs and
programming, then records. A unit that disconnects, reboots or faults is shown as such; nothing
re-arms on its own.

Never trust a reply: a STOP counts only when the unit reports its safe state; otherwise it is
retried a bounded number of times, then the host goes silent toward the unit (its watchdog stops
it) and the device is locked with an alarm. READY and FREEZE are written only under the kernel's
permit, checked at the moment of writing. After any gap (reconnect, reboot) and before every arm
the unit's own pulse counter is read: pulses the host did not see count against the budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from devicectl.core import event_facts
from devicectl.core.config import DeviceConfig
from devicectl.core.eager import start_now
from devicectl.core.hub import Hub
from drivers import (
    CryoDriver,
    DeviceError,
    DriverError,
    LaserDriver,
    LinkLost,
    NotConnected,
    Preempted,
    RequestTimeout,
)
from drivers.linedriver import LineFactory
from drivers.transport import SerialLine
from safety import facts as F
from safety.cryo_kernel import CryoKernel
from safety.decisions import AllowArm, AllowFreeze, Decision, Lockout, Pause, Program, Refuse, Stop
from safety.laser_kernel import LaserKernel

log = logging.getLogger(__name__)
TICK_S = 0.1
POLL_S = 1.0
#: STOPs sent before the host gives up on the unit's reply and goes silent toward it
STOP_ATTEMPTS = 3
#: tries at programming limits that a STOP preempted (limits are programmed after the STOP)
PROGRAM_ATTEMPTS = 5
#: states in which a unit's STOP reply counts as safe (laser: emission off; cryo: no freeze)
SAFE_STATES = {"laser": ("STANDBY", "FAULT"), "cryo": ("IDLE", "THAW", "FAULT")}
#: the IDN model each configured type must answer with (swapped cables are refused)
MODELS = {"laser": "QS-1064", "cryo": "CP-2"}
#: what the kernel still hears in service mode: faults, the link, reboots, the watchdog and the
#: hardware inputs (a person's STOP always reaches it through ``stop_and_confirm``)
SERVICE_MODE_FACTS = (F.FaultSeen, F.LinkLost, F.LinkRestored, F.BootSeen, F.WatchdogSeen, F.LaserInputsSeen,
                      F.CryoInputsSeen)


class NotProgrammed(DriverError):
    """The unit's echo of a setting differs from what was programmed."""


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
    alarm: str | None = None  # a STOP the unit did not confirm: people must use its emergency stop
    refused: str | None = None  # the unit on this port is not the one configured

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "connected": self.connected, "serial": self.serial,
            "model": self.model, "state": self.state, "fault": self.fault, "details": self.details,
            "last_reason": self.last_reason, "alarm": self.alarm, "refused": self.refused,
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
        if isinstance(self.kernel, CryoKernel):
            self.kernel.unit_watchdog_s = config.watchdog_ms / 1000
        self.status = DeviceStatus(config.name, config.type)
        self.session_id: int | None = None
        self._exec_lock = asyncio.Lock()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._closing = False
        self._failsafe_pending = True
        self._stop_task: asyncio.Future[bool] | None = None
        self._stop_again = False
        self._stop_starting = False  # the STOP's first step is running (start_now)
        self._total_offset: int | None = None  # the unit's lifetime pulse total minus the pulses seen
        self.decision_listeners: list[Callable[[Any, list[Decision]], None]] = []
        #: who holds the device in service mode (devicectl/core/service_mode.py), else None
        self.service_mode: str | None = None

    # ------------------------------------------------------------------ life
    async def start(self) -> None:
        self.driver.add_listener(self._on_event)
        self.driver.owner_alive()  # the lease starts now, not when the supervisor was built
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

    def _task_done(self, task: asyncio.Future[Any]) -> None:
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
        """Stop the unit, make sure it is the unit configured, reconcile its counters, then let
        it be used (never armed)."""
        try:
            await self.driver.stop()  # at once, before anything is known; verified once identified
            idn = await self.driver.idn()
            await self.driver.set_watchdog(self.config.watchdog_ms)
        except ValidationError:
            self._refuse_unit(await self._identify_anyway())
            return
        except DriverError as exc:
            self.status.last_reason = f"the unit did not identify itself: {exc}"
            self._publish_status()
            return  # an unanswered request makes the driver go silent and reconnect later
        if idn.model != MODELS[self.config.type]:
            self._refuse_unit(f"{idn.model} ({idn.serial})")
            return
        if not await self._enforce_stop():
            return  # escalated: silent toward the unit, locked, alarm shown
        if self.status.serial not in (None, idn.serial):
            self._total_offset = None  # another unit of the same kind: its counters are its own
        self.status.serial, self.status.model = idn.serial, idn.model
        self.status.connected = True
        self.status.refused = None
        try:
            async with self._exec_lock:  # one reconciliation at a time: each moves the offset
                await self._reconcile_counts()
        except DriverError as exc:
            self.status.last_reason = f"could not read the unit's counters: {exc}"
        self._failsafe_pending = self.kernel.plan is None
        await self._program_failsafe()
        self._publish_status()

    async def _identify_anyway(self) -> str:
        try:
            fields = await self.driver.request("IDN?")
        except DriverError:
            return "another unit"
        return f"{fields.get('model', 'an unknown model')} ({fields.get('serial', 'no serial')})"

    def _refuse_unit(self, found: str) -> None:
        """Swapped cables: the port answers as another device. It is never used; its watchdog
        keeps it safe, since nothing more is sent to it."""
        self.status.connected = False
        self.status.refused = (
            f"{self.config.port} answers as {found}, but '{self.config.name}' is configured as the "
            f"{self.config.type} ({MODELS[self.config.type]}): check the cables and the configuration"
        )
        self.status.last_reason = self.status.refused
        log.error("%s: %s", self.config.name, self.status.refused)
        self._publish_status()
        self._spawn(self.driver.close())

    async def _reconcile_quietly(self) -> None:
        if self.service_mode is not None:
            return  # a procedure's pulses are its own; leaving service mode counts afresh
        try:
            async with self._exec_lock:
                await self._reconcile_counts()
        except DriverError:
            pass  # the link is down or the unit silent: link-up reconciles again

    async def _reconcile_counts(self) -> None:
        """Count what the host did not see: compare the unit's lifetime pulse total with the
        pulses the driver delivered; the difference counts against the budget and locks."""
        if not isinstance(self.driver, LaserDriver):
            return
        for _ in range(3):
            counted = await self.driver.count()
            if not self.driver.last_reply_retransmitted:
                break
            # a retransmitted reply carries the count of the first receipt: it cannot be lined up
            # with the events seen since; ask again with a new SEQ
        else:
            return  # the line is too noisy to reconcile now; the next poll tries again
        seen = self.driver.pulses_seen_at_reply
        if self._total_offset is None:
            self._total_offset = counted.total - seen
            return
        unseen = counted.total - (self._total_offset + seen)
        if unseen == 0:
            return
        self._total_offset += unseen
        if unseen > 0:
            self._record("pulses_unseen", {"count": unseen})
        self.handle(F.PulsesUnseen(unseen, self.clock()))

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
        except DriverError:
            pass  # still thawing, preempted by a STOP, link down: the poll loop tries again

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
            if not self.status.connected and self.status.refused is None:
                await self._on_link_up()  # the link is up but the unit was not identified yet: again
                continue
            if self.service_mode is not None:
                self._publish_status()  # a procedure owns the unit: no polling, no limits in its way
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
                if not self._exec_lock.locked():
                    await self._reconcile_quietly()  # whatever was lost unnoticed is counted within a poll
            await self._program_failsafe()
            self._publish_status()

    # ------------------------------------------------------------------ events -> facts
    def _on_event(self, event: Any) -> None:
        if self.status.refused is not None:
            return  # not the unit configured: nothing it says is about this device
        fact, record = event_facts.translate(event, self.clock(), self.status)
        follow_up = event_facts.FOLLOW_UPS.get(type(event))
        if follow_up is not None:
            self._spawn(getattr(self, follow_up)())
        if self.service_mode is not None and not isinstance(fact, SERVICE_MODE_FACTS):
            fact, record = None, None  # the procedure's own pulses, freezes and states are not a treatment's
        if fact is not None:
            self._handle_and_record(fact, record)  # the kernel first: a STOP never waits for a record
        elif record is not None:
            self._record(*record)
        if self.hub.listening:
            self.hub.publish({"type": "event", "device": self.config.name, "event": event.model_dump(mode="json")})

    def _handle_and_record(self, fact: Any, record: tuple[str, dict[str, Any]] | None = None) -> None:
        """Hand a device fact to the kernel, then record: ``record`` as given, except that a freeze
        the kernel ended on its own (the unit was lost) or the late end of such a freeze is recorded
        with the seconds it adds."""
        kernel = self.kernel
        if isinstance(kernel, CryoKernel):
            was_freezing, lost_before, exposure_before = kernel.freezing_since, kernel.lost_freeze_s, kernel.exposure_s
            self.handle(fact)
            added = round(kernel.exposure_s - exposure_before, 2)
            if was_freezing is not None and kernel.freezing_since is None and not isinstance(fact, F.FreezeEndSeen):
                record = ("freeze", {"dur_s": added, "cause": "lost"})
            elif isinstance(fact, F.FreezeEndSeen) and was_freezing is None and lost_before is not None:
                record = ("freeze", {"dur_s": added, "cause": f"{fact.cause} (beyond the time counted at the loss)"})
        else:
            self.handle(fact)
        if record is not None:
            self._record(*record)

    def _record(self, kind: str, data: dict[str, Any]) -> None:
        """Pulses and freezes go to the session's records; outside a session a pulse (which the
        kernel treats as uncommanded) is still kept, in the audit log."""
        if self.session_id is None and kind not in ("pulse", "pulses_unseen"):
            return
        try:
            self.record(kind, data)
        except Exception:
            log.exception("%s: could not record %s %s", self.config.name, kind, data)
            self.status.last_reason = f"could not record a {kind}: see the service log"

    # ------------------------------------------------------------------ decisions
    def handle(self, fact: Any) -> list[Decision]:
        """Ask the kernel; STOP goes out at once, everything else runs in order behind it."""
        decisions = self.kernel.handle(fact)
        if not decisions:
            return decisions
        if any(isinstance(d, Stop) for d in decisions):
            self._request_stop()
        rest = [d for d in decisions if isinstance(d, (Program, Lockout, Pause))]
        if rest and not isinstance(fact, (F.ArmRequested, F.FreezeRequested)):
            # only limits really programmed again (after a reboot or reconnect) let a practitioner
            # re-confirm; a pause with nothing to program (the link is down) does not
            reprogram = any(isinstance(d, Pause) for d in decisions) and any(isinstance(d, Program) for d in decisions)
            self._spawn(self._execute(rest, reprogram=reprogram))
        self._report(fact, decisions)
        return decisions

    def _request_stop(self) -> None:
        """Start a verified STOP now (or once more after the one under way). Its first step runs
        before this returns: on a free line the STOP is written before the callback that decided
        it goes on (H26, ``eager.start_now``)."""
        if self._stop_starting or (self._stop_task is not None and not self._stop_task.done()):
            self._stop_again = True
            return
        self._stop_starting = True  # a STOP decided during the first step (an escalation) runs again after it
        try:
            self._stop_task = start_now(self._stop_until_settled())
        finally:
            self._stop_starting = False
        self._tasks.add(self._stop_task)
        self._stop_task.add_done_callback(self._task_done)

    async def _stop_until_settled(self) -> bool:
        while True:
            self._stop_again = False
            confirmed = await self._stop_verified()
            if not self._stop_again:
                return confirmed

    async def _enforce_stop(self) -> bool:
        """STOP and wait for the unit to confirm it: True when it reported its safe state."""
        self._request_stop()
        assert self._stop_task is not None
        return await asyncio.shield(self._stop_task)

    async def _stop_verified(self) -> bool:
        """Send STOP until the unit reports its safe state; otherwise escalate."""
        if not self.driver.connected:
            return False  # nothing reaches the unit (port gone, or the host is silent): its watchdog stops it
        problems: list[str] = []
        for _ in range(STOP_ATTEMPTS):
            try:
                state = await self.driver.stop()
                if await self._safe_after_stop(state):
                    self.status.state = state
                    self._handle_and_record(F.StopConfirmed(state, self.clock()))
                    return True
                problems.append(f"it answered STOP with state {state}")
            except NotConnected:
                problems.append("it went silent")
                break
            except DriverError as exc:
                problems.append(str(exc))
        # the first attempt runs inside the decision that asked for it (start_now): escalate in a step
        # of its own, so that the decision is reported and recorded before what it led to
        await asyncio.sleep(0)
        self._escalate("; ".join(dict.fromkeys(problems)))
        return False

    async def _safe_after_stop(self, state: str) -> bool:
        if state not in SAFE_STATES[self.config.type]:
            return False
        if isinstance(self.driver, CryoDriver):
            cryo = await self.driver.state()  # the reply's state alone does not say the valve closed
            return not cryo.valve and cryo.state.value != "FREEZING"
        return True

    def _escalate(self, problems: str) -> None:
        """The unit did not confirm STOP: go silent toward it so its own watchdog stops it, lock
        the device, and tell every screen to use the unit's emergency stop."""
        alarm = f"the {self.config.type} did not confirm STOP — use its emergency stop"
        self.status.alarm = alarm
        self.status.last_reason = f"{alarm} ({problems})"
        log.error("%s: %s", self.config.name, self.status.last_reason)
        self.driver.go_silent(alarm)
        self.handle(F.StopUnconfirmed(f"{alarm} ({problems})", self.clock()))
        self.hub.publish({"type": "alarm", "device": self.config.name, "message": alarm, "detail": problems})
        self._publish_status()

    def stop_and_confirm(self, origin: str) -> asyncio.Future[bool]:
        """A person's STOP, decided now (before this returns); the future tells whether the
        unit confirmed its safe state."""
        self.handle(F.StopRequested(origin, self.clock()))
        if self._stop_task is None:
            done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            done.set_result(False)
            return done
        return asyncio.shield(self._stop_task)

    async def _execute(self, decisions: list[Decision], reprogram: bool = False) -> None:
        """Program limits the kernel decided on its own (after a reboot or reconnect). A failure
        leaves the session paused, with the reason shown: never re-confirmable on unprogrammed limits."""
        async with self._exec_lock:
            for attempt in range(PROGRAM_ATTEMPTS):
                try:
                    if reprogram:
                        await self._reconcile_counts()
                    for decision in decisions:
                        if isinstance(decision, Program):
                            await self._program(decision)
                    break
                except Preempted:
                    continue  # a STOP went first: limits are still to be programmed, after it
                except DriverError as exc:
                    log.warning("%s: programming failed: %s", self.config.name, exc)
                    self.status.last_reason = f"programming failed: {exc}"
                    self._publish_status()
                    return
            else:
                self.status.last_reason = "programming failed: preempted by STOP every time"
                self._publish_status()
                return
            if reprogram and self.kernel.plan is not None:
                self.handle(F.LimitsReprogrammed(self.clock()))

    async def _program(self, decision: Program) -> None:
        """Program one setting and check the unit's echo of it."""
        driver, value = self.driver, decision.value
        if isinstance(driver, LaserDriver):
            actions: dict[str, Callable[[], Awaitable[float | int]]] = {
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
        echo = await actions[decision.setting]()
        if abs(float(echo) - float(value)) > 0.05:
            raise NotProgrammed(f"{decision.setting}: programmed {value}, the unit holds {echo}")

    async def request(self, fact: Any) -> list[Decision]:
        """A person's request (arm, freeze): refused with the reason, or carried out on the unit.

        The unit's counters and state are read first; READY/FREEZE is written only while the
        permit the kernel issued for this request is still valid at the moment of writing."""
        decisions = self.handle(fact)
        refusal = next((d for d in decisions if isinstance(d, Refuse)), None)
        if refusal is not None:
            raise Refused(refusal.reason, refusal.hazard.value)
        allow = next((d for d in decisions if isinstance(d, (AllowArm, AllowFreeze))), None)
        if allow is None:
            return decisions
        permit = self.kernel.permit
        kernel = self.kernel

        def still_permitted() -> bool:
            return kernel.permit_valid(permit)

        try:
            async with self._exec_lock:
                await self._reconcile_counts()
                await self._check_idle_before_actuating()
                for decision in decisions:
                    if isinstance(decision, Program):
                        if not still_permitted():
                            raise Preempted("the request was cancelled by a STOP, lock-out or pause")
                        await self._program(decision)
                if isinstance(allow, AllowArm):
                    assert isinstance(self.driver, LaserDriver)
                    await self.driver.request("READY", guard=still_permitted)
                else:
                    assert isinstance(self.driver, CryoDriver)
                    first_write, cycles_before = self.clock(), kernel.cycles_done if isinstance(kernel, CryoKernel) else 0
                    try:
                        await self.driver.request("FREEZE", allow.seconds, guard=still_permitted)
                    except (RequestTimeout, LinkLost):
                        self._freeze_unanswered(allow.seconds, first_write, cycles_before)
                        raise
        except Preempted as exc:
            if kernel.permit == permit:
                self.handle(F.StopRequested(f"request cancelled: {exc}", self.clock()))
            raise Refused(f"cancelled before the unit was armed: {self._why_revoked(exc)}") from exc
        except DriverError as exc:
            self.handle(F.StopRequested(f"device refused: {exc}", self.clock()))
            raise Refused(f"the device refused: {exc}") from exc
        return decisions

    def _freeze_unanswered(self, seconds: float, first_write: float, cycles_before: int) -> None:
        """A FREEZE that went out and was never answered may have started a freeze the host will
        never see: it counts, as long as the unit could have run it (its own timer, or its watchdog
        after the last retry), and is recorded as lost."""
        kernel = self.kernel
        if not isinstance(kernel, CryoKernel) or kernel.freezing_since is not None or kernel.cycles_done != cycles_before:
            return  # its start was seen: it is counted like any freeze (or as lost with the link)
        wdt = self.driver.watchdog_ms / 1000
        bound = round(min(seconds, self.clock() - first_write + wdt + 0.1), 2)
        self.handle(F.FreezeUnanswered(bound, self.clock()))
        self._record("freeze", {"dur_s": bound, "cause": "lost: FREEZE unanswered (counted to the unit's watchdog)"})

    def _why_revoked(self, exc: Exception) -> str:
        kernel = self.kernel
        return kernel.locked or kernel.paused or self.status.last_reason or str(exc)

    async def _check_idle_before_actuating(self) -> None:
        """The unit must be where the kernel believes it is (idle, no latched fault)."""
        state = (await self.driver.state()).state.value
        idle = "STANDBY" if isinstance(self.driver, LaserDriver) else "IDLE"
        if state != idle:
            raise DeviceError("E04", f"the unit is {state}, not {idle}", "STATE?")

    async def run_decisions(self, fact: Any) -> tuple[list[Decision], bool]:
        """Open or close a session: STOP (confirmed), then program every limit, in order.

        Returns the decisions and whether the unit confirmed the STOP (True when none was
        decided). A programming failure raises: the caller must not treat the session as open."""
        decisions = self.kernel.handle(fact)
        self._report(fact, decisions)
        confirmed = True
        if any(isinstance(d, Stop) for d in decisions):
            confirmed = await self._enforce_stop()
        programs = [d for d in decisions if isinstance(d, Program)]
        if programs:
            async with self._exec_lock:
                for decision in programs:
                    await self._program(decision)
        return decisions, confirmed

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
            "session_id": self.session_id, "service_mode": self.service_mode,
        }
        out["permit"] = kernel.permit is not None
        if isinstance(kernel, LaserKernel) and kernel.plan is not None:
            out |= {"pulses": kernel.pulses, "budget": kernel.laser_plan.pulse_budget, "remaining": kernel.remaining}
        if isinstance(kernel, CryoKernel) and kernel.plan is not None:
            out |= {"cycles_done": kernel.cycles_done, "cycles": kernel.cryo_plan.cycles, "exposure_s": round(kernel.exposure_s, 2),
                    "exposure_cap_s": kernel.cryo_plan.total_exposure_cap_s}
        return out
