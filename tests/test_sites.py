"""Body sites as structured values (#18): a region from a fixed list and a side; the interval rule
compares sites by their key, so the way a site was typed never buys a fresh pulse budget."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from devicectl.core.store import Store
from safety import sites
from safety.checklist import ChecklistContext, PreviousSession, open_items
from safety.plans import Indication, Ink, Modality, PlanRequest, load_protocols, plan_treatment
from tests.safety_scenarios import CONTEXT, GOOD, TODAY
from tests.test_store import LEGACY


@pytest.mark.parametrize("text", ["left cheek", "Left cheek", "left cheek ", "cheek, left", "CHEEK (L)", "cheek:left", "left side of the cheek"])
def test_every_way_of_writing_a_site_is_one_key(text: str) -> None:
    assert sites.normalise(text) == "cheek:left"
    assert sites.label(sites.normalise(text)) == "left cheek"


def test_regions_without_sides_and_unknown_text() -> None:
    assert sites.normalise("Nose") == "nose"
    assert sites.normalise("left nose") == "nose"  # the nose has no side
    assert sites.normalise("upper arm, right") == "upper_arm:right"
    assert sites.normalise("left and right calf") == "calf:both"
    assert sites.normalise("  Behind  the EAR-lobe ") == "behind the ear lobe"  # no region of the list: its words
    assert sites.parse("behind the ear lobe") is None
    with pytest.raises(ValueError):
        sites.key("nose", "left")
    with pytest.raises(ValueError):
        sites.key("tail")


@pytest.mark.parametrize(("a", "b", "same"), [
    ("left cheek", "cheek, left", True),
    ("left cheek", "right cheek", False),
    ("cheek", "right cheek", True),   # no side written: it may be either
    ("both cheeks", "left cheek", True),
    ("left cheek", "left forearm", False),
    ("arm", "Arm ", True),
    ("arm", "leg", False),
])
def test_same_site_errs_towards_the_same_skin(a: str, b: str, same: bool) -> None:
    assert sites.same_site(a, b) is same
    assert sites.same_site(b, a) is same


@pytest.mark.parametrize("earlier", ["left cheek", "Left cheek", "left cheek ", "cheek, left", "cheek:left"])
def test_the_interval_rule_sees_one_site_however_it_was_written(earlier: str) -> None:
    plan = plan_treatment(PlanRequest(Indication.TATTOO, 2, False, 1.0, "cheek:left", frozenset({Ink.BLACK})), load_protocols())
    recent = (PreviousSession(earlier, Modality.LASER, TODAY - timedelta(days=3)),)
    assert [i.item for i in open_items(plan, GOOD, ChecklistContext(TODAY, CONTEXT.calibration, recent))] == ["interval"]  # type: ignore[arg-type]
    other_side = (PreviousSession("right cheek", Modality.LASER, TODAY - timedelta(days=3)),)
    assert open_items(plan, GOOD, ChecklistContext(TODAY, CONTEXT.calibration, other_side)) == []  # type: ignore[arg-type]


def test_sessions_written_before_keep_their_text_as_the_note(tmp_path: Path) -> None:
    """A database of free-text sites upgraded: the key read from the text, the text kept as the note."""
    path = tmp_path / "devicectl.sqlite3"
    shutil.copyfile(LEGACY, path)
    Store(path).close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT site, site_key, site_note FROM sessions").fetchall() == [("forearm", "forearm", "forearm")]
    finally:
        conn.close()
