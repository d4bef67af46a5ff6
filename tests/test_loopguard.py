"""The loop guard names what stalled the event loop that carries STOP, including what the sampler
cannot see (garbage collection, which runs in C), and settle_heap keeps start-up's objects out of
the collector's walk."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator
from typing import Any

import pytest

from devicectl import loopguard


def _spin_cpu(seconds: float) -> None:
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        pass


@pytest.fixture
def reports() -> Iterator[list[str]]:
    found: list[str] = []
    guard = loopguard.install(0.005, lambda what, seconds: found.append(f"{seconds * 1000:.1f} ms: {what}"))
    try:
        yield found
    finally:
        guard.uninstall()


def test_a_slow_request_is_reported_with_the_request_it_served(reports: list[str]) -> None:
    class Cycle:  # as uvicorn's RequestResponseCycle: the request's scope on self
        def __init__(self) -> None:
            self.scope = {"type": "http", "method": "POST", "path": "/api/sessions/7/arm"}

        async def run_asgi(self) -> None:
            _spin_cpu(0.02)
            await asyncio.sleep(0)  # as a request does: the slow step is not its last

    asyncio.run(Cycle().run_asgi())
    assert any("Cycle.run_asgi" in r and "serving POST /api/sessions/7/arm" in r for r in reports), reports


def test_a_garbage_collection_inside_a_callback_is_named(reports: list[str]) -> None:
    heap: list[Any] = []
    for _ in range(200_000):  # cyclic garbage enough for a collection over the threshold
        a: list[Any] = []
        a.append(a)
        heap.append(a)

    async def collect() -> None:
        heap.clear()
        gc.collect()
        _spin_cpu(0.006)  # over the threshold whatever the collection took

    asyncio.run(collect())
    assert any("garbage collection" in r for r in reports), reports


def test_settle_heap_takes_start_up_objects_out_of_the_collectors_walk() -> None:
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        loopguard.settle_heap()
        assert gc.get_freeze_count() > 10_000  # this process's modules and everything they built
    finally:
        gc.unfreeze()
