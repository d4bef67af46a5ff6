"""Boundary pins of the safety kernel: each test holds one threshold from both sides, so that a
weakened limit (a constant changed, ``<`` for ``<=``, ``or`` for ``and``, a correction applied
backwards) fails a test. docs/mutation.md lists the changes these tests were written against."""

from __future__ import annotations

import math
import tomllib
from dataclasses import replace
from datetime import timedelta

import pytest

from safety.checklist import ChecklistContext, PreviousSession, TestSpot, aftercare, open_items
from safety.cryo_kernel import CryoKernel
from safety.decisions import AllowArm, AllowFreeze, Lockout, Program, Refuse, Stop
from safety.facts import (
    ArmRequested,
    BootSeen,
    ClockTick,
    CryoInputsSeen,
    DeviceStateSeen,
    FaultSeen,
    FreezeEndSeen,
    FreezeStartSeen,
    LimitsReprogrammed,
    LinkLost,
    LinkRestored,
    LockoutAcknowledged,
    PulseSeen,
    PulsesUnseen,
    Reconfirmed,
    Role,
    SessionOpened,
    SpotSeen,
    StopConfirmed,
    StopRequested,
    StopUnconfirmed,
    TelemetrySeen,
    TipSeen,
)
from safety.hazards import Hazard
from safety.laser_kernel import LaserKernel
from safety.plans import (
    DEFAULT_TABLE,
    CryoPlan,
    Indication,
    Ink,
    LaserPlan,
    Modality,
    PlanRefused,
    PlanRequest,
    edit_plan,
    fluence_j_cm2,
    plan_treatment,
)
from tests.safety_scenarios import (
    CONTEXT,
    CRYO_PLAN,
    GOOD,
    LASER_PLAN,
    TODAY,
    armed_laser,
    cryo_request,
    freezing_cryo,
    has,
    pulse,
)

#: the protocol table read as plain data, to compute expected values without the planner's code
ROWS = tomllib.loads(DEFAULT_TABLE.read_text())


def plan(
    indication: Indication, skin: int = 2, sensitive: bool = False, area: float = 1.0, inks: tuple[Ink, ...] = ()
) -> LaserPlan | CryoPlan:
    result = plan_treatment(PlanRequest(indication, skin, sensitive, area, "arm", frozenset(inks)))
    assert not isinstance(result, PlanRefused), result
    return result


def locks(decisions: list[object], hazard: Hazard) -> bool:
    return has(decisions, Stop) and has(decisions, Lockout, hazard)


# ============================================================================ laser: after a STOP


@pytest.mark.parametrize("rate_hz", [4.0, 10.0])
def test_a_laser_that_keeps_firing_after_stop_is_locked_out(rate_hz: float) -> None:
    """Pulses in flight within STOP_GRACE_S (0.25 s) of a STOP are not uncommanded; a laser that
    keeps firing after that is, however fast it fires (the grace never restarts on a pulse)."""
    kernel = armed_laser(LaserKernel)
    kernel.handle(StopRequested("screen", at=5.0))
    outcomes = []
    for k in range(1, 8):  # seven pulses after the STOP
        at = 5.0 + k / rate_hz
        decisions = pulse(kernel, k, at)
        assert has(decisions, Stop), (at, decisions)
        outcomes.append((round(at - 5.0, 3), has(decisions, Lockout, Hazard.H03_UNCOMMANDED_EMISSION)))
    first_locked = next(dt for dt, locked in outcomes if locked)
    assert first_locked == min(dt for dt, _ in outcomes if dt > 0.25), outcomes
    assert all(not locked for dt, locked in outcomes if dt <= 0.25), outcomes
    assert kernel.locked


@pytest.mark.parametrize(("after_s", "locked"), [(0.1, False), (0.25, False), (0.26, True), (1.0, True)])
def test_in_flight_grace_ends_at_a_quarter_second(after_s: float, locked: bool) -> None:
    kernel = armed_laser(LaserKernel)
    kernel.handle(StopRequested("screen", at=5.0))
    decisions = pulse(kernel, 1, 5.0 + after_s)
    assert has(decisions, Stop)
    assert has(decisions, Lockout, Hazard.H03_UNCOMMANDED_EMISSION) is locked


@pytest.mark.parametrize(("after_s", "locked"), [(0.1, False), (0.25, False), (0.26, True)])
def test_a_ready_state_in_flight_after_stop_has_the_same_grace(after_s: float, locked: bool) -> None:
    kernel = armed_laser(LaserKernel)
    kernel.handle(StopRequested("screen", at=5.0))
    decisions = kernel.handle(DeviceStateSeen("READY", "cmd", at=5.0 + after_s))
    assert has(decisions, Stop)
    assert has(decisions, Lockout, Hazard.H03_UNCOMMANDED_EMISSION) is locked


@pytest.mark.parametrize(
    ("count", "words"),
    [
        (1, "1 pulses fired that the host did not see"),
        (3, "3 pulses fired that the host did not see"),
        (-1, "the unit reports 1 pulses fewer than the host counted"),
        (-2, "the unit reports 2 pulses fewer than the host counted"),
    ],
)
def test_unseen_pulses_lock_and_say_which_way_the_count_is_off(count: int, words: str) -> None:
    kernel = armed_laser(LaserKernel)
    decisions = kernel.handle(PulsesUnseen(count, at=3.0))
    assert locks(decisions, Hazard.H14_LOST_INFORMATION)
    (reason,) = [d.reason for d in decisions if isinstance(d, Lockout)]
    assert words in reason
    assert kernel.handle(PulsesUnseen(0, at=4.0)) == []


def test_a_stop_while_disarmed_gives_no_grace() -> None:
    """The grace counts from the moment emission was permitted and then stopped, not from any STOP."""
    kernel = LaserKernel()
    kernel.handle(SessionOpened(LASER_PLAN, at=0.0))
    kernel.handle(SpotSeen(LASER_PLAN.spot_mm, at=0.1))
    kernel.handle(StopRequested("screen", at=5.0))
    assert locks(pulse(kernel, 1, 5.1), Hazard.H03_UNCOMMANDED_EMISSION)


# ============================================================================ nothing starts armed


def test_a_pulse_before_any_session_stops_and_locks() -> None:
    kernel = LaserKernel()
    assert not kernel.armed and not kernel.treating
    assert locks(kernel.handle(PulseSeen(1, 100.0, 100, at=1.0)), Hazard.H03_UNCOMMANDED_EMISSION)


@pytest.mark.parametrize("state", ["CHARGING", "READY", "EMITTING"])
def test_a_laser_arming_before_any_session_stops_and_locks(state: str) -> None:
    assert locks(LaserKernel().handle(DeviceStateSeen(state, "cmd", at=1.0)), Hazard.H03_UNCOMMANDED_EMISSION)


def test_a_standby_laser_before_any_session_is_left_alone() -> None:
    assert LaserKernel().handle(DeviceStateSeen("STANDBY", "cmd", at=1.0)) == []


def test_a_freeze_or_open_valve_before_any_session_stops_and_locks() -> None:
    assert locks(CryoKernel().handle(FreezeStartSeen(at=1.0)), Hazard.H05_OVERFREEZING)
    assert locks(CryoKernel().handle(TipSeen(20.0, True, at=1.0)), Hazard.H05_OVERFREEZING)
    assert locks(CryoKernel().handle(DeviceStateSeen("FREEZING", "cmd", at=1.0)), Hazard.H05_OVERFREEZING)
    assert CryoKernel().handle(TipSeen(20.0, False, at=1.0)) == []


def test_silence_matters_only_while_treating() -> None:
    laser = LaserKernel()
    laser.handle(SessionOpened(LASER_PLAN, at=0.0))
    laser.handle(TelemetrySeen(at=1.0))
    assert laser.handle(ClockTick(at=100.0)) == []
    cryo = freezing_cryo(CryoKernel)
    cryo.handle(FreezeEndSeen("timeout", 10.0, at=11.0))
    assert cryo.handle(ClockTick(at=100.0)) == []
    assert cryo.handle(CryoInputsSeen(False, "NONE", at=101.0)) == []


def test_laser_silence_limit_is_two_and_a_half_seconds() -> None:
    kernel = armed_laser(LaserKernel)
    kernel.handle(TelemetrySeen(at=2.0))
    assert not has(kernel.handle(ClockTick(at=4.5)), Stop)
    assert has(kernel.handle(ClockTick(at=4.51)), Stop, Hazard.H14_LOST_INFORMATION)


# ============================================================================ laser: per-pulse energy

#: type VI skin lowers the age-spot cap to the default fluence: the setting sits at the cap
AT_THE_CAP = plan(Indication.AGE_SPOT, skin=6)


def armed_with(laser: LaserPlan | CryoPlan | PlanRefused, correction: float = 1.0) -> LaserKernel:
    assert isinstance(laser, LaserPlan)
    kernel = LaserKernel()
    kernel.handle(SessionOpened(laser, at=0.0, monitor_correction=correction))
    kernel.handle(SpotSeen(laser.spot_mm, at=0.1))
    assert has(kernel.handle(ArmRequested(Role.PRACTITIONER, GOOD, CONTEXT, at=0.2)), AllowArm)
    return kernel


def at_cap_kernel(correction: float = 1.0) -> LaserKernel:
    return armed_with(AT_THE_CAP, correction)


def fire(kernel: LaserKernel, monitor_mj: float) -> list[object]:
    assert isinstance(kernel.plan, LaserPlan)
    return kernel.handle(PulseSeen(1, monitor_mj, kernel.plan.energy_mj, at=2.0))


def test_the_type_vi_age_spot_plan_sits_at_its_energy_cap() -> None:
    assert isinstance(AT_THE_CAP, LaserPlan)
    assert (AT_THE_CAP.wavelength_nm, AT_THE_CAP.spot_mm) == (1064, 4.0)
    assert AT_THE_CAP.energy_mj == AT_THE_CAP.energy_cap_mj == 201  # floor(1.6 J/cm² x pi x 0.2² cm² x 1000)
    assert AT_THE_CAP.fluence_cap_j_cm2 == 1.6


@pytest.mark.parametrize(("monitor_mj", "locked"), [(200.0, False), (201.0, False), (201.5, True), (202.0, True)])
def test_a_pulse_above_the_energy_cap_locks_even_within_twenty_percent(monitor_mj: float, locked: bool) -> None:
    decisions = fire(at_cap_kernel(), monitor_mj)
    assert locks(decisions, Hazard.H02_EXCESS_ENERGY) is locked, decisions
    if locked:
        (reason,) = [d.reason for d in decisions if isinstance(d, Lockout)]
        assert "above the cap of 201 mJ" in reason and "deviates" not in reason and "fluence" not in reason


@pytest.mark.parametrize(
    ("correction", "monitor_mj", "locked"),
    [
        (0.8, 251.0, False),  # really 200.8 mJ: under the cap
        (0.8, 252.0, True),  # really 201.6 mJ: over it
        (1.25, 160.0, False),  # really 200.0 mJ
        (1.25, 161.0, True),  # really 201.25 mJ
    ],
)
def test_monitor_correction_multiplies_the_monitor_reading(correction: float, monitor_mj: float, locked: bool) -> None:
    decisions = fire(at_cap_kernel(correction), monitor_mj)
    assert locks(decisions, Hazard.H02_EXCESS_ENERGY) is locked, decisions


@pytest.mark.parametrize(("monitor_mj", "locked"), [(225.0, True), (226.0, False), (338.0, False), (339.0, True)])
def test_twenty_percent_deviation_from_the_setting(monitor_mj: float, locked: bool) -> None:
    assert LASER_PLAN.energy_mj == 282  # 282 x 0.8 = 225.6, 282 x 1.2 = 338.4
    decisions = pulse(armed_laser(LaserKernel), 1, 2.0, energy=monitor_mj)
    assert locks(decisions, Hazard.H02_EXCESS_ENERGY) is locked, decisions


@pytest.mark.parametrize(("monitor_mj", "locked"), [(79.5, True), (80.0, False), (120.0, False), (120.5, True)])
def test_exactly_twenty_percent_off_is_still_within_tolerance(monitor_mj: float, locked: bool) -> None:
    kernel = armed_with(edit_plan(LASER_PLAN, energy_mj=100))  # 20 % of 100 mJ is exactly 20.0 mJ
    assert locks(fire(kernel, monitor_mj), Hazard.H02_EXCESS_ENERGY) is locked


def test_a_setting_exactly_at_the_fluence_cap_arms_and_stays_armed() -> None:
    """The cap is inclusive: a plan whose setting computes to exactly its fluence cap arms, and the
    same handpiece seen again stops nothing."""
    exact = replace(LASER_PLAN, fluence_cap_j_cm2=fluence_j_cm2(LASER_PLAN.energy_mj, LASER_PLAN.spot_mm))
    kernel = armed_with(exact)
    assert kernel.handle(SpotSeen(LASER_PLAN.spot_mm, at=1.0)) == [] and kernel.armed
    assert not has(pulse(kernel, 1, 2.0), Stop)


def test_changing_the_handpiece_while_disarmed_is_left_to_the_arm_gate() -> None:
    kernel = LaserKernel()
    kernel.handle(SessionOpened(LASER_PLAN, at=0.0))
    assert kernel.handle(SpotSeen(2.0, at=0.1)) == []
    assert has(kernel.handle(ArmRequested(Role.PRACTITIONER, GOOD, CONTEXT, at=0.2)), Refuse, Hazard.H02_EXCESS_ENERGY)


def test_the_last_pulse_of_the_budget_can_still_be_armed_for() -> None:
    kernel = armed_laser(LaserKernel)
    budget = LASER_PLAN.pulse_budget
    for n in range(1, budget):
        assert not has(pulse(kernel, n, 2.0 + n * 0.1), Stop)
    kernel.handle(StopRequested("screen", at=5.0))
    decisions = kernel.handle(ArmRequested(Role.PRACTITIONER, GOOD, CONTEXT, at=6.0))
    assert Program("pulse_limit", 1) in decisions and has(decisions, AllowArm)
    pulse(kernel, budget, 7.0)
    kernel.handle(DeviceStateSeen("STANDBY", "limit", at=7.1))
    refusal = kernel.handle(ArmRequested(Role.PRACTITIONER, GOOD, CONTEXT, at=8.0))
    assert has(refusal, Refuse, Hazard.H01_OVERTREATMENT) and not has(refusal, AllowArm)


@pytest.mark.parametrize("offset_mj", [-50, -1, 1, 50])
def test_a_pulse_at_any_other_setting_than_the_plans_locks(offset_mj: int) -> None:
    """A unit firing at a setting the plan does not name (lower too) is not holding its programming."""
    decisions = pulse(armed_laser(LaserKernel), 1, 2.0, set_mj=LASER_PLAN.energy_mj + offset_mj)
    assert locks(decisions, Hazard.H02_EXCESS_ENERGY)


def test_the_budget_stop_comes_at_a_budget_above_256() -> None:
    """Counts compared by value: small ints are shared objects in Python, larger ones are not."""
    big = plan(Indication.TATTOO, area=20.0, inks=(Ink.BLACK,))
    assert isinstance(big, LaserPlan) and big.pulse_budget == 340  # 20 cm² x 16.98 -> 340
    kernel = armed_with(big)
    for n in range(1, big.pulse_budget):
        assert not has(kernel.handle(PulseSeen(n, float(big.energy_mj), big.energy_mj, at=2.0 + n * 0.2)), Stop)
    last = kernel.handle(PulseSeen(big.pulse_budget, float(big.energy_mj), big.energy_mj, at=100.0))
    assert has(last, Stop, Hazard.H01_OVERTREATMENT) and not has(last, Lockout)


def test_the_pulse_limit_programmed_after_a_reboot_is_never_negative() -> None:
    """LIMIT PULSES takes 0-10000: beyond the budget the unit is given 0, not a negative count."""
    kernel = armed_laser(LaserKernel)
    budget = LASER_PLAN.pulse_budget
    for n in range(1, budget + 2):
        pulse(kernel, n, 2.0 + n * 0.01)
    assert kernel.pulses == budget + 1
    assert Program("pulse_limit", 0) in kernel.handle(BootSeen(at=10.0))


def energy_at_fluence(fluence: float, spot_mm: float) -> float:
    """The one float energy whose fluence with ``spot_mm`` is ``fluence`` to the last bit."""
    energy = fluence * math.pi * (spot_mm / 20.0) ** 2 * 1000.0
    for _ in range(64):
        energy = math.nextafter(energy, 0.0)
    for _ in range(128):
        if fluence_j_cm2(energy, spot_mm) == fluence:
            return energy
        energy = math.nextafter(energy, math.inf)
    raise AssertionError(f"no energy gives exactly {fluence} J/cm² with {spot_mm} mm")


def test_a_pulse_exactly_at_the_fluence_tolerance_passes() -> None:
    limit = LASER_PLAN.fluence_cap_j_cm2 * 1.2
    energy = energy_at_fluence(limit, 2.0)  # 301.59 mJ on the 2 mm handpiece: 9.6 J/cm²
    kernel = armed_laser(LaserKernel)
    kernel.handle(SpotSeen(2.0, at=3.0))
    assert not has(pulse(kernel, 1, 3.1, energy=energy), Lockout)


def test_a_setting_read_from_the_line_is_compared_by_value() -> None:
    kernel = armed_laser(LaserKernel)
    from_the_line = int(str(LASER_PLAN.energy_mj))  # a new int object, as the driver parses it
    assert kernel.handle(PulseSeen(1, float(LASER_PLAN.energy_mj), from_the_line, at=2.0)) == []


@pytest.mark.parametrize(("monitor_mj", "locked"), [(301.0, False), (302.0, True)])
def test_pulse_fluence_above_the_cap_with_tolerance_locks(monitor_mj: float, locked: bool) -> None:
    """After a swap to the 2 mm handpiece a pulse still in flight is measured with the fitted spot:
    302 mJ is 9.61 J/cm², above 8 x 1.2 = 9.6, while its energy is under the cap and within 20 %."""
    assert fluence_j_cm2(301.0, 2.0) < LASER_PLAN.fluence_cap_j_cm2 * 1.2 < fluence_j_cm2(302.0, 2.0)
    assert monitor_mj < LASER_PLAN.energy_cap_mj and abs(monitor_mj - LASER_PLAN.energy_mj) < 0.2 * LASER_PLAN.energy_mj
    kernel = armed_laser(LaserKernel)
    assert has(kernel.handle(SpotSeen(2.0, at=3.0)), Stop, Hazard.H02_EXCESS_ENERGY)
    decisions = pulse(kernel, 1, 3.1, energy=monitor_mj)
    assert has(decisions, Stop)
    assert has(decisions, Lockout, Hazard.H02_EXCESS_ENERGY) is locked, decisions
    if locked:
        assert any("fluence" in d.reason for d in decisions if isinstance(d, Lockout))


def test_the_arm_gate_takes_the_fluence_cap_itself() -> None:
    """At the cap arms; the 3 mm handpiece puts 201 mJ at 2.84 J/cm², above 1.6: refused."""
    kernel = LaserKernel()
    kernel.handle(SessionOpened(AT_THE_CAP, at=0.0))
    kernel.handle(SpotSeen(3.0, at=0.1))
    decisions = kernel.handle(ArmRequested(Role.PRACTITIONER, GOOD, CONTEXT, at=0.2))
    assert has(decisions, Refuse, Hazard.H02_EXCESS_ENERGY) and not has(decisions, AllowArm)
    kernel.handle(SpotSeen(4.0, at=0.3))
    assert has(kernel.handle(ArmRequested(Role.PRACTITIONER, GOOD, CONTEXT, at=0.4)), AllowArm)
    assert not has(kernel.handle(SpotSeen(4.0, at=0.5)), Stop)  # the same handpiece again: nothing to stop


def test_an_arm_request_without_a_known_spot_is_refused() -> None:
    kernel = LaserKernel()
    kernel.handle(SessionOpened(LASER_PLAN, at=0.0))
    decisions = kernel.handle(ArmRequested(Role.PRACTITIONER, GOOD, CONTEXT, at=0.2))
    assert has(decisions, Refuse, Hazard.H02_EXCESS_ENERGY)
    assert "spot size" in decisions[0].reason  # type: ignore[attr-defined]


# ============================================================================ roles


def test_only_a_practitioner_re_confirms() -> None:
    for role, accepted in ((Role.ADMIN, False), (Role.TECHNICIAN, False), (Role.PRACTITIONER, True)):
        kernel = armed_laser(LaserKernel)
        kernel.handle(BootSeen(at=3.0))
        kernel.handle(LimitsReprogrammed(at=4.0))
        decisions = kernel.handle(Reconfirmed(role, at=5.0))
        assert (decisions == []) is accepted, (role, decisions)
        assert (kernel.paused is None) is accepted
        if not accepted:
            assert has(decisions, Refuse, Hazard.H20_UNAUTHORISED_OPERATOR)


def test_a_practitioner_or_technician_acknowledges_a_lockout() -> None:
    for role, accepted in ((Role.ADMIN, False), (Role.TECHNICIAN, True), (Role.PRACTITIONER, True)):
        kernel = armed_laser(LaserKernel)
        kernel.handle(FaultSeen("F04", "coolant", at=3.0))
        kernel.handle(LockoutAcknowledged(role, at=4.0))
        assert (kernel.locked is None) is accepted, role


@pytest.mark.parametrize("safe_again", ["confirmed", "reported safe", "rebooted"])
def test_a_lockout_for_an_unconfirmed_stop_waits_for_a_safe_unit(safe_again: str) -> None:
    """A unit that ignored STOP may still freeze (or emit): the lock-out cannot be acknowledged
    until the unit shows a safe state again (soak seed 773: a practitioner acknowledged while the
    cryo unit, its timer stuck and STOP ignored, still froze)."""
    kernel = freezing_cryo(CryoKernel, 5.0)
    kernel.handle(StopUnconfirmed("the cryo did not confirm STOP", at=7.0))
    refused = kernel.handle(LockoutAcknowledged(Role.PRACTITIONER, at=7.5))
    assert has(refused, Refuse, Hazard.H03_UNCOMMANDED_EMISSION) and "emergency stop" in refused[0].reason  # type: ignore[attr-defined]
    assert kernel.locked
    kernel.handle(DeviceStateSeen("FREEZING", "", at=7.8))  # still unsafe: still refused
    assert has(kernel.handle(LockoutAcknowledged(Role.TECHNICIAN, at=7.9)), Refuse, Hazard.H03_UNCOMMANDED_EMISSION)
    fact = {"confirmed": StopConfirmed("THAW", at=8.2), "reported safe": DeviceStateSeen("THAW", "watchdog", at=8.2),
            "rebooted": BootSeen(at=8.2)}[safe_again]
    kernel.handle(fact)
    assert kernel.handle(LockoutAcknowledged(Role.PRACTITIONER, at=9.0)) == [] and kernel.locked is None
    laser = armed_laser(LaserKernel)
    laser.handle(StopUnconfirmed("the laser did not confirm STOP", at=3.0))
    laser.handle(DeviceStateSeen("EMITTING", "", at=3.1))
    assert has(laser.handle(LockoutAcknowledged(Role.PRACTITIONER, at=3.5)), Refuse, Hazard.H03_UNCOMMANDED_EMISSION)
    laser.handle(DeviceStateSeen("STANDBY", "watchdog", at=4.0))
    assert laser.handle(LockoutAcknowledged(Role.PRACTITIONER, at=4.5)) == []


# ============================================================================ cryo


def test_the_thaw_gate_holds_until_the_plans_thaw_time() -> None:
    assert CRYO_PLAN.thaw_min_s == 30
    kernel = freezing_cryo(CryoKernel, 15.0)
    kernel.handle(FreezeEndSeen("timeout", 15.0, at=16.0))
    waiting = cryo_request(kernel, 15.0, 26.0)
    assert has(waiting, Refuse, Hazard.H06_CUMULATIVE_COLD)
    assert "20 s more" in waiting[0].reason  # type: ignore[attr-defined]
    assert "10 s more" in cryo_request(kernel, 15.0, 36.0)[0].reason  # type: ignore[attr-defined]
    for after_s in (1.0, 15.0, 16.0, 29.0, 29.9):
        decisions = cryo_request(kernel, 15.0, 16.0 + after_s)
        assert has(decisions, Refuse, Hazard.H06_CUMULATIVE_COLD) and not has(decisions, AllowFreeze), after_s
    assert has(cryo_request(kernel, 15.0, 46.0), AllowFreeze)  # exactly the thaw time


#: a clinic's table may allow three short cycles within 20 s in all
SHORT_TOTAL = replace(CRYO_PLAN, cycles=3, total_exposure_cap_s=20.0)


def two_freezes(first_s: float, second_s: float) -> CryoKernel:
    kernel = CryoKernel()
    kernel.handle(SessionOpened(SHORT_TOTAL, at=0.0))
    assert has(cryo_request(kernel, first_s, 1.0), AllowFreeze)
    kernel.handle(FreezeStartSeen(at=1.0))
    kernel.handle(FreezeEndSeen("timeout", first_s, at=1.0 + first_s))
    assert has(cryo_request(kernel, second_s, 100.0), AllowFreeze)
    kernel.handle(FreezeStartSeen(at=100.0))
    kernel.handle(FreezeEndSeen("timeout", second_s, at=100.0 + second_s))
    return kernel


@pytest.mark.parametrize("seconds", [0.5, 1.0])
def test_no_freeze_once_the_total_exposure_is_spent(seconds: float) -> None:
    kernel = two_freezes(10.0, 10.0)
    decisions = cryo_request(kernel, seconds, 200.0)
    assert has(decisions, Refuse, Hazard.H06_CUMULATIVE_COLD) and not has(decisions, AllowFreeze)
    assert "only 0.0 s" in decisions[0].reason  # type: ignore[attr-defined]


def test_the_last_freeze_gets_exactly_the_exposure_left() -> None:
    kernel = two_freezes(10.0, 8.5)  # 1.5 s of the 20 s left
    assert has(cryo_request(kernel, 1.6, 200.0), Refuse, Hazard.H06_CUMULATIVE_COLD)
    assert Program("freeze_limit_s", 1.5) in kernel.handle(BootSeen(at=201.0))
    kernel.handle(LimitsReprogrammed(at=202.0))
    kernel.handle(Reconfirmed(Role.PRACTITIONER, at=203.0))
    decisions = cryo_request(kernel, 1.5, 204.0)
    assert decisions[-2:] == [Program("freeze_limit_s", 1.5), AllowFreeze(1.5)]


def test_exposure_starts_at_zero_in_every_session() -> None:
    kernel = CryoKernel()
    kernel.handle(SessionOpened(SHORT_TOTAL, at=0.0))
    assert has(cryo_request(kernel, 20.0, 1.0), AllowFreeze)  # the whole 20 s in one freeze
    kernel = two_freezes(10.0, 10.0)
    kernel.handle(SessionOpened(SHORT_TOTAL, at=300.0))  # a new session starts from nothing
    assert has(cryo_request(kernel, 20.0, 301.0), AllowFreeze)


def test_total_exposure_may_reach_the_cap_but_not_pass_it() -> None:
    kernel = CryoKernel()
    kernel.handle(SessionOpened(SHORT_TOTAL, at=0.0))
    assert has(cryo_request(kernel, 10.0, 1.0), AllowFreeze)
    kernel.handle(FreezeStartSeen(at=1.0))
    kernel.handle(FreezeEndSeen("timeout", 10.0, at=11.0))
    assert has(cryo_request(kernel, 10.0, 100.0), AllowFreeze)
    kernel.handle(FreezeStartSeen(at=100.0))
    assert not has(kernel.handle(TipSeen(-50.0, True, at=110.0)), Stop)  # 10 + 10 s: exactly the cap
    assert has(kernel.handle(TipSeen(-50.0, True, at=110.1)), Stop, Hazard.H06_CUMULATIVE_COLD)


def test_a_freeze_lost_with_the_link_counts_what_it_ran_then_what_the_unit_reports() -> None:
    kernel = CryoKernel()
    kernel.handle(SessionOpened(SHORT_TOTAL, at=0.0))
    assert has(cryo_request(kernel, 10.0, 1.0), AllowFreeze)
    kernel.handle(FreezeStartSeen(at=1.0))
    # 0.3 s of freezing seen, plus the longest the unseen unit can have frozen on: its 1 s watchdog
    # and a line in flight (0.1 s)
    kernel.handle(LinkLost("port closed", at=1.3))
    assert Program("freeze_limit_s", 18.6) in kernel.handle(LinkRestored(at=5.0))
    kernel.handle(FreezeEndSeen("wdt", 2.0, at=5.1))  # the unit's own count: 2.0 s in all
    assert kernel.exposure_s == pytest.approx(2.0) and kernel.cycles_done == 1
    kernel.handle(LimitsReprogrammed(at=6.0))
    kernel.handle(Reconfirmed(Role.PRACTITIONER, at=6.5))
    refused = cryo_request(kernel, 18.1, 40.0)
    assert has(refused, Refuse, Hazard.H06_CUMULATIVE_COLD)
    assert "only 18.0 s" in refused[0].reason  # type: ignore[attr-defined]


def lost_after(seconds: float) -> tuple[CryoKernel, list[object]]:
    """A 20 s-total session whose first freeze is lost with the link ``seconds`` in; reconnected."""
    kernel = CryoKernel()
    kernel.handle(SessionOpened(SHORT_TOTAL, at=0.0))
    assert has(cryo_request(kernel, 10.0, 1.0), AllowFreeze)
    kernel.handle(FreezeStartSeen(at=1.0))
    kernel.handle(LinkLost("port closed", at=1.0 + seconds))
    return kernel, kernel.handle(LinkRestored(at=5.0))


def test_the_programmed_freeze_limit_is_the_exposure_left_to_a_tenth() -> None:
    _, decisions = lost_after(0.26)  # 0.26 s + 1.1 s counted: 18.64 s left
    assert Program("freeze_limit_s", 18.6) in decisions


def test_the_programmed_freeze_limit_never_exceeds_the_exposure_left() -> None:
    kernel, decisions = lost_after(0.24)  # 0.24 s + 1.1 s counted: 18.66 s left, never 18.7 s
    assert Program("freeze_limit_s", 18.6) in decisions
    kernel.handle(LimitsReprogrammed(at=6.0))
    kernel.handle(Reconfirmed(Role.PRACTITIONER, at=6.5))
    assert Program("freeze_limit_s", 18.6) in cryo_request(kernel, 5.0, 40.0)


def test_a_shorter_count_from_the_unit_adds_nothing_to_what_was_counted() -> None:
    kernel, _ = lost_after(0.3)  # 0.3 s seen + 1.1 s the unit may have run on unseen
    kernel.handle(FreezeEndSeen("wdt", 0.25, at=5.1))  # the unit counted less than the host did
    assert kernel.exposure_s == pytest.approx(1.4) and kernel.cycles_done == 1


def test_a_new_freezes_end_counts_normally_when_the_lost_ones_never_came() -> None:
    kernel, _ = lost_after(0.3)  # the lost freeze's own end is never reported
    kernel.handle(LimitsReprogrammed(at=6.0))
    kernel.handle(Reconfirmed(Role.PRACTITIONER, at=6.5))
    assert has(cryo_request(kernel, 5.0, 40.0), AllowFreeze)
    kernel.handle(FreezeStartSeen(at=40.0))
    kernel.handle(FreezeEndSeen("timeout", 5.0, at=45.0))
    assert kernel.freezing_since is None and kernel.cycles_done == 2
    assert kernel.exposure_s == pytest.approx(6.4)
    assert not has(kernel.handle(ClockTick(at=60.0)), Stop)  # nothing is freezing any more


def test_a_freeze_end_without_its_start_still_counts() -> None:
    kernel = CryoKernel()
    kernel.handle(SessionOpened(SHORT_TOTAL, at=0.0))
    assert has(kernel.handle(FreezeEndSeen("timeout", 5.0, at=1.0)), Stop)  # its start event was lost
    assert kernel.exposure_s == 5.0 and kernel.cycles_done == 1


def test_exposure_past_the_cap_programs_a_zero_freeze_limit() -> None:
    """The unit's own end can come a little after the host's cap: LIMIT FREEZE takes 0-60, so 0."""
    kernel = two_freezes(10.0, 9.0)
    assert has(cryo_request(kernel, 1.0, 200.0), AllowFreeze)  # the last second
    kernel.handle(FreezeStartSeen(at=200.0))
    kernel.handle(FreezeEndSeen("stop", 1.4, at=201.4))  # the unit ended it late
    assert kernel.exposure_s == pytest.approx(20.4)
    assert Program("freeze_limit_s", 0.0) in kernel.handle(BootSeen(at=300.0))


def test_an_uncommanded_freeze_counts_as_a_cycle() -> None:
    kernel = freezing_cryo(CryoKernel, 5.0)
    kernel.handle(FreezeEndSeen("timeout", 5.0, at=6.0))
    assert has(cryo_request(kernel, 5.0, 40.0), AllowFreeze)
    kernel.handle(FreezeStartSeen(at=40.0))
    kernel.handle(FreezeEndSeen("timeout", 5.0, at=45.0))
    assert locks(kernel.handle(FreezeStartSeen(at=80.0)), Hazard.H05_OVERFREEZING)  # nobody asked
    kernel.handle(FreezeEndSeen("stop", 1.0, at=81.0))
    kernel.handle(LockoutAcknowledged(Role.TECHNICIAN, at=82.0))
    assert kernel.cycles_done == 3 > CRYO_PLAN.cycles
    refused = cryo_request(kernel, 5.0, 200.0)
    assert has(refused, Refuse, Hazard.H06_CUMULATIVE_COLD) and not has(refused, AllowFreeze)


def test_the_backup_timer_gives_an_uncommanded_freeze_only_the_margin() -> None:
    kernel = CryoKernel()
    kernel.handle(SessionOpened(CRYO_PLAN, at=0.0))
    assert locks(kernel.handle(FreezeStartSeen(at=1.0)), Hazard.H05_OVERFREEZING)
    assert not has(kernel.handle(TipSeen(-40.0, True, at=1.4)), Stop)
    assert not has(kernel.handle(TipSeen(-40.0, True, at=1.5)), Stop)  # exactly the margin
    assert has(kernel.handle(TipSeen(-40.0, True, at=1.6)), Stop, Hazard.H05_OVERFREEZING)  # the STOP again


def test_the_backup_timer_gives_an_uncommanded_freeze_only_the_margin_after_an_allowed_one() -> None:
    kernel = freezing_cryo(CryoKernel, 20.0)
    kernel.handle(FreezeEndSeen("timeout", 20.0, at=21.0))
    kernel.handle(TipSeen(10.0, False, at=60.0))
    assert locks(kernel.handle(FreezeStartSeen(at=60.0)), Hazard.H05_OVERFREEZING)  # nobody asked
    assert has(kernel.handle(TipSeen(-40.0, True, at=60.6)), Stop, Hazard.H05_OVERFREEZING)


@pytest.mark.parametrize("state", ["IDLE", "THAW", "FAULT"])
def test_cryo_states_other_than_freezing_are_not_uncommanded(state: str) -> None:
    kernel = CryoKernel()
    kernel.handle(SessionOpened(CRYO_PLAN, at=0.0))
    assert kernel.handle(DeviceStateSeen(state, "cmd", at=1.0)) == []


def test_a_freezing_state_read_from_the_line_is_recognised() -> None:
    kernel = CryoKernel()
    kernel.handle(SessionOpened(CRYO_PLAN, at=0.0))
    from_the_line = "state=FREEZING".split("=")[1]  # built at run time, as the driver parses it
    assert locks(kernel.handle(DeviceStateSeen(from_the_line, "cmd", at=1.0)), Hazard.H05_OVERFREEZING)


@pytest.mark.parametrize(("seconds", "allowed"), [(0.49, False), (0.5, True), (20.0, True), (20.1, False)])
def test_a_freeze_is_half_a_second_to_the_cap(seconds: float, allowed: bool) -> None:
    kernel = CryoKernel()
    kernel.handle(SessionOpened(CRYO_PLAN, at=0.0))
    assert CRYO_PLAN.freeze_cap_s == 20.0
    assert has(cryo_request(kernel, seconds, 1.0), AllowFreeze) is allowed


def test_a_freeze_running_after_disarm_is_still_watched() -> None:
    """STOP disarms at once, but the unit's freeze ends only when it reports FREEZE END: until then
    silence and a removed probe must still stop it."""
    kernel = freezing_cryo(CryoKernel)
    assert has(kernel.handle(StopRequested("screen", at=2.0)), Stop) and not kernel.armed
    kernel.handle(TipSeen(-50.0, True, at=2.1))  # still cold, valve still open: no lock-out, it is the freeze
    assert not kernel.locked
    assert not has(kernel.handle(ClockTick(at=2.55)), Stop)
    assert has(kernel.handle(ClockTick(at=2.65)), Stop, Hazard.H14_LOST_INFORMATION)
    kernel = freezing_cryo(CryoKernel)
    kernel.handle(StopRequested("screen", at=2.0))
    assert has(kernel.handle(CryoInputsSeen(False, "NONE", at=2.2)), Stop, Hazard.H05_OVERFREEZING)
    assert not has(kernel.handle(CryoInputsSeen(False, "P3", at=2.3)), Stop)
    kernel = freezing_cryo(CryoKernel)
    from_the_line = "probe=NONE".split("=")[1]  # built at run time, as the driver parses it
    assert has(kernel.handle(CryoInputsSeen(False, from_the_line, at=2.2)), Stop, Hazard.H05_OVERFREEZING)


def test_cryo_silence_limit_is_half_a_second() -> None:
    kernel = freezing_cryo(CryoKernel)
    kernel.handle(TipSeen(-30.0, True, at=2.0))
    assert not has(kernel.handle(ClockTick(at=2.5)), Stop)
    assert has(kernel.handle(ClockTick(at=2.51)), Stop, Hazard.H14_LOST_INFORMATION)


def test_tip_overshoot_starts_ten_degrees_below_target() -> None:
    kernel = freezing_cryo(CryoKernel)
    assert CRYO_PLAN.target_c == -50
    assert not has(kernel.handle(TipSeen(-60.0, True, at=2.0)), Stop)
    assert has(kernel.handle(TipSeen(-60.1, True, at=2.1)), Stop, Hazard.H05_OVERFREEZING)


def test_freeze_ends_name_their_cause() -> None:
    for cause, abnormal in (("timeout", False), ("stop", False), ("estop", True), ("wdt", True), ("fault", True)):
        kernel = freezing_cryo(CryoKernel)
        decisions = kernel.handle(FreezeEndSeen(cause, 3.0, at=4.0))
        assert has(decisions, Stop) and not kernel.armed
        assert ("abnormally" in decisions[0].reason) is abnormal, cause  # type: ignore[attr-defined]


# ============================================================================ plans


def expected_budget(row_key: str, area_cm2: float, sensitive: bool = False) -> int:
    """Pulses for the area with 20 % overlap, at most the row's max (x the sensitive factor)."""
    row = ROWS["laser"][row_key]
    spot_cm2 = math.pi * (row["spot_mm"] / 10.0 / 2.0) ** 2
    cap = row["max_pulses"]
    if sensitive:
        cap = math.floor(cap * ROWS["ceilings"]["sensitive_skin"]["budget_factor"])
    return min(math.ceil(area_cm2 / spot_cm2 * 1.2), cap)


@pytest.mark.parametrize(
    ("indication", "skin", "sensitive", "area", "inks", "row_key", "budget", "energy", "energy_cap"),
    [
        # 2 mm spot = 0.0314 cm²: 1 cm² / 0.0314 x 1.2 = 38.2 -> 39; 2.5 / 3.5 J/cm² -> 78 / 109 mJ
        (Indication.AGE_SPOT, 2, False, 1.0, (), "age_spot", 39, 78, 109),
        # 4 mm spot = 0.1257 cm²: 2 cm² -> 19.1 -> 20; 1.6 / 2.0 J/cm² -> 201 / 251 mJ
        (Indication.PIGMENT_SPOT, 5, False, 2.0, (), "age_spot_dark", 20, 201, 251),
        # 3 mm spot = 0.0707 cm²: 1 cm² -> 16.98 -> 17; 4 / 8 J/cm² -> 282 / 565 mJ
        (Indication.TATTOO, 2, False, 1.0, (Ink.BLACK,), "tattoo_dark_ink", 17, 282, 565),
        # 10 cm² -> 169.8 -> 170; 2.5 / 4 J/cm² -> 176 / 282 mJ
        (Indication.TATTOO, 2, False, 10.0, (Ink.RED,), "tattoo_red_ink", 170, 176, 282),
        # sensitive: 1500 x 0.75 = 1125 pulses (the area needs 3396); cap 8 x 0.8 = 6.4 J/cm² -> 452 mJ
        (Indication.TATTOO, 2, True, 200.0, (Ink.BLUE,), "tattoo_dark_ink", 1125, 282, 452),
    ],
)
def test_pulse_budget_and_energies_per_plan(
    indication: Indication, skin: int, sensitive: bool, area: float, inks: tuple[Ink, ...], row_key: str, budget: int,
    energy: int, energy_cap: int,
) -> None:
    laser = plan(indication, skin, sensitive, area, inks)
    assert isinstance(laser, LaserPlan) and laser.protocol == row_key
    assert laser.pulse_budget == budget == expected_budget(row_key, area, sensitive)
    assert (laser.energy_mj, laser.energy_cap_mj) == (energy, energy_cap)


@pytest.mark.parametrize(("area", "budget", "warned"), [(7.85, 300, False), (7.86, 300, True)])
def test_an_area_beyond_one_session_is_warned_to_treat_the_rest_later(area: float, budget: int, warned: bool) -> None:
    """Age spot: 38.2 pulses per cm²; 7.85 cm² needs 300 (the session's max), 7.86 cm² needs 301."""
    laser = plan(Indication.AGE_SPOT, area=area)
    assert isinstance(laser, LaserPlan) and laser.pulse_budget == budget
    later = [w for w in laser.warnings if "later session" in w]
    assert bool(later) is warned
    if warned:
        assert later == ["the area needs about 301 pulses; one session allows 300: treat the rest in a later session"]


@pytest.mark.parametrize(
    ("skin", "sensitive", "cap"),
    [(5, False, 2.0), (6, False, 1.6), (5, True, 1.6), (6, True, 1.28)],
)
def test_dark_and_sensitive_skin_fluence_caps(skin: int, sensitive: bool, cap: float) -> None:
    laser = plan(Indication.AGE_SPOT, skin, sensitive)
    assert isinstance(laser, LaserPlan) and laser.fluence_cap_j_cm2 == cap
    assert laser.fluence_j_cm2 <= cap


def test_type_vi_tattoo_fluence_cap() -> None:
    laser = plan(Indication.TATTOO, 6, inks=(Ink.BLACK,))
    assert isinstance(laser, LaserPlan) and laser.fluence_cap_j_cm2 == 6.4  # 8 x 0.8


@pytest.mark.parametrize(("skin", "refused"), [(-1, True), (0, True), (1, False), (6, False), (7, True)])
def test_skin_type_must_be_one_to_six(skin: int, refused: bool) -> None:
    for indication in (Indication.AGE_SPOT, Indication.AGE_WART):
        result = plan_treatment(PlanRequest(indication, skin, False, 1.0, "arm"))
        assert isinstance(result, PlanRefused) is refused, (indication, skin)
        if refused:
            assert result.hazard is Hazard.H10_DARK_SKIN_INJURY  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("indication", "freeze_cap", "freeze"),
    [
        (Indication.SCAR, 15.0, 15.0),  # 20 x 0.75
        (Indication.MOLE, 7.5, 7.5),  # 10 x 0.75; the default 8 s is cut to the cap
        (Indication.AGE_WART, 11.2, 10.0),  # 15 x 0.75 = 11.25, to a tenth
        (Indication.AGE_PIGMENTATION, 3.8, 3.0),  # 5 x 0.75 = 3.75, to a tenth
    ],
)
def test_sensitive_skin_freeze_caps(indication: Indication, freeze_cap: float, freeze: float) -> None:
    cryo = plan_treatment(PlanRequest(indication, 2, True, 0.5, "arm"))
    assert isinstance(cryo, CryoPlan) and (cryo.freeze_cap_s, cryo.freeze_s) == (freeze_cap, freeze)
    assert any("sensitive skin" in w for w in cryo.warnings)
    normal = plan_treatment(PlanRequest(indication, 2, False, 0.5, "arm"))
    assert isinstance(normal, CryoPlan) and not any("sensitive skin" in w for w in normal.warnings)


@pytest.mark.parametrize(("skin", "warned"), [(3, False), (4, True), (6, True)])
def test_darker_skin_is_warned_of_light_patches_after_cryo(skin: int, warned: bool) -> None:
    cryo = plan(Indication.AGE_WART, skin)
    assert any("hypopigmented" in w for w in cryo.warnings) is warned


@pytest.mark.parametrize(("indication", "skin", "inks", "warned"), [
    (Indication.AGE_SPOT, 3, (), True), (Indication.AGE_SPOT, 2, (), False), (Indication.TATTOO, 3, (Ink.BLACK,), False),
])
def test_type_iii_whitening_warning_only_at_532(
    indication: Indication, skin: int, inks: tuple[Ink, ...], warned: bool
) -> None:
    laser = plan(indication, skin, inks=inks)
    assert any("slight immediate whitening" in w for w in laser.warnings) is warned


# ============================================================================ checklist


def with_previous(*sessions: PreviousSession) -> ChecklistContext:
    return ChecklistContext(TODAY, CONTEXT.calibration, sessions)


@pytest.mark.parametrize(
    ("session", "blocked"),
    [
        (PreviousSession("arm", Modality.LASER, TODAY), True),  # earlier today, same site
        (PreviousSession("arm", Modality.LASER, TODAY + timedelta(days=1)), False),  # a booking, not a treatment
        (PreviousSession("arm", Modality.CRYO, TODAY), False),  # the other modality
        (PreviousSession("leg", Modality.LASER, TODAY), False),  # another site
    ],
)
def test_interval_counts_a_session_earlier_today(session: PreviousSession, blocked: bool) -> None:
    laser = plan(Indication.TATTOO, inks=(Ink.BLACK,))
    items = [i.item for i in open_items(laser, GOOD, with_previous(session))]
    assert items == (["interval"] if blocked else [])


@pytest.mark.parametrize("indication", [Indication.AGE_WART, Indication.SCAR, Indication.AGE_SPOT])
def test_every_plan_needs_the_sun_answer(indication: Indication) -> None:
    answers = replace(GOOD, no_sun_last_4_weeks=False)
    items = open_items(plan(indication), answers, CONTEXT)
    assert [(i.item, i.hazard) for i in items] == [("sun", Hazard.H08_SUN_EXPOSED_SKIN)]


@pytest.mark.parametrize("missing", ["identity_confirmed", "consent_signed"])
def test_cryo_plans_need_identity_and_consent(missing: str) -> None:
    items = open_items(plan(Indication.AGE_WART), replace(GOOD, **{missing: False}), CONTEXT)
    assert [i.hazard for i in items] == [Hazard.H07_WRONG_PATIENT_OR_CONSENT]


def test_only_a_mole_needs_the_benign_assessment() -> None:
    without = replace(GOOD, benign_assessed=False)
    mole = plan_treatment(PlanRequest(Indication.MOLE, 2, False, 0.5, "back"))
    assert isinstance(mole, CryoPlan)
    assert [i.item for i in open_items(mole, without, CONTEXT)] == ["benign"]
    assert open_items(plan(Indication.AGE_WART), without, CONTEXT) == []


@pytest.mark.parametrize(("days_ago", "open_"), [(13, True), (14, False)])
def test_test_spot_review_after_two_weeks(days_ago: int, open_: bool) -> None:
    answers = replace(GOOD, test_spot=TestSpot(TODAY - timedelta(days=days_ago), True, False))
    items = open_items(plan(Indication.TATTOO, inks=(Ink.WHITE,)), answers, CONTEXT)
    assert bool(items) is open_


@pytest.mark.parametrize("indication", [Indication.TATTOO, Indication.AGE_SPOT, Indication.AGE_WART, Indication.SCAR])
def test_aftercare_says_two_sun_free_weeks(indication: Indication) -> None:
    sheet = aftercare(plan(indication, inks=(Ink.BLACK,) if indication is Indication.TATTOO else ()))
    assert sheet[0] == "No sun or solarium for 2 weeks; protect the area with clothing or sunscreen."


def test_aftercare_names_the_next_session() -> None:
    assert "Several sessions may be needed; the next one not before 21 days." in aftercare(plan(Indication.AGE_WART))
    assert "Several sessions are needed; the next one not before 8 weeks." in aftercare(
        plan(Indication.TATTOO, inks=(Ink.BLACK,))
    )
    assert not any("Several sessions" in line for line in aftercare(plan(Indication.AGE_SPOT)))
