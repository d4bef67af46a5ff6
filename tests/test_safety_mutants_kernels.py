"""Kernel behaviours no other kernel test held: the silence stop's wording and its lock-out (or
none), the watchdog in an idle session, what a reset says, re-confirming before the limits were
programmed again, roles and permits compared by value, a STOP beside an arm permission, and an
unanswered freeze counted as one cycle. Each was found by a mutant of ``safety/`` that the kernel
tests let through; every kernel is driven with facts and their times only."""

from __future__ import annotations

from typing import Any

from safety.cryo_kernel import CryoKernel
from safety.decisions import AllowArm, AllowFreeze, Decision, Lockout, Pause, Program, Refuse, Stop
from safety.facts import (
    ArmRequested,
    BootSeen,
    ClockTick,
    FreezeEndSeen,
    FreezeRequested,
    FreezeStartSeen,
    FreezeUnanswered,
    LimitsReprogrammed,
    LinkLost,
    LinkRestored,
    Reconfirmed,
    Role,
    SessionOpened,
    SpotSeen,
    StopRequested,
    TelemetrySeen,
    WatchdogSeen,
)
from safety.hazards import Hazard
from safety.kernel import rule
from safety.laser_kernel import LaserKernel
from tests.safety_scenarios import CONTEXT, CRYO_PLAN, GOOD, LASER_PLAN, armed_laser, cryo_request, has


def arm(kernel: Any, at: float, role: str = Role.PRACTITIONER) -> list[Decision]:
    return kernel.handle(ArmRequested(role, GOOD, CONTEXT, at=at))  # type: ignore[no-any-return]


def idle_laser_session() -> LaserKernel:
    kernel = LaserKernel()
    kernel.handle(SessionOpened(LASER_PLAN, at=0.0))
    kernel.handle(SpotSeen(LASER_PLAN.spot_mm, at=0.1))
    return kernel


def as_read_from_the_store(text: str) -> str:
    """The same text in a new string object, as a role read from the user store is."""
    copy = "".join(list(text))
    assert copy == text and copy is not text
    return copy


# ============================================================================ lost information


def test_silence_stop_says_how_long_the_device_was_silent() -> None:
    # H14: the reason shown and recorded is the silence itself (last word at 10.0 s, tick at 13.0 s)
    kernel = armed_laser(LaserKernel)
    kernel.handle(TelemetrySeen(at=10.0))
    decisions = kernel.handle(ClockTick(at=13.0))
    stops = [d for d in decisions if isinstance(d, Stop)]
    assert stops and stops[0].hazard is Hazard.H14_LOST_INFORMATION
    assert stops[0].reason == "no word from the device for 3.0 s"


def test_laser_silence_stops_without_a_lockout() -> None:
    # H14: a silent laser is stopped; unlike a freeze it cannot run on unseen, so it is not locked:
    # once it speaks again a practitioner's new request arms it
    kernel = armed_laser(LaserKernel)
    kernel.handle(TelemetrySeen(at=2.0))
    decisions = kernel.handle(ClockTick(at=5.0))
    assert has(decisions, Stop, Hazard.H14_LOST_INFORMATION) and not has(decisions, Lockout)
    assert kernel.locked is None and not kernel.armed
    kernel.handle(TelemetrySeen(at=6.0))
    assert has(arm(kernel, 6.5), AllowArm)


def test_a_watchdog_in_an_idle_session_locks() -> None:
    # H14: in a session the unit's watchdog means the host lost it, armed or not: STOP and lock-out
    kernel = idle_laser_session()
    decisions = kernel.handle(WatchdogSeen(at=1.0))
    assert has(decisions, Stop, Hazard.H14_LOST_INFORMATION) and has(decisions, Lockout, Hazard.H14_LOST_INFORMATION)
    assert kernel.locked
    assert has(arm(kernel, 2.0), Refuse, Hazard.H16_FAULT_REARM)


# ============================================================================ resets


def test_a_reset_says_whether_the_device_restarted_or_reconnected() -> None:
    # H15: the practitioner re-confirms knowing which it was (a restart lost the unit's limits)
    for fact, what in ((BootSeen(at=3.0), "the device restarted"), (LinkRestored(at=3.0), "the device reconnected")):
        kernel = armed_laser(LaserKernel)
        decisions = kernel.handle(fact)
        pauses = [d for d in decisions if isinstance(d, Pause)]
        assert pauses and pauses[0].hazard is Hazard.H15_DEVICE_RESET
        assert pauses[0].reason.startswith(f"{what}:"), pauses[0].reason
        assert kernel.paused is not None and kernel.paused.startswith(f"{what}:")


def test_reconfirm_after_a_first_link_loss_waits_for_the_limits_programmed_again() -> None:
    # H15: a fresh kernel has programmed nothing again: a pause after the first link loss cannot be
    # re-confirmed until the unit is back and its limits were read back
    kernel = idle_laser_session()
    assert has(kernel.handle(LinkLost("port closed", at=1.0)), Pause, Hazard.H14_LOST_INFORMATION)
    assert has(kernel.handle(Reconfirmed(Role.PRACTITIONER, at=2.0)), Refuse, Hazard.H15_DEVICE_RESET)
    assert kernel.paused
    assert has(arm(kernel, 2.5), Refuse, Hazard.H15_DEVICE_RESET)
    kernel.handle(LinkRestored(at=3.0))
    assert has(kernel.handle(Reconfirmed(Role.PRACTITIONER, at=3.5)), Refuse, Hazard.H15_DEVICE_RESET)
    kernel.handle(LimitsReprogrammed(at=4.0))
    assert kernel.handle(Reconfirmed(Role.PRACTITIONER, at=4.5)) == [] and kernel.paused is None


# ============================================================================ who may act, and when


def test_a_role_read_from_the_store_is_compared_by_value() -> None:
    # H20: the service passes the role it read for the user: an equal string, not the same object
    practitioner = as_read_from_the_store(Role.PRACTITIONER)
    laser = idle_laser_session()
    assert has(arm(laser, 1.0, practitioner), AllowArm)
    cryo = CryoKernel()
    cryo.handle(SessionOpened(CRYO_PLAN, at=0.0))
    assert has(cryo.handle(FreezeRequested(practitioner, 5.0, GOOD, CONTEXT, at=1.0)), AllowFreeze)
    # H15/H20: and it re-confirms a session paused by a restart
    laser.handle(BootSeen(at=2.0))
    laser.handle(LimitsReprogrammed(at=3.0))
    assert laser.handle(Reconfirmed(practitioner, at=4.0)) == [] and laser.paused is None


def test_a_permit_is_valid_by_value_past_256_arms() -> None:
    # H03 (docs H23): READY is written only under the current permit; a permit number read back
    # (an equal int, not the same object) stays valid past the numbers Python shares, and a STOP
    # revokes it
    kernel = idle_laser_session()
    for n in range(300):
        assert has(arm(kernel, 1.0 + n), AllowArm)
        kernel.handle(StopRequested("screen", at=1.5 + n))
    assert has(arm(kernel, 400.0), AllowArm)
    permit = kernel.permit
    assert permit is not None and permit > 256
    read_back = int(str(permit))
    assert read_back is not permit
    assert kernel.permit_valid(read_back)
    kernel.handle(StopRequested("screen", at=401.0))
    assert not kernel.permit_valid(read_back)


def laser_kernel_with_a_stop_rule(on: type, reason: str) -> LaserKernel:
    """A laser kernel with one more rule, which decides STOP (``reason``) on every ``on`` fact."""

    @rule(f"stop-on-every-{on.__name__}", Hazard.H03_UNCOMMANDED_EMISSION, on)
    def stop(kernel: Any, fact: Any) -> list[Decision]:
        return [Stop(reason, Hazard.H03_UNCOMMANDED_EMISSION)]

    stopping = type("StoppingLaserKernel", (LaserKernel,), {"RULES": LaserKernel.RULES + (stop,)})
    return stopping()  # type: ignore[no-any-return]


def test_a_stop_decided_beside_an_arm_permission_wins() -> None:
    # H03/H16: whatever rules decide on one fact, a STOP among them takes the arm permission away
    # (the other decisions stay, STOP first)
    kernel = laser_kernel_with_a_stop_rule(ArmRequested, "a rule stops on this request")
    kernel.handle(SessionOpened(LASER_PLAN, at=0.0))
    kernel.handle(SpotSeen(LASER_PLAN.spot_mm, at=0.1))
    decisions = arm(kernel, 1.0)
    assert isinstance(decisions[0], Stop)
    assert not has(decisions, AllowArm) and not kernel.armed and kernel.permit is None
    assert decisions[1:] == [Program("count_reset", 0), Program("pulse_limit", LASER_PLAN.pulse_budget)]


# ============================================================================ cryo


def test_an_unanswered_freeze_counts_its_worst_case_as_one_cycle() -> None:
    # H06: FREEZE written, never answered, no start seen: the unit may have frozen unseen for the
    # whole bound; that counts as exposure and as one cycle, and the skin must thaw after it
    kernel = CryoKernel()
    kernel.handle(SessionOpened(CRYO_PLAN, at=0.0))
    assert has(cryo_request(kernel, 10.0, 1.0), AllowFreeze)
    kernel.handle(FreezeUnanswered(11.5, at=3.0))
    assert kernel.cycles_done == 1 and abs(kernel.exposure_s - 11.5) < 1e-9
    too_soon = cryo_request(kernel, 10.0, 3.0 + CRYO_PLAN.thaw_min_s - 1)
    assert has(too_soon, Refuse, Hazard.H06_CUMULATIVE_COLD) and "thaw" in too_soon[0].reason  # type: ignore[union-attr]
    # the plan's second cycle is still there
    assert CRYO_PLAN.cycles == 2
    assert has(cryo_request(kernel, 10.0, 3.0 + CRYO_PLAN.thaw_min_s), AllowFreeze)
    kernel.handle(FreezeStartSeen(at=33.1))
    kernel.handle(FreezeEndSeen("timeout", 10.0, at=43.1))
    done = cryo_request(kernel, 5.0, 200.0)
    assert has(done, Refuse, Hazard.H06_CUMULATIVE_COLD) and "cycles" in done[0].reason  # type: ignore[union-attr]


def test_a_second_link_loss_needs_the_limits_programmed_again_before_a_reconfirm() -> None:
    # H14/H15: limits read back after one reconnect do not stand for the next: while the link is down
    # again nothing was programmed, so neither a re-confirm nor an arm is allowed
    kernel = idle_laser_session()
    kernel.handle(LinkLost("port closed", at=3.0))
    kernel.handle(LinkRestored(at=4.0))
    kernel.handle(LimitsReprogrammed(at=5.0))
    assert kernel.handle(Reconfirmed(Role.PRACTITIONER, at=6.0)) == []
    assert has(kernel.handle(LinkLost("port closed", at=7.0)), Pause, Hazard.H14_LOST_INFORMATION)
    assert has(kernel.handle(Reconfirmed(Role.PRACTITIONER, at=8.0)), Refuse, Hazard.H15_DEVICE_RESET)
    assert kernel.paused and not has(arm(kernel, 9.0), AllowArm)



def test_a_reconfirm_with_nothing_paused_is_refused_and_changes_nothing() -> None:
    # H15: re-confirming is the answer to a pause; without one there is nothing to confirm (and
    # nothing goes on the record as re-confirmed)
    kernel = idle_laser_session()
    refused = kernel.handle(Reconfirmed(Role.PRACTITIONER, at=1.0))
    assert has(refused, Refuse, Hazard.H15_DEVICE_RESET) and "not paused" in refused[0].reason  # type: ignore[union-attr]
    kernel.handle(BootSeen(at=2.0))
    kernel.handle(LimitsReprogrammed(at=3.0))
    assert kernel.handle(Reconfirmed(Role.PRACTITIONER, at=4.0)) == [] and kernel.paused is None
    again = kernel.handle(Reconfirmed(Role.PRACTITIONER, at=5.0))
    assert has(again, Refuse, Hazard.H15_DEVICE_RESET) and "not paused" in again[0].reason  # type: ignore[union-attr]


def test_one_stop_per_fact_however_many_rules_decide_it() -> None:
    # H03: the unit gets one STOP for one fact (the first rule's reason goes on the record); two rules
    # stopping on the same fact do not send it twice
    kernel = laser_kernel_with_a_stop_rule(StopRequested, "a second rule stops on this request")
    kernel.handle(SessionOpened(LASER_PLAN, at=0.0))
    decisions = kernel.handle(StopRequested("screen", at=1.0))
    stops = [d for d in decisions if isinstance(d, Stop)]
    assert len(stops) == 1 and stops[0].reason != "a second rule stops on this request"
