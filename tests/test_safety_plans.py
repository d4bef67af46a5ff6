"""Treatment plans, the protocol table's hard ceilings, the checklist gate and aftercare."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safety.checklist import (
    Calibration,
    ChecklistAnswers,
    ChecklistContext,
    PreviousSession,
    TestSpot,
    aftercare,
    open_items,
)
from safety.hazards import Hazard
from safety.plans import (
    COURSE_STEP,
    DEFAULT_TABLE,
    CryoPlan,
    Indication,
    Ink,
    LaserPlan,
    Modality,
    PlanRefused,
    PlanRequest,
    ProtocolTableError,
    continue_course,
    edit_plan,
    fluence_j_cm2,
    load_protocols,
    plan_treatment,
)
from tests.safety_scenarios import CONTEXT, GOOD, TODAY, table_with

TABLE = load_protocols()
CEILING_FLUENCE = {1064: 10.0, 532: 5.0}


def laser(indication: Indication, skin: int = 2, sensitive: bool = False, area: float = 1.0, inks: set[Ink] | None = None) -> LaserPlan | PlanRefused:
    return plan_treatment(PlanRequest(indication, skin, sensitive, area, "arm", frozenset(inks or ())), TABLE)  # type: ignore[return-value]


def test_fluence_formula_from_the_icd() -> None:
    # 450 mJ on a 3 mm spot: 0.45 J / (pi * 0.15^2 cm2) = 6.37 J/cm2
    assert fluence_j_cm2(450, 3.0) == pytest.approx(6.366, abs=0.001)


def test_age_spot_light_skin_uses_532_within_the_published_range() -> None:
    plan = laser(Indication.AGE_SPOT, skin=2)
    assert isinstance(plan, LaserPlan)
    assert (plan.wavelength_nm, plan.spot_mm) == (532, 2.0)
    assert 2.0 <= plan.fluence_j_cm2 <= plan.fluence_cap_j_cm2 <= 5.0
    assert fluence_j_cm2(plan.energy_cap_mj, plan.spot_mm) <= plan.fluence_cap_j_cm2


@pytest.mark.parametrize("skin", [4, 5, 6])
def test_dark_skin_gets_1064_low_fluence_larger_spot(skin: int) -> None:
    plan = laser(Indication.PIGMENT_SPOT, skin=skin)
    assert isinstance(plan, LaserPlan)
    assert plan.wavelength_nm == 1064 and plan.spot_mm >= 4.0 and plan.fluence_cap_j_cm2 <= 2.0
    assert any("532 nm is not used" in w for w in plan.warnings)


def test_type_vi_lowers_fluence_and_warns_of_burns() -> None:
    v = laser(Indication.TATTOO, skin=6, inks={Ink.BLACK})
    ii = laser(Indication.TATTOO, skin=2, inks={Ink.BLACK})
    assert isinstance(v, LaserPlan) and isinstance(ii, LaserPlan)
    assert v.fluence_cap_j_cm2 < ii.fluence_cap_j_cm2
    assert any("burns" in w for w in v.warnings)


def test_type_iii_532_warns_to_treat_only_to_slight_whitening() -> None:
    plan = laser(Indication.AGE_SPOT, skin=3)
    assert isinstance(plan, LaserPlan) and any("slight immediate whitening" in w for w in plan.warnings)


def test_sensitive_skin_lowers_caps_and_warns_of_scarring() -> None:
    normal = laser(Indication.TATTOO, inks={Ink.BLUE}, area=100.0)
    sensitive = laser(Indication.TATTOO, sensitive=True, inks={Ink.BLUE}, area=100.0)
    assert isinstance(normal, LaserPlan) and isinstance(sensitive, LaserPlan)
    assert sensitive.fluence_cap_j_cm2 < normal.fluence_cap_j_cm2
    assert sensitive.pulse_budget < normal.pulse_budget
    assert any("scar" in w for w in sensitive.warnings)


@pytest.mark.parametrize("ink", [Ink.WHITE, Ink.SKIN_COLOURED, Ink.RED, Ink.PINK, Ink.BROWN])
def test_iron_oxide_inks_need_a_test_spot(ink: Ink) -> None:
    plan = laser(Indication.TATTOO, inks={ink})
    assert isinstance(plan, LaserPlan) and plan.test_spot_required
    assert any("darken" in w for w in plan.warnings)


def test_red_ink_uses_532_and_black_1064() -> None:
    red, black = laser(Indication.TATTOO, inks={Ink.RED}), laser(Indication.TATTOO, inks={Ink.BLACK})
    assert isinstance(red, LaserPlan) and isinstance(black, LaserPlan)
    assert (red.wavelength_nm, black.wavelength_nm) == (532, 1064)
    assert black.interval_days >= 56


@pytest.mark.parametrize(
    ("kwargs", "hazard", "words"),
    [
        ({"indication": Indication.TATTOO, "inks": {Ink.GREEN}}, Hazard.H19_UNSUITABLE_WAVELENGTH, "no suitable wavelength"),
        ({"indication": Indication.TATTOO, "inks": {Ink.BLACK, Ink.RED}}, Hazard.H19_UNSUITABLE_WAVELENGTH, "separate"),
        ({"indication": Indication.TATTOO, "inks": set()}, Hazard.H19_UNSUITABLE_WAVELENGTH, "ink colours"),
        ({"indication": Indication.TATTOO, "inks": {Ink.RED}, "skin": 5}, Hazard.H10_DARK_SKIN_INJURY, "avoided"),
        ({"indication": Indication.MALIGNANT_LESION}, Hazard.H18_OUT_OF_SCOPE_LESION, "physician"),
        ({"indication": Indication.AGE_SPOT, "skin": 7}, Hazard.H10_DARK_SKIN_INJURY, "Fitzpatrick"),
        ({"indication": Indication.AGE_SPOT, "area": 0.0}, Hazard.H01_OVERTREATMENT, "area"),
    ],
)
def test_refusals_explain_themselves(kwargs: dict, hazard: Hazard, words: str) -> None:  # type: ignore[type-arg]
    result = laser(**kwargs)
    assert isinstance(result, PlanRefused) and result.hazard is hazard and words in result.reason


def test_cryo_is_for_small_areas_only() -> None:
    refused = plan_treatment(PlanRequest(Indication.AGE_PIGMENTATION, 2, False, 3.0, "hand"), TABLE)
    assert isinstance(refused, PlanRefused) and refused.hazard is Hazard.H17_LARGE_AREA_CRYO
    assert "small areas" in refused.reason


def test_cryo_plans_follow_the_reference() -> None:
    wart = plan_treatment(PlanRequest(Indication.AGE_WART, 2, False, 1.0, "back"), TABLE)
    scar = plan_treatment(PlanRequest(Indication.SCAR, 2, False, 2.0, "chest"), TABLE)
    lentigo = plan_treatment(PlanRequest(Indication.AGE_PIGMENTATION, 2, False, 0.5, "hand"), TABLE)
    assert isinstance(wart, CryoPlan) and wart.cycles == 1 and 10.0 <= wart.freeze_cap_s <= 20.0 and wart.interval_days >= 21
    assert isinstance(scar, CryoPlan) and 1 <= scar.cycles <= 3 and scar.freeze_cap_s <= 30.0 and scar.interval_days >= 20
    assert isinstance(lentigo, CryoPlan) and lentigo.freeze_cap_s <= wart.freeze_cap_s
    sensitive = plan_treatment(PlanRequest(Indication.AGE_WART, 2, True, 1.0, "back"), TABLE)
    assert isinstance(sensitive, CryoPlan) and sensitive.freeze_cap_s < wart.freeze_cap_s


@given(
    indication=st.sampled_from(list(Indication)),
    skin=st.integers(1, 6),
    sensitive=st.booleans(),
    area=st.floats(0.01, 500.0),
    inks=st.frozensets(st.sampled_from(list(Ink)), max_size=3),
)
def test_no_plan_ever_exceeds_a_hard_ceiling(indication: Indication, skin: int, sensitive: bool, area: float, inks: frozenset[Ink]) -> None:
    plan = plan_treatment(PlanRequest(indication, skin, sensitive, area, "x", inks), TABLE)
    ceilings = TABLE.ceilings
    if isinstance(plan, LaserPlan):
        assert plan.fluence_cap_j_cm2 <= CEILING_FLUENCE[plan.wavelength_nm]
        assert fluence_j_cm2(plan.energy_cap_mj, plan.spot_mm) <= plan.fluence_cap_j_cm2 + 1e-9
        assert plan.energy_mj <= plan.energy_cap_mj
        assert 1 <= plan.pulse_budget <= ceilings["laser_pulse_budget"]
        assert plan.rate_hz <= ceilings["laser_rate_hz"]
        if skin >= 4:
            assert plan.wavelength_nm == 1064
    elif isinstance(plan, CryoPlan):
        assert plan.freeze_s <= plan.freeze_cap_s <= ceilings["cryo_freeze_s"]
        assert plan.cycles <= ceilings["cryo_cycles"]
        assert plan.area_cm2 <= ceilings["cryo_area_cm2"]
        assert plan.target_c >= ceilings["cryo_target_coldest_c"]


def test_edits_lower_but_never_raise() -> None:
    plan = laser(Indication.TATTOO, inks={Ink.BLACK}, area=50.0)
    assert isinstance(plan, LaserPlan)
    lower = edit_plan(plan, energy_mj=plan.energy_mj - 50, pulse_budget=10, rate_hz=1.0)
    assert isinstance(lower, LaserPlan) and lower.pulse_budget == 10 and lower.fluence_j_cm2 < plan.fluence_j_cm2
    for change in ({"energy_mj": plan.energy_cap_mj + 1}, {"pulse_budget": plan.pulse_budget + 1}, {"rate_hz": 10.0},
                   {"spot_mm": 2.0}):
        assert isinstance(edit_plan(plan, **change), PlanRefused), change
    cryo = plan_treatment(PlanRequest(Indication.SCAR, 2, False, 1.0, "x"), TABLE)
    assert isinstance(cryo, CryoPlan)
    assert isinstance(edit_plan(cryo, freeze_s=cryo.freeze_cap_s + 1), PlanRefused)
    assert isinstance(edit_plan(cryo, cycles=cryo.cycles + 1), PlanRefused)
    assert isinstance(edit_plan(cryo, target_c=cryo.target_c - 1), PlanRefused)
    assert isinstance(edit_plan(cryo, freeze_s=5.0, cycles=1, target_c=-30), CryoPlan)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("fluence_cap_j_cm2 = 8.0", "fluence_cap_j_cm2 = 11.0", "laser.tattoo_dark_ink.fluence_cap_j_cm2"),
        ("freeze_cap_s = 20.0", "freeze_cap_s = 45.0", "cryo.scar.freeze_cap_s"),
        ("cycles = 2", "cycles = 4", "cryo.scar.cycles"),
        ("max_area_cm2 = 4.0", "max_area_cm2 = 10.0", "cryo.scar.max_area_cm2"),
        ("target_c = -40", "target_c = -80", "cryo.mole.target_c"),
        ("max_pulses = 1500", "max_pulses = 5000", "laser.tattoo_dark_ink.max_pulses"),
        ("spot_mm = 4.0", "spot_mm = 5.0", "laser.age_spot_dark.spot_mm"),
        ('label = "mole (benign, assessed)"', 'label = "mole"\nextra = 1', "cryo.mole: unknown extra"),
    ],
)
def test_a_table_beyond_a_ceiling_is_refused_naming_the_key(tmp_path: Path, old: str, new: str, key: str) -> None:
    text = DEFAULT_TABLE.read_text()
    assert old in text
    bad = tmp_path / "protocols.toml"
    bad.write_text(text.replace(old, new, 1))
    with pytest.raises(ProtocolTableError, match=key.replace(".", r"\.")):
        load_protocols(bad)


@pytest.mark.parametrize(
    ("section", "wavelength", "said"),
    [
        # H10: the dark-skin rows stay at 1064 nm whatever a clinic's table says
        ("laser.age_spot_dark", 532, "skin types IV-VI are not treated at 532"),
        # H19: each ink row keeps the wavelength its inks absorb
        ("laser.tattoo_dark_ink", 532, "must be 1064 nm, not 532"),
        ("laser.tattoo_red_ink", 1064, "must be 532 nm, not 1064"),
    ],
)
def test_a_table_cannot_move_a_row_to_the_wrong_wavelength(tmp_path: Path, section: str, wavelength: int,
                                                           said: str) -> None:
    with pytest.raises(ProtocolTableError, match=f"{section}.wavelength_nm") as refused:
        load_protocols(table_with(tmp_path, section, wavelength_nm=wavelength))
    assert said in str(refused.value)


def test_a_table_without_a_row_the_planner_needs_is_refused_by_name(tmp_path: Path) -> None:
    text = DEFAULT_TABLE.read_text()
    bad = tmp_path / "protocols.toml"
    bad.write_text(text.replace("[laser.age_spot_dark]", "[laser.age_spot_dark_unused]", 1))
    with pytest.raises(ProtocolTableError, match=r"missing \[laser\.age_spot_dark\]"):
        load_protocols(bad)
    bad.write_text(text.replace("[cryo.mole]", "[cryo.moles]", 1))
    with pytest.raises(ProtocolTableError, match=r"missing \[cryo\.mole\]"):
        load_protocols(bad)


def test_a_ceiling_for_a_wavelength_the_laser_lacks_does_not_let_a_row_use_it(tmp_path: Path) -> None:
    bad = table_with(tmp_path, "laser.age_spot", wavelength_nm=755)
    bad.write_text(bad.read_text().replace("{ 1064 = 10.0, 532 = 5.0 }", "{ 1064 = 10.0, 532 = 5.0, 755 = 8.0 }", 1))
    assert "755 = 8.0" in bad.read_text()
    with pytest.raises(ProtocolTableError, match=r"laser\.age_spot\.wavelength_nm: 755 is not a wavelength of this laser"):
        load_protocols(bad)


def test_malformed_table_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "p.toml"
    bad.write_text("[ceilings\n")
    with pytest.raises(ProtocolTableError, match="p.toml"):
        load_protocols(bad)


# ----------------------------------------------------------------------------- checklist


def _plan(indication: Indication = Indication.TATTOO, inks: set[Ink] | None = None) -> LaserPlan | CryoPlan:
    plan = plan_treatment(PlanRequest(indication, 2, False, 1.0, "arm", frozenset(inks or ())), TABLE)
    assert not isinstance(plan, PlanRefused)
    return plan


def test_complete_checklist_has_nothing_open() -> None:
    assert open_items(_plan(inks={Ink.BLACK}), GOOD, CONTEXT) == []


def test_each_missing_answer_is_named() -> None:
    items = {i.item for i in open_items(_plan(inks={Ink.BLACK}), ChecklistAnswers(), CONTEXT)}
    assert items == {"identity", "consent", "eye_protection", "sun"}
    cryo_items = {i.item for i in open_items(_plan(Indication.AGE_WART), ChecklistAnswers(), CONTEXT)}
    assert "eye_protection" not in cryo_items


@pytest.mark.parametrize(
    ("spot", "words"),
    [
        (None, "test spot in a hidden area"),
        (TestSpot(TODAY - timedelta(days=5), True, False), "can be reviewed from"),
        (TestSpot(TODAY - timedelta(days=20), False, False), "not been reviewed"),
        (TestSpot(TODAY - timedelta(days=20), True, True), "darkened"),
    ],
)
def test_test_spot_gate(spot: TestSpot | None, words: str) -> None:
    answers = ChecklistAnswers(**{**GOOD.__dict__, "test_spot": spot})
    items = open_items(_plan(inks={Ink.WHITE}), answers, CONTEXT)
    assert [i.item for i in items] == ["test_spot"] and words in items[0].reason


def test_reviewed_test_spot_opens_the_gate() -> None:
    answers = ChecklistAnswers(**{**GOOD.__dict__, "test_spot": TestSpot(TODAY - timedelta(days=14), True, False)})
    assert open_items(_plan(inks={Ink.WHITE}), answers, CONTEXT) == []


def test_interval_per_site_and_modality() -> None:
    plan = _plan(inks={Ink.BLACK})
    recent = (PreviousSession("arm", Modality.LASER, TODAY - timedelta(days=plan.interval_days - 1)),)
    assert [i.item for i in open_items(plan, GOOD, ChecklistContext(TODAY, CONTEXT.calibration, recent))] == ["interval"]
    other_site = (PreviousSession("leg", Modality.LASER, TODAY - timedelta(days=3)),)
    assert open_items(plan, GOOD, ChecklistContext(TODAY, CONTEXT.calibration, other_site)) == []
    long_ago = (PreviousSession("arm", Modality.LASER, TODAY - timedelta(days=plan.interval_days)),)
    assert open_items(plan, GOOD, ChecklistContext(TODAY, CONTEXT.calibration, long_ago)) == []
    last_year = (PreviousSession("arm", Modality.LASER, TODAY - timedelta(days=365)),)  # long past the interval
    assert open_items(plan, GOOD, ChecklistContext(TODAY, CONTEXT.calibration, last_year)) == []
    # the other modality's session on the same site does not hold this one (either way round)
    cryo = _plan(Indication.AGE_WART)
    cryo_here = (PreviousSession(cryo.site, Modality.CRYO, TODAY - timedelta(days=3)),)
    laser_here = (PreviousSession(cryo.site, Modality.LASER, TODAY - timedelta(days=3)),)
    assert [i.item for i in open_items(cryo, GOOD, ChecklistContext(TODAY, CONTEXT.calibration, cryo_here))] == ["interval"]
    assert open_items(cryo, GOOD, ChecklistContext(TODAY, CONTEXT.calibration, laser_here)) == []
    cryo_on_arm = (PreviousSession("arm", Modality.CRYO, TODAY - timedelta(days=3)),)
    assert open_items(plan, GOOD, ChecklistContext(TODAY, CONTEXT.calibration, cryo_on_arm)) == []


def test_calibration_expiry_day_still_counts() -> None:
    plan = _plan(inks={Ink.BLACK})
    assert open_items(plan, GOOD, ChecklistContext(TODAY, Calibration("X", True, TODAY))) == []
    assert open_items(plan, GOOD, ChecklistContext(TODAY + timedelta(days=1), Calibration("X", True, TODAY)))


def test_aftercare_sheets() -> None:
    laser_sheet = " ".join(aftercare(_plan(inks={Ink.RED})))
    assert "2 weeks" in laser_sheet and "Reddening and swelling" in laser_sheet and "darker" in laser_sheet
    assert "8 weeks" in laser_sheet
    cryo_sheet = " ".join(aftercare(_plan(Indication.AGE_WART)))
    assert "blister" in cryo_sheet and "2-3 weeks" in cryo_sheet and "2 weeks" in cryo_sheet


def test_a_tattoo_course_rises_one_step_at_most_and_never_above_the_cap() -> None:
    request = PlanRequest(Indication("tattoo"), 2, False, 2.0, "arm", frozenset({Ink("black")}))
    fresh = plan_treatment(request, TABLE)
    assert isinstance(fresh, LaserPlan)
    last = edit_plan(fresh, energy_mj=fresh.energy_cap_mj - 20)  # near the cap last time
    assert isinstance(last, LaserPlan)
    course = continue_course(fresh, last)
    assert course.energy_mj == last.energy_mj and course.energy_cap_mj == fresh.energy_cap_mj  # the cap bounds the step
    low = edit_plan(fresh, energy_mj=100)
    assert isinstance(low, LaserPlan)
    course = continue_course(fresh, low)
    assert course.energy_mj == 100 and course.fluence_cap_j_cm2 <= round(low.fluence_j_cm2 * COURSE_STEP, 2)
    assert isinstance(edit_plan(course, energy_mj=course.energy_cap_mj + 1), PlanRefused)
    sensitive = plan_treatment(PlanRequest(Indication("tattoo"), 2, True, 2.0, "arm", frozenset({Ink("black")})),
                               TABLE)
    assert isinstance(sensitive, LaserPlan)
    assert continue_course(sensitive, last).energy_cap_mj <= sensitive.energy_cap_mj  # today's caps still rule
    spots = plan_treatment(PlanRequest(Indication("age_spot"), 2, False, 1.0, "arm"), TABLE)
    assert isinstance(spots, LaserPlan) and continue_course(spots, last) == spots  # only tattoo courses


@given(last_fluence=st.floats(0.5, 12.0), sensitive=st.booleans(), skin=st.integers(1, 6))
def test_a_course_never_exceeds_its_plans_cap_nor_one_step(last_fluence: float, sensitive: bool, skin: int) -> None:
    request = PlanRequest(Indication("tattoo"), skin, sensitive, 2.0, "arm", frozenset({Ink("black")}))
    plan = plan_treatment(request, TABLE)
    assert isinstance(plan, LaserPlan)
    energy = max(10, min(int(last_fluence * 70.68), 2000))  # 3 mm spot: 0.0707 cm²
    last = dataclasses.replace(plan, energy_mj=energy, fluence_j_cm2=round(fluence_j_cm2(energy, plan.spot_mm), 2))
    course = continue_course(plan, last)
    assert course.energy_cap_mj <= plan.energy_cap_mj and course.energy_mj <= course.energy_cap_mj
    assert course.fluence_cap_j_cm2 <= max(round(last.fluence_j_cm2 * COURSE_STEP, 2) + 0.01, fluence_j_cm2(10, plan.spot_mm) + 0.01)
