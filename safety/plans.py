"""Treatment plans: indication x skin type x sensitive skin x area (x inks) -> settings and caps.

``plan_treatment`` reads the protocol table (``protocols.toml``, data) and applies the rules the
clinical brief warns about, returning a plan with warnings, or a refusal a practitioner
understands. ``edit_plan`` lets a practitioner lower a plan; nothing can raise it above the
protocol's caps, and nothing anywhere exceeds the hard ceilings.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

from .hazards import Hazard

DEFAULT_TABLE = Path(__file__).with_name("protocols.toml")
SPOTS_MM = (2.0, 3.0, 4.0, 6.0, 8.0)
DEVICE_ENERGY_MIN_MJ = 10
DEVICE_EMAX_MJ = {1064: 1000, 532: 500}
OVERLAP = 1.2  # pulses per spot area: 20 % overlap


class Modality(str, Enum):
    LASER = "laser"
    CRYO = "cryo"


class Indication(str, Enum):
    PIGMENT_SPOT = "pigment_spot"
    AGE_SPOT = "age_spot"
    TATTOO = "tattoo"
    AGE_PIGMENTATION = "age_pigmentation"
    AGE_WART = "age_wart"
    MOLE = "mole"
    SCAR = "scar"
    MALIGNANT_LESION = "malignant_lesion"

    @property
    def modality(self) -> Modality:
        if self in (Indication.PIGMENT_SPOT, Indication.AGE_SPOT, Indication.TATTOO):
            return Modality.LASER
        return Modality.CRYO


class Ink(str, Enum):
    BLACK = "black"
    BLUE = "blue"
    RED = "red"
    PINK = "pink"
    WHITE = "white"
    SKIN_COLOURED = "skin_coloured"
    BROWN = "brown"
    GREEN = "green"
    YELLOW = "yellow"
    ORANGE = "orange"
    PURPLE = "purple"


#: inks that may hold iron oxide or titanium dioxide and darken at once (clinical reference)
IRON_OXIDE_INKS = frozenset({Ink.RED, Ink.PINK, Ink.WHITE, Ink.SKIN_COLOURED, Ink.BROWN})
#: inks treated at 1064 nm (the darkened oxide inks are black-brown: 1064 nm)
INKS_1064 = frozenset({Ink.BLACK, Ink.BLUE, Ink.WHITE, Ink.SKIN_COLOURED, Ink.BROWN})
INKS_532 = frozenset({Ink.RED, Ink.PINK})


class ProtocolTableError(ValueError):
    """The protocol table is malformed or exceeds a hard ceiling; the message names the key."""


@dataclass(frozen=True)
class PlanRequest:
    indication: Indication
    skin_type: int  # Fitzpatrick I-VI as 1-6
    sensitive_skin: bool
    area_cm2: float
    site: str
    inks: frozenset[Ink] = frozenset()


@dataclass(frozen=True)
class LaserPlan:
    indication: Indication
    protocol: str
    site: str
    wavelength_nm: int
    spot_mm: float
    energy_mj: int
    energy_cap_mj: int
    fluence_j_cm2: float
    fluence_cap_j_cm2: float
    rate_hz: float
    pulse_budget: int
    interval_days: int
    test_spot_required: bool
    warnings: tuple[str, ...] = ()
    rationale: str = ""
    modality: Modality = Modality.LASER


@dataclass(frozen=True)
class CryoPlan:
    indication: Indication
    protocol: str
    site: str
    target_c: int
    freeze_s: float
    freeze_cap_s: float
    cycles: int
    thaw_min_s: int
    total_exposure_cap_s: float
    area_cm2: float
    interval_days: int
    benign_assessment_required: bool
    warnings: tuple[str, ...] = ()
    rationale: str = ""
    modality: Modality = Modality.CRYO


@dataclass(frozen=True)
class PlanRefused:
    reason: str
    hazard: Hazard


Plan = LaserPlan | CryoPlan


def spot_area_cm2(spot_mm: float) -> float:
    return math.pi * (spot_mm / 20.0) ** 2


def fluence_j_cm2(energy_mj: float, spot_mm: float) -> float:
    """Fluence = energy / (pi (spot/2)^2), energy in J and spot in cm (laser.md)."""
    return (energy_mj / 1000.0) / spot_area_cm2(spot_mm)


def energy_for_fluence_mj(fluence: float, spot_mm: float) -> int:
    """The whole-mJ energy that stays at or under ``fluence`` with ``spot_mm``."""
    return math.floor(fluence * spot_area_cm2(spot_mm) * 1000.0 + 1e-9)


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class ProtocolTable:
    ceilings: Mapping[str, Any]
    laser: Mapping[str, Mapping[str, Any]]
    cryo: Mapping[str, Mapping[str, Any]]
    source: str = field(default="")


_LASER_KEYS = {"label", "wavelength_nm", "spot_mm", "fluence_j_cm2", "fluence_cap_j_cm2", "rate_hz", "max_pulses",
               "interval_days", "rationale"}
_CRYO_KEYS = {"label", "target_c", "freeze_s", "freeze_cap_s", "cycles", "thaw_min_s", "total_exposure_cap_s",
              "max_area_cm2", "interval_days", "rationale"}


#: the laser rows the planner looks up; where a rule fixes the wavelength, the table cannot move it
#: (a clinic's table putting skin types IV-VI or black ink on 532 nm is refused: H10, H19)
LASER_ROWS: dict[str, tuple[int, str] | None] = {
    "age_spot": None,
    "pigment_spot": None,
    "age_spot_dark": (1064, "skin types IV-VI are not treated at 532 nm"),
    "tattoo_dark_ink": (1064, "black, blue, white, skin-coloured and brown inks absorb 1064 nm"),
    "tattoo_red_ink": (532, "red and pink inks absorb 532 nm"),
}
CRYO_ROWS = frozenset({"age_pigmentation", "age_wart", "mole", "scar"})


def load_protocols(path: Path | str = DEFAULT_TABLE) -> ProtocolTable:
    """Read and check a protocol table; any value beyond a hard ceiling is refused by key."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProtocolTableError(f"{path}: {exc}") from exc
    try:
        ceilings = data["ceilings"]
        laser, cryo = data["laser"], data["cryo"]
    except KeyError as exc:
        raise ProtocolTableError(f"{path}: missing section [{exc.args[0]}]") from None
    for section, rows, needed in (("laser", laser, set(LASER_ROWS)), ("cryo", cryo, CRYO_ROWS)):
        if missing := sorted(needed - set(rows)):
            raise ProtocolTableError(f"{path}: missing {', '.join(f'[{section}.{k}]' for k in missing)}")
    for key, row in laser.items():
        _check_keys(f"laser.{key}", row, _LASER_KEYS)
        wl = row["wavelength_nm"]
        ceiling = ceilings["laser_fluence_j_cm2"].get(str(wl))
        if ceiling is None or wl not in DEVICE_EMAX_MJ:
            raise ProtocolTableError(f"laser.{key}.wavelength_nm: {wl} is not a wavelength of this laser")
        if (fixed := LASER_ROWS.get(key)) is not None and fixed[0] != wl:
            raise ProtocolTableError(f"laser.{key}.wavelength_nm: must be {fixed[0]} nm, not {wl} ({fixed[1]})")
        _at_most(f"laser.{key}.fluence_cap_j_cm2", row["fluence_cap_j_cm2"], ceiling)
        _at_most(f"laser.{key}.fluence_j_cm2", row["fluence_j_cm2"], row["fluence_cap_j_cm2"])
        _at_most(f"laser.{key}.rate_hz", row["rate_hz"], ceilings["laser_rate_hz"])
        _at_most(f"laser.{key}.max_pulses", row["max_pulses"], ceilings["laser_pulse_budget"])
        if row["spot_mm"] not in SPOTS_MM:
            raise ProtocolTableError(f"laser.{key}.spot_mm: {row['spot_mm']} is not a handpiece spot {SPOTS_MM}")
        if energy_for_fluence_mj(row["fluence_cap_j_cm2"], row["spot_mm"]) > DEVICE_EMAX_MJ[wl]:
            raise ProtocolTableError(f"laser.{key}.fluence_cap_j_cm2: needs more energy than the laser has")
        if energy_for_fluence_mj(row["fluence_j_cm2"], row["spot_mm"]) < DEVICE_ENERGY_MIN_MJ:
            raise ProtocolTableError(f"laser.{key}.fluence_j_cm2: below the laser's 10 mJ minimum at this spot")
    for key, row in cryo.items():
        _check_keys(f"cryo.{key}", row, _CRYO_KEYS)
        _at_most(f"cryo.{key}.freeze_cap_s", row["freeze_cap_s"], ceilings["cryo_freeze_s"])
        _at_most(f"cryo.{key}.freeze_s", row["freeze_s"], row["freeze_cap_s"])
        _at_most(f"cryo.{key}.cycles", row["cycles"], ceilings["cryo_cycles"])
        _at_most(f"cryo.{key}.total_exposure_cap_s", row["total_exposure_cap_s"], ceilings["cryo_total_exposure_s"])
        _at_most(f"cryo.{key}.max_area_cm2", row["max_area_cm2"], ceilings["cryo_area_cm2"])
        if row["target_c"] < ceilings["cryo_target_coldest_c"] or row["target_c"] > -20:
            raise ProtocolTableError(
                f"cryo.{key}.target_c: {row['target_c']} is outside {ceilings['cryo_target_coldest_c']}..-20 C"
            )
        if row["thaw_min_s"] < ceilings["cryo_thaw_min_s"]:
            raise ProtocolTableError(f"cryo.{key}.thaw_min_s: below the {ceilings['cryo_thaw_min_s']} s floor")
    return ProtocolTable(ceilings, laser, cryo, str(path))


def _check_keys(where: str, row: Mapping[str, Any], expected: set[str]) -> None:
    missing, extra = expected - set(row), set(row) - expected
    if missing:
        raise ProtocolTableError(f"{where}: missing {', '.join(sorted(missing))}")
    if extra:
        raise ProtocolTableError(f"{where}: unknown {', '.join(sorted(extra))}")


def _at_most(where: str, value: float, ceiling: float) -> None:
    if not isinstance(value, (int, float)) or value <= 0:
        raise ProtocolTableError(f"{where}: {value!r} must be a positive number")
    if value > ceiling:
        raise ProtocolTableError(f"{where}: {value} exceeds the hard ceiling {ceiling}")


# ----------------------------------------------------------------------------- planning


def plan_treatment(request: PlanRequest, table: ProtocolTable | None = None) -> Plan | PlanRefused:
    """A plan for ``request``, or the reason it must not be treated."""
    table = table or load_protocols()
    if not 1 <= request.skin_type <= 6:
        return PlanRefused("skin type must be Fitzpatrick I to VI", Hazard.H10_DARK_SKIN_INJURY)
    if not request.area_cm2 > 0:
        return PlanRefused("the treated area must be given in cm²", Hazard.H01_OVERTREATMENT)
    if request.indication is Indication.MALIGNANT_LESION:
        return PlanRefused(
            "malignant lesions are not treated with this product: refer to a physician",
            Hazard.H18_OUT_OF_SCOPE_LESION,
        )
    if request.indication.modality is Modality.LASER:
        return _laser_plan(request, table)
    return _cryo_plan(request, table)


def _laser_plan(request: PlanRequest, table: ProtocolTable) -> LaserPlan | PlanRefused:
    warnings: list[str] = []
    dark = request.skin_type >= 4
    test_spot = False
    if request.indication is Indication.TATTOO:
        inks = request.inks
        if not inks:
            return PlanRefused("name the tattoo's ink colours", Hazard.H19_UNSUITABLE_WAVELENGTH)
        unsuitable = sorted(i.value for i in inks - INKS_1064 - INKS_532)
        if unsuitable:
            return PlanRefused(
                f"{', '.join(unsuitable)} ink cannot be treated with 1064 or 532 nm: this laser has no suitable wavelength",
                Hazard.H19_UNSUITABLE_WAVELENGTH,
            )
        if inks & INKS_1064 and inks & INKS_532:
            return PlanRefused(
                "black, blue, white, skin-coloured or brown ink (1064 nm) and red or pink ink (532 nm) "
                "need separate treatments: plan them one at a time",
                Hazard.H19_UNSUITABLE_WAVELENGTH,
            )
        if inks & INKS_532 and dark:
            return PlanRefused(
                "red or pink ink needs 532 nm, which is avoided on skin types IV-VI (burns, pigment changes)",
                Hazard.H10_DARK_SKIN_INJURY,
            )
        key = "tattoo_red_ink" if inks & INKS_532 else "tattoo_dark_ink"
        if inks & IRON_OXIDE_INKS:
            test_spot = True
            warnings.append(
                "this ink may hold iron oxide or titanium dioxide and can darken at once: "
                "a test spot in a hidden area first, treatment only after its review 1-2 weeks later"
            )
        warnings.append("tattoos need several sessions, at least 8 weeks apart")
    elif dark:
        key = "age_spot_dark"
        warnings.append("skin type IV-VI: 1064 nm at low fluence with a larger spot; 532 nm is not used")
    else:
        key = request.indication.value
    row = table.laser[key]
    fluence_cap = float(row["fluence_cap_j_cm2"])
    fluence = float(row["fluence_j_cm2"])
    budget_cap = int(row["max_pulses"])
    if request.skin_type == 6:
        fluence_cap *= table.ceilings["dark_skin"]["type_vi_fluence_factor"]
        warnings.append("very dark skin rarely gets minor burns: fluence lowered; check the skin after the first pulses")
    if request.skin_type == 3 and row["wavelength_nm"] == 532:
        warnings.append("skin type III: treat only to slight immediate whitening (less post-inflammatory hyperpigmentation)")
    if request.sensitive_skin:
        factors = table.ceilings["sensitive_skin"]
        fluence_cap *= factors["fluence_factor"]
        budget_cap = max(1, math.floor(budget_cap * factors["budget_factor"]))
        warnings.append("sensitive skin can scar: lower caps; stop at any sign of blistering")
    fluence = min(fluence, fluence_cap)
    spot = float(row["spot_mm"])
    energy_cap = energy_for_fluence_mj(fluence_cap, spot)
    energy = min(energy_for_fluence_mj(fluence, spot), energy_cap)
    pulses_needed = math.ceil(request.area_cm2 / spot_area_cm2(spot) * OVERLAP)
    budget = min(pulses_needed, budget_cap)
    if pulses_needed > budget_cap:
        warnings.append(
            f"the area needs about {pulses_needed} pulses; one session allows {budget_cap}: treat the rest in a later session"
        )
    warnings.append("each pulse feels like a needle prick; longer treatments irritate more")
    return LaserPlan(
        indication=request.indication,
        protocol=key,
        site=request.site,
        wavelength_nm=int(row["wavelength_nm"]),
        spot_mm=spot,
        energy_mj=energy,
        energy_cap_mj=energy_cap,
        fluence_j_cm2=round(fluence_j_cm2(energy, spot), 2),
        fluence_cap_j_cm2=round(fluence_cap, 2),
        rate_hz=float(row["rate_hz"]),
        pulse_budget=budget,
        interval_days=int(row["interval_days"]),
        test_spot_required=test_spot,
        warnings=tuple(warnings),
        rationale=str(row["rationale"]),
    )


def _cryo_plan(request: PlanRequest, table: ProtocolTable) -> CryoPlan | PlanRefused:
    key = request.indication.value
    row = table.cryo[key]
    warnings: list[str] = []
    if request.inks:
        return PlanRefused("ink colours apply to laser tattoo removal only", Hazard.H19_UNSUITABLE_WAVELENGTH)
    if request.area_cm2 > row["max_area_cm2"]:
        return PlanRefused(
            f"cryo treats only small areas: {row['label']} at most {row['max_area_cm2']} cm² per session "
            f"({request.area_cm2} cm² asked); treat a larger area in several sessions or another way",
            Hazard.H17_LARGE_AREA_CRYO,
        )
    freeze_cap = float(row["freeze_cap_s"])
    if request.sensitive_skin:
        freeze_cap = round(freeze_cap * table.ceilings["sensitive_skin"]["freeze_factor"], 1)
        warnings.append("sensitive skin can scar: shorter freezes")
    if request.skin_type >= 4:
        warnings.append("darker skin: cold can leave light (hypopigmented) patches; keep freezes short")
    benign = request.indication is Indication.MOLE
    if benign:
        warnings.append("only a mole assessed as benign by a physician may be treated")
    warnings.append("a blister may form; scales fall off in 2-3 weeks; several sessions may be needed")
    return CryoPlan(
        indication=request.indication,
        protocol=key,
        site=request.site,
        target_c=int(row["target_c"]),
        freeze_s=min(float(row["freeze_s"]), freeze_cap),
        freeze_cap_s=freeze_cap,
        cycles=int(row["cycles"]),
        thaw_min_s=int(row["thaw_min_s"]),
        total_exposure_cap_s=float(row["total_exposure_cap_s"]),
        area_cm2=request.area_cm2,
        interval_days=int(row["interval_days"]),
        benign_assessment_required=benign,
        warnings=tuple(warnings),
        rationale=str(row["rationale"]),
    )


# ----------------------------------------------------------------------------- courses

#: A tattoo course raises fluence step by step: a session may go at most this factor above the last
#: session's fluence on the same site (and never above the plan's cap). The literature gives the
#: ceiling (up to 10 J/cm² at 1064 nm over up to 9 sessions, clinical-reference.md) but not the step;
#: 1.25 reaches the dark-ink cap from the default in three sessions. A product rule (H02).
COURSE_STEP = 1.25


def continue_course(plan: LaserPlan, last: LaserPlan) -> LaserPlan:
    """The next session of a tattoo course on the same site: it starts from the last session's
    energy and may be raised (``edit_plan``) by one step at most. Other plans, or a course whose
    protocol or spot changed (another ink, darker skin), are returned as they are."""
    if not plan.protocol.startswith("tattoo") or last.protocol != plan.protocol or last.spot_mm != plan.spot_mm:
        return plan
    step_fluence = min(plan.fluence_cap_j_cm2, last.fluence_j_cm2 * COURSE_STEP)
    energy_cap = max(DEVICE_ENERGY_MIN_MJ, min(plan.energy_cap_mj, energy_for_fluence_mj(step_fluence, plan.spot_mm)))
    energy = max(DEVICE_ENERGY_MIN_MJ, min(last.energy_mj, energy_cap))
    return replace(
        plan, energy_mj=energy, energy_cap_mj=energy_cap, fluence_j_cm2=round(fluence_j_cm2(energy, plan.spot_mm), 2),
        fluence_cap_j_cm2=round(fluence_j_cm2(energy_cap, plan.spot_mm), 2),
        warnings=(*plan.warnings, (f"next session of a course on this site: starts from the last session's "
                                   f"{last.fluence_j_cm2} J/cm²; at most "
                                   f"{round(fluence_j_cm2(energy_cap, plan.spot_mm), 2)} J/cm² this session (one step)")),
    )


# ----------------------------------------------------------------------------- edits

_LASER_EDITABLE = {"energy_mj", "rate_hz", "pulse_budget"}
_CRYO_EDITABLE = {"freeze_s", "cycles", "target_c"}


def edit_plan(plan: Plan, **changes: float) -> Plan | PlanRefused:
    """A practitioner's change to a plan: only within the plan's own caps (lowering is always
    possible; raising above a cap, and so above a hard ceiling, is refused)."""
    if isinstance(plan, LaserPlan):
        unknown = set(changes) - _LASER_EDITABLE
        if unknown:
            return PlanRefused(f"cannot edit {', '.join(sorted(unknown))} of a laser plan", Hazard.H02_EXCESS_ENERGY)
        energy = int(changes.get("energy_mj", plan.energy_mj))
        if not DEVICE_ENERGY_MIN_MJ <= energy <= plan.energy_cap_mj:
            return PlanRefused(
                f"energy must be {DEVICE_ENERGY_MIN_MJ}-{plan.energy_cap_mj} mJ "
                f"(fluence cap {plan.fluence_cap_j_cm2} J/cm² with the {plan.spot_mm} mm spot)",
                Hazard.H02_EXCESS_ENERGY,
            )
        rate = float(changes.get("rate_hz", plan.rate_hz))
        if not 0.5 <= rate <= plan.rate_hz:
            return PlanRefused(f"rate must be 0.5-{plan.rate_hz} Hz", Hazard.H01_OVERTREATMENT)
        budget = int(changes.get("pulse_budget", plan.pulse_budget))
        if not 1 <= budget <= plan.pulse_budget:
            return PlanRefused(f"pulse budget must be 1-{plan.pulse_budget}", Hazard.H01_OVERTREATMENT)
        return replace(plan, energy_mj=energy, fluence_j_cm2=round(fluence_j_cm2(energy, plan.spot_mm), 2),
                       rate_hz=rate, pulse_budget=budget)
    unknown = set(changes) - _CRYO_EDITABLE
    if unknown:
        return PlanRefused(f"cannot edit {', '.join(sorted(unknown))} of a cryo plan", Hazard.H05_OVERFREEZING)
    freeze = float(changes.get("freeze_s", plan.freeze_s))
    if not 0.5 <= freeze <= plan.freeze_cap_s:
        return PlanRefused(f"freeze time must be 0.5-{plan.freeze_cap_s} s per cycle", Hazard.H05_OVERFREEZING)
    cycles = int(changes.get("cycles", plan.cycles))
    if not 1 <= cycles <= plan.cycles:
        return PlanRefused(f"cycles must be 1-{plan.cycles}", Hazard.H06_CUMULATIVE_COLD)
    target = int(changes.get("target_c", plan.target_c))
    if not plan.target_c <= target <= -20:
        return PlanRefused(f"target must be {plan.target_c}..-20 °C", Hazard.H05_OVERFREEZING)
    return replace(plan, freeze_s=freeze, cycles=cycles, target_c=target)
