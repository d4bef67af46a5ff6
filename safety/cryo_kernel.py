"""Runtime monitors of a cryo session (defense in depth beside the unit's own timer and limit).

The unit is programmed with LIMIT FREEZE per cycle; the kernel keeps a backup timer on every
freeze, watches the tip for overshoot, counts cycles and total exposure, enforces the thaw
between cycles, and treats a freeze or an open valve it did not expect as uncommanded.
"""

from __future__ import annotations

import math
from typing import ClassVar

from .checklist import open_items
from .decisions import AllowFreeze, Decision, Lockout, Program, Refuse, Stop
from .facts import (
    BootSeen,
    ClockTick,
    CryoInputsSeen,
    DeviceStateSeen,
    FreezeEndSeen,
    FreezeRequested,
    FreezeStartSeen,
    FreezeUnanswered,
    LinkLost,
    SessionOpened,
    StopConfirmed,
    TipSeen,
)
from .hazards import Hazard
from .kernel import SHARED_RULES, KernelBase, rule
from .plans import CryoPlan

BACKUP_MARGIN_S = 0.5  # the unit's own timer ends a freeze; the host stops it this much later
OVERSHOOT_C = 10.0  # tip colder than target by this much: the regulation has failed
TELEMETRY_HZ = 10
LOST_LINK_MARGIN_S = 0.1  # a line in flight when the link went


def tenth_down(seconds: float) -> float:
    """The unit takes tenths of a second: never round a limit up past what is left."""
    return math.floor(seconds * 10 + 1e-6) / 10


class CryoKernel(KernelBase):
    SILENCE_S: ClassVar[float] = 0.5  # TEMP arrives at 10 Hz
    SILENCE_LOCKS: ClassVar[bool] = True  # a freeze the host cannot see may still be running
    SAFE_STATES: ClassVar[tuple[str, ...]] = ("IDLE", "THAW", "FAULT")

    def __init__(self) -> None:
        super().__init__()
        self.cycles_done = 0
        self.exposure_s = 0.0
        self.freeze_allowed: tuple[float, float] | None = None  # (seconds, allowed at)
        self.freezing_since: float | None = None
        self.freeze_seconds = 0.0
        self.last_end_at: float | None = None
        #: a freeze ended in the kernel because the unit was lost (link, reboot): the seconds
        #: counted for it, until the unit reports its own duration (whichever is longer counts)
        self.lost_freeze_s: float | None = None
        #: the unit's watchdog: a unit the host lost stops freezing at the latest this long after
        #: the last request it heard (the service sets what it programmed)
        self.unit_watchdog_s = 1.0

    @property
    def cryo_plan(self) -> CryoPlan:
        assert isinstance(self.plan, CryoPlan)
        return self.plan

    @property
    def remaining_exposure_s(self) -> float:
        return max(0.0, self.cryo_plan.total_exposure_cap_s - self.exposure_s) if self.plan else 0.0

    @property
    def treating(self) -> bool:
        return self.armed or self.freezing_since is not None

    def limits(self) -> list[Decision]:
        if self.plan is None:
            return []
        plan = self.cryo_plan
        return [
            Program("telemetry_hz", TELEMETRY_HZ),  # the silence monitor counts on it
            Program("target_c", plan.target_c),
            Program("thaw_min_s", plan.thaw_min_s),
            Program("freeze_limit_s", tenth_down(min(plan.freeze_cap_s, self.remaining_exposure_s))),
        ]

    def _observe(self, fact: object) -> None:
        super()._observe(fact)
        if isinstance(fact, SessionOpened):
            self.cycles_done = 0
            self.exposure_s = 0.0
            self.freezing_since = None
            self.last_end_at = None
        elif isinstance(fact, FreezeStartSeen):
            # an uncommanded freeze gets no seconds of its own: only the backup margin
            self.freeze_seconds = self.freeze_allowed[0] if self.freeze_allowed is not None else 0.0
            self.freezing_since = fact.at
            self.freeze_allowed = None
        elif isinstance(fact, FreezeEndSeen):
            if self.freezing_since is None and self.lost_freeze_s is not None:
                # the end of a freeze already counted up to the loss: add what it ran beyond that
                self.exposure_s += max(0.0, fact.dur_s - self.lost_freeze_s)
                self.lost_freeze_s = None
                return
            self.freezing_since = None
            self.exposure_s += fact.dur_s
            self.cycles_done += 1
            self.last_end_at = fact.at
            self.lost_freeze_s = None
        elif isinstance(fact, FreezeUnanswered):
            if self.freezing_since is None:  # a start event would have told; none came: count the worst
                self.exposure_s += fact.bound_s
                self.cycles_done += 1
                self.last_end_at = fact.at
                self.lost_freeze_s = fact.bound_s
            self.freeze_allowed = None
        elif isinstance(fact, (LinkLost, BootSeen, StopConfirmed)):
            if self.freezing_since is not None:
                # the unit cannot report this freeze's end any more (or only much later): it ends
                # here, counted up to the loss, so the kernel never waits for an end that never comes
                counted = max(0.0, fact.at - self.freezing_since)
                if isinstance(fact, LinkLost):
                    # the unit may freeze on, unseen, until its watchdog ends it (its own timer may
                    # have failed): count the longest it can have run (over-counting only shortens
                    # the session)
                    counted += self.unit_watchdog_s + LOST_LINK_MARGIN_S
                self.exposure_s += counted
                self.cycles_done += 1
                self.last_end_at = fact.at
                self.freezing_since = None
                # its own end event may still come (after a reconnect, or the STOP's): it tops up
                self.lost_freeze_s = None if isinstance(fact, BootSeen) else counted
            self.freeze_allowed = None

    def _apply(self, decisions: list[Decision]) -> None:
        super()._apply(decisions)
        for decision in decisions:
            if isinstance(decision, AllowFreeze):
                self.freeze_allowed = (decision.seconds, self.fact_at)
            elif isinstance(decision, Stop):
                self.freeze_allowed = None


@rule("session-programs-limits", Hazard.H05_OVERFREEZING, SessionOpened)
def program_limits(kernel: CryoKernel, fact: SessionOpened) -> list[Decision]:
    if not isinstance(fact.plan, CryoPlan):
        return [Refuse("a cryo kernel needs a cryo plan", Hazard.H05_OVERFREEZING)]
    return [Stop("session opened: the unit starts safe", Hazard.H05_OVERFREEZING)] + kernel.limits()


@rule("freeze-gates", Hazard.H06_CUMULATIVE_COLD, FreezeRequested)
def freeze_gates(kernel: CryoKernel, fact: FreezeRequested) -> list[Decision]:
    refusal = kernel.gate(fact.role)
    if refusal:
        return refusal
    plan = kernel.cryo_plan
    items = open_items(plan, fact.answers, fact.context)
    if items:
        return [Refuse("; ".join(i.reason for i in items), items[0].hazard)]
    if kernel.freezing_since is not None or kernel.freeze_allowed is not None:
        return [Refuse("a freeze is already under way", Hazard.H06_CUMULATIVE_COLD)]
    if kernel.cycles_done >= plan.cycles:
        return [Refuse(f"all {plan.cycles} freeze-thaw cycles of the plan are done", Hazard.H06_CUMULATIVE_COLD)]
    if not 0.5 <= fact.seconds <= plan.freeze_cap_s:
        return [Refuse(f"a freeze must be 0.5-{plan.freeze_cap_s} s", Hazard.H05_OVERFREEZING)]
    if fact.seconds > kernel.remaining_exposure_s:
        return [
            Refuse(
                f"only {kernel.remaining_exposure_s:.1f} s of the session's {plan.total_exposure_cap_s} s exposure remain",
                Hazard.H06_CUMULATIVE_COLD,
            )
        ]
    if kernel.last_end_at is not None and fact.at - kernel.last_end_at < plan.thaw_min_s:
        wait = plan.thaw_min_s - (fact.at - kernel.last_end_at)
        return [Refuse(f"let the skin thaw: {wait:.0f} s more", Hazard.H06_CUMULATIVE_COLD)]
    limit = tenth_down(min(plan.freeze_cap_s, kernel.remaining_exposure_s))
    return [Program("freeze_limit_s", limit), AllowFreeze(fact.seconds)]


@rule("uncommanded-freeze", Hazard.H05_OVERFREEZING, FreezeStartSeen)
def uncommanded_freeze(kernel: CryoKernel, fact: FreezeStartSeen) -> list[Decision]:
    if kernel.armed:
        return []
    reason = "a freeze started that nobody asked for"
    return [Stop(reason, Hazard.H05_OVERFREEZING), Lockout(reason, Hazard.H05_OVERFREEZING)]


@rule("freeze-backup-timer", Hazard.H05_OVERFREEZING, ClockTick, TipSeen)
def backup_timer(kernel: CryoKernel, fact: ClockTick | TipSeen) -> list[Decision]:
    """The host's own timer: a freeze that outlasts its time by a margin is stopped."""
    if kernel.freezing_since is None:
        return []
    elapsed = fact.at - kernel.freezing_since
    if elapsed > kernel.freeze_seconds + BACKUP_MARGIN_S:
        reason = f"the freeze ran {elapsed:.1f} s of {kernel.freeze_seconds} s: host backup stop (the unit's timer failed)"
        return [Stop(reason, Hazard.H05_OVERFREEZING), Lockout(reason, Hazard.H05_OVERFREEZING)]
    return []


@rule("cumulative-exposure", Hazard.H06_CUMULATIVE_COLD, ClockTick, TipSeen)
def cumulative_exposure(kernel: CryoKernel, fact: ClockTick | TipSeen) -> list[Decision]:
    if kernel.freezing_since is None or kernel.plan is None:
        return []
    total = kernel.exposure_s + (fact.at - kernel.freezing_since)
    if total > kernel.cryo_plan.total_exposure_cap_s:
        return [Stop(f"total exposure {total:.1f} s reached the session's cap", Hazard.H06_CUMULATIVE_COLD)]
    return []


@rule("tip-overshoot", Hazard.H05_OVERFREEZING, TipSeen)
def tip_overshoot(kernel: CryoKernel, fact: TipSeen) -> list[Decision]:
    if kernel.plan is None:
        return []
    floor = kernel.cryo_plan.target_c - OVERSHOOT_C
    if fact.tip_c < floor:
        return [Stop(f"tip {fact.tip_c:.1f} °C is colder than {floor} °C", Hazard.H05_OVERFREEZING)]
    return []


@rule("valve-open-outside-freeze", Hazard.H05_OVERFREEZING, TipSeen)
def valve_outside_freeze(kernel: CryoKernel, fact: TipSeen) -> list[Decision]:
    if fact.valve and kernel.freezing_since is None and not kernel.armed:
        reason = "cryogen flows while no freeze is under way (valve open)"
        return [Stop(reason, Hazard.H05_OVERFREEZING), Lockout(reason, Hazard.H05_OVERFREEZING)]
    return []


@rule("freeze-end-disarms", Hazard.H16_FAULT_REARM, FreezeEndSeen)
def freeze_end(kernel: CryoKernel, fact: FreezeEndSeen) -> list[Decision]:
    """Every freeze ends the permission; an abnormal end (estop, watchdog, fault) stops."""
    if fact.cause in ("timeout", "stop"):
        return [Stop(f"freeze ended ({fact.cause}, {fact.dur_s:.2f} s)", Hazard.H16_FAULT_REARM)]
    return [Stop(f"freeze ended abnormally ({fact.cause})", Hazard.H16_FAULT_REARM)]


@rule("estop-stops", Hazard.H16_FAULT_REARM, CryoInputsSeen)
def estop_stops(kernel: CryoKernel, fact: CryoInputsSeen) -> list[Decision]:
    if fact.estop:
        return [Stop("emergency stop pressed", Hazard.H16_FAULT_REARM)]
    if fact.probe == "NONE" and kernel.treating:
        return [Stop("the probe was removed", Hazard.H05_OVERFREEZING)]
    return []


@rule("device-state-watch", Hazard.H05_OVERFREEZING, DeviceStateSeen)
def state_watch(kernel: CryoKernel, fact: DeviceStateSeen) -> list[Decision]:
    if fact.state == "FREEZING" and not kernel.armed and kernel.freezing_since is None:
        reason = "the unit began freezing without a practitioner's request"
        return [Stop(reason, Hazard.H05_OVERFREEZING), Lockout(reason, Hazard.H05_OVERFREEZING)]
    return []


CryoKernel.RULES = SHARED_RULES + (
    program_limits, freeze_gates, uncommanded_freeze, backup_timer, cumulative_exposure, tip_overshoot,
    valve_outside_freeze, freeze_end, estop_stops, state_watch,
)
