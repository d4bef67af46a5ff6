"""Runtime monitors of a laser session (defense in depth beside the unit's own limits).

The unit is programmed with the plan's energy cap and the remaining pulse budget, AND the kernel
counts every PULSE itself and checks each pulse's energy and fluence: it decides STOP before the
unit's own F02 (three deviating pulses) or budget could.
"""

from __future__ import annotations

import math
from typing import ClassVar

from .checklist import open_items
from .decisions import AllowArm, Decision, Lockout, Program, Refuse, Stop
from .facts import (
    ArmRequested,
    DeviceStateSeen,
    LaserInputsSeen,
    PulseSeen,
    PulsesUnseen,
    SessionOpened,
    SpotSeen,
)
from .hazards import Hazard
from .kernel import SHARED_RULES, KernelBase, rule
from .plans import LaserPlan, fluence_j_cm2

ENERGY_TOLERANCE = 0.20  # the regulatory +-20 % of delivered energy
#: pulses still in flight when a stop was decided are counted but not "uncommanded"
STOP_GRACE_S = 0.25
ARMED_STATES = ("CHARGING", "READY", "EMITTING")
SAFE_CAUSES = {"interlock": Hazard.H04_EYE_EXPOSURE, "key": Hazard.H04_EYE_EXPOSURE, "estop": Hazard.H16_FAULT_REARM}


class LaserKernel(KernelBase):
    SILENCE_S: ClassVar[float] = 2.5  # TEMP arrives once a second
    SAFE_STATES: ClassVar[tuple[str, ...]] = ("STANDBY", "FAULT")

    def __init__(self) -> None:
        super().__init__()
        self.pulses = 0
        self.monitor_correction = 1.0
        self.spot_mm: float | None = None
        self.disarmed_at = float("-inf")

    @property
    def laser_plan(self) -> LaserPlan:
        assert isinstance(self.plan, LaserPlan)
        return self.plan

    @property
    def remaining(self) -> int:
        return max(0, self.laser_plan.pulse_budget - self.pulses) if self.plan else 0

    def limits(self) -> list[Decision]:
        """Every limit the unit must hold for this session (after power-on it holds none)."""
        if self.plan is None:
            return []
        plan = self.laser_plan
        return [
            Program("wavelength_nm", plan.wavelength_nm),
            Program("energy_limit_mj", plan.energy_cap_mj),
            Program("energy_mj", plan.energy_mj),
            Program("rate_hz", plan.rate_hz),
            Program("count_reset", 0),
            Program("pulse_limit", self.remaining),
        ]

    def _observe(self, fact: object) -> None:
        super()._observe(fact)
        if isinstance(fact, SessionOpened):
            self.pulses = 0
            self.monitor_correction = fact.monitor_correction
        elif isinstance(fact, PulseSeen):
            self.pulses += 1
        elif isinstance(fact, PulsesUnseen):
            self.pulses += fact.count
        elif isinstance(fact, SpotSeen):
            self.spot_mm = fact.spot_mm

    def _apply(self, decisions: list[Decision]) -> None:
        was_armed = self.armed
        super()._apply(decisions)
        if was_armed and not self.armed:
            self.disarmed_at = self.fact_at


@rule("session-programs-limits", Hazard.H01_OVERTREATMENT, SessionOpened)
def program_limits(kernel: LaserKernel, fact: SessionOpened) -> list[Decision]:
    if not isinstance(fact.plan, LaserPlan):
        return [Refuse("a laser kernel needs a laser plan", Hazard.H19_UNSUITABLE_WAVELENGTH)]
    return [Stop("session opened: the laser starts safe", Hazard.H03_UNCOMMANDED_EMISSION)] + kernel.limits()


@rule("arm-gates", Hazard.H07_WRONG_PATIENT_OR_CONSENT, ArmRequested)
def arm_gates(kernel: LaserKernel, fact: ArmRequested) -> list[Decision]:
    """Arming only on a practitioner's request, every checklist item closed, budget left, and the
    handpiece's fluence within the cap."""
    refusal = kernel.gate(fact.role)
    if refusal:
        return refusal
    if kernel.armed:
        return []  # already armed under a permit: a second tap changes nothing
    plan = kernel.laser_plan
    items = open_items(plan, fact.answers, fact.context)
    if items:
        return [Refuse("; ".join(i.reason for i in items), items[0].hazard)]
    if kernel.remaining <= 0:
        return [Refuse("the session's pulse budget is spent", Hazard.H01_OVERTREATMENT)]
    if kernel.spot_mm is None:
        return [Refuse("the handpiece's spot size is not known yet", Hazard.H02_EXCESS_ENERGY)]
    fluence = fluence_j_cm2(plan.energy_mj, kernel.spot_mm)
    if fluence > plan.fluence_cap_j_cm2 + 1e-9:
        return [
            Refuse(
                f"with the {kernel.spot_mm} mm handpiece {plan.energy_mj} mJ is {fluence:.1f} J/cm², above the plan's "
                f"{plan.fluence_cap_j_cm2} J/cm²: fit the {plan.spot_mm} mm handpiece",
                Hazard.H02_EXCESS_ENERGY,
            )
        ]
    # the unit counts from its last COUNT RESET (laser.md): reset, then allow what is left
    return [Program("count_reset", 0), Program("pulse_limit", kernel.remaining), AllowArm()]


@rule("pulse-budget", Hazard.H01_OVERTREATMENT, PulseSeen)
def pulse_budget(kernel: LaserKernel, fact: PulseSeen) -> list[Decision]:
    if kernel.plan is None:
        return []
    budget = kernel.laser_plan.pulse_budget
    if kernel.pulses > budget:
        reason = f"pulse {kernel.pulses} is beyond the plan's budget of {budget}"
        return [Stop(reason, Hazard.H01_OVERTREATMENT), Lockout(reason, Hazard.H01_OVERTREATMENT)]
    if kernel.pulses == budget:
        return [Stop(f"pulse budget of {budget} reached", Hazard.H01_OVERTREATMENT)]
    return []


@rule("unseen-pulses-lock", Hazard.H14_LOST_INFORMATION, PulsesUnseen)
def unseen_pulses(kernel: LaserKernel, fact: PulsesUnseen) -> list[Decision]:
    """Pulses the unit fired that the host never saw: counted, and nothing arms until a person
    has looked at what happened."""
    if fact.count == 0:
        return []
    if fact.count < 0:
        reason = f"the unit reports {-fact.count} pulses fewer than the host counted: its counter cannot be trusted"
    else:
        reason = f"{fact.count} pulses fired that the host did not see (now counted against the budget)"
    return [Stop(reason, Hazard.H14_LOST_INFORMATION), Lockout(reason, Hazard.H14_LOST_INFORMATION)]


@rule("uncommanded-emission", Hazard.H03_UNCOMMANDED_EMISSION, PulseSeen)
def uncommanded_pulse(kernel: LaserKernel, fact: PulseSeen) -> list[Decision]:
    if kernel.armed:
        return []
    if fact.at - kernel.disarmed_at <= STOP_GRACE_S:  # also the closing session's last STOP
        return [Stop("pulse after stop (still in flight)", Hazard.H03_UNCOMMANDED_EMISSION)]
    reason = f"pulse {fact.n} while no emission was expected"
    return [Stop(reason, Hazard.H03_UNCOMMANDED_EMISSION), Lockout(reason, Hazard.H03_UNCOMMANDED_EMISSION)]


@rule("pulse-energy", Hazard.H02_EXCESS_ENERGY, PulseSeen)
def pulse_energy(kernel: LaserKernel, fact: PulseSeen) -> list[Decision]:
    """Each pulse: corrected energy within the cap, within +-20 % of the setting, at the planned
    setting, and its fluence with the fitted spot within the plan's fluence cap."""
    if kernel.plan is None:
        return []
    plan = kernel.laser_plan
    energy = fact.energy_mj * kernel.monitor_correction
    if not math.isfinite(energy):
        reason = f"pulse {fact.n}: the energy reading {fact.energy_mj} x {kernel.monitor_correction} is not a number"
        return [Stop(reason, Hazard.H02_EXCESS_ENERGY), Lockout(reason, Hazard.H02_EXCESS_ENERGY)]
    problems = []
    if fact.set_mj != plan.energy_mj:
        problems.append(f"the unit fired at {fact.set_mj} mJ, the plan says {plan.energy_mj} mJ")
    if energy > plan.energy_cap_mj:
        problems.append(f"{energy:.1f} mJ is above the cap of {plan.energy_cap_mj} mJ")
    if abs(energy - plan.energy_mj) > ENERGY_TOLERANCE * plan.energy_mj:
        problems.append(f"{energy:.1f} mJ deviates more than 20 % from {plan.energy_mj} mJ")
    if kernel.spot_mm is not None and fluence_j_cm2(energy, kernel.spot_mm) > plan.fluence_cap_j_cm2 * (1 + ENERGY_TOLERANCE):
        problems.append(f"fluence {fluence_j_cm2(energy, kernel.spot_mm):.1f} J/cm² is above the plan's cap")
    if not problems:
        return []
    reason = f"pulse {fact.n}: " + "; ".join(problems)
    return [Stop(reason, Hazard.H02_EXCESS_ENERGY), Lockout(reason, Hazard.H02_EXCESS_ENERGY)]


@rule("unsafe-input-stops", Hazard.H04_EYE_EXPOSURE, LaserInputsSeen)
def unsafe_inputs(kernel: LaserKernel, fact: LaserInputsSeen) -> list[Decision]:
    """Door interlock open, key off or estop pressed: safe state; arming needs a new request."""
    if not fact.interlock:
        return [Stop("the interlock (door) opened", Hazard.H04_EYE_EXPOSURE)]
    if not fact.key:
        return [Stop("the key switch was turned off", Hazard.H04_EYE_EXPOSURE)]
    if fact.estop:
        return [Stop("emergency stop pressed", Hazard.H16_FAULT_REARM)]
    return []


@rule("device-state-watch", Hazard.H03_UNCOMMANDED_EMISSION, DeviceStateSeen)
def state_watch(kernel: LaserKernel, fact: DeviceStateSeen) -> list[Decision]:
    """The unit arming without permission is uncommanded; the unit leaving READY/EMITTING for
    any reason ends the permission (a new request is needed)."""
    if fact.state in ARMED_STATES and not kernel.armed:
        if fact.at - kernel.disarmed_at <= STOP_GRACE_S:
            return [Stop(f"the laser reported {fact.state} after a stop (still in flight)", Hazard.H03_UNCOMMANDED_EMISSION)]
        reason = f"the laser went {fact.state} without a practitioner arming it"
        return [Stop(reason, Hazard.H03_UNCOMMANDED_EMISSION), Lockout(reason, Hazard.H03_UNCOMMANDED_EMISSION)]
    if fact.state not in ARMED_STATES and kernel.armed:
        hazard = SAFE_CAUSES.get(fact.cause, Hazard.H16_FAULT_REARM)
        return [Stop(f"the laser went {fact.state} ({fact.cause})", hazard)]
    return []


@rule("spot-change-guard", Hazard.H02_EXCESS_ENERGY, SpotSeen)
def spot_guard(kernel: LaserKernel, fact: SpotSeen) -> list[Decision]:
    if kernel.plan is None or not kernel.armed:
        return []
    fluence = fluence_j_cm2(kernel.laser_plan.energy_mj, fact.spot_mm)
    if fluence > kernel.laser_plan.fluence_cap_j_cm2 + 1e-9:
        return [Stop(f"handpiece changed to {fact.spot_mm} mm: {fluence:.1f} J/cm² is above the cap", Hazard.H02_EXCESS_ENERGY)]
    return []


LaserKernel.RULES = SHARED_RULES + (
    program_limits, arm_gates, pulse_budget, unseen_pulses, uncommanded_pulse, pulse_energy, unsafe_inputs, state_watch, spot_guard,
)
