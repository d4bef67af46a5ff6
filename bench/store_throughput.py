"""Durable records per second through the store's group-commit writer, many writers at once, against
raw SQLite single-row durable commits measured in the same run.

Each writer is an asyncio task that inserts a pulse row and awaits its commit (``await
store.write(...)``: durable, synchronous=FULL, when the await returns) before the next one, as the
API confirming a record does. The raw figure is one connection, WAL, synchronous=FULL, one
``INSERT`` + ``COMMIT`` per row: what every record cost before the writer.

    .venv/bin/python bench/store_throughput.py [--writers 1024] [--records 200000] [--commit-delay-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devicectl.core.store import Store

INSERT = "INSERT INTO pulses (session_id, n, energy_mj, set_mj, t_ms, at) VALUES (1, ?, 400.0, 400, ?, ?)"


def prepare(store: Store) -> None:
    with store.transaction() as tx:
        tx.execute("INSERT INTO patients (id, created, created_by) VALUES ('P-1', 0, 'bench')")
        tx.execute("INSERT INTO sessions (id, patient_id, device, modality, site, plan, state, created, practitioner)"
                   " VALUES (1, 'P-1', 'laser', 'laser', 'arm', '{}', 'active', 0, 'bench')")


async def group_commit(path: Path, writers: int, records: int, delay_ms: float) -> tuple[float, int, float]:
    store = await asyncio.to_thread(Store, path, commit_delay_ms=delay_ms)
    await asyncio.to_thread(prepare, store)
    per_writer = records // writers

    async def writer(w: int) -> None:
        for i in range(per_writer):
            n = w * per_writer + i
            await store.write(lambda conn, n=n: conn.execute(INSERT, (n, n, 0.0)))

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*[writer(w) for w in range(writers)])
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    commits = store.commits
    await asyncio.to_thread(store.close)
    count = sqlite3.connect(path).execute("SELECT COUNT(*) FROM pulses").fetchone()[0]
    assert count == per_writer * writers, count
    return per_writer * writers / elapsed, commits, per_writer * writers / cpu


def raw_single_row(path: Path, seconds: float) -> float:
    store = Store(path)
    prepare(store)
    store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(INSERT, (n, n, 0.0))
        conn.execute("COMMIT")
        n += 1
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=1024)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--commit-delay-ms", type=float, default=0.0)
    parser.add_argument("--raw-seconds", type=float, default=3.0)
    parser.add_argument("--switch-interval-ms", type=float, default=0.5, help="as devicectl serve sets it")
    args = parser.parse_args()
    sys.setswitchinterval(args.switch_interval_ms / 1000)
    with tempfile.TemporaryDirectory(prefix="devicectl-throughput-", dir=Path.cwd()) as tmp:
        rate, commits, per_cpu = asyncio.run(group_commit(Path(tmp) / "group.sqlite3", args.writers, args.records, args.commit_delay_ms))
        raw = raw_single_row(Path(tmp) / "raw.sqlite3", args.raw_seconds)
    print(f"group commit, {args.writers} writers, each record durable when its await returns: "
          f"{rate:,.0f} records/s ({args.records:,} records in {commits:,} commits, "
          f"{args.records / max(commits, 1):.0f} per commit); {per_cpu:,.0f} records per CPU-second of the process")
    print(f"raw SQLite, one durable commit per row (WAL, synchronous=FULL): {raw:,.0f} records/s")
    print(f"load average while measured: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"ratio: {rate / raw:.1f}x   goal: >= 50,000 records/s -> {'met' if rate >= 50_000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
