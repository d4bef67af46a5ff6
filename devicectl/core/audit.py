"""The append-only audit log, chained with a keyed MAC and anchored by signed checkpoints.

Each entry holds the previous entry's MAC and its own: HMAC-SHA-256 over the previous MAC and
its canonical content, keyed by a secret kept in a file *outside* the data folder (0600, made at
the first run: ``audit_key_file``, by default ``<data_dir>-audit.key`` next to the data folder).
Someone who can write the database but not read the key cannot rewrite an entry and recompute
the chain. SQLite triggers also refuse UPDATE and DELETE.

Every ``every`` entries (``audit_checkpoint_every``) and at shutdown the head (its id and MAC) is
appended, signed with the key, to a separate append-only file (``<data_dir>-audit-checkpoints.jsonl``)
and offered to listeners (MQTT publishes it retained). Cutting entries from the end, or
rewriting the tail, leaves a checkpoint that names an entry that is gone or different.

``verify`` walks the chain and names the first entry that does not fit: a missing or reordered
entry, a changed one, an unkeyed entry after the first keyed one (a chain recomputed without the
key), a checkpoint beyond the end (tail cut), a checkpoint that differs, a checkpoint missing.
Entries written before the log was keyed (``keyed = 0``, databases from before migration 0006)
keep verifying by the old rule (SHA-256) up to the first keyed entry.

A checkpoint is written by the store's writer right after the commit that holds its entry (never
for an entry a failed group rolled back).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from devicectl.core.store import Store
from devicectl.core.whole_files import write_whole

log = logging.getLogger(__name__)

GENESIS = "0" * 64
CHECKPOINT_EVERY = 100


def _canonical(prev_hash: str, entry_id: int, ts: float, actor: str, action: str, detail: str) -> bytes:
    return json.dumps([prev_hash, entry_id, repr(ts), actor, action, detail], separators=(",", ":")).encode()


def _digest(prev_hash: str, entry_id: int, ts: float, actor: str, action: str, detail: str) -> str:
    """The unkeyed rule of entries written before the log was keyed."""
    return hashlib.sha256(_canonical(prev_hash, entry_id, ts, actor, action, detail)).hexdigest()


def _mac(key: bytes, prev_hash: str, entry_id: int, ts: float, actor: str, action: str, detail: str) -> str:
    return hmac.new(key, _canonical(prev_hash, entry_id, ts, actor, action, detail), hashlib.sha256).hexdigest()


def default_key_file(data_dir: Path) -> Path:
    """Next to the data folder, never in it: ``/var/lib/devicectl/data`` -> ``/var/lib/devicectl/data-audit.key``."""
    data_dir = data_dir.resolve()
    return data_dir.parent / f"{data_dir.name}-audit.key"


def default_checkpoint_file(data_dir: Path) -> Path:
    data_dir = data_dir.resolve()
    return data_dir.parent / f"{data_dir.name}-audit-checkpoints.jsonl"


@dataclass(frozen=True)
class AuditKey:
    secret: bytes
    #: the first entry written with this key: every entry from it on must be keyed
    keyed_from: int


class AuditKeyError(ValueError):
    """The audit key's file is there but holds no key (damaged, cut short): never replaced or read as
    a weaker key, since the entries it signed could then no longer be verified."""


#: an audit key's length (HMAC-SHA-256)
KEY_BYTES = 32


def load_key(path: Path, create: bool = False, next_id: Callable[[], int] = lambda: 1) -> AuditKey | None:
    """The audit key in ``path``; made there (0600) when ``create`` and missing, noting the id of the
    next entry (``next_id()``: the first one keyed; a database from before keeps its older entries
    under the old rule). The file is kept owner-only (its mode is put back to 0600 when found wider).
    A file that holds no key raises ``AuditKeyError``."""
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # whole or not at all (no empty key after a stopped start), and only if no other process made it meanwhile
        write_whole(path, f"{secrets.token_hex(KEY_BYTES)}\nkeyed_from {next_id()}\n".encode(), mode=0o600, replace=False)
    if not path.exists():
        return None
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    try:
        lines = path.read_text().split("\n")
        secret = bytes.fromhex(lines[0].strip())
        keyed_from = int(lines[1].split()[1]) if len(lines) > 1 and lines[1].startswith("keyed_from") else 1
    except (ValueError, IndexError):
        secret, keyed_from = b"", 0
    if len(secret) != KEY_BYTES or keyed_from < 1:
        raise AuditKeyError(f"the audit key file {path} is damaged (it holds no {KEY_BYTES}-byte key): restore it "
                            "from the clinic's backup; a new key would leave the entries it signed unverifiable")
    return AuditKey(secret, keyed_from)


def _signature(key: bytes, checkpoint: dict[str, Any]) -> str:
    fields = [checkpoint["id"], checkpoint["mac"], checkpoint["keyed_from"], checkpoint["every"], repr(checkpoint["at"])]
    return hmac.new(key, json.dumps(fields, separators=(",", ":")).encode(), hashlib.sha256).hexdigest()


def read_checkpoints(path: Path | None) -> list[dict[str, Any]]:
    if path is None or not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class AuditLog:
    """Entries are written by the store's writer, in its transactions: the chain follows the commit order."""

    def __init__(self, store: Store, key: AuditKey | None = None, checkpoints: Path | None = None,
                 every: int = CHECKPOINT_EVERY) -> None:
        self.store = store
        self.audit_key = key
        self.key = key.secret if key else None  #: None: the unkeyed rule (the deterministic simulation, tools without the key)
        self.checkpoints = checkpoints
        self.every = every
        #: called with each checkpoint written (on the store's writer thread: the MQTT bridge publishes it)
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self._keyed_from = key.keyed_from if key else None
        self._pending: list[tuple[int, str]] = []
        self._last_checkpoint = 0
        if key is not None and checkpoints is not None:
            store.on_commit.append(self._after_commit)

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
        if self.key is None:
            digest = _digest(prev_hash, entry_id, ts, actor, action, detail)
        else:
            digest = _mac(self.key, prev_hash, entry_id, ts, actor, action, detail)
            if entry_id % self.every == 0:
                self._pending.append((entry_id, digest))
        conn.execute(
            "INSERT INTO audit (id, ts, actor, action, detail, prev_hash, hash, keyed) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (entry_id, ts, actor, action, detail, prev_hash, digest, int(self.key is not None)),
        )
        return entry_id

    # ------------------------------------------------------------------ checkpoints
    async def checkpoint(self) -> None:
        """A checkpoint of the head now (at shutdown), written once its commit is done."""
        if self.key is None or self.checkpoints is None:
            return

        def head(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
            if row is not None and row["id"] > self._last_checkpoint:
                self._pending.append((row["id"], row["hash"]))

        await self.store.write(head)

    def _after_commit(self, conn: sqlite3.Connection) -> None:
        """On the writer's thread, right after a commit: the checkpoints of entries it committed."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        assert self.key is not None and self.checkpoints is not None
        for entry_id, mac in pending:
            row = conn.execute("SELECT hash FROM audit WHERE id = ?", (entry_id,)).fetchone()
            if row is None or row["hash"] != mac or entry_id <= self._last_checkpoint:
                continue  # rolled back with its group, or written already
            checkpoint = {"id": entry_id, "mac": mac, "keyed_from": self._keyed_from or entry_id, "every": self.every,
                          "at": time.time()}
            checkpoint["sig"] = _signature(self.key, checkpoint)
            try:
                fd = os.open(self.checkpoints, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, (json.dumps(checkpoint, separators=(",", ":")) + "\n").encode())
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError:
                log.exception("the audit checkpoint of entry %s could not be written", entry_id)
                continue
            self._last_checkpoint = entry_id
            for listener in list(self.listeners):
                try:
                    listener(checkpoint)
                except Exception:
                    log.exception("an audit checkpoint listener failed")

    async def entries(self, limit: int = 200) -> list[dict[str, Any]]:
        def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
            return [dict(row) | {"detail": json.loads(row["detail"])} for row in rows]

        return await self.store.read(read)

    async def verify(self) -> Verification:
        """``verify`` on a read connection, off the event loop."""
        return await self.store.read(lambda conn: verify(conn, self.audit_key, self.checkpoints, self.every))


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    first_bad_id: int | None = None
    reason: str = ""


def verify(conn: sqlite3.Connection, audit_key: AuditKey | None = None, checkpoints: Path | None = None,
           every: int = CHECKPOINT_EVERY) -> Verification:
    """Walk the chain (ids consecutive from 1, each prev_hash the previous MAC, each MAC right: keyed
    from the key's first entry on), then hold it against the signed checkpoints."""
    key = audit_key.secret if audit_key else None
    marks = read_checkpoints(checkpoints)
    for n, mark in enumerate(marks, 1):
        if key is None:
            return Verification(False, 0, None, "checkpoints need the audit key to be checked (--key-file)")
        if not hmac.compare_digest(str(mark.get("sig", "")), _signature(key, mark)):
            return Verification(False, 0, mark.get("id"), f"checkpoint {n} of the checkpoint file is not signed by the "
                                                          "audit key: the checkpoint file was changed")
    keyed_from = min([int(m["keyed_from"]) for m in marks] + ([audit_key.keyed_from] if audit_key else []), default=None)
    wanted = {int(m["id"]): m["mac"] for m in marks}
    seen: dict[int, str] = {}
    prev_hash = GENESIS
    expected_id = 1
    count = 0
    first_keyed: int | None = None
    columns = {row[1] for row in conn.execute("PRAGMA table_info(audit)")}
    keyed_column = "keyed" if "keyed" in columns else "0"
    for row in conn.execute(f"SELECT id, ts, actor, action, detail, prev_hash, hash, {keyed_column} FROM audit ORDER BY id"):
        count += 1
        entry_id, ts, actor, action, detail, stored_prev, stored_hash, keyed = tuple(row)
        if entry_id != expected_id:
            return Verification(False, count, entry_id, f"entry {expected_id} is missing (next is {entry_id})")
        if stored_prev != prev_hash:
            return Verification(False, count, entry_id, "does not follow the previous entry (deleted or reordered)")
        if keyed:
            if key is None:
                return Verification(False, count, entry_id, "the log is keyed: give the audit key (--key-file)")
            first_keyed = first_keyed or entry_id
            right = hmac.compare_digest(_mac(key, prev_hash, entry_id, ts, actor, action, detail), stored_hash)
        else:
            if first_keyed is not None or (keyed_from is not None and entry_id >= keyed_from):
                return Verification(False, count, entry_id, f"not keyed although the log is keyed from entry "
                                                            f"{first_keyed or keyed_from}: the chain was recomputed "
                                                            "without the key")
            right = _digest(prev_hash, entry_id, ts, actor, action, detail) == stored_hash
        if not right:
            return Verification(False, count, entry_id, "its content was changed after it was written")
        if entry_id in wanted:
            seen[entry_id] = stored_hash
        prev_hash = stored_hash
        expected_id += 1
    last = expected_id - 1
    for mark in marks:
        entry_id = int(mark["id"])
        if entry_id > last:
            return Verification(False, count, last + 1, f"the log ends at entry {last} but a checkpoint names entry "
                                                        f"{entry_id}: entries were cut from its end")
        if seen.get(entry_id) != mark["mac"]:
            return Verification(False, count, entry_id, "differs from its checkpoint: the log was rewritten")
    if last >= (keyed_from or last + 1) and key is not None or marks:
        every = max((int(m["every"]) for m in marks), default=every)
        start = (keyed_from or first_keyed or 1) - 1
        ids = sorted(wanted)
        for before, after in zip([start] + ids, ids + [last]):
            if after - before > every:
                return Verification(False, count, before + 1, f"no checkpoint between entries {before} and {after} "
                                                              f"(one every {every}): a checkpoint is missing")
    return Verification(True, count)
