"""Shared fixtures: the slow-callback guard on the service's event loop.

In the in-process service tests (FastAPI's TestClient runs the service's loop in a thread) every
callback of an event loop is timed; one over ``SLOW_CALLBACK_MS`` fails the test that caused it
(devicectl/core/loopguard.py). Subprocess tests get the same guard through ``DEVICECTL_SLOW_CALLBACK_MS``
(tests/service_harness.py). Fix what it finds: never raise the threshold.
"""

from __future__ import annotations

import gc
import sys
from typing import Iterator

import pytest

from devicectl.core import heap, loopguard

SLOW_CALLBACK_MS = 5.0

#: test modules that run the service's event loop in the test process
IN_PROCESS_SERVICE_TESTS = {"test_api_auth", "test_calibration_records", "test_store"}


@pytest.fixture(autouse=True)
def slow_callback_guard(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    found: list[str] = []
    module = request.node.module.__name__.rsplit(".", 1)[-1] if request.node.module else ""
    if module not in IN_PROCESS_SERVICE_TESTS or request.node.get_closest_marker("slow_callbacks_allowed"):
        yield found
        return
    switch = sys.getswitchinterval()
    sys.setswitchinterval(loopguard.SWITCH_INTERVAL_S)  # as devicectl serve runs
    thresholds = gc.get_threshold()
    heap.settle()  # as devicectl serve does (after the first time, only what tests built since)
    guard = loopguard.install(SLOW_CALLBACK_MS / 1000, lambda what, seconds: found.append(f"{seconds * 1000:.1f} ms: {what}"))
    try:
        yield found
    finally:
        guard.uninstall()
        sys.setswitchinterval(switch)
        gc.set_threshold(*thresholds)
    if found:
        pytest.fail(f"{len(found)} callback(s) over {SLOW_CALLBACK_MS} ms on the event loop:\n  " + "\n  ".join(found[:10]))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow_callbacks_allowed: the loop guard does not fail this test (say why)")
