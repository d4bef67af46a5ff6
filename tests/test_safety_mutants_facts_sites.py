"""Facts and body sites at their edges: what a fact is as a value, and how a site is read, keyed,
labelled and compared without the record store.

The facts are the kernel's inputs: frozen records whose time, when none is told, is the clock's
origin. Sites decide the interval rule (H13): two sessions are on the same skin unless their
regions differ or their sides exclude each other, and a region either has sides or has not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from safety import facts as F
from safety import sites
from safety.checklist import ChecklistContext, PreviousSession, open_items
from safety.cryo_kernel import CryoKernel
from safety.decisions import AllowFreeze, Refuse
from safety.hazards import Hazard
from safety.plans import CryoPlan, Indication, Ink, LaserPlan, Modality, PlanRequest, plan_treatment
from tests.safety_scenarios import CONTEXT, CRYO_PLAN, GOOD, LASER_PLAN, TODAY, has

# ============================================================================ facts


def _plans() -> tuple[LaserPlan, CryoPlan]:
    assert isinstance(LASER_PLAN, LaserPlan) and isinstance(CRYO_PLAN, CryoPlan)
    return LASER_PLAN, CRYO_PLAN


LASER, CRYO = _plans()

#: every fact the kernel is told, built from its fields without a time
FACTS: dict[str, Callable[[], Any]] = {
    "SessionOpened": lambda: F.SessionOpened(LASER),
    "SessionClosed": lambda: F.SessionClosed(),
    "ArmRequested": lambda: F.ArmRequested(F.Role.PRACTITIONER, GOOD, CONTEXT),
    "FreezeRequested": lambda: F.FreezeRequested(F.Role.PRACTITIONER, 5.0, GOOD, CONTEXT),
    "StopRequested": lambda: F.StopRequested("screen"),
    "LockoutAcknowledged": lambda: F.LockoutAcknowledged(F.Role.PRACTITIONER),
    "LimitsReprogrammed": lambda: F.LimitsReprogrammed(),
    "Reconfirmed": lambda: F.Reconfirmed(F.Role.PRACTITIONER),
    "DeviceStateSeen": lambda: F.DeviceStateSeen("READY", "cmd"),
    "LaserInputsSeen": lambda: F.LaserInputsSeen(True, True, False, False),
    "SpotSeen": lambda: F.SpotSeen(4.0),
    "PulseSeen": lambda: F.PulseSeen(1, 500.0, 500),
    "CryoInputsSeen": lambda: F.CryoInputsSeen(False, "ok"),
    "TipSeen": lambda: F.TipSeen(-50.0, True),
    "FreezeStartSeen": lambda: F.FreezeStartSeen(),
    "FreezeEndSeen": lambda: F.FreezeEndSeen("timer", 5.0),
    "TelemetrySeen": lambda: F.TelemetrySeen(),
    "FaultSeen": lambda: F.FaultSeen("F04", "coolant"),
    "WatchdogSeen": lambda: F.WatchdogSeen(),
    "BootSeen": lambda: F.BootSeen(),
    "EventGapSeen": lambda: F.EventGapSeen(2),
    "LinkLost": lambda: F.LinkLost("port closed"),
    "LinkRestored": lambda: F.LinkRestored(),
    "PulsesUnseen": lambda: F.PulsesUnseen(3),
    "FreezeUnanswered": lambda: F.FreezeUnanswered(1.1),
    "StopConfirmed": lambda: F.StopConfirmed("STANDBY"),
    "StopUnconfirmed": lambda: F.StopUnconfirmed("no answer"),
}


def test_the_list_covers_every_fact() -> None:
    every = {name for name, value in vars(F).items() if isinstance(value, type) and value.__module__ == F.__name__}
    assert every - {"Role", "ClockTick"} == set(FACTS)


@pytest.mark.parametrize("name", [*FACTS, "ClockTick"])
def test_a_fact_cannot_change_once_told(name: str) -> None:
    # H14: the kernel decides on what the device and the people said; a fact edited after it was
    # told would make the record and the decision disagree. Every fact is a frozen record.
    fact = F.ClockTick(3.0) if name == "ClockTick" else FACTS[name]()
    assert dataclasses.is_dataclass(fact)
    assert "at" in {field.name for field in dataclasses.fields(fact)}
    for field in dataclasses.fields(fact):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(fact, field.name, getattr(fact, field.name))


@pytest.mark.parametrize("name", FACTS)
def test_a_fact_told_without_a_time_happens_at_the_clocks_origin(name: str) -> None:
    # H14: the kernel measures silence, thaw and freezes from facts' times, and starts its own
    # clock at 0 (a fact without ``at`` is handled at 0). A fact built without a time is at that
    # same origin: never before it (time running backwards) nor after it.
    fact = FACTS[name]()
    assert fact.at == 0.0


def test_a_clock_tick_always_carries_its_time() -> None:
    with pytest.raises(TypeError):
        F.ClockTick()  # type: ignore[call-arg]
    assert F.ClockTick(4.0).at == 4.0


def test_an_unanswered_freeze_counts_its_longest_bound_as_one_cycle() -> None:
    # H05/H06: FREEZE written and never answered: the unit may have frozen, unseen, for the whole
    # bound. It counts as a cycle of that length ending now, so the thaw and the session's total
    # start from it.
    kernel = CryoKernel()
    kernel.handle(F.SessionOpened(CRYO, at=0.0))
    assert has(kernel.handle(F.FreezeRequested(F.Role.PRACTITIONER, 5.0, GOOD, CONTEXT, at=1.0)), AllowFreeze)
    kernel.handle(F.FreezeUnanswered(6.1, at=2.0))
    assert kernel.exposure_s == pytest.approx(6.1) and kernel.cycles_done == 1
    refused = kernel.handle(F.FreezeRequested(F.Role.PRACTITIONER, 5.0, GOOD, CONTEXT, at=2.0 + CRYO.thaw_min_s - 1))
    assert has(refused, Refuse, Hazard.H06_CUMULATIVE_COLD) and isinstance(refused[0], Refuse) and "thaw" in refused[0].reason
    assert has(kernel.handle(F.FreezeRequested(F.Role.PRACTITIONER, 5.0, GOOD, CONTEXT, at=2.0 + CRYO.thaw_min_s)),
               AllowFreeze)


def test_a_confirmed_stop_lets_an_unconfirmed_stops_lockout_be_acknowledged() -> None:
    # H03: a unit that ignored STOP may still freeze; only its confirmed safe state releases the
    # lock-out for acknowledgement.
    kernel = CryoKernel()
    kernel.handle(F.SessionOpened(CRYO, at=0.0))
    kernel.handle(F.StopUnconfirmed("the cryo did not confirm STOP", at=1.0))
    assert has(kernel.handle(F.LockoutAcknowledged(F.Role.PRACTITIONER, at=1.5)), Refuse, Hazard.H03_UNCOMMANDED_EMISSION)
    kernel.handle(F.StopConfirmed("THAW", at=2.0))
    assert kernel.handle(F.LockoutAcknowledged(F.Role.PRACTITIONER, at=2.5)) == [] and kernel.locked is None


# ============================================================================ sites

#: paired body parts: a left and a right one that are different skin
SIDED = {"temple", "eyebrow", "cheek", "ear", "jaw", "shoulder", "upper_arm", "elbow", "forearm", "wrist", "hand",
         "finger", "breast", "flank", "buttock", "hip", "thigh", "knee", "calf", "shin", "ankle", "foot", "toe"}
#: one of a kind: a side written on it names the same skin
UNSIDED = {"scalp", "forehead", "nose", "upper_lip", "chin", "neck", "chest", "abdomen", "back", "lower_back"}
LABELS = {"upper_lip": "upper lip", "upper_arm": "upper arm", "lower_back": "lower back"}


def test_every_region_is_either_paired_or_single() -> None:
    assert set(sites.REGIONS) == SIDED | UNSIDED and not SIDED & UNSIDED
    assert {region: label for region, (label, _) in sites.REGIONS.items()} == {r: LABELS.get(r, r) for r in sites.REGIONS}
    assert sites.SIDES == ("left", "right", "both")


@pytest.mark.parametrize("region", sorted(SIDED))
def test_a_paired_region_keeps_its_side_and_left_is_not_right(region: str) -> None:
    # H13: the left and the right cheek are different skin, each with its own interval; "both" and
    # no side meet either.
    label = LABELS.get(region, region)
    for side in sites.SIDES:
        assert sites.key(region, side) == f"{region}:{side}"
        assert sites.parse(f"{region}:{side}") == (region, side)
        assert sites.label(f"{region}:{side}") == f"{side} {label}"
    assert sites.key(region) == region and sites.label(region) == label
    assert sites.normalise(f"{label}, right") == f"{region}:right"
    assert sites.normalise(f"Left {label}") == f"{region}:left"
    assert sites.same_site(f"left {label}", f"right {label}") is False
    assert sites.same_site(f"{region}:left", f"{region}:right") is False
    for side in ("left", "right", "both"):
        assert sites.same_site(f"{region}:{side}", region) and sites.same_site(f"{region}:both", f"{region}:{side}")


@pytest.mark.parametrize("region", sorted(UNSIDED))
def test_a_side_written_on_a_single_region_is_the_same_skin(region: str) -> None:
    # H13: the nose has no left and right: "left nose" and "right nose" are the same skin and share
    # one interval, never two fresh budgets.
    label = LABELS.get(region, region)
    assert sites.key(region) == region and sites.label(region) == label
    with pytest.raises(ValueError, match=f"^the {label} has no side$"):
        sites.key(region, "left")
    assert sites.parse(f"left {label}") == (region, "")
    assert sites.normalise(f"right {label}") == region
    assert sites.same_site(f"left {label}", f"right {label}") is True


def test_a_key_names_a_listed_region_and_side_only() -> None:
    assert sites.key("cheek") == "cheek" and sites.key("cheek", "") == "cheek"
    assert sites.key("cheek", "both") == "cheek:both"
    with pytest.raises(ValueError, match="unknown body region 'tail'"):
        sites.key("tail")
    with pytest.raises(ValueError, match="^a side is one of left, right, both$"):
        sites.key("cheek", "up")
    with pytest.raises(ValueError, match="^a side is one of left, right, both$"):
        sites.key("nose", "up")


@pytest.mark.parametrize(("text", "read"), [
    ("cheek:left", ("cheek", "left")),
    ("  cheek:left ", ("cheek", "left")),
    ("cheek:", ("cheek", "")),
    ("cheek", ("cheek", "")),
    ("left cheek", ("cheek", "left")),
    ("cheek (L)", ("cheek", "left")),
    ("rt hand", ("hand", "right")),
    ("bilateral knee", ("knee", "both")),
    ("left and right calf", ("calf", "both")),
    ("right and left calf", ("calf", "both")),
    ("both cheeks", ("cheek", "both")),
    ("left both cheek", ("cheek", "both")),
    ("left side of the upper arm", ("upper_arm", "left")),
    ("lip, upper", ("upper_lip", "")),
    ("cheek:up", None),            # not a side: read as words, which name no region
    ("tail:left", None),            # not a region of the list
    ("tail:", None),
    ("left tail", None),
    ("behind the ear lobe", None),
])
def test_a_site_is_read_from_its_key_or_its_words(text: str, read: tuple[str, str] | None) -> None:
    # H13: however a site is written, the same skin reads as the same key.
    assert sites.parse(text) == read


def test_text_naming_no_region_is_its_own_site_by_its_words() -> None:
    assert sites.normalise("  Behind  the EAR-lobe ") == "behind the ear lobe"
    assert sites.normalise("tail:left") == "tail left"
    assert sites.normalise("cheek:up") == "cheek up"
    assert sites.normalise("forearm") == "forearm"  # a session written before keys: its key from its text
    assert sites.label("tail:left") == "tail:left"


@pytest.mark.parametrize(("site", "label"), [
    ("cheek:left", "left cheek"),
    ("upper_arm:right", "right upper arm"),
    ("knee:both", "both knee"),
    ("nose", "nose"),
    ("upper_lip", "upper lip"),
    ("lower_back", "lower back"),
    ("cheek", "cheek"),
    ("cheeks", "cheeks"),                       # free text is shown as written, not read
    ("Left Cheek", "Left Cheek"),
    ("behind the ear lobe", "behind the ear lobe"),
])
def test_a_site_is_shown_by_its_label_and_free_text_as_written(site: str, label: str) -> None:
    assert sites.label(site) == label


@pytest.mark.parametrize(("a", "b", "same"), [
    ("left cheek", "cheek, left", True),
    ("cheek:left", "Left cheek", True),
    ("cheek", "cheek", True),
    ("cheek", "right cheek", True),
    ("both cheeks", "left cheek", True),
    ("cheek:both", "cheek:right", True),
    ("left cheek", "right cheek", False),
    ("left cheek", "left forearm", False),
    ("cheek", "forearm", False),
    ("nose", "left cheek", False),
    ("left nose", "right nose", True),
    ("arm", "Arm ", True),
    ("arm", "leg", False),
    ("behind the ear", "Behind the EAR", True),
    ("behind the ear", "left cheek", False),
    ("behind the ear", "ear", False),
])
def test_same_site_errs_towards_the_same_skin(a: str, b: str, same: bool) -> None:
    # H13: a session counts against the interval of every earlier one that may be the same skin.
    assert sites.same_site(a, b) is same
    assert sites.same_site(b, a) is same


@pytest.mark.parametrize("earlier", ["left cheek", "Left cheek", "left cheek ", "cheek, left", "cheek:left", "cheek",
                                     "both cheeks"])
def test_the_interval_rule_sees_one_site_however_it_was_written(earlier: str) -> None:
    # H13: a session 3 days after one on the same skin is refused; the right cheek is other skin.
    plan = plan_treatment(PlanRequest(Indication.TATTOO, 2, False, 1.0, "cheek:left", frozenset({Ink.BLACK})))
    assert isinstance(plan, LaserPlan)
    recent = (PreviousSession(earlier, Modality.LASER, TODAY - timedelta(days=3)),)
    items = open_items(plan, GOOD, ChecklistContext(TODAY, CONTEXT.calibration, recent))
    assert [i.item for i in items] == ["interval"] and items[0].hazard is Hazard.H13_SESSIONS_TOO_CLOSE
    other_side = (PreviousSession("right cheek", Modality.LASER, TODAY - timedelta(days=3)),)
    assert open_items(plan, GOOD, ChecklistContext(TODAY, CONTEXT.calibration, other_side)) == []


def test_a_side_in_key_form_on_a_single_region_is_the_same_skin() -> None:
    # H13: "nose:left" is the nose, as "left nose" is.
    assert sites.same_site("nose:left", "nose:right")
    assert sites.normalise("nose:left") == "nose"
    assert sites.label("nose:left") == "nose" and sites.parse("nose:both") == ("nose", "")
