"""Removing any one rule makes at least one scenario fail: no rule is decoration."""

from __future__ import annotations

import pytest

from safety.cryo_kernel import CryoKernel
from safety.kernel import KernelBase, Rule
from safety.laser_kernel import LaserKernel
from tests.safety_scenarios import CRYO_SCENARIOS, LASER_SCENARIOS

CASES = [(LaserKernel, r, LASER_SCENARIOS) for r in LaserKernel.RULES] + [
    (CryoKernel, r, CRYO_SCENARIOS) for r in CryoKernel.RULES
]


@pytest.mark.parametrize(
    ("kernel", "removed", "scenarios"), CASES, ids=[f"{k.__name__}-{r.name}" for k, r, _ in CASES]
)
def test_removing_the_rule_breaks_a_scenario(kernel: type[KernelBase], removed: Rule, scenarios: list) -> None:  # type: ignore[type-arg]
    mutilated = type(f"{kernel.__name__}Without", (kernel,), {"RULES": tuple(r for r in kernel.RULES if r is not removed)})
    failures = []
    for scenario in scenarios:
        try:
            scenario(mutilated)
        except (AssertionError, IndexError):  # a check failed, or decisions that should be there are missing
            failures.append(scenario.__name__)
    assert failures, f"no scenario notices when rule {removed.name!r} ({removed.hazard.value}) is removed"


def test_every_rule_names_a_hazard() -> None:
    for kernel in (LaserKernel, CryoKernel):
        names = [r.name for r in kernel.RULES]
        assert len(names) == len(set(names))
        assert all(r.hazard.value.startswith("H") for r in kernel.RULES)
