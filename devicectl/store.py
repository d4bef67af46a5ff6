"""SQLite (WAL) for every record. A write the API confirmed is committed with synchronous=FULL,
so it survives kill -9 of the service and a power cut of the host."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, role TEXT NOT NULL, pin_hash TEXT NOT NULL,
    failed INTEGER NOT NULL DEFAULT 0, locked_until REAL NOT NULL DEFAULT 0,
    must_change INTEGER NOT NULL DEFAULT 0, active INTEGER NOT NULL DEFAULT 1, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id), expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS patients (
    id TEXT PRIMARY KEY, created REAL NOT NULL, created_by TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY, patient_id TEXT NOT NULL REFERENCES patients(id), device TEXT NOT NULL,
    modality TEXT NOT NULL, site TEXT NOT NULL, plan TEXT NOT NULL, checklist TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL, created REAL NOT NULL, opened REAL, closed REAL, outcome TEXT,
    practitioner TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pulses (
    id INTEGER PRIMARY KEY, session_id INTEGER NOT NULL REFERENCES sessions(id), n INTEGER NOT NULL,
    energy_mj REAL NOT NULL, set_mj INTEGER NOT NULL, t_ms INTEGER NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY, session_id INTEGER REFERENCES sessions(id), device TEXT NOT NULL,
    at REAL NOT NULL, kind TEXT NOT NULL, hazard TEXT NOT NULL, reason TEXT NOT NULL, fact TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS freezes (
    id INTEGER PRIMARY KEY, session_id INTEGER NOT NULL REFERENCES sessions(id), dur_s REAL NOT NULL,
    cause TEXT NOT NULL, min_tip_c REAL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS calibrations (
    id INTEGER PRIMARY KEY, device_serial TEXT NOT NULL, device_kind TEXT NOT NULL, passed INTEGER NOT NULL,
    results TEXT NOT NULL, technician TEXT NOT NULL, performed REAL NOT NULL, expires_on TEXT NOT NULL,
    certificate TEXT);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


class Store:
    """One connection guarded by a lock (the service's writes are small and few per second)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.executescript(SCHEMA)
        self._add_missing_columns()
        self.lock = threading.RLock()

    def _add_missing_columns(self) -> None:
        """Columns added since a database was first written (its rows keep their meaning)."""
        columns = {row["name"] for row in self.conn.execute("PRAGMA table_info(pulses)")}
        if "seen" not in columns:  # pulses the unit counted but the host never saw have seen = 0
            self.conn.execute("ALTER TABLE pulses ADD COLUMN seen INTEGER NOT NULL DEFAULT 1")

    def execute(self, sql: str, params: tuple | dict = ()) -> sqlite3.Cursor:  # type: ignore[type-arg]
        with self.lock:
            return self.conn.execute(sql, params)

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:  # type: ignore[type-arg]
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: tuple | dict = ()) -> sqlite3.Row | None:  # type: ignore[type-arg]
        with self.lock:
            return self.conn.execute(sql, params).fetchone()

    def transaction(self) -> "_Transaction":
        return _Transaction(self)

    def close(self) -> None:
        with self.lock:
            self.conn.close()


class _Transaction:
    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> sqlite3.Connection:
        self.store.lock.acquire()
        self.store.conn.execute("BEGIN IMMEDIATE")
        return self.store.conn

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            self.store.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.store.lock.release()
