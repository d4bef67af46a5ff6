"""Audit records persisted per second: each append its own durable transaction (WAL,
synchronous=FULL: it survives kill -9 and power loss once append() returns), as the service does.
Also the raw SQLite insert rate with the same durability, as the baseline. Goal: >= 5000 records/s.
Run: make bench (or .venv/bin/python bench/audit_rate.py [records])
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devicectl.core.audit import AuditLog, verify
from devicectl.core.store import Store

N = int(sys.argv[1]) if len(sys.argv) > 1 else 5000


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="devicectl-audit-"))
    store = Store(folder / "audit.sqlite3")
    audit = AuditLog(store)
    start = time.perf_counter()
    for i in range(N):
        audit.append("bench", "pulse.recorded", session=1, n=i, energy_mj=447.9)
    chained = N / (time.perf_counter() - start)
    ok = verify(store.conn)
    store.close()

    raw = sqlite3.connect(folder / "raw.sqlite3", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=FULL")
    raw.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, detail TEXT)")
    start = time.perf_counter()
    for i in range(N):
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("INSERT INTO t (detail) VALUES (?)", (f'{{"n":{i}}}',))
        raw.execute("COMMIT")
    baseline = N / (time.perf_counter() - start)
    raw.close()
    print(f"audit: {N} hash-chained records, each committed durably: {chained:,.0f} records/s"
          f" (chain verified: {ok.ok}, {ok.entries} entries)")
    print(f"baseline: raw SQLite single-row durable commits: {baseline:,.0f} rows/s; ratio {chained / baseline:.2f}")
    print(f"goal >= 5000 records/s: {'met' if chained >= 5000 else 'NOT met'}")


if __name__ == "__main__":
    main()
