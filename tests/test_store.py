"""The store's writer: group commits, durability when a caller is told so, failures kept to their unit,
the audit chain in commit order, nothing on the event loop; schema versions and in-place upgrades."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from devicectl.core import migrations, whole_files
from devicectl.core.audit import AuditLog, verify
from devicectl.core.store import Store

LEGACY = Path(__file__).parent / "fixtures" / "devicectl-ab2778b.sqlite3"


def insert_patient(pid: str):  # type: ignore[no-untyped-def]
    return lambda conn: conn.execute("INSERT INTO patients (id, created, created_by) VALUES (?, 0, 't')", (pid,)).lastrowid


async def opened(path: Path, **options: float) -> Store:
    """A store opened off the event loop (opening reads the schema version)."""
    return await asyncio.to_thread(Store, path, **options)  # type: ignore[arg-type]


def committed(path: Path, sql: str) -> int:
    """What another connection (another process after a crash) sees."""
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


async def test_everything_queued_when_a_commit_starts_goes_into_that_commit(tmp_path: Path) -> None:
    store = await opened(tmp_path / "db.sqlite3", commit_delay_ms=50)
    try:
        futures = [store.write(insert_patient(f"P-{i}")) for i in range(300)]
        await asyncio.gather(*futures)
        assert await asyncio.to_thread(committed, store.path, "SELECT COUNT(*) FROM patients") == 300
        assert store.commits <= 2  # the first one alone at most, then the 299 queued behind it in one
    finally:
        await asyncio.to_thread(store.close)


async def test_a_caller_is_told_only_once_its_record_is_committed(tmp_path: Path) -> None:
    store = await opened(tmp_path / "db.sqlite3", commit_delay_ms=30)
    try:
        for i in range(5):
            future = store.write(insert_patient(f"P-{i}"))
            assert not future.done()
            assert await asyncio.to_thread(committed, store.path, "SELECT COUNT(*) FROM patients") == i  # not yet: the commit is slow
            await future
            assert await asyncio.to_thread(committed, store.path, "SELECT COUNT(*) FROM patients") == i + 1
    finally:
        await asyncio.to_thread(store.close)


async def test_recording_never_waits_for_the_disk(tmp_path: Path) -> None:
    store = await opened(tmp_path / "db.sqlite3", commit_delay_ms=200)
    try:
        start = time.perf_counter()
        for i in range(100):
            store.record(insert_patient(f"P-{i}"))
        assert time.perf_counter() - start < 0.05  # 100 records queued while one commit takes 200 ms
        await store.flush()
        assert await asyncio.to_thread(committed, store.path, "SELECT COUNT(*) FROM patients") == 100
    finally:
        await asyncio.to_thread(store.close)


async def test_a_failing_record_fails_alone(tmp_path: Path) -> None:
    store = await opened(tmp_path / "db.sqlite3", commit_delay_ms=20)
    try:
        first = store.write(insert_patient("P-1"))  # the writer is busy with this one ...
        futures = [store.write(insert_patient(pid)) for pid in ("P-2", "P-1", "P-3")]  # ... these form one group
        await first
        results = await asyncio.gather(*futures, return_exceptions=True)
        assert isinstance(results[1], sqlite3.IntegrityError)
        assert not isinstance(results[0], BaseException) and not isinstance(results[2], BaseException)
        ids = set(await store.read(lambda conn: [row[0] for row in conn.execute("SELECT id FROM patients")]))
        assert ids == {"P-1", "P-2", "P-3"}
    finally:
        await asyncio.to_thread(store.close)


async def test_the_audit_chain_follows_the_commit_order(tmp_path: Path) -> None:
    store = await opened(tmp_path / "db.sqlite3", commit_delay_ms=5)
    audit = AuditLog(store)
    try:
        ids = await asyncio.gather(*[audit.append("t", "event", n=n) for n in range(200)])
        store.record(lambda conn: audit.append_in(conn, "kernel", "safety.stop", n=200))
        await store.flush()
        assert sorted(ids) == list(range(1, 201))
        result = await audit.verify()
        assert result.ok and result.entries == 201
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            await store.write(lambda conn: conn.execute("DELETE FROM audit WHERE id = 3"))
    finally:
        await asyncio.to_thread(store.close)


async def test_what_a_turn_queues_reaches_the_writer_after_the_callbacks_already_due(tmp_path: Path) -> None:
    """A STOP decided with a pulse's record is scheduled first and written first: the writer thread is
    woken only when the turn's due callbacks have run, never in between to compete for the interpreter."""
    store = await opened(tmp_path / "db.sqlite3")
    order: list[str] = []
    try:
        loop = asyncio.get_running_loop()
        loop.call_soon(order.append, "STOP written")
        store.record(lambda conn: order.append("record committed"))
        done = store.write(lambda conn: order.append("write committed"))
        assert store._queue.empty()  # nothing handed over yet: still the turn that queued it
        await done
        assert order == ["STOP written", "record committed", "write committed"]
    finally:
        await asyncio.to_thread(store.close)


async def test_what_the_last_turn_queued_is_committed_when_the_store_closes(tmp_path: Path) -> None:
    store = await opened(tmp_path / "db.sqlite3")
    store.record(insert_patient("P-1"))  # the hand-over is due at the end of this turn ...
    store.close()  # ... but the store closes first (blocking, for the test): the record is not lost
    assert committed(store.path, "SELECT COUNT(*) FROM patients") == 1


async def test_waiting_for_a_commit_on_the_loop_is_refused(tmp_path: Path) -> None:
    store = await opened(tmp_path / "db.sqlite3")
    try:
        with pytest.raises(RuntimeError, match="block"):
            store.write_sync(insert_patient("P-1"))
    finally:
        await asyncio.to_thread(store.close)


@pytest.mark.slow_callbacks_allowed  # inline commits on the loop's thread by design (the simulation's virtual time)
def test_the_inline_store_commits_at_once_on_the_callers_thread(tmp_path: Path) -> None:
    """The deterministic simulation's mode: no thread, so virtual time never waits for one."""
    store = Store(tmp_path / "db.sqlite3", inline=True)

    async def run() -> None:
        future = store.write(insert_patient("P-1"))
        assert future.done()
        store.record(insert_patient("P-2"))
        assert await store.read(lambda conn: conn.execute("SELECT COUNT(*) FROM patients").fetchone()[0]) == 2

    asyncio.run(run())
    store.close()


def test_the_schema_version_is_the_newest_migration() -> None:
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(migrations.config()).get_current_head() == migrations.HEAD  # type: ignore[arg-type]


def schema(path: Path) -> dict[str, object]:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {
            "tables": {t: [(c[1], c[2].upper(), c[3], c[4], c[5]) for c in conn.execute(f"PRAGMA table_info({t})")]
                       for t in tables},
            "indexes": sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'"
                                                         " AND name NOT LIKE 'sqlite_autoindex%'")),
            "triggers": sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")),
        }
    finally:
        conn.close()


def normalised(s: dict[str, object]) -> dict[str, object]:
    """Types by SQLite affinity (the old code wrote REAL, SQLAlchemy writes FLOAT: both REAL); an INTEGER
    PRIMARY KEY is never NULL whether NOT NULL is spelled out or not."""
    tables = {t: [(name, {"FLOAT": "REAL", "VARCHAR(32)": "TEXT"}.get(kind, kind), notnull or pk, default, pk)
                  for name, kind, notnull, default, pk in columns]
              for t, columns in s["tables"].items()}  # type: ignore[attr-defined]
    return s | {"tables": tables}


def test_a_database_written_before_versions_is_upgraded_in_place(tmp_path: Path) -> None:
    """The fixture was written by the code at ab2778b (tests/fixtures/make_legacy_db.py)."""
    path = tmp_path / "devicectl.sqlite3"
    shutil.copyfile(LEGACY, path)
    assert migrations.version(path) == migrations.BASELINE
    before = {t: committed(path, f"SELECT COUNT(*) FROM {t}") for t in ("users", "sessions", "pulses", "decisions", "audit")}
    store = Store(path)
    store.close()
    assert migrations.version(path) == migrations.HEAD
    assert {t: committed(path, f"SELECT COUNT(*) FROM {t}") for t in before} == before  # every row kept
    assert committed(path, "SELECT COUNT(*) FROM pulses WHERE seen = 0") == 1
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    assert verify(conn).ok  # the chain written by the old code still holds
    conn.close()
    assert normalised(schema(path)) == normalised(schema(fresh(tmp_path)))  # the same schema as a new database
    assert "pulses_session" in schema(path)["indexes"]  # type: ignore[operator]


def fresh(tmp_path: Path) -> Path:
    path = tmp_path / "fresh" / "devicectl.sqlite3"
    Store(path).close()
    return path


def test_a_database_without_the_added_columns_gets_them(tmp_path: Path) -> None:
    """Version 0001 as first written (no pulses.seen, no decisions): the migrations add both."""
    path = tmp_path / "devicectl.sqlite3"
    migrations.migrate(path, "0001")
    assert "decisions" not in schema(path)["tables"]  # type: ignore[operator]
    Store(path).close()
    assert normalised(schema(path)) == normalised(schema(fresh(tmp_path)))


def test_opening_a_store_twice_is_cheap(tmp_path: Path) -> None:
    path = tmp_path / "devicectl.sqlite3"
    Store(path).close()
    start = time.perf_counter()
    Store(path).close()
    assert time.perf_counter() - start < 0.5  # at HEAD: only looked at, no Alembic run


def test_a_process_that_makes_a_new_database_leaves_nothing_in_the_temporary_directory(tmp_path: Path) -> None:
    """The empty database at HEAD is made once per process in a temporary folder; every start of the
    service used to leave that folder behind."""
    import subprocess
    import sys

    temporary = tmp_path / "tmp"
    temporary.mkdir()
    path = tmp_path / "data" / "devicectl.sqlite3"
    code = ("import sys; from pathlib import Path; from devicectl.core.store import Store; "
            "Store(Path(sys.argv[1])).close(); Store(Path(sys.argv[1]).with_name('second.sqlite3')).close()")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, env={"TMPDIR": str(temporary), "PATH": ""})
    assert list(temporary.iterdir()) == []
    assert migrations.version(path) == migrations.version(path.with_name("second.sqlite3")) == migrations.HEAD


def test_a_first_start_stopped_while_writing_the_new_database_leaves_none_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next start makes it anew (a half-written file would be refused as corrupt at every start)."""
    path = tmp_path / "devicectl.sqlite3"

    def lost(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(whole_files.os, "fsync", lost)
    with pytest.raises(OSError, match="Input/output"):
        migrations.migrate(path)
    assert not path.exists()
    monkeypatch.undo()
    Store(path).close()
    assert migrations.version(path) == migrations.HEAD
