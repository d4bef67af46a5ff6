"""Hypothesis drives random fact sequences through the kernels and checks the invariants:
pulses never exceed the budget without a STOP decided at the budget; no arming with an open
checklist or invalid calibration; every unsafe event yields STOP first; nothing arms without a
practitioner's request."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from safety.checklist import Calibration, ChecklistAnswers, ChecklistContext
from safety.cryo_kernel import CryoKernel
from safety.decisions import AllowArm, AllowFreeze, Stop
from safety.facts import (
    ArmRequested,
    BootSeen,
    ClockTick,
    DeviceStateSeen,
    EventGapSeen,
    FaultSeen,
    FreezeEndSeen,
    FreezeRequested,
    FreezeStartSeen,
    LaserInputsSeen,
    LimitsReprogrammed,
    LinkLost,
    LinkRestored,
    LockoutAcknowledged,
    PulseSeen,
    Reconfirmed,
    Role,
    SessionOpened,
    SpotSeen,
    StopRequested,
    TipSeen,
    WatchdogSeen,
)
from safety.laser_kernel import LaserKernel
from safety.plans import edit_plan
from tests.safety_scenarios import CRYO_PLAN, GOOD, TODAY
from tests.safety_scenarios import LASER_PLAN as FULL_LASER_PLAN

LASER_PLAN = edit_plan(FULL_LASER_PLAN, pulse_budget=3)  # small, so random runs reach the budget often

# biased toward valid requests, so that armed states (where the monitors matter) are common
ROLES = st.sampled_from([Role.PRACTITIONER] * 4 + [Role.TECHNICIAN, Role.ADMIN])
ANSWERS = st.one_of(
    st.just(GOOD),
    st.just(GOOD),
    st.just(GOOD),
    st.builds(
        ChecklistAnswers,
        identity_confirmed=st.booleans(), consent_signed=st.booleans(), eye_protection_all=st.booleans(),
        no_sun_last_4_weeks=st.booleans(), benign_assessed=st.booleans(),
    ),
)
VALID = Calibration("X", True, TODAY + timedelta(days=30))
CALIBRATIONS = st.sampled_from([
    VALID, VALID, VALID, VALID,
    Calibration("X", True, TODAY - timedelta(days=1)),
    Calibration("X", False, TODAY + timedelta(days=30)),
    None,
])
UNSAFE = (FaultSeen, WatchdogSeen, EventGapSeen, LinkLost, BootSeen, LinkRestored)


def checklist_open(answers: ChecklistAnswers, calibration: Calibration | None, laser: bool) -> bool:
    complete = answers.identity_confirmed and answers.consent_signed and answers.no_sun_last_4_weeks
    if laser:
        complete = complete and answers.eye_protection_all
    valid = calibration is not None and calibration.passed and TODAY <= calibration.expires_on
    return not (complete and valid)


class KernelMachine(RuleBasedStateMachine):
    kernel: Any
    laser = True

    def __init__(self) -> None:
        super().__init__()
        self.t = 0.0

    def step(self, fact: Any) -> list[Any]:
        armed_before = self.kernel.armed
        decisions = self.kernel.handle(fact)
        allows = [d for d in decisions if isinstance(d, (AllowArm, AllowFreeze))]
        # nothing arms without a practitioner's request, with the checklist closed
        if allows:
            assert isinstance(fact, (ArmRequested, FreezeRequested)), fact
            assert fact.role == Role.PRACTITIONER
            assert not checklist_open(fact.answers, fact.context.calibration, self.laser)
        if self.kernel.armed and not armed_before:
            assert allows, f"armed by {fact}"
        # every unsafe event yields STOP first
        if isinstance(fact, UNSAFE):
            assert decisions and isinstance(decisions[0], Stop), (fact, decisions)
        return decisions

    def tick(self, dt: float) -> float:
        self.t += dt
        return self.t

    @rule(dt=st.floats(0.0, 3.0))
    def clock(self, dt: float) -> None:
        self.step(ClockTick(at=self.tick(dt)))

    @rule(kind=st.sampled_from(UNSAFE))
    def unsafe(self, kind: type) -> None:
        at = self.tick(0.01)
        fact = {
            FaultSeen: lambda: FaultSeen("F01", "lamp", at=at),
            WatchdogSeen: lambda: WatchdogSeen(at=at),
            EventGapSeen: lambda: EventGapSeen(1, at=at),
            LinkLost: lambda: LinkLost("gone", at=at),
            BootSeen: lambda: BootSeen(at=at),
            LinkRestored: lambda: LinkRestored(at=at),
        }[kind]()
        self.step(fact)

    @rule(origin=st.sampled_from(["screen", "mqtt", "api"]))
    def stop(self, origin: str) -> None:
        assert isinstance(self.step(StopRequested(origin, at=self.tick(0.01)))[0], Stop)
        assert not self.kernel.armed

    @rule(role=ROLES)
    def acknowledge(self, role: str) -> None:
        self.step(LockoutAcknowledged(role, at=self.tick(0.01)))

    @rule(role=ROLES)
    def reconfirm(self, role: str) -> None:
        self.step(LimitsReprogrammed(at=self.tick(0.01)))
        self.step(Reconfirmed(role, at=self.tick(0.01)))


class LaserKernelMachine(KernelMachine):
    @initialize()
    def open(self) -> None:
        self.kernel = LaserKernel()
        self.step(SessionOpened(LASER_PLAN, at=0.0))
        self.step(SpotSeen(LASER_PLAN.spot_mm, at=0.0))

    @rule(role=ROLES, answers=ANSWERS, calibration=CALIBRATIONS)
    def arm(self, role: str, answers: ChecklistAnswers, calibration: Calibration | None) -> None:
        self.step(ArmRequested(role, answers, ChecklistContext(TODAY, calibration), at=self.tick(0.01)))

    @rule(factor=st.sampled_from([1.0, 1.0, 1.0, 1.02, 0.97, 1.3, 0.7]), dt=st.floats(0.0, 0.5))
    def pulse(self, factor: float, dt: float) -> None:
        at = self.tick(dt)
        armed = self.kernel.armed
        decisions = self.step(PulseSeen(self.kernel.pulses + 1, LASER_PLAN.energy_mj * factor, LASER_PLAN.energy_mj, at=at))
        budget = LASER_PLAN.pulse_budget
        if self.kernel.pulses >= budget:  # at the budget and beyond: STOP, decided on that pulse
            assert decisions and isinstance(decisions[0], Stop)
        if factor in (1.3, 0.7) or not armed:
            assert decisions and isinstance(decisions[0], Stop)

    @rule(
        key=st.booleans(), interlock=st.booleans(), estop=st.booleans(), foot=st.booleans()
    )
    def inputs(self, key: bool, interlock: bool, estop: bool, foot: bool) -> None:
        decisions = self.step(LaserInputsSeen(key, interlock, estop, foot, at=self.tick(0.01)))
        if not key or not interlock or estop:
            assert decisions and isinstance(decisions[0], Stop)
            assert not self.kernel.armed

    @rule(state=st.sampled_from(["STANDBY", "CHARGING", "READY", "EMITTING", "FAULT"]),
          cause=st.sampled_from(["cmd", "foot", "interlock", "limit", "wdt", "fault"]))
    def device_state(self, state: str, cause: str) -> None:
        armed = self.kernel.armed
        decisions = self.step(DeviceStateSeen(state, cause, at=self.tick(0.01)))
        if state in ("CHARGING", "READY", "EMITTING") and not armed:
            assert decisions and isinstance(decisions[0], Stop)

    @invariant()
    def never_armed_while_locked_or_paused(self) -> None:
        if self.kernel.plan is not None and self.kernel.armed:
            assert not self.kernel.locked and not self.kernel.paused
            assert self.kernel.pulses < LASER_PLAN.pulse_budget


class CryoKernelMachine(KernelMachine):
    laser = False

    @initialize()
    def open(self) -> None:
        self.kernel = CryoKernel()
        self.step(SessionOpened(CRYO_PLAN, at=0.0))

    @rule(role=ROLES, answers=ANSWERS, calibration=CALIBRATIONS, seconds=st.floats(0.1, 40.0))
    def freeze_request(self, role: str, answers: ChecklistAnswers, calibration: Calibration | None, seconds: float) -> None:
        self.step(FreezeRequested(role, seconds, answers, ChecklistContext(TODAY, calibration), at=self.tick(0.01)))

    @rule()
    def freeze_start(self) -> None:
        armed = self.kernel.armed
        decisions = self.step(FreezeStartSeen(at=self.tick(0.01)))
        if not armed:
            assert decisions and isinstance(decisions[0], Stop)

    @rule(cause=st.sampled_from(["timeout", "stop", "estop", "wdt", "fault"]), dur=st.floats(0.0, 30.0))
    def freeze_end(self, cause: str, dur: float) -> None:
        if self.kernel.freezing_since is not None:
            self.step(FreezeEndSeen(cause, dur, at=self.tick(dur)))
            assert not self.kernel.armed

    @rule(tip=st.floats(-100.0, 30.0), valve=st.booleans())
    def telemetry(self, tip: float, valve: bool) -> None:
        freezing = self.kernel.freezing_since is not None or self.kernel.armed
        decisions = self.step(TipSeen(tip, valve, at=self.tick(0.1)))
        if tip < CRYO_PLAN.target_c - 10 or (valve and not freezing):
            assert decisions and isinstance(decisions[0], Stop)

    @invariant()
    def exposure_and_cycles_bounded_while_armed(self) -> None:
        if self.kernel.armed:
            assert not self.kernel.locked and not self.kernel.paused
            assert self.kernel.cycles_done < CRYO_PLAN.cycles


TestLaserKernelStateful = LaserKernelMachine.TestCase
TestLaserKernelStateful.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestCryoKernelStateful = CryoKernelMachine.TestCase
TestCryoKernelStateful.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
