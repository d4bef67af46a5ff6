"""Mutation score per module of a cosmic-ray session: killed / (killed + survived), raw and
without the survivors judged equivalent.

Pending: not run yet (a run cut short by its time budget); other: the mutant could not be applied
or the test command could not start (cosmic-ray's incompetent / exception outcomes). A survivor is
equivalent when its diff hunk (the changed line with its context) is one judged so, with the
reason, in ``bench/mutation_equivalents.json``; a survivor matching none is printed as unjudged.

Usage: python bench/mutation_score.py build/mutation/session.sqlite [more sessions ...]  (a module
       found in several sessions is scored from the last one given)
       python bench/mutation_score.py --equivalents   # the judged equivalents by module and reason (markdown)
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections import Counter
from pathlib import Path

EQUIVALENTS = Path(__file__).with_name("mutation_equivalents.json")


def hunk(diff: str) -> tuple[str, ...]:
    """The changed lines of a mutant's diff with their context, without file names, positions and
    blank lines (a report printed with trailing blanks stripped reads the same)."""
    return tuple(line.rstrip() for line in diff.splitlines()
                 if line[:1] in (" ", "-", "+") and line[1:].strip() and not line.startswith(("---", "+++")))


def load_equivalents(path: Path = EQUIVALENTS) -> dict[tuple[str, tuple[str, ...]], str]:
    return {(e["module"], tuple(e["hunk"])): e["reason"] for e in json.loads(path.read_text())}


def print_equivalents(path: Path = EQUIVALENTS) -> None:
    grouped = Counter((e["module"], e["reason"]) for e in json.loads(path.read_text()))
    print("| module | mutants | why they cannot change behaviour |\n|---|---|---|")
    for (module, reason), n in sorted(grouped.items(), key=lambda item: (item[0][0], -item[1])):
        print(f"| `{module}` | {n} | {reason.replace('|', '/')} |")


def main(paths: list[str]) -> int:
    if paths == ["--equivalents"]:
        print_equivalents()
        return 0
    equivalents = load_equivalents()
    counts: dict[str, Counter[str]] = {}
    unjudged: list[tuple[str, str]] = []
    latest: dict[str, list[tuple[str, str | None, str | None, str | None]]] = {}
    for path in paths:  # a module in several sessions: the last one given counts (a re-run after a change)
        db = sqlite3.connect(path)
        rows = db.execute(
            "SELECT s.module_path, r.test_outcome, r.worker_outcome, r.diff FROM mutation_specs s "
            "LEFT JOIN work_results r ON r.job_id = s.job_id"
        ).fetchall()
        session: dict[str, list[tuple[str, str | None, str | None, str | None]]] = {}
        for row in rows:
            session.setdefault(row[0], []).append(row)
        latest |= session
    for module_rows in latest.values():
        for module, outcome, worker, diff in module_rows:
            key = outcome if outcome in ("KILLED", "SURVIVED") else ("PENDING" if worker is None else "OTHER")
            if key == "SURVIVED" and (module, hunk(diff or "")) in equivalents:
                key = "EQUIVALENT"
            elif key == "SURVIVED":
                unjudged.append((module, diff or ""))
            counts.setdefault(module, Counter())[key] += 1
    total: Counter[str] = Counter()
    print(f"{'module':26} {'mutants':>7} {'killed':>7} {'survived':>8} {'equiv.':>6} {'pending':>7} {'other':>5}"
          f" {'raw':>7} {'non-equivalent killed':>22}")
    for module, c in sorted(counts.items()) + [("all", total)]:
        if module != "all":
            total.update(c)
        run = c["KILLED"] + c["SURVIVED"] + c["EQUIVALENT"]
        raw = f"{100.0 * c['KILLED'] / run:.1f} %" if run else "-"
        real = c["KILLED"] + c["SURVIVED"]
        score = f"{c['KILLED']}/{real} = {100.0 * c['KILLED'] / real:.1f} %" if real else "-"
        print(f"{module:26} {sum(c.values()):7} {c['KILLED']:7} {c['SURVIVED']:8} {c['EQUIVALENT']:6} {c['PENDING']:7}"
              f" {c['OTHER']:5} {raw:>7} {score:>22}")
    for module, diff in unjudged:
        print(f"\nunjudged survivor in {module}:\n" + "\n".join(hunk(diff)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
