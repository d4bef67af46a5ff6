"""The loop guard names what stalled the event loop that carries STOP, including what the sampler
cannot see (garbage collection, which runs in C), and settle_heap keeps start-up's objects out of
the collector's walk."""

from __future__ import annotations

import asyncio
import gc
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devicectl.core import heap, loopguard


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


def test_a_callback_is_charged_the_cpu_time_it_took() -> None:
    """Exactly, not in scheduler ticks: getrusage's thread times advance 4 ms at a time, which charged a
    0.1 ms callback caught by a tick 4 ms and a 2 ms one 0 ms."""
    measured: list[float] = []
    guard = loopguard.install(0.0005, lambda what, seconds: measured.append(seconds))
    try:
        async def steps() -> None:
            for _ in range(5):
                start = time.perf_counter()  # computing without reading the CPU clock (which would refresh it)
                while time.perf_counter() - start < 0.002:
                    pass
                await asyncio.sleep(0)

        asyncio.run(steps())
    finally:
        guard.uninstall()
    # never more than it took (a tick's 4 ms); a step the host preempted took less CPU than wall time
    assert all(s < 0.0035 for s in measured) and len([s for s in measured if s > 0.001]) >= 3, measured


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


def test_settle_takes_start_up_objects_out_of_the_collectors_walk_and_full_collections_off_allocation() -> None:
    thresholds = gc.get_threshold()
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        heap.settle()
        assert gc.get_freeze_count() > 10_000  # this process's modules and everything they built
        assert gc.get_threshold() == heap.THRESHOLDS and heap.THRESHOLDS[:2] == (700, 10)
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


#: a service that settled its start-up, then writes its first calibration certificate (a worker thread)
FIRST_CERTIFICATE = """
import gc, sys
from pathlib import Path
from devicectl.core import heap
from devicectl.calibration.procedures import CryoPoint, analyse_cryo
from devicectl.calibration.runs import _write_certificate
import devicectl.serve  # what devicectl serve imports before it settles
heap.settle()
result = analyse_cryo("CP2-0001", [CryoPoint(-30, [-28.6, -28.4], [-30.0, -30.0])])
before = len(gc.get_objects())
_write_certificate(Path(sys.argv[1]), result, "tech", "2027-05-25")
gc.collect()  # the garbage aside: what every later full collection walks
print(before, len(gc.get_objects()))
"""


def test_what_the_first_certificate_imports_is_kept_out_of_the_collectors_walk_too(tmp_path: Path) -> None:
    """Found by the stateful API fuzzer: the first certificate imports matplotlib (past start-up, on
    purpose), ~55 000 objects no full collection had to walk before; every later one on the event
    loop took 20-40 ms and the loop guard failed the run. They are frozen like start-up's."""
    answer = subprocess.run([sys.executable, "-c", FIRST_CERTIFICATE, str(tmp_path)], capture_output=True, text=True,
                            timeout=120, cwd=Path(__file__).parent.parent, check=False)
    assert answer.returncode == 0, answer.stderr
    before, after = map(int, answer.stdout.split())
    assert list(tmp_path.glob("*.html")), "no certificate written"
    assert after - before < 5_000, f"{after - before} objects more for every full collection to walk"


async def test_full_collections_run_while_idle_and_at_least_every_half_hour() -> None:
    """Virtual time: 30 s steps; treating from 60 s to 3660 s, so one forced collection at 1800 s after the last."""
    now = [0.0]
    collected: list[float] = []
    treating = lambda: 60.0 <= now[0] < 3660.0

    async def sleep(seconds: float) -> None:
        now[0] += seconds
        if now[0] > 3700.0:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await heap.keep(lambda: not treating(), clock=lambda: now[0], sleep=sleep, collect=lambda: collected.append(now[0]))
    # idle at 30 s; treating from 60 s: none until 1800 s after the last; idle again at 3660 s
    assert collected == [30.0, 1830.0, 3630.0, 3660.0, 3690.0]


def test_the_idle_collection_is_not_reported_but_a_forced_one_is(reports: list[str]) -> None:
    """The keeper's full collection while nothing emits or freezes is the stall meant to happen."""
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds
        if now[0] > 100.0:
            raise asyncio.CancelledError

    async def run(idle: bool, longest: float) -> None:
        with pytest.raises(asyncio.CancelledError):
            await heap.keep(lambda: idle, every_s=30.0, longest_without_s=longest, clock=lambda: now[0], sleep=sleep,
                            collect=lambda: _spin_cpu(0.01))

    asyncio.run(run(True, 1800.0))
    assert not reports
    now[0] = 0.0
    asyncio.run(run(False, 30.0))  # forced while treating: reported
    assert len(reports) == 1 and "step of task" in reports[0], reports  # the step that ran the collection


def test_a_slow_step_handed_over_from_another_loop_is_named_by_what_it_runs(reports: list[str]) -> None:
    from devicectl.core.loops import LoopThread, on_loop

    service = LoopThread("service").start()

    async def arm_the_laser() -> None:
        _spin_cpu(0.02)
        await asyncio.sleep(0)

    try:
        asyncio.run(on_loop(lambda: service.loop, arm_the_laser)())
    finally:
        service.stop()
    assert any("arm_the_laser" in r and "test_loopguard.py" in r for r in reports), reports


def test_a_file_the_service_opens_on_the_loop_is_reported_but_not_one_a_test_opens_or_a_worker(
        reports: list[str], tmp_path: Path) -> None:
    from devicectl.core.config import load_settings

    config = tmp_path / "devicectl.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n')

    async def scenario() -> None:
        config.read_text()  # the test's own code
        await asyncio.to_thread(load_settings, config)  # the service's, off the loop
        load_settings(config)  # the service's, on the loop

    asyncio.run(scenario())
    assert [r for r in reports if "blocking call" in r] == [
        f"0.0 ms: blocking call on the event loop: open {config} (config.py:{_line_of(load_settings, 'read_text')} "
        "load_settings)"]


def _line_of(function: Any, text: str) -> int:
    import inspect

    lines, first = inspect.getsourcelines(function)
    return first + next(i for i, line in enumerate(lines) if text in line)


def test_a_report_that_writes_its_log_is_not_itself_reported(tmp_path: Path) -> None:
    """``devicectl serve`` writes each report to DATA_DIR/slow-callbacks.log, from its own code, on the loop."""
    from devicectl import serve
    from devicectl.core.config import load_settings

    settings = load_settings(None, data_dir=tmp_path, slow_callback_ms=5)
    config = tmp_path / "devicectl.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n')
    switch = sys.getswitchinterval()
    guard = serve.guard_loop(settings)
    assert guard is not None
    try:
        asyncio.run(_open_on_the_loop(load_settings, config))
    finally:
        guard.uninstall()
        sys.setswitchinterval(switch)
    logged = (tmp_path / "slow-callbacks.log").read_text().splitlines()
    assert len(logged) == 1 and f"open {config}" in logged[0], logged


async def _open_on_the_loop(load: Any, path: Path) -> None:
    load(path)


def test_a_callback_that_waits_for_the_gil_is_reported_with_its_wall_time_and_waits() -> None:
    """Another thread holding the GIL in one long C call (a sort) holds the loop as long, and the
    loop's thread polls the GIL meanwhile, which is CPU time of its callback: the report says how
    long it took and how often it gave its CPU up, so a wait for another thread reads as one."""
    found: list[str] = []
    data = list(range(3_000_000, 0, -1)) * 2
    interval = sys.getswitchinterval()
    sys.setswitchinterval(loopguard.SWITCH_INTERVAL_S)  # as devicectl serve runs
    guard = loopguard.install(0.001, lambda what, seconds: found.append(what))
    try:
        async def wait_for_the_sorter() -> None:
            started = threading.Event()
            sorter = threading.Thread(target=lambda: (started.set(), sorted(data)))
            sorter.start()
            started.wait()  # the GIL given up here; taking it back waits for the whole sort
            sorter.join()

        asyncio.run(wait_for_the_sorter())
    finally:
        guard.uninstall()
        sys.setswitchinterval(interval)
    report = next(r for r in found if "wait_for_the_sorter" in r)
    wall, waits = re.search(r"(\d+\.\d) ms wall time; the thread gave its CPU up (\d+) times.* (\d+) page faults", report).groups()[:2]  # type: ignore[union-attr]
    assert float(wall) > 20 and int(waits) > 10, report


def test_a_callback_that_touches_new_memory_is_reported_with_its_page_faults() -> None:
    """Page faults are CPU time of the callback that takes them (on a virtual machine each can cost
    tens of microseconds): the report counts them."""
    found: list[str] = []
    guard = loopguard.install(0.001, lambda what, seconds: found.append(what))
    try:
        async def touch_new_memory() -> None:
            memory = bytearray(64 << 20)  # mapped, not yet backed: each page faults when first written
            memory[::4096] = b"\x01" * (len(memory) // 4096)

        asyncio.run(touch_new_memory())
    finally:
        guard.uninstall()
    report = next(r for r in found if "touch_new_memory" in r)
    faults = int(re.search(r"took (\d+) page faults", report).group(1))  # type: ignore[union-attr]
    assert faults >= (64 << 20) // (2 << 20), report  # one a page at least (huge pages of 2 MiB, where the host uses them)
