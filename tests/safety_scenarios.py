"""Kernel scenarios: a list of facts in, the decisions checked. Each takes a kernel factory so
the same scenarios prove every rule is load-bearing (tests/test_safety_rules_load_bearing.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from safety.checklist import Calibration, ChecklistAnswers, ChecklistContext, PreviousSession
from safety.decisions import AllowArm, AllowFreeze, Lockout, Pause, Program, Refuse, Stop
from safety.facts import (
    ArmRequested,
    BootSeen,
    ClockTick,
    CryoInputsSeen,
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
    PulsesUnseen,
    Reconfirmed,
    Role,
    SessionClosed,
    SessionOpened,
    SpotSeen,
    StopRequested,
    StopUnconfirmed,
    TelemetrySeen,
    TipSeen,
    WatchdogSeen,
)
from safety.hazards import Hazard
from safety.plans import DEFAULT_TABLE, Indication, Ink, Modality, PlanRequest, plan_treatment

TODAY = date(2026, 11, 24)
GOOD = ChecklistAnswers(identity_confirmed=True, consent_signed=True, eye_protection_all=True, no_sun_last_4_weeks=True,
                        benign_assessed=True)
CONTEXT = ChecklistContext(TODAY, Calibration("X", True, TODAY + timedelta(days=90)))
LASER_PLAN = plan_treatment(PlanRequest(Indication.TATTOO, 2, False, 1.0, "arm", frozenset({Ink.BLACK})))
CRYO_PLAN = plan_treatment(PlanRequest(Indication.SCAR, 2, False, 2.0, "chest"))
Factory = Callable[[], Any]


def kinds(decisions: list[Any]) -> list[type]:
    return [type(d) for d in decisions]


def has(decisions: list[Any], kind: type, hazard: Hazard | None = None) -> bool:
    return any(isinstance(d, kind) and (hazard is None or getattr(d, "hazard", None) is hazard) for d in decisions)


def armed_laser(make: Factory, budget_left: int | None = None) -> Any:
    kernel = make()
    kernel.handle(SessionOpened(LASER_PLAN, at=0.0))
    kernel.handle(SpotSeen(LASER_PLAN.spot_mm, at=0.1))
    decisions = kernel.handle(ArmRequested(Role.PRACTITIONER, GOOD, CONTEXT, at=0.2))
    assert has(decisions, AllowArm), decisions
    kernel.handle(DeviceStateSeen("CHARGING", "cmd", at=0.3))
    kernel.handle(DeviceStateSeen("READY", "cmd", at=1.8))
    return kernel


def pulse(kernel: Any, n: int, at: float, energy: float | None = None, set_mj: int | None = None) -> list[Any]:
    plan = LASER_PLAN
    return kernel.handle(PulseSeen(n, plan.energy_mj if energy is None else energy, set_mj or plan.energy_mj, at=at))


# ----------------------------------------------------------------------------- laser


def laser_session_programs_every_limit(make: Factory) -> None:
    kernel = make()
    decisions = kernel.handle(SessionOpened(LASER_PLAN, at=0.0))
    programs = {d.setting: d.value for d in decisions if isinstance(d, Program)}
    assert programs == {
        "wavelength_nm": 1064, "energy_limit_mj": LASER_PLAN.energy_cap_mj, "energy_mj": LASER_PLAN.energy_mj,
        "rate_hz": LASER_PLAN.rate_hz, "count_reset": 0, "pulse_limit": LASER_PLAN.pulse_budget,
    }
    assert has(decisions, Stop)


def laser_arm_needs_practitioner(make: Factory) -> None:
    kernel = make()
    kernel.handle(SessionOpened(LASER_PLAN))
    kernel.handle(SpotSeen(LASER_PLAN.spot_mm))
    for role in (Role.TECHNICIAN, Role.ADMIN):
        decisions = kernel.handle(ArmRequested(role, GOOD, CONTEXT))
        assert has(decisions, Refuse, Hazard.H20_UNAUTHORISED_OPERATOR) and not has(decisions, AllowArm)


def laser_arm_refused_with_open_checklist(make: Factory) -> None:
    for answers, hazard in (
        (ChecklistAnswers(), Hazard.H07_WRONG_PATIENT_OR_CONSENT),
        (GOOD.__class__(**{**GOOD.__dict__, "eye_protection_all": False}), Hazard.H04_EYE_EXPOSURE),
        (GOOD.__class__(**{**GOOD.__dict__, "no_sun_last_4_weeks": False}), Hazard.H08_SUN_EXPOSED_SKIN),
    ):
        kernel = make()
        kernel.handle(SessionOpened(LASER_PLAN))
        kernel.handle(SpotSeen(LASER_PLAN.spot_mm))
        decisions = kernel.handle(ArmRequested(Role.PRACTITIONER, answers, CONTEXT))
        assert has(decisions, Refuse, hazard) and not has(decisions, AllowArm), decisions


def laser_arm_refused_with_bad_calibration(make: Factory) -> None:
    for calibration in (None, Calibration("X", False, TODAY + timedelta(days=9)), Calibration("X", True, TODAY - timedelta(days=1))):
        kernel = make()
        kernel.handle(SessionOpened(LASER_PLAN))
        kernel.handle(SpotSeen(LASER_PLAN.spot_mm))
        decisions = kernel.handle(ArmRequested(Role.PRACTITIONER, GOOD, ChecklistContext(TODAY, calibration)))
        assert has(decisions, Refuse, Hazard.H12_UNCALIBRATED_DEVICE) and not has(decisions, AllowArm)


def laser_arm_refused_too_soon_after_last_session(make: Factory) -> None:
    kernel = make()
    kernel.handle(SessionOpened(LASER_PLAN))
    kernel.handle(SpotSeen(LASER_PLAN.spot_mm))
    context = ChecklistContext(TODAY, CONTEXT.calibration, (PreviousSession("arm", Modality.LASER, TODAY - timedelta(days=30)),))
    decisions = kernel.handle(ArmRequested(Role.PRACTITIONER, GOOD, context))
    assert has(decisions, Refuse, Hazard.H13_SESSIONS_TOO_CLOSE)


def laser_arm_refused_with_wrong_handpiece(make: Factory) -> None:
    kernel = make()
    kernel.handle(SessionOpened(LASER_PLAN))
    kernel.handle(SpotSeen(2.0))  # a smaller spot: the same energy gives more fluence
    decisions = kernel.handle(ArmRequested(Role.PRACTITIONER, GOOD, CONTEXT))
    assert has(decisions, Refuse, Hazard.H02_EXCESS_ENERGY) and not has(decisions, AllowArm)


def laser_arm_programs_remaining_budget(make: Factory) -> None:
    kernel = armed_laser(make)
    pulse(kernel, 1, 2.0)
    kernel.handle(StopRequested("screen", at=2.1))
    decisions = kernel.handle(ArmRequested(Role.PRACTITIONER, GOOD, CONTEXT, at=3.0))
    # laser.md: LIMIT PULSES counts from the last COUNT RESET, so the count is reset first
    programs = [d for d in decisions if isinstance(d, Program)]
    assert programs == [Program("count_reset", 0), Program("pulse_limit", LASER_PLAN.pulse_budget - 1)]
    assert has(decisions, AllowArm)


def laser_second_arm_while_armed_changes_nothing(make: Factory) -> None:
    kernel = armed_laser(make)
    permit = kernel.permit
    assert kernel.handle(ArmRequested(Role.PRACTITIONER, GOOD, CONTEXT, at=2.0)) == []
    assert kernel.armed and kernel.permit == permit


def laser_unseen_pulses_count_and_lock(make: Factory) -> None:
    kernel = armed_laser(make)
    pulse(kernel, 1, 2.0)
    decisions = kernel.handle(PulsesUnseen(3, at=3.0))
    assert has(decisions, Stop, Hazard.H14_LOST_INFORMATION) and has(decisions, Lockout, Hazard.H14_LOST_INFORMATION)
    assert kernel.pulses == 4 and kernel.remaining == LASER_PLAN.pulse_budget - 4
    assert kernel.handle(PulsesUnseen(0, at=3.5)) == []
    kernel.handle(LockoutAcknowledged(Role.PRACTITIONER, at=4.0))
    decisions = kernel.handle(ArmRequested(Role.PRACTITIONER, GOOD, CONTEXT, at=5.0))
    assert Program("pulse_limit", LASER_PLAN.pulse_budget - 4) in decisions


def laser_state_in_flight_after_stop_is_not_uncommanded(make: Factory) -> None:
    kernel = armed_laser(make)
    kernel.handle(StopRequested("screen", at=5.0))
    decisions = kernel.handle(DeviceStateSeen("READY", "cmd", at=5.1))
    assert has(decisions, Stop) and not has(decisions, Lockout)
    decisions = kernel.handle(DeviceStateSeen("READY", "cmd", at=6.0))
    assert has(decisions, Lockout, Hazard.H03_UNCOMMANDED_EMISSION)


def laser_unreadable_energy_locks(make: Factory) -> None:
    kernel = armed_laser(make)
    decisions = pulse(kernel, 1, 2.0, energy=float("nan"))
    assert has(decisions, Stop, Hazard.H02_EXCESS_ENERGY) and has(decisions, Lockout, Hazard.H02_EXCESS_ENERGY)


def permit_revoked_by_every_stop_lock_and_pause(make: Factory) -> None:
    for fact in (StopRequested("screen", at=3.0), FaultSeen("F04", "coolant", at=3.0), LinkLost("gone", at=3.0)):
        kernel = armed_laser(make)
        permit = kernel.permit
        assert kernel.permit_valid(permit) and not kernel.permit_valid(None)
        kernel.handle(fact)
        assert not kernel.permit_valid(permit)
    kernel = armed_laser(make)
    first = kernel.permit
    kernel.handle(StopRequested("screen", at=3.0))
    kernel.handle(ArmRequested(Role.PRACTITIONER, GOOD, CONTEXT, at=4.0))
    assert kernel.permit_valid(kernel.permit) and not kernel.permit_valid(first)


def unconfirmed_stop_locks_until_acknowledged(make: Factory) -> None:
    kernel = armed_laser(make)
    kernel.handle(StopRequested("screen", at=3.0))
    decisions = kernel.handle(StopUnconfirmed("the laser did not confirm STOP", at=3.5))
    assert has(decisions, Lockout, Hazard.H03_UNCOMMANDED_EMISSION) and not has(decisions, Stop)
    assert has(kernel.handle(ArmRequested(Role.PRACTITIONER, GOOD, CONTEXT, at=4.0)), Refuse, Hazard.H16_FAULT_REARM)


def watchdog_without_a_session_stops_without_locking(make: Factory) -> None:
    kernel = make()
    decisions = kernel.handle(WatchdogSeen(at=1.0))  # the unit's first watchdog after power-on
    assert has(decisions, Stop, Hazard.H14_LOST_INFORMATION) and not has(decisions, Lockout) and not kernel.locked
    kernel = armed_laser(make)
    assert has(kernel.handle(WatchdogSeen(at=3.0)), Lockout, Hazard.H14_LOST_INFORMATION)


def lockout_survives_a_new_session(make: Factory) -> None:
    kernel = make()
    kernel.handle(SessionOpened(LASER_PLAN, at=0.0))
    pulse(kernel, 1, 1.0)  # uncommanded: locks
    kernel.handle(SessionClosed(at=2.0))
    kernel.handle(SessionOpened(LASER_PLAN, at=3.0))
    kernel.handle(SpotSeen(LASER_PLAN.spot_mm, at=3.1))
    assert kernel.locked
    assert has(kernel.handle(ArmRequested(Role.PRACTITIONER, GOOD, CONTEXT, at=4.0)), Refuse, Hazard.H16_FAULT_REARM)


def laser_budget_stop_decided_at_the_budget(make: Factory) -> None:
    kernel = armed_laser(make)
    budget = LASER_PLAN.pulse_budget
    for n in range(1, budget):
        assert not has(pulse(kernel, n, 2.0 + n * 0.2), Stop)
    decisions = pulse(kernel, budget, 2.0 + budget * 0.2)
    assert has(decisions, Stop, Hazard.H01_OVERTREATMENT)
    refusal = kernel.handle(ArmRequested(Role.PRACTITIONER, GOOD, CONTEXT, at=100.0))
    assert has(refusal, Refuse, Hazard.H01_OVERTREATMENT) and not has(refusal, AllowArm)


def laser_pulse_beyond_budget_locks(make: Factory) -> None:
    kernel = armed_laser(make)
    budget = LASER_PLAN.pulse_budget
    for n in range(1, budget + 1):
        pulse(kernel, n, 2.0 + n * 0.01)
    decisions = pulse(kernel, budget + 1, 2.0 + budget * 0.01 + 0.005)
    assert has(decisions, Stop, Hazard.H01_OVERTREATMENT) and has(decisions, Lockout)


def laser_uncommanded_pulse_locks(make: Factory) -> None:
    kernel = make()
    kernel.handle(SessionOpened(LASER_PLAN, at=0.0))
    decisions = pulse(kernel, 1, 5.0)
    assert has(decisions, Stop, Hazard.H03_UNCOMMANDED_EMISSION) and has(decisions, Lockout, Hazard.H03_UNCOMMANDED_EMISSION)


def laser_pulse_in_flight_after_stop_is_not_uncommanded(make: Factory) -> None:
    kernel = armed_laser(make)
    kernel.handle(StopRequested("screen", at=5.0))
    decisions = pulse(kernel, 1, 5.1)
    assert has(decisions, Stop) and not has(decisions, Lockout)
    decisions = pulse(kernel, 2, 6.0)
    assert has(decisions, Lockout, Hazard.H03_UNCOMMANDED_EMISSION)


def laser_device_arming_itself_locks(make: Factory) -> None:
    kernel = make()
    kernel.handle(SessionOpened(LASER_PLAN))
    decisions = kernel.handle(DeviceStateSeen("READY", "cmd", at=1.0))
    assert has(decisions, Stop, Hazard.H03_UNCOMMANDED_EMISSION) and has(decisions, Lockout)


def laser_overenergy_pulse_locks_before_f02(make: Factory) -> None:
    for energy in (LASER_PLAN.energy_cap_mj + 1.0, LASER_PLAN.energy_mj * 1.21, LASER_PLAN.energy_mj * 0.79):
        kernel = armed_laser(make)
        decisions = pulse(kernel, 1, 2.0, energy=energy)
        assert has(decisions, Stop, Hazard.H02_EXCESS_ENERGY) and has(decisions, Lockout, Hazard.H02_EXCESS_ENERGY), energy
    kernel = armed_laser(make)
    assert not has(pulse(kernel, 1, 2.0, energy=LASER_PLAN.energy_mj * 1.05), Stop)


def laser_wrong_setting_pulse_locks(make: Factory) -> None:
    kernel = armed_laser(make)
    decisions = pulse(kernel, 1, 2.0, set_mj=LASER_PLAN.energy_mj + 50, energy=LASER_PLAN.energy_mj)
    assert has(decisions, Lockout, Hazard.H02_EXCESS_ENERGY)


def laser_monitor_correction_applies(make: Factory) -> None:
    kernel = make()
    kernel.handle(SessionOpened(LASER_PLAN, at=0.0, monitor_correction=1.3))
    kernel.handle(SpotSeen(LASER_PLAN.spot_mm, at=0.1))
    kernel.handle(ArmRequested(Role.PRACTITIONER, GOOD, CONTEXT, at=0.2))
    decisions = pulse(kernel, 1, 2.0, energy=LASER_PLAN.energy_mj)  # really 1.3 x the setting
    assert has(decisions, Lockout, Hazard.H02_EXCESS_ENERGY)


def laser_unsafe_inputs_stop_and_never_rearm(make: Factory) -> None:
    for inputs in ((True, False, False), (False, True, False), (True, True, True)):
        key, interlock, estop = inputs
        kernel = armed_laser(make)
        decisions = kernel.handle(LaserInputsSeen(key=key, interlock=interlock, estop=estop, foot=True, at=3.0))
        assert has(decisions, Stop), inputs
        back = kernel.handle(LaserInputsSeen(key=True, interlock=True, estop=False, foot=False, at=4.0))
        assert not has(back, AllowArm) and not kernel.armed
        assert has(pulse(kernel, 1, 6.0), Lockout, Hazard.H03_UNCOMMANDED_EMISSION)


def laser_device_leaving_ready_disarms(make: Factory) -> None:
    kernel = armed_laser(make)
    decisions = kernel.handle(DeviceStateSeen("STANDBY", "interlock", at=3.0))
    assert has(decisions, Stop, Hazard.H04_EYE_EXPOSURE) and not kernel.armed


def laser_spot_change_while_armed_stops(make: Factory) -> None:
    kernel = armed_laser(make)
    decisions = kernel.handle(SpotSeen(2.0, at=3.0))
    assert has(decisions, Stop, Hazard.H02_EXCESS_ENERGY)


def fault_watchdog_gap_link_stop(make: Factory, arm: Callable[[Factory], Any]) -> None:
    for fact, kind in (
        (FaultSeen("F04", "coolant", at=3.0), Lockout),
        (WatchdogSeen(at=3.0), Lockout),
        (EventGapSeen(2, at=3.0), Stop),
        (LinkLost("port closed", at=3.0), Pause),
    ):
        kernel = arm(make)
        decisions = kernel.handle(fact)
        assert isinstance(decisions[0], Stop), (fact, decisions)
        assert has(decisions, kind), fact
        assert not kernel.armed


def laser_faults_stop(make: Factory) -> None:
    fault_watchdog_gap_link_stop(make, armed_laser)


def lockout_needs_acknowledge_and_then_a_new_request(make: Factory) -> None:
    kernel = armed_laser(make)
    kernel.handle(FaultSeen("F02", "energy-deviation", at=3.0))
    assert has(kernel.handle(ArmRequested(Role.PRACTITIONER, GOOD, CONTEXT, at=4.0)), Refuse, Hazard.H16_FAULT_REARM)
    assert has(kernel.handle(LockoutAcknowledged(Role.ADMIN, at=5.0)), Refuse, Hazard.H20_UNAUTHORISED_OPERATOR)
    assert kernel.locked
    assert kernel.handle(LockoutAcknowledged(Role.TECHNICIAN, at=5.0)) == []
    assert not kernel.armed and not kernel.locked
    assert has(kernel.handle(ArmRequested(Role.PRACTITIONER, GOOD, CONTEXT, at=6.0)), AllowArm)


def reboot_pauses_reprograms_and_needs_reconfirm(make: Factory) -> None:
    for fact in (BootSeen(at=3.0), LinkRestored(at=3.0)):
        kernel = armed_laser(make)
        pulse(kernel, 1, 2.5)
        decisions = kernel.handle(fact)
        assert isinstance(decisions[0], Stop) and has(decisions, Pause, Hazard.H15_DEVICE_RESET)
        assert Program("pulse_limit", LASER_PLAN.pulse_budget - 1) in decisions
        assert has(kernel.handle(ArmRequested(Role.PRACTITIONER, GOOD, CONTEXT, at=4.0)), Refuse, Hazard.H15_DEVICE_RESET)
        assert has(kernel.handle(Reconfirmed(Role.PRACTITIONER, at=4.5)), Refuse, Hazard.H15_DEVICE_RESET)
        kernel.handle(LimitsReprogrammed(at=5.0))
        assert has(kernel.handle(Reconfirmed(Role.TECHNICIAN, at=5.5)), Refuse, Hazard.H20_UNAUTHORISED_OPERATOR)
        assert kernel.handle(Reconfirmed(Role.PRACTITIONER, at=6.0)) == []
        assert not kernel.armed
        assert has(kernel.handle(ArmRequested(Role.PRACTITIONER, GOOD, CONTEXT, at=7.0)), AllowArm)


def laser_silence_while_armed_stops(make: Factory) -> None:
    kernel = armed_laser(make)
    kernel.handle(TelemetrySeen(at=2.0))
    assert not has(kernel.handle(ClockTick(at=4.0)), Stop)
    assert has(kernel.handle(ClockTick(at=4.6)), Stop, Hazard.H14_LOST_INFORMATION)


def stop_request_always_accepted(make: Factory) -> None:
    kernel = make()
    assert has(kernel.handle(StopRequested("mqtt", at=0.0)), Stop)
    kernel = armed_laser(make)
    assert has(kernel.handle(StopRequested("screen", at=3.0)), Stop) and not kernel.armed


def session_close_stops(make: Factory) -> None:
    kernel = armed_laser(make)
    assert has(kernel.handle(SessionClosed(at=3.0)), Stop) and not kernel.armed


LASER_SCENARIOS = [
    laser_session_programs_every_limit, laser_arm_needs_practitioner, laser_arm_refused_with_open_checklist,
    laser_arm_refused_with_bad_calibration, laser_arm_refused_too_soon_after_last_session,
    laser_arm_refused_with_wrong_handpiece, laser_arm_programs_remaining_budget, laser_budget_stop_decided_at_the_budget,
    laser_pulse_beyond_budget_locks, laser_uncommanded_pulse_locks, laser_pulse_in_flight_after_stop_is_not_uncommanded,
    laser_device_arming_itself_locks, laser_overenergy_pulse_locks_before_f02, laser_wrong_setting_pulse_locks,
    laser_monitor_correction_applies, laser_unsafe_inputs_stop_and_never_rearm, laser_device_leaving_ready_disarms,
    laser_spot_change_while_armed_stops, laser_faults_stop, lockout_needs_acknowledge_and_then_a_new_request,
    reboot_pauses_reprograms_and_needs_reconfirm, laser_silence_while_armed_stops, stop_request_always_accepted,
    session_close_stops, laser_second_arm_while_armed_changes_nothing, laser_unseen_pulses_count_and_lock,
    laser_state_in_flight_after_stop_is_not_uncommanded, laser_unreadable_energy_locks,
    permit_revoked_by_every_stop_lock_and_pause, unconfirmed_stop_locks_until_acknowledged, lockout_survives_a_new_session,
    watchdog_without_a_session_stops_without_locking,
]


# ----------------------------------------------------------------------------- cryo


def cryo_request(kernel: Any, seconds: float, at: float, answers: ChecklistAnswers = GOOD) -> list[Any]:
    return kernel.handle(FreezeRequested(Role.PRACTITIONER, seconds, answers, CONTEXT, at=at))


def freezing_cryo(make: Factory, seconds: float = 10.0) -> Any:
    kernel = make()
    kernel.handle(SessionOpened(CRYO_PLAN, at=0.0))
    assert has(cryo_request(kernel, seconds, 1.0), AllowFreeze)
    kernel.handle(DeviceStateSeen("FREEZING", "cmd", at=1.01))
    kernel.handle(FreezeStartSeen(at=1.01))
    return kernel


def cryo_session_programs_every_limit(make: Factory) -> None:
    kernel = make()
    decisions = kernel.handle(SessionOpened(CRYO_PLAN))
    programs = {d.setting: d.value for d in decisions if isinstance(d, Program)}
    assert programs == {"telemetry_hz": 10, "target_c": CRYO_PLAN.target_c, "thaw_min_s": CRYO_PLAN.thaw_min_s,
                        "freeze_limit_s": CRYO_PLAN.freeze_cap_s}


def cryo_freeze_gates(make: Factory) -> None:
    kernel = make()
    kernel.handle(SessionOpened(CRYO_PLAN, at=0.0))
    assert has(cryo_request(kernel, 5.0, 1.0, ChecklistAnswers()), Refuse, Hazard.H07_WRONG_PATIENT_OR_CONSENT)
    assert has(cryo_request(kernel, CRYO_PLAN.freeze_cap_s + 1, 1.0), Refuse, Hazard.H05_OVERFREEZING)
    assert has(kernel.handle(FreezeRequested(Role.TECHNICIAN, 5.0, GOOD, CONTEXT, at=1.0)), Refuse, Hazard.H20_UNAUTHORISED_OPERATOR)
    decisions = cryo_request(kernel, 5.0, 1.0)
    assert decisions[-1] == AllowFreeze(5.0) and Program("freeze_limit_s", CRYO_PLAN.freeze_cap_s) in decisions
    assert has(cryo_request(kernel, 5.0, 1.1), Refuse, Hazard.H06_CUMULATIVE_COLD)  # one at a time


def cryo_cycles_thaw_and_total_exposure(make: Factory) -> None:
    kernel = freezing_cryo(make, 15.0)
    kernel.handle(FreezeEndSeen("timeout", 15.0, at=16.0))
    assert has(cryo_request(kernel, 15.0, 20.0), Refuse, Hazard.H06_CUMULATIVE_COLD)  # thaw not over
    assert has(cryo_request(kernel, 15.0, 16.0 + CRYO_PLAN.thaw_min_s), AllowFreeze)
    kernel.handle(FreezeStartSeen(at=47.0))
    kernel.handle(FreezeEndSeen("timeout", 15.0, at=62.0))
    decisions = cryo_request(kernel, 5.0, 200.0)
    assert has(decisions, Refuse, Hazard.H06_CUMULATIVE_COLD) and "cycles" in decisions[0].reason


def cryo_exposure_cap(make: Factory) -> None:
    kernel = make()
    kernel.handle(SessionOpened(CRYO_PLAN, at=0.0))
    kernel.exposure_s = CRYO_PLAN.total_exposure_cap_s - 2.2  # earlier freezes this session
    assert has(cryo_request(kernel, 5.0, 1.0), Refuse, Hazard.H06_CUMULATIVE_COLD)
    assert has(cryo_request(kernel, 2.0, 1.0), AllowFreeze)
    kernel.handle(FreezeStartSeen(at=1.0))
    assert not has(kernel.handle(TipSeen(-50.0, True, at=3.1)), Stop)
    assert has(kernel.handle(TipSeen(-50.0, True, at=3.3)), Stop, Hazard.H06_CUMULATIVE_COLD)


def cryo_backup_timer(make: Factory) -> None:
    kernel = freezing_cryo(make, 10.0)
    kernel.handle(TipSeen(-50.0, True, at=11.4))
    assert not has(kernel.handle(ClockTick(at=11.4)), Stop)
    decisions = kernel.handle(ClockTick(at=11.6))
    assert has(decisions, Stop, Hazard.H05_OVERFREEZING) and has(decisions, Lockout, Hazard.H05_OVERFREEZING)


def cryo_tip_overshoot(make: Factory) -> None:
    kernel = freezing_cryo(make)
    assert not has(kernel.handle(TipSeen(CRYO_PLAN.target_c - 5.0, True, at=3.0)), Stop)
    assert has(kernel.handle(TipSeen(CRYO_PLAN.target_c - 10.5, True, at=3.1)), Stop, Hazard.H05_OVERFREEZING)


def cryo_uncommanded_freeze_locks(make: Factory) -> None:
    kernel = make()
    kernel.handle(SessionOpened(CRYO_PLAN))
    assert has(kernel.handle(FreezeStartSeen(at=2.0)), Lockout, Hazard.H05_OVERFREEZING)
    kernel = make()
    kernel.handle(SessionOpened(CRYO_PLAN))
    assert has(kernel.handle(DeviceStateSeen("FREEZING", "cmd", at=2.0)), Lockout, Hazard.H05_OVERFREEZING)


def cryo_valve_open_outside_freeze_locks(make: Factory) -> None:
    kernel = freezing_cryo(make)
    kernel.handle(FreezeEndSeen("timeout", 10.0, at=11.0))
    assert not has(kernel.handle(TipSeen(-40.0, False, at=11.1)), Stop)
    assert has(kernel.handle(TipSeen(-45.0, True, at=11.2)), Lockout, Hazard.H05_OVERFREEZING)


def cryo_freeze_end_disarms_and_never_refreezes(make: Factory) -> None:
    kernel = freezing_cryo(make)
    decisions = kernel.handle(FreezeEndSeen("estop", 3.0, at=4.0))
    assert has(decisions, Stop) and not kernel.armed
    assert has(kernel.handle(FreezeStartSeen(at=40.0)), Lockout)


def cryo_estop_and_probe(make: Factory) -> None:
    kernel = freezing_cryo(make)
    assert has(kernel.handle(CryoInputsSeen(True, "P3", at=2.0)), Stop)
    kernel = freezing_cryo(make)
    assert has(kernel.handle(CryoInputsSeen(False, "NONE", at=2.0)), Stop)


def cryo_faults_stop(make: Factory) -> None:
    fault_watchdog_gap_link_stop(make, lambda m: freezing_cryo(m))


def cryo_silence_while_freezing_stops(make: Factory) -> None:
    kernel = freezing_cryo(make)
    kernel.handle(TipSeen(-30.0, True, at=2.0))
    assert not has(kernel.handle(ClockTick(at=2.4)), Stop)
    decisions = kernel.handle(ClockTick(at=2.6))
    assert has(decisions, Stop, Hazard.H14_LOST_INFORMATION) and has(decisions, Lockout, Hazard.H14_LOST_INFORMATION)


def cryo_lost_unit_mid_freeze_ends_the_freeze(make: Factory) -> None:
    for lost in (BootSeen(at=4.0), LinkLost("port closed", at=4.0)):
        kernel = freezing_cryo(make, 10.0)  # started at 1.01
        decisions = kernel.handle(lost)
        assert has(decisions, Stop) and kernel.freezing_since is None
        # counted to the loss; a lost link adds the longest the unseen unit can have frozen on
        # (its own 1 s watchdog and a line in flight)
        expected = 2.99 + (1.1 if isinstance(lost, LinkLost) else 0.0)
        assert abs(kernel.exposure_s - expected) < 1e-6 and kernel.cycles_done == 1
        # no backup STOP re-decided for a freeze that is over, and no wedge
        assert not has(kernel.handle(ClockTick(at=30.0)), Stop)
        if isinstance(lost, LinkLost):
            kernel.handle(FreezeEndSeen("wdt", 4.5, at=31.0))  # the unit's own count, longer still
            assert abs(kernel.exposure_s - 4.5) < 1e-6 and kernel.cycles_done == 1
        kernel.handle(LinkRestored(at=31.0))
        kernel.handle(LimitsReprogrammed(at=31.5))
        kernel.handle(Reconfirmed(Role.PRACTITIONER, at=32.0))
        assert has(cryo_request(kernel, 3.0, 60.0), AllowFreeze)


def cryo_mole_needs_benign_assessment(make: Factory) -> None:
    plan = plan_treatment(PlanRequest(Indication.MOLE, 2, False, 0.5, "back"))
    kernel = make()
    kernel.handle(SessionOpened(plan))
    answers = ChecklistAnswers(identity_confirmed=True, consent_signed=True, no_sun_last_4_weeks=True)
    assert has(kernel.handle(FreezeRequested(Role.PRACTITIONER, 5.0, answers, CONTEXT)), Refuse, Hazard.H18_OUT_OF_SCOPE_LESION)


def cryo_reboot_pauses(make: Factory) -> None:
    kernel = freezing_cryo(make)
    decisions = kernel.handle(BootSeen(at=3.0))
    assert isinstance(decisions[0], Stop) and has(decisions, Pause)
    assert has(cryo_request(kernel, 5.0, 40.0), Refuse, Hazard.H15_DEVICE_RESET)


def cryo_stop_close_acknowledge_reconfirm(make: Factory) -> None:
    kernel = freezing_cryo(make)
    assert has(kernel.handle(StopRequested("mqtt", at=2.0)), Stop) and not kernel.armed
    kernel = freezing_cryo(make)
    assert has(kernel.handle(SessionClosed(at=2.0)), Stop)
    kernel = freezing_cryo(make)
    kernel.handle(FaultSeen("C02", "valve-stuck", at=2.0))
    kernel.handle(FreezeEndSeen("fault", 1.0, at=2.0))
    assert has(cryo_request(kernel, 5.0, 60.0), Refuse, Hazard.H16_FAULT_REARM)
    kernel.handle(LockoutAcknowledged(Role.TECHNICIAN, at=61.0))
    assert has(cryo_request(kernel, 5.0, 62.0), AllowFreeze)
    kernel = freezing_cryo(make)
    kernel.handle(LinkRestored(at=2.0))
    kernel.handle(FreezeEndSeen("stop", 1.0, at=2.0))
    kernel.handle(LimitsReprogrammed(at=3.0))
    assert kernel.handle(Reconfirmed(Role.PRACTITIONER, at=4.0)) == []
    assert has(cryo_request(kernel, 5.0, 60.0), AllowFreeze)


def cryo_unconfirmed_stop_locks(make: Factory) -> None:
    kernel = freezing_cryo(make)
    kernel.handle(StopRequested("screen", at=2.0))
    assert has(kernel.handle(StopUnconfirmed("the cryo did not confirm STOP", at=2.5)), Lockout)
    kernel.handle(FreezeEndSeen("wdt", 3.0, at=4.0))
    assert has(cryo_request(kernel, 3.0, 60.0), Refuse, Hazard.H16_FAULT_REARM)


CRYO_SCENARIOS = [
    cryo_stop_close_acknowledge_reconfirm,
    cryo_session_programs_every_limit, cryo_freeze_gates, cryo_cycles_thaw_and_total_exposure, cryo_exposure_cap,
    cryo_backup_timer, cryo_tip_overshoot, cryo_uncommanded_freeze_locks, cryo_valve_open_outside_freeze_locks,
    cryo_freeze_end_disarms_and_never_refreezes, cryo_estop_and_probe, cryo_faults_stop, cryo_silence_while_freezing_stops,
    cryo_mole_needs_benign_assessment, cryo_reboot_pauses, cryo_lost_unit_mid_freeze_ends_the_freeze,
    cryo_unconfirmed_stop_locks,
]


def table_with(tmp_path: Path, section: str, **values: Any) -> Path:
    """The default protocol table with ``values`` written into ``[section]``, as a clinic edits it."""
    current, seen, out = "", set(), []
    for line in DEFAULT_TABLE.read_text().splitlines():
        if line.startswith("["):
            current = line.strip()[1:-1]
        key = line.split("=")[0].strip()
        if current == section and key in values:
            line = f"{key} = {values[key]!r}"
            seen.add(key)
        out.append(line)
    assert seen == set(values), f"{section} has no {set(values) - seen}"
    path = tmp_path / f"protocols-{len(list(tmp_path.iterdir()))}.toml"
    path.write_text("\n".join(out) + "\n")
    return path
