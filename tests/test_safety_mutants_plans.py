"""Treatment plans at their edges: the protocol table's limits, each edit bound, the tattoo course
step and the precision of the figures a practitioner reads.

Each test pins one boundary the plan rules depend on (handpiece spots, the laser's energy range,
the tip target range, cap inclusivity, the course step) with explicit values from the protocol
table, the laser ICD and the clinical reference.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from safety.hazards import Hazard
from safety.plans import (
    DEFAULT_TABLE,
    SPOTS_MM,
    CryoPlan,
    Indication,
    Ink,
    LaserPlan,
    Modality,
    PlanRefused,
    PlanRequest,
    ProtocolTable,
    ProtocolTableError,
    continue_course,
    edit_plan,
    energy_for_fluence_mj,
    fluence_j_cm2,
    load_protocols,
    plan_treatment,
)
from tests.safety_scenarios import table_with

TABLE = load_protocols()


def plan(indication: Indication, skin: int = 2, sensitive: bool = False, area: float = 1.0,
         inks: set[Ink] | None = None, table: ProtocolTable = TABLE) -> Any:
    return plan_treatment(PlanRequest(indication, skin, sensitive, area, "arm", frozenset(inks or ())), table)


def black_tattoo(table: ProtocolTable = TABLE) -> LaserPlan:
    result = plan(Indication.TATTOO, inks={Ink.BLACK}, area=2.0, table=table)
    assert isinstance(result, LaserPlan)
    return result


def lowered(laser: LaserPlan, energy_mj: int) -> LaserPlan:
    result = edit_plan(laser, energy_mj=energy_mj)
    assert isinstance(result, LaserPlan), result
    return result


def read_back(laser: LaserPlan) -> LaserPlan:
    """The plan as the session records give it back (JSON): the same values, new objects."""
    data = json.loads(json.dumps(dataclasses.asdict(laser)))
    return LaserPlan(**{**data, "indication": Indication(data["indication"]), "modality": Modality(data["modality"]),
                        "warnings": tuple(data["warnings"])})


def cryo(indication: Indication, area: float = 1.0) -> CryoPlan:
    result = plan(indication, area=area)
    assert isinstance(result, CryoPlan), result
    return result


def refused(result: object, hazard: Hazard) -> bool:
    return isinstance(result, PlanRefused) and result.hazard is hazard


# ----------------------------------------------------------------------------- the protocol table


@pytest.mark.parametrize(("spot", "cap"), [(6.0, 2.0), (8.0, 1.9)])
def test_table_accepts_the_6_and_8_mm_handpieces(tmp_path: Path, spot: float, cap: float) -> None:
    """H10: darker skin is treated with a larger spot; the ICD's 6 and 8 mm handpieces must be usable."""
    table = load_protocols(table_with(tmp_path, "laser.age_spot_dark", spot_mm=spot, fluence_cap_j_cm2=cap))
    dark = plan(Indication.AGE_SPOT, skin=5, table=table)
    assert isinstance(dark, LaserPlan) and dark.spot_mm == spot and spot in SPOTS_MM


def test_table_refuses_a_spot_no_handpiece_has(tmp_path: Path) -> None:
    """H02: fluence is computed from the spot; a 7 mm spot does not exist, so its fluence would be wrong."""
    with pytest.raises(ProtocolTableError, match=r"laser\.age_spot_dark\.spot_mm: 7\.0 is not a handpiece spot"):
        load_protocols(table_with(tmp_path, "laser.age_spot_dark", spot_mm=7.0))


@pytest.mark.parametrize(
    ("section", "cap", "energy_mj", "loads"),
    [
        ("laser.age_spot_dark", 7.958, 1000, True),  # 1064 nm: up to the laser's 1000 mJ
        ("laser.age_spot_dark", 7.966, 1001, False),
        ("laser.age_spot", 3.979, 500, True),  # 532 nm (frequency doubled): up to 500 mJ
        ("laser.age_spot", 3.987, 501, False),
    ],
)
def test_a_fluence_cap_may_use_the_lasers_full_energy_and_no_more(
    tmp_path: Path, section: str, cap: float, energy_mj: int, loads: bool
) -> None:
    """H02: a cap the laser cannot reach (above 1000 mJ at 1064 nm, 500 mJ at 532 nm on the 4 mm spot) is
    refused by key; the full energy itself is allowed."""
    assert energy_for_fluence_mj(cap, 4.0) == energy_mj
    path = table_with(tmp_path, section, spot_mm=4.0, fluence_cap_j_cm2=cap)
    if loads:
        assert load_protocols(path).laser[section.split(".")[1]]["fluence_cap_j_cm2"] == cap
    else:
        with pytest.raises(ProtocolTableError, match=rf"{section}\.fluence_cap_j_cm2: needs more energy"):
            load_protocols(path)


def test_a_default_fluence_may_need_the_lasers_10_mj_minimum_but_not_less(tmp_path: Path) -> None:
    """H12: the laser cannot fire below 10 mJ; a default that needs 9 mJ would not be delivered as planned."""
    table = load_protocols(table_with(tmp_path, "laser.age_spot", fluence_j_cm2=0.32))  # 10 mJ on 2 mm
    spots = plan(Indication.AGE_SPOT, table=table)
    assert isinstance(spots, LaserPlan) and spots.energy_mj == 10
    with pytest.raises(ProtocolTableError, match=r"laser\.age_spot\.fluence_j_cm2: below the laser's 10 mJ minimum"):
        load_protocols(table_with(tmp_path, "laser.age_spot", fluence_j_cm2=0.30))  # 9 mJ


def test_a_table_missing_a_section_is_refused_naming_it(tmp_path: Path) -> None:
    """H05: a table without its cryo rows cannot be checked against the freeze ceilings: refused, named."""
    text = DEFAULT_TABLE.read_text()
    path = tmp_path / "protocols.toml"
    path.write_text(text[: text.index("[cryo.")])
    with pytest.raises(ProtocolTableError, match=r"missing section \[cryo\]"):
        load_protocols(path)


@pytest.mark.parametrize("target", [-60, -20])
def test_cryo_tip_target_may_be_set_from_the_coldest_ceiling_to_minus_20(tmp_path: Path, target: int) -> None:
    """H05: the tip target range is the table's coldest (-60 °C) to -20 °C, both ends included."""
    table = load_protocols(table_with(tmp_path, "cryo.mole", target_c=target))
    mole = plan(Indication.MOLE, area=0.5, table=table)
    assert isinstance(mole, CryoPlan) and mole.target_c == target


@pytest.mark.parametrize("target", [-61, -19, -10])
def test_cryo_tip_target_outside_the_range_is_refused(tmp_path: Path, target: int) -> None:
    """H05: colder than the ceiling over-freezes; warmer than -20 °C is not the freeze the protocol means."""
    with pytest.raises(ProtocolTableError, match=rf"cryo\.mole\.target_c: {target} is outside -60\.\.-20 C"):
        load_protocols(table_with(tmp_path, "cryo.mole", target_c=target))


@pytest.mark.parametrize("value", [0, 0.0, -0.5, -3.0, "3"])
def test_a_freeze_time_must_be_a_positive_number(tmp_path: Path, value: Any) -> None:
    """H05: a zero, negative or text freeze time is no protocol at all: refused naming the key."""
    with pytest.raises(ProtocolTableError, match=r"cryo\.mole\.freeze_s: .* must be a positive number"):
        load_protocols(table_with(tmp_path, "cryo.mole", freeze_s=value))


# ----------------------------------------------------------------------------- laser plans


@pytest.mark.parametrize("indication", [Indication.AGE_SPOT, Indication.AGE_WART])
def test_a_negative_area_is_refused(indication: Indication) -> None:
    """H01: the pulse budget and the cryo area check need a real treated area; a negative one is refused."""
    result = plan(indication, area=-1.0)
    assert refused(result, Hazard.H01_OVERTREATMENT) and "area" in result.reason


def test_sensitive_skin_keeps_one_pulse_on_a_one_pulse_protocol(tmp_path: Path) -> None:
    """H11/H01: sensitive skin lowers the budget (x 0.75) but a one-pulse row (a test spot) keeps one pulse:
    never zero, and never more than the row allows."""
    table = load_protocols(table_with(tmp_path, "laser.tattoo_dark_ink", max_pulses=1))
    normal = plan(Indication.TATTOO, inks={Ink.BLACK}, table=table)
    sensitive = plan(Indication.TATTOO, sensitive=True, inks={Ink.BLACK}, table=table)
    assert isinstance(normal, LaserPlan) and isinstance(sensitive, LaserPlan)
    assert normal.pulse_budget == sensitive.pulse_budget == 1
    assert any("one session allows 1:" in w for w in sensitive.warnings)


def test_plan_fluences_are_stated_to_a_hundredth_of_a_j_per_cm2(tmp_path: Path) -> None:
    """H02: the fluence and cap shown are the delivered energy's fluence and the lowered cap, to 0.01 J/cm²."""
    tattoo = black_tattoo()
    assert (tattoo.energy_mj, tattoo.spot_mm, tattoo.fluence_j_cm2) == (282, 3.0, 3.99)  # 282 mJ on 3 mm: 3.989
    table = load_protocols(table_with(tmp_path, "laser.age_spot", fluence_cap_j_cm2=3.33))
    sensitive = plan(Indication.AGE_SPOT, sensitive=True, table=table)
    assert isinstance(sensitive, LaserPlan)
    assert sensitive.fluence_cap_j_cm2 == 2.66  # 3.33 x 0.8 = 2.664
    assert (sensitive.energy_mj, sensitive.fluence_j_cm2) == (78, 2.48)


def test_an_energy_setting_converts_to_fluence_and_back_to_the_same_setting() -> None:
    """H02: the energy cap is computed from a fluence cap; a cap that is exactly a setting's fluence
    allows that setting, not 1 mJ less (every whole-mJ setting of the laser, every handpiece)."""
    for spot in SPOTS_MM:
        for energy in range(10, 1001):
            assert energy_for_fluence_mj(fluence_j_cm2(energy, spot), spot) == energy, (energy, spot)


# ----------------------------------------------------------------------------- cryo plans


def test_cryo_treats_an_area_up_to_and_including_the_rows_maximum() -> None:
    """H17: a mole row allows 1.0 cm² per session: exactly 1.0 cm² is planned, more is refused."""
    assert cryo(Indication.MOLE, area=1.0).area_cm2 == 1.0
    assert refused(plan(Indication.MOLE, area=1.01), Hazard.H17_LARGE_AREA_CRYO)


def test_only_a_mole_plan_asks_for_the_physicians_benign_assessment() -> None:
    """H18: a mole is treated only after a physician assessed it benign; the plan says so, other lesions don't."""
    mole, wart = cryo(Indication.MOLE, area=0.5), cryo(Indication.AGE_WART)
    assert mole.benign_assessment_required and any("assessed as benign" in w for w in mole.warnings)
    assert not wart.benign_assessment_required and not any("benign" in w for w in wart.warnings)
    for other in (Indication.SCAR, Indication.AGE_PIGMENTATION):  # sorted after and before "mole"
        lesion = cryo(other)
        assert not lesion.benign_assessment_required and not any("benign" in w for w in lesion.warnings), other


def test_an_area_one_session_covers_is_not_told_to_come_back() -> None:
    """H01: the "treat the rest in a later session" warning is for areas beyond one session's budget only."""
    small = plan(Indication.AGE_SPOT, area=1.0)
    assert isinstance(small, LaserPlan) and small.pulse_budget < 300
    assert not any("later session" in w for w in small.warnings)


def test_a_clinic_may_add_a_row_of_its_own_beside_the_ones_the_planner_needs(tmp_path: Path) -> None:
    """A table with an extra, valid row loads; only a missing row the planner looks up is refused."""
    text = DEFAULT_TABLE.read_text()
    start = text.index("[laser.age_spot]")
    row = text[start:text.index("\n[", start + 1) + 1]
    path = tmp_path / "protocols.toml"
    path.write_text(text + "\n" + row.replace("[laser.age_spot]", "[laser.age_spot_clinic]", 1))
    assert "age_spot_clinic" in load_protocols(path).laser


# ----------------------------------------------------------------------------- tattoo courses


def test_a_course_rises_at_most_25_percent_above_the_last_session() -> None:
    """H02: last session 100 mJ on 3 mm (1.41 J/cm²): this session at most 1.41 x 1.25 = 1.76 J/cm²,
    i.e. 124 mJ (1.75 J/cm²), starting again from 100 mJ."""
    course = continue_course(black_tattoo(), lowered(black_tattoo(), 100))
    assert (course.energy_mj, course.energy_cap_mj) == (100, 124)
    assert (course.fluence_j_cm2, course.fluence_cap_j_cm2) == (1.41, 1.75)
    assert course.warnings[-1] == ("next session of a course on this site: starts from the last session's 1.41 J/cm²; "
                                   "at most 1.75 J/cm² this session (one step)")
    assert isinstance(edit_plan(course, energy_mj=125), PlanRefused)


def test_a_course_continues_from_a_last_session_read_back_from_the_records() -> None:
    """H02: the last session comes back from the records as new objects with equal values; the course step
    still applies (otherwise today's default would jump from 100 to 282 mJ)."""
    course = continue_course(black_tattoo(), read_back(lowered(black_tattoo(), 100)))
    assert (course.energy_mj, course.energy_cap_mj) == (100, 124)


def test_another_ink_starts_a_new_course() -> None:
    """H19/H02: a black-ink course says nothing about red ink at 532 nm, and back: the fresh plan stands."""
    red = plan(Indication.TATTOO, inks={Ink.RED}, area=2.0)
    assert isinstance(red, LaserPlan) and red.spot_mm == black_tattoo().spot_mm
    assert continue_course(red, lowered(black_tattoo(), 100)) == red
    assert continue_course(black_tattoo(), lowered(red, 50)) == black_tattoo()


def test_another_handpiece_starts_a_new_course(tmp_path: Path) -> None:
    """H02: the same energy on another spot is another fluence; after the clinic moved the row to the 2 mm
    handpiece (or back) the last session's energy is not carried over."""
    two_mm = black_tattoo(load_protocols(table_with(tmp_path, "laser.tattoo_dark_ink", spot_mm=2.0)))
    assert two_mm.spot_mm == 2.0
    assert continue_course(two_mm, lowered(black_tattoo(), 100)) == two_mm
    assert continue_course(black_tattoo(), lowered(two_mm, 50)) == black_tattoo()


def test_age_spots_are_not_a_course() -> None:
    """H02: the course step applies to tattoos only; an age spot plan stands even after a lower last session."""
    spots = plan(Indication.AGE_SPOT)
    assert isinstance(spots, LaserPlan)
    assert continue_course(spots, lowered(spots, 40)) == spots


# ----------------------------------------------------------------------------- edits


def test_laser_energy_edits_range_from_the_lasers_10_mj_to_the_plans_cap() -> None:
    """H02: the practitioner may set any energy from the laser's 10 mJ minimum to the plan's cap, both included."""
    tattoo = black_tattoo()
    assert lowered(tattoo, 10).energy_mj == 10
    assert lowered(tattoo, tattoo.energy_cap_mj).energy_mj == tattoo.energy_cap_mj == 565
    below = edit_plan(tattoo, energy_mj=9)
    assert refused(below, Hazard.H02_EXCESS_ENERGY) and "energy must be 10-565 mJ" in below.reason


def test_a_lowered_energy_shows_its_fluence_to_a_hundredth() -> None:
    """H02: 100 mJ on the 3 mm spot is 1.41 J/cm² (1.4147), as the practitioner reads it."""
    assert lowered(black_tattoo(), 100).fluence_j_cm2 == 1.41


def test_laser_rate_edits_go_down_to_half_a_hertz() -> None:
    """H01: the rate may be lowered to 0.5 Hz; slower than that is refused."""
    tattoo = black_tattoo()
    slow = edit_plan(tattoo, rate_hz=0.5)
    assert isinstance(slow, LaserPlan) and slow.rate_hz == 0.5
    assert refused(edit_plan(tattoo, rate_hz=0.25), Hazard.H01_OVERTREATMENT)


def test_pulse_budget_edits_go_down_to_one_pulse_never_zero() -> None:
    """H01: one pulse (a test spot) is a valid budget; a budget of zero is refused."""
    tattoo = black_tattoo()
    single = edit_plan(tattoo, pulse_budget=1)
    assert isinstance(single, LaserPlan) and single.pulse_budget == 1
    assert refused(edit_plan(tattoo, pulse_budget=0), Hazard.H01_OVERTREATMENT)


def test_a_cryo_edit_may_change_one_setting_alone() -> None:
    """H05: shortening only the freeze is a valid edit; the other settings stay as planned."""
    wart = cryo(Indication.AGE_WART)
    shorter = edit_plan(wart, freeze_s=8.0)
    assert isinstance(shorter, CryoPlan) and (shorter.freeze_s, shorter.cycles, shorter.target_c) == (8.0, 1, -50)


def test_freeze_edits_range_from_half_a_second_to_the_cap() -> None:
    """H05: a freeze of 0.5 s up to the plan's cap (15 s for an age wart) is allowed; shorter is refused."""
    wart = cryo(Indication.AGE_WART)
    assert wart.freeze_cap_s == 15.0
    for seconds in (0.5, 15.0):
        edited = edit_plan(wart, freeze_s=seconds)
        assert isinstance(edited, CryoPlan) and edited.freeze_s == seconds
    assert refused(edit_plan(wart, freeze_s=0.25), Hazard.H05_OVERFREEZING)


def test_cycle_edits_range_from_one_to_the_plans_cycles() -> None:
    """H06: a keloid plan has two freeze-thaw cycles; one or two may be kept, zero is refused."""
    scar = cryo(Indication.SCAR, area=2.0)
    assert scar.cycles == 2
    for cycles in (1, 2):
        edited = edit_plan(scar, cycles=cycles)
        assert isinstance(edited, CryoPlan) and edited.cycles == cycles
    assert refused(edit_plan(scar, cycles=0), Hazard.H06_CUMULATIVE_COLD)


def test_target_edits_range_from_the_plans_target_to_minus_20() -> None:
    """H05: the tip may be set warmer than planned down to -20 °C; -19 °C and warmer are refused."""
    scar = cryo(Indication.SCAR, area=2.0)
    edited = edit_plan(scar, target_c=-20)
    assert isinstance(edited, CryoPlan) and edited.target_c == -20
    for target in (-19, -10):
        assert refused(edit_plan(scar, target_c=target), Hazard.H05_OVERFREEZING), target
