"""How the benchmarks sum up what they measured: one definition of a percentile for all of them."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``q`` % of the values at or below
    it. The p99 of 100 values is the second largest, of 300 the fourth largest; nan for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q * len(ordered) / 100) - 1)]


def summary(values: Iterable[float], scale: float = 1.0) -> dict[str, float]:
    """p50, p99 and max of ``values`` times ``scale`` (1000: seconds to ms), and how many there were."""
    ordered = [v * scale for v in sorted(values)]
    if not ordered:
        return {"p50": math.nan, "p99": math.nan, "max": math.nan, "n": 0}
    return {"p50": statistics.median(ordered), "p99": percentile(ordered, 99), "max": ordered[-1], "n": len(ordered)}
