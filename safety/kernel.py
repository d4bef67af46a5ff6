"""The runtime safety kernel: a state machine with ``handle(fact) -> list[Decision]``.

Each rule is a named entry of ``RULES`` with the hazard it controls (docs/safety.md); a rule
only decides. Bookkeeping (counting pulses, timers) happens first, then every rule that matches
the fact is asked, then the decisions are applied to the kernel's own state: ``Stop`` disarms,
``Lockout`` locks, ``Pause`` pauses, ``AllowArm``/``AllowFreeze`` are the only way to arm, and
they come only from a practitioner's request. Nothing here re-arms on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from .decisions import AllowArm, AllowFreeze, Decision, Lockout, Pause, Refuse, Stop
from .facts import (
    DEVICE_FACTS,
    BootSeen,
    ClockTick,
    DeviceStateSeen,
    EventGapSeen,
    FaultSeen,
    LimitsReprogrammed,
    LinkLost,
    LinkRestored,
    LockoutAcknowledged,
    Reconfirmed,
    Role,
    SessionClosed,
    SessionOpened,
    StopConfirmed,
    StopRequested,
    StopUnconfirmed,
    WatchdogSeen,
)
from .hazards import Hazard

RuleFn = Callable[[Any, Any], list[Decision]]
#: facts that show the device (or its line) alive
SIGNS_OF_LIFE = (*DEVICE_FACTS, LinkRestored)


@dataclass(frozen=True)
class Rule:
    name: str
    hazard: Hazard
    facts: tuple[type, ...]
    decide: RuleFn


def rule(name: str, hazard: Hazard, *facts: type) -> Callable[[RuleFn], Rule]:
    def wrap(fn: RuleFn) -> Rule:
        return Rule(name, hazard, facts, fn)

    return wrap


class KernelBase:
    """What both kernels share: the session, lock-out, pause, lost information, faults."""

    RULES: ClassVar[tuple[Rule, ...]] = ()
    #: silence while treating that means the device's state is no longer known
    SILENCE_S: ClassVar[float] = 2.5
    #: whether that silence also locks (a freeze the host cannot see may still be running)
    SILENCE_LOCKS: ClassVar[bool] = False
    #: the unit's states that are safe (nothing emitted, nothing frozen)
    SAFE_STATES: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self.plan: Any = None
        self.armed = False  # emission / freezing permitted (a practitioner asked, every gate open)
        self.locked: str | None = None
        self.paused: str | None = None
        self.reprogrammed = False
        #: the permit under which READY/FREEZE/FIRE may be written; every Stop, Lockout and
        #: Pause revokes it, only AllowArm/AllowFreeze issue a new one
        self.permit: int | None = None
        self._permits_issued = 0
        self.last_seen_at: float | None = None
        self.fact_at = 0.0  # the time of the fact being handled (facts carry their time)
        #: the unit did not confirm a STOP and has not shown a safe state since (H21): its lock-out
        #: cannot be acknowledged yet
        self.stop_unconfirmed = False

    def limits(self) -> list[Decision]:
        """Every limit the unit must hold for the open session (each kernel names its own)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the one entry point
    def handle(self, fact: Any) -> list[Decision]:
        self.fact_at = getattr(fact, "at", 0.0)
        self._observe(fact)
        decisions: list[Decision] = []
        for entry in self.RULES:
            if isinstance(fact, entry.facts):
                decisions += entry.decide(self, fact)
        decisions = _stops_first(decisions)
        self._apply(decisions)
        return decisions

    def _observe(self, fact: Any) -> None:
        if isinstance(fact, SIGNS_OF_LIFE):
            self.last_seen_at = fact.at
        if isinstance(fact, SessionOpened):
            self.plan = fact.plan
            self.paused = None  # the new session programs every limit; a lock-out stays until acknowledged
        elif isinstance(fact, SessionClosed):
            self.plan = None
        elif isinstance(fact, LimitsReprogrammed):
            self.reprogrammed = True
        elif isinstance(fact, (BootSeen, LinkLost, LinkRestored)):
            self.reprogrammed = False  # limits read back before a gap do not stand for what follows it
        if isinstance(fact, StopUnconfirmed):
            self.stop_unconfirmed = True
        elif isinstance(fact, (StopConfirmed, BootSeen)) or (
                isinstance(fact, DeviceStateSeen) and fact.state in self.SAFE_STATES):
            self.stop_unconfirmed = False  # confirmed, restarted into its power-on state, or reported safe

    def _apply(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            if isinstance(decision, Stop):
                self.armed = False
                self.permit = None
            elif isinstance(decision, Lockout):
                self.armed = False
                self.permit = None
                self.locked = self.locked or decision.reason
            elif isinstance(decision, Pause):
                self.armed = False
                self.permit = None
                self.paused = self.paused or decision.reason
            elif isinstance(decision, (AllowArm, AllowFreeze)):
                self.armed = True
                self._permits_issued += 1
                self.permit = self._permits_issued

    def permit_valid(self, permit: int | None) -> bool:
        """Whether an actuation decided under ``permit`` may still be written to the unit."""
        return permit is not None and self.permit == permit

    @property
    def treating(self) -> bool:
        """Emission or a freeze may be under way (so lost information matters)."""
        return self.armed

    # ------------------------------------------------------------------ gates shared by arming
    def gate(self, role: str) -> list[Decision]:
        """Refusals that apply to any request to arm or freeze."""
        if role != Role.PRACTITIONER:
            return [Refuse("only a practitioner may treat", Hazard.H20_UNAUTHORISED_OPERATOR)]
        if self.plan is None:
            return [Refuse("open a session with an approved plan first", Hazard.H01_OVERTREATMENT)]
        if self.locked:
            return [Refuse(f"locked: {self.locked}; acknowledge it first", Hazard.H16_FAULT_REARM)]
        if self.paused:
            return [Refuse(f"paused: {self.paused}; re-confirm the session first", Hazard.H15_DEVICE_RESET)]
        return []


def _stops_first(decisions: list[Decision]) -> list[Decision]:
    """STOP before anything else (then lock-outs, then the rest), one STOP per fact."""
    stops = [d for d in decisions if isinstance(d, Stop)][:1]
    locks = [d for d in decisions if isinstance(d, (Lockout, Pause))]
    rest = [d for d in decisions if not isinstance(d, (Stop, Lockout, Pause))]
    if stops and any(isinstance(d, (AllowArm, AllowFreeze)) for d in rest):
        rest = [d for d in rest if not isinstance(d, (AllowArm, AllowFreeze))]  # a stop always wins
    return stops + locks + rest


# ----------------------------------------------------------------------------- shared rules


@rule("stop-request", Hazard.H16_FAULT_REARM, StopRequested)
def stop_request(kernel: KernelBase, fact: StopRequested) -> list[Decision]:
    """STOP is always accepted, from any origin, in any state."""
    return [Stop(f"stop requested ({fact.origin})", Hazard.H16_FAULT_REARM)]


@rule("fault-stops-and-locks", Hazard.H16_FAULT_REARM, FaultSeen)
def fault_stops(kernel: KernelBase, fact: FaultSeen) -> list[Decision]:
    reason = f"device fault {fact.code} ({fact.text})"
    return [Stop(reason, Hazard.H16_FAULT_REARM), Lockout(reason, Hazard.H16_FAULT_REARM)]


@rule("watchdog-stops-and-locks", Hazard.H14_LOST_INFORMATION, WatchdogSeen)
def watchdog_stops(kernel: KernelBase, fact: WatchdogSeen) -> list[Decision]:
    """In a session the unit's watchdog means the host lost it mid-treatment: stop and lock. With
    no session (say the unit's first watchdog after power-on, before the host spoke to it) the
    unit was idle on its fail-safe limits: stop, nothing to acknowledge."""
    reason = "the device's watchdog expired: the service lost contact with it"
    stop: list[Decision] = [Stop(reason, Hazard.H14_LOST_INFORMATION)]
    if kernel.plan is None and not kernel.armed:
        return stop
    return stop + [Lockout(reason, Hazard.H14_LOST_INFORMATION)]


@rule("event-gap-stops", Hazard.H14_LOST_INFORMATION, EventGapSeen)
def gap_stops(kernel: KernelBase, fact: EventGapSeen) -> list[Decision]:
    return [Stop(f"{fact.missing} device events were lost on the line", Hazard.H14_LOST_INFORMATION)]


@rule("link-lost-stops", Hazard.H14_LOST_INFORMATION, LinkLost)
def link_lost_stops(kernel: KernelBase, fact: LinkLost) -> list[Decision]:
    reason = f"connection to the device lost ({fact.reason})"
    return [Stop(reason, Hazard.H14_LOST_INFORMATION), Pause(reason, Hazard.H14_LOST_INFORMATION)]


@rule("reset-pauses-and-reprograms", Hazard.H15_DEVICE_RESET, BootSeen, LinkRestored)
def reset_pauses(kernel: KernelBase, fact: BootSeen | LinkRestored) -> list[Decision]:
    what = "the device restarted" if isinstance(fact, BootSeen) else "the device reconnected"
    reason = f"{what}: its limits are re-programmed; re-confirm the session"
    halt: list[Decision] = [Stop(reason, Hazard.H15_DEVICE_RESET), Pause(reason, Hazard.H15_DEVICE_RESET)]
    return halt + kernel.limits()


@rule("telemetry-silence-stops", Hazard.H14_LOST_INFORMATION, ClockTick)
def silence_stops(kernel: KernelBase, fact: ClockTick) -> list[Decision]:
    if kernel.treating and kernel.last_seen_at is not None and fact.at - kernel.last_seen_at > kernel.SILENCE_S:
        reason = f"no word from the device for {fact.at - kernel.last_seen_at:.1f} s"
        stop: list[Decision] = [Stop(reason, Hazard.H14_LOST_INFORMATION)]
        return stop + ([Lockout(reason, Hazard.H14_LOST_INFORMATION)] if kernel.SILENCE_LOCKS else [])
    return []


@rule("unconfirmed-stop-locks", Hazard.H03_UNCOMMANDED_EMISSION, StopUnconfirmed)
def unconfirmed_stop_locks(kernel: KernelBase, fact: StopUnconfirmed) -> list[Decision]:
    """The host cannot prove the unit is safe: nothing arms again until a person has used the
    unit's own emergency stop and acknowledged."""
    return [Lockout(fact.reason, Hazard.H03_UNCOMMANDED_EMISSION)]


@rule("session-close-stops", Hazard.H16_FAULT_REARM, SessionClosed)
def session_close_stops(kernel: KernelBase, fact: SessionClosed) -> list[Decision]:
    return [Stop("session ended", Hazard.H16_FAULT_REARM)]


@rule("acknowledge-unlocks", Hazard.H16_FAULT_REARM, LockoutAcknowledged)
def acknowledge(kernel: KernelBase, fact: LockoutAcknowledged) -> list[Decision]:
    """A person clears a lock-out; arming still needs its own request."""
    if fact.role not in (Role.PRACTITIONER, Role.TECHNICIAN):
        return [Refuse("only a practitioner or technician may acknowledge", Hazard.H20_UNAUTHORISED_OPERATOR)]
    if kernel.stop_unconfirmed:  # the unit may still be emitting or freezing: the lock-out stays
        return [Refuse("the unit has not shown a safe state since it did not confirm STOP: use its emergency "
                       "stop; acknowledge once it shows it is safe", Hazard.H03_UNCOMMANDED_EMISSION)]
    kernel.locked = None
    return []


@rule("reconfirm-unpauses", Hazard.H15_DEVICE_RESET, Reconfirmed)
def reconfirm(kernel: KernelBase, fact: Reconfirmed) -> list[Decision]:
    if fact.role != Role.PRACTITIONER:
        return [Refuse("only a practitioner may re-confirm a session", Hazard.H20_UNAUTHORISED_OPERATOR)]
    if kernel.paused is None:
        return [Refuse("the session is not paused: there is nothing to re-confirm", Hazard.H15_DEVICE_RESET)]
    if not kernel.reprogrammed:
        return [Refuse("the device's limits have not been programmed again yet", Hazard.H15_DEVICE_RESET)]
    kernel.paused = None
    return []


SHARED_RULES: tuple[Rule, ...] = (
    stop_request, fault_stops, watchdog_stops, gap_stops, link_lost_stops, reset_pauses, silence_stops,
    unconfirmed_stop_locks, session_close_stops, acknowledge, reconfirm,
)
