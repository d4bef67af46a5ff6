"""Every kernel rule and refusal, as scenarios of facts in and decisions out."""

from __future__ import annotations

import pytest

from safety.cryo_kernel import CryoKernel
from safety.laser_kernel import LaserKernel
from tests.safety_scenarios import CRYO_SCENARIOS, LASER_SCENARIOS


@pytest.mark.parametrize("scenario", LASER_SCENARIOS, ids=lambda s: s.__name__)
def test_laser_kernel(scenario) -> None:  # type: ignore[no-untyped-def]
    scenario(LaserKernel)


@pytest.mark.parametrize("scenario", CRYO_SCENARIOS, ids=lambda s: s.__name__)
def test_cryo_kernel(scenario) -> None:  # type: ignore[no-untyped-def]
    scenario(CryoKernel)
