"""Mutation score per module of a cosmic-ray session: killed / (killed + survived).

Pending: not run yet (a run cut short by its time budget); other: the mutant could not be applied
or the test command could not start (cosmic-ray's incompetent / exception outcomes).

Usage: python bench/mutation_score.py build/mutation/session.sqlite
"""

from __future__ import annotations

import sqlite3
import sys
from collections import Counter


def main(path: str) -> int:
    db = sqlite3.connect(path)
    rows = db.execute(
        "SELECT s.module_path, r.test_outcome, r.worker_outcome FROM mutation_specs s "
        "LEFT JOIN work_results r ON r.job_id = s.job_id"
    ).fetchall()
    counts: dict[str, Counter[str]] = {}
    for module, outcome, worker in rows:
        key = outcome if outcome in ("KILLED", "SURVIVED") else ("PENDING" if worker is None else "OTHER")
        counts.setdefault(module, Counter())[key] += 1
    total: Counter[str] = Counter()
    print(f"{'module':32} {'mutants':>7} {'killed':>7} {'survived':>8} {'pending':>7} {'other':>5} {'score':>7}")
    for module, c in sorted(counts.items()) + [("all", total)]:
        if module != "all":
            total.update(c)
        done = c["KILLED"] + c["SURVIVED"]
        score = f"{100.0 * c['KILLED'] / done:.1f} %" if done else "-"
        print(f"{module:32} {sum(c.values()):7} {c['KILLED']:7} {c['SURVIVED']:8} {c['PENDING']:7} {c['OTHER']:5} {score:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
