"""Soak the deterministic simulation: many seeds on two processes, or replay one seed.

    python bench/soak.py                  # 10 000 seeds from 0 on 2 processes
    python bench/soak.py --seed 1234      # replay one seed exactly, printing its wire log tail
    python bench/soak.py --seeds 500 --start 9000 --duration 30 --all-faults

Prints seeds/s, virtual hours covered, pulses and freezes simulated, and every violation with
its seed (replay it with --seed). Exit status 1 if any seed violated an invariant.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.dst.invariants import CHECKS, Violation
from tests.dst.world import FAULT_KINDS, World

DEFAULT_DURATION_S = 15.0


def run_one(args: tuple[int, float, bool]) -> tuple[int, float, int, int, str | None]:
    seed, duration_s, everything = args
    world = World(seed, duration_s=duration_s, **({"faults": FAULT_KINDS, "checks": CHECKS, "tabs": 2} if everything else {}))
    try:
        summary = world.run()
    except Violation as violation:
        return seed, violation.t, 0, 0, str(violation).splitlines()[0]
    except Exception as exc:  # noqa: BLE001 - reported with its seed, never hidden
        return seed, 0.0, 0, 0, f"seed {seed}: {type(exc).__name__}: {exc}"
    return seed, summary.virtual_s, summary.pulses, summary.freezes, None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, help="replay this one seed")
    parser.add_argument("--seeds", type=int, default=10_000)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--duration", type=float, default=DEFAULT_DURATION_S, help="virtual seconds per seed")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--all-faults", action="store_true", help="also the faults, checks and second tab pending a fix")
    args = parser.parse_args()
    if args.seed is not None:
        world = World(args.seed, duration_s=args.duration,
                      **({"faults": FAULT_KINDS, "checks": CHECKS, "tabs": 2} if args.all_faults else {}))
        try:
            summary = world.run()
        except Violation as violation:
            print(violation)
            return 1
        print(world.wire.tail(50))
        print(f"seed {summary.seed}: {summary.virtual_s:.1f} virtual s, {summary.wire_lines} wire lines, "
              f"{summary.pulses} pulses, {summary.freezes} freezes, faults {summary.faults}, digest {summary.digest}")
        return 0
    jobs = [(seed, args.duration, args.all_faults) for seed in range(args.start, args.start + args.seeds)]
    started = time.perf_counter()
    virtual_s = pulses = freezes = 0.0
    violations: list[str] = []
    gc.freeze()  # the imported modules are never garbage: the collector of each worker skips them
    with multiprocessing.get_context("fork").Pool(args.processes) as pool:
        for done, (seed, vs, p, f, violation) in enumerate(pool.imap_unordered(run_one, jobs, chunksize=8), 1):
            virtual_s += vs
            pulses += p
            freezes += f
            if violation:
                violations.append(violation)
                print(violation, flush=True)
            if done % 1000 == 0:
                print(f"  {done} seeds, {done / (time.perf_counter() - started):.1f} seeds/s", flush=True)
    elapsed = time.perf_counter() - started
    print(f"{len(jobs)} seeds in {elapsed:.0f} s on {args.processes} processes: {len(jobs) / elapsed:.1f} seeds/s, "
          f"{virtual_s / 3600:.1f} virtual hours, {int(pulses)} pulses, {int(freezes)} freezes, "
          f"{len(violations)} violations")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
