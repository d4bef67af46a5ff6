"""Checklist gating before any arming or freezing, and the aftercare sheet.

``open_items`` is pure: the answers a practitioner gave, the facts the service knows (today,
the device's calibration, earlier sessions) and the plan in; the items still open out, each with
its reason and hazard. Arming and freezing are allowed only when nothing is open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from .hazards import Hazard
from .plans import CryoPlan, LaserPlan, Modality, Plan
from .sites import same_site

SUN_FREE_WEEKS_BEFORE = 4
SUN_FREE_WEEKS_AFTER = 2
TEST_SPOT_REVIEW_DAYS = 14  # re-checked after 1-2 weeks: the later, more conservative, day


@dataclass(frozen=True)
class TestSpot:
    __test__ = False  # a clinical test spot, not a pytest class

    done_on: date
    reviewed: bool
    darkened: bool


@dataclass(frozen=True)
class Calibration:
    device_serial: str
    passed: bool
    expires_on: date


@dataclass(frozen=True)
class PreviousSession:
    site: str
    modality: Modality
    on: date


@dataclass(frozen=True)
class ChecklistAnswers:
    identity_confirmed: bool = False
    consent_signed: bool = False
    eye_protection_all: bool = False  # laser: everyone in the room wears eye protection
    no_sun_last_4_weeks: bool = False
    benign_assessed: bool = False  # mole: a physician assessed it as benign
    test_spot: TestSpot | None = None


@dataclass(frozen=True)
class ChecklistContext:
    today: date
    calibration: Calibration | None
    previous_sessions: tuple[PreviousSession, ...] = ()


@dataclass(frozen=True)
class OpenItem:
    item: str
    reason: str
    hazard: Hazard


def open_items(plan: Plan, answers: ChecklistAnswers, context: ChecklistContext) -> list[OpenItem]:
    """Every checklist item that still forbids arming or freezing."""
    items: list[OpenItem] = []
    if not answers.identity_confirmed:
        items.append(OpenItem("identity", "confirm the patient's identity", Hazard.H07_WRONG_PATIENT_OR_CONSENT))
    if not answers.consent_signed:
        items.append(OpenItem("consent", "the patient's consent is not recorded", Hazard.H07_WRONG_PATIENT_OR_CONSENT))
    if isinstance(plan, LaserPlan) and not answers.eye_protection_all:
        items.append(OpenItem("eye_protection", "everyone in the room must wear laser eye protection", Hazard.H04_EYE_EXPOSURE))
    if not answers.no_sun_last_4_weeks:
        items.append(OpenItem("sun", "no sun or solarium in the last 4 weeks: not confirmed", Hazard.H08_SUN_EXPOSED_SKIN))
    if isinstance(plan, CryoPlan) and plan.benign_assessment_required and not answers.benign_assessed:
        items.append(OpenItem("benign", "a physician must have assessed the mole as benign", Hazard.H18_OUT_OF_SCOPE_LESION))
    if isinstance(plan, LaserPlan) and plan.test_spot_required:
        items += _test_spot(answers.test_spot, context.today)
    items += _calibration(context)
    items += _interval(plan, context)
    return items


def _test_spot(spot: TestSpot | None, today: date) -> list[OpenItem]:
    hazard = Hazard.H09_INK_DARKENING
    if spot is None:
        return [OpenItem("test_spot", "this ink needs a test spot in a hidden area first", hazard)]
    ready_on = spot.done_on + timedelta(days=TEST_SPOT_REVIEW_DAYS)
    if today < ready_on:
        return [OpenItem("test_spot", f"the test spot can be reviewed from {ready_on.isoformat()}", hazard)]
    if not spot.reviewed:
        return [OpenItem("test_spot", "the test spot has not been reviewed", hazard)]
    if spot.darkened:
        return [OpenItem("test_spot", "the test spot darkened: this ink must not be treated with this laser", hazard)]
    return []


def _calibration(context: ChecklistContext) -> list[OpenItem]:
    hazard = Hazard.H12_UNCALIBRATED_DEVICE
    calibration = context.calibration
    if calibration is None:
        return [OpenItem("calibration", "the device has no calibration on record: a technician must calibrate it", hazard)]
    if not calibration.passed:
        return [OpenItem("calibration", "the device failed its last calibration: a technician must recalibrate it", hazard)]
    if context.today > calibration.expires_on:
        return [OpenItem("calibration", f"the device's calibration expired on {calibration.expires_on.isoformat()}", hazard)]
    return []


def _interval(plan: Plan, context: ChecklistContext) -> list[OpenItem]:
    earlier = [
        s.on for s in context.previous_sessions if same_site(s.site, plan.site) and s.modality is plan.modality and s.on <= context.today
    ]
    if not earlier:
        return []
    next_allowed = max(earlier) + timedelta(days=plan.interval_days)
    if context.today < next_allowed:
        return [
            OpenItem(
                "interval",
                f"the last session on this site was {max(earlier).isoformat()}; the skin needs until {next_allowed.isoformat()}",
                Hazard.H13_SESSIONS_TOO_CLOSE,
            )
        ]
    return []


def aftercare(plan: Plan) -> list[str]:
    """The aftercare sheet for a treatment, in plain words."""
    lines = [
        f"No sun or solarium for {SUN_FREE_WEEKS_AFTER} weeks; protect the area with clothing or sunscreen.",
    ]
    if isinstance(plan, LaserPlan):
        lines += [
            "Reddening and swelling are normal for a few days; cool the area gently.",
            "Do not scratch or pick crusts; let them fall off by themselves.",
            "Light or dark patches (hypo- or hyperpigmentation) can appear and usually fade: tell us if they do.",
        ]
        if plan.indication.value == "tattoo":
            lines.append(f"Several sessions are needed; the next one not before {plan.interval_days // 7} weeks.")
        if plan.test_spot_required:
            lines.append("Tell us at once if the treated ink turns darker.")
    else:
        lines += [
            "A blister may form within a day: do not open it; keep it clean and covered.",
            "Scales fall off in 2-3 weeks; do not pick them.",
            f"Several sessions may be needed; the next one not before {plan.interval_days} days.",
            "Light or dark patches can appear: tell us if they do.",
        ]
    lines.append(
        "Report at once: severe pain, a large or bloody blister, pus, fever, or a wound that does not heal in 2 weeks."
    )
    return lines
