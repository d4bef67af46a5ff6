"""The append-only, hash-chained audit log.

Each entry holds the SHA-256 of the previous entry's hash and its own canonical content, so any
edit, deletion or reordering breaks the chain from that entry on; SQLite triggers also refuse
UPDATE and DELETE. ``verify`` walks the chain and names the first entry that does not fit.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from .store import Store

GENESIS = "0" * 64


def _digest(prev_hash: str, entry_id: int, ts: float, actor: str, action: str, detail: str) -> str:
    canonical = json.dumps([prev_hash, entry_id, repr(ts), actor, action, detail], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class AuditLog:
    """Entries are written by the store's writer, in its transactions: the chain follows the commit order."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def append(self, actor: str, action: str, conn: sqlite3.Connection | None = None, **detail: Any) -> Any:
        """Append one entry: inside ``conn``'s transaction when given (it commits with the record; returns
        its id); else, on the event loop, queued to the writer (returns a future done with the id once
        committed: await it when an answer depends on it); else written and committed before returning."""
        text = json.dumps(detail, sort_keys=True, default=str, separators=(",", ":"))
        if conn is not None:
            return self._append(conn, actor, action, text)
        work = partial(self._append, actor=actor, action=action, detail=text)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self.store.write_sync(work)
        return self.store.write(work)

    def append_in(self, conn: sqlite3.Connection, actor: str, action: str, **detail: Any) -> int:
        """Append one entry inside a unit of work's transaction (on the writer's connection)."""
        return self._append(conn, actor, action, json.dumps(detail, sort_keys=True, default=str, separators=(",", ":")))

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

    async def entries(self, limit: int = 200) -> list[dict[str, Any]]:
        def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
            return [dict(row) | {"detail": json.loads(row["detail"])} for row in rows]

        return await self.store.read(read)

    async def verify(self) -> "Verification":
        """``verify`` on a read connection, off the event loop."""
        return await self.store.read(verify)


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
