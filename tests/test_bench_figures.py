"""The benchmarks' one definition of a percentile (bench/figures.py): nearest rank, so that a p99 of
100 trials is the second worst, not the worst, and never a value between two that were measured."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from bench.figures import percentile, summary


def test_the_p99_of_100_values_is_the_second_largest() -> None:
    values = list(range(100, 0, -1))  # in any order
    assert percentile(values, 99) == 99
    assert percentile(values, 50) == 50
    assert percentile(values, 100) == 100


def test_the_p99_of_300_values_is_the_fourth_largest_and_of_one_value_that_value() -> None:
    assert percentile(range(1, 301), 99) == 297  # 1 % of 300 above it: three
    assert percentile([0.7], 99) == 0.7


def test_no_values_give_nan_not_an_error() -> None:
    assert math.isnan(percentile([], 99))
    assert summary([])["n"] == 0 and math.isnan(summary([])["p99"])


def test_a_summary_scales_seconds_to_milliseconds() -> None:
    assert summary([0.003, 0.001, 0.002], 1000) == {"p50": 2.0, "p99": 3.0, "max": 3.0, "n": 3}


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1), st.floats(min_value=0.1, max_value=100))
def test_a_percentile_is_a_measured_value_with_at_least_q_percent_at_or_below_it(values: list[float], q: float) -> None:
    p = percentile(values, q)
    assert p in values
    assert sum(v <= p for v in values) >= q / 100 * len(values)
    assert sum(v < p for v in values) < q / 100 * len(values)  # and the smallest such value
