"""How long the devices' loop waits for Python's lock when the service's other threads run behind it.

Only one thread of a Python process runs Python at a time (the GIL). The loop that carries STOP
gives the lock up at every system call (a read from a unit's line, a write of STOP) and must take it
back before it can go on; another thread of the service (the edge serving a screen, the store's
writer) may have it meanwhile. When that thread has the CPU it hands the lock back within the
switch interval (50 µs, loopguard.SWITCH_INTERVAL_S). When it waits for a CPU behind other
programs of the machine, the loop waits as long: the kernel does not know the loop waits on it.

Each row runs one loop thread that waits 0.5 ms for an event (it gives the lock up) and wakes, over
and over, beside one thread of the same process that runs Python without pause (a busy edge), and
prints how late the loop was back with the lock (p50 / p99 / max), and the loop thread's own CPU
time over the wall time
(waiting for the lock, Python polls it every switch interval, and that counts as the loop's CPU).
Rows: the other thread at the loop's nice value or 10 steps behind it (as ``devicectl serve`` ran
its threads up to this benchmark), with the machine otherwise idle, and with one busy program per
CPU at the loop's nice value (a browser on the same box, another service).

    .venv/bin/python bench/gil_inversion.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.figures import summary
from devicectl.core.loopguard import SWITCH_INTERVAL_S

#: how long the loop waits for each event
PAUSE_S = 0.0005


def _spin() -> None:
    while True:
        pass


def _busy(stop: threading.Event, nice: int) -> None:
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    n = 0
    while not stop.is_set():
        n += 1


def row(seconds: float, other_nice: int, programs: int) -> dict[str, float]:
    hogs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(programs)]
    for hog in hogs:
        hog.start()
    stop = threading.Event()
    other = threading.Thread(target=_busy, args=(stop, other_nice), daemon=True)
    other.start()
    waits: list[float] = []
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    deadline = wall0 + seconds
    try:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            time.sleep(PAUSE_S)  # the loop waits for an event (the lock given up), wakes and takes it back
            waits.append(time.perf_counter() - start - PAUSE_S)
    finally:
        cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
        stop.set()
        other.join()
        for hog in hogs:
            hog.kill()
            hog.join()
    return summary(waits, 1000) | {"cpu": cpu / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    sys.setswitchinterval(SWITCH_INTERVAL_S)  # as devicectl serve runs
    cpus = len(os.sched_getaffinity(0))
    print(f"{cpus} CPUs; switch interval {SWITCH_INTERVAL_S * 1e6:.0f} µs; {args.seconds:g} s a row; "
          "figures: how late the loop thread runs again after each wait")
    print(f"{'other thread':<34}{'other programs':<18}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'loop CPU':>10}")
    for programs in (0, cpus):
        for nice in (0, 10):
            r = row(args.seconds, nice, programs)
            print(f"{'at the loop nice' if nice == 0 else '10 nice steps behind the loop':<34}"
                  f"{programs:<18}{r['p50']:>8.3f}{r['p99']:>8.3f}{r['max']:>8.1f}{r['cpu']:>9.0%}")


if __name__ == "__main__":
    main()
