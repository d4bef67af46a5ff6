"""The append-only, hash-chained audit log.

Each entry holds the SHA-256 of the previous entry's hash and its own canonical content, so any
edit, deletion or reordering breaks the chain from that entry on; SQLite triggers also refuse
UPDATE and DELETE. ``verify`` walks the chain and names the first entry that does not fit.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from .store import Store

GENESIS = "0" * 64


def _digest(prev_hash: str, entry_id: int, ts: float, actor: str, action: str, detail: str) -> str:
    canonical = json.dumps([prev_hash, entry_id, repr(ts), actor, action, detail], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class AuditLog:
    def __init__(self, store: Store) -> None:
        self.store = store

    def append(self, actor: str, action: str, conn: sqlite3.Connection | None = None, **detail: Any) -> int:
        """Append one entry (inside ``conn``'s transaction when given, so it commits with the record)."""
        text = json.dumps(detail, sort_keys=True, default=str, separators=(",", ":"))
        if conn is not None:
            return self._append(conn, actor, action, text)
        with self.store.transaction() as tx:
            return self._append(tx, actor, action, text)

    def _append(self, conn: sqlite3.Connection, actor: str, action: str, detail: str) -> int:
        last = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        entry_id = (last["id"] + 1) if last else 1
        prev_hash = last["hash"] if last else GENESIS
        ts = time.time()
        digest = _digest(prev_hash, entry_id, ts, actor, action, detail)
        conn.execute(
            "INSERT INTO audit (id, ts, actor, action, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (entry_id, ts, actor, action, detail, prev_hash, digest),
        )
        return entry_id

    def entries(self, limit: int = 200) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,))
        return [dict(row) | {"detail": json.loads(row["detail"])} for row in rows]


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    first_bad_id: int | None = None
    reason: str = ""


def verify(conn: sqlite3.Connection) -> Verification:
    """Walk the chain: ids consecutive from 1, each prev_hash the previous hash, each hash right."""
    prev_hash = GENESIS
    expected_id = 1
    count = 0
    for row in conn.execute("SELECT id, ts, actor, action, detail, prev_hash, hash FROM audit ORDER BY id"):
        count += 1
        entry_id, ts, actor, action, detail, stored_prev, stored_hash = tuple(row)
        if entry_id != expected_id:
            return Verification(False, count, entry_id, f"entry {expected_id} is missing (next is {entry_id})")
        if stored_prev != prev_hash:
            return Verification(False, count, entry_id, "does not follow the previous entry (deleted or reordered)")
        if _digest(prev_hash, entry_id, ts, actor, action, detail) != stored_hash:
            return Verification(False, count, entry_id, "its content was changed after it was written")
        prev_hash = stored_hash
        expected_id += 1
    return Verification(True, count)
