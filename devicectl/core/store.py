"""SQLite (WAL) for every record, written by one writer that commits in groups.

Every record (pulse, freeze, safety decision, session change, audit entry) is a unit of work
``work(conn)`` handed to the store's writer: a thread that owns its own connection. It takes
everything queued when a commit starts, runs it in one transaction and commits it with
``synchronous=FULL`` (one fsync for the whole group), so a record survives kill -9 of the service
and a power cut of the host once its caller is told it was committed.

Nothing on the event loop touches the disk:

* ``record(work)`` only enqueues (the device-event path: pulses, freezes, decisions);
* ``await write(work)`` enqueues and resumes the caller once its group is committed (the API
  confirming a record, a session's start and end);
* ``await read(fn)`` runs ``fn(conn)`` on a read connection in a worker thread (WAL: readers never
  wait for the writer).

``inline=True`` runs each unit of work at once on the caller's thread, on one connection: the
deterministic simulation (tests/dst) selects it so that virtual time never waits for a thread.

The audit hash chain is computed inside the writer's transaction (``AuditLog.append_in``), so its
order is the commit order and it stays exactly as strict as a single-row commit would make it.
A unit of work that fails is rolled back alone (its group is re-run with a savepoint per unit)
and its caller gets the exception; the others commit.

``commit_delay_ms`` (tests and benchmarks only) delays every commit by that much, as a slow disk
(an SD card, a busy disk) would: the fault injection behind bench/reaction_load.py.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from devicectl.core import loopguard
from devicectl.core.loops import PerTurn
from devicectl.core.migrations import migrate

log = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[sqlite3.Connection], Any]
_CLOSE = object()
WORKERS = 4


class _Connection(sqlite3.Connection):
    """A connection that reports every statement run on an event loop's thread to the loop guard
    (tests and ``slow_callback_ms``: nothing of the store may touch the disk on the loop)."""

    on_loop_allowed = False

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        if loopguard.active() and not self.on_loop_allowed:
            loopguard.blocking(f"sqlite3 {sql.split(None, 3)[:3]}")
        return super().execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        if loopguard.active() and not self.on_loop_allowed:
            loopguard.blocking(f"sqlite3 {sql.split(None, 3)[:3]}")
        return super().executemany(sql, *args)


def connect(path: Path, on_loop_allowed: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, factory=_Connection)
    conn.on_loop_allowed = on_loop_allowed  # type: ignore[attr-defined]
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def _settle(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in outcomes:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class Store:
    def __init__(self, path: Path, *, inline: bool = False, commit_delay_ms: float = 0.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.inline = inline
        self.commit_delay_s = commit_delay_ms / 1000.0
        migrate(path)
        #: the connection of synchronous reads (``one``, ``query``: CLI, tests, start-up) and, inline, of everything
        self.conn = connect(path, on_loop_allowed=inline)
        self.lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self.commits = 0  #: groups committed (a benchmark's and a test's figure)
        #: called on the writer's thread with its connection right after each commit (the audit's checkpoints)
        self.on_commit: list[Callable[[sqlite3.Connection], None]] = []
        #: worker threads for reads and CPU-heavy work (PIN hashing), started now: starting a thread
        #: from the event loop when the first request needs one would stall the loop
        self.executor = concurrent.futures.ThreadPoolExecutor(WORKERS, thread_name_prefix="devicectl-worker")
        started = threading.Barrier(WORKERS + 1)
        for _ in range(WORKERS):
            self.executor.submit(started.wait, 10)
        started.wait(10)
        if inline:
            self._wconn = self.conn
            self._wlock = self.lock
            self._writer: threading.Thread | None = None
        else:
            self._wconn = connect(path)
            self._wlock = threading.RLock()
            self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
            #: what an event loop queues during one turn reaches the writer when the turn's due callbacks
            #: have run: the writer thread, woken by it, then never competes for the interpreter with a
            #: STOP decided in that turn (H26)
            self._turns = PerTurn(self._hand_over)
            self._writer = threading.Thread(target=self._run, name="devicectl-store-writer", daemon=True)
            self._writer.start()
        self.closed = False

    # ------------------------------------------------------------------ writing
    def record(self, work: Work) -> None:
        """Enqueue ``work`` (never waits, never touches the disk on the caller's thread unless inline);
        it commits with the next group. A failure is logged."""
        if self.inline:
            self._commit([work])
            return
        self._turns.add((work, None, None))

    def write(self, work: Work) -> asyncio.Future[Any]:
        """Enqueue ``work``; the future is done (with ``work``'s result) once its group is committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self.inline:
            ((ok, value),) = self._commit([work])
            future.set_result(value) if ok else future.set_exception(value)
            return future
        self._turns.add((work, future, loop))
        return future

    def submit(self, work: Work) -> concurrent.futures.Future[Any]:
        """``write`` for any thread (no event loop needed)."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        if self.inline:
            ((ok, value),) = self._commit([work])
            future.set_result(value) if ok else future.set_exception(value)
            return future
        self._queue.put((work, future, None))
        return future

    def _hand_over(self, items: list[Any]) -> None:
        for item in items:
            self._queue.put(item)

    def write_sync(self, work: Work) -> Any:
        """Write and wait for the commit: for threads without an event loop (CLI, start-up, tests)."""
        if not self.inline:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                pass
            else:
                raise RuntimeError("write_sync on the event loop would block it: await store.write(...)")
        return self.submit(work).result()

    async def flush(self) -> None:
        """Wait until everything queued before this call is committed."""
        await self.write(lambda conn: None)

    def transaction(self) -> _Transaction:
        """A transaction on the writer's connection, on the caller's thread (the writer waits for it).
        For synchronous callers off the event loop only (CLI, tests, a worker thread)."""
        return _Transaction(self)

    def _run(self) -> None:
        """The writer thread: one transaction and one commit for everything queued."""
        while True:
            item = self._queue.get()
            if item is _CLOSE:
                return
            batch = [item]
            closing = False
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _CLOSE:
                    closing = True
                    break
                batch.append(item)
            outcomes = self._commit([work for work, _, _ in batch])
            by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
            for (work, future, loop), (ok, value) in zip(batch, outcomes):
                if future is None:
                    if not ok:
                        log.error("a record could not be stored: %r", value)
                elif loop is None:
                    future.set_result(value) if ok else future.set_exception(value)
                else:
                    by_loop.setdefault(loop, []).append((future, ok, value))
            for loop, settled in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_settle, settled)
                except RuntimeError:  # that loop is closed: nobody waits any more
                    pass
            if closing:
                return

    def _commit(self, works: list[Work]) -> list[tuple[bool, Any]]:
        """Run ``works`` in one transaction; a failing one is rolled back alone (savepoints)."""
        conn = self._wconn
        with self._wlock:
            try:
                conn.execute("BEGIN IMMEDIATE")
                results = [(True, work(conn)) for work in works]
                self._delay()
                conn.execute("COMMIT")
                self.commits += 1
                self._committed(conn)
                return results
            except Exception as exc:  # noqa: BLE001 (the writer never dies: the failure goes to the caller's future)
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if len(works) == 1:
                    return [(False, exc)]
            outcomes: list[tuple[bool, Any]] = []
            try:
                conn.execute("BEGIN IMMEDIATE")
                for work in works:
                    conn.execute("SAVEPOINT unit")
                    try:
                        outcomes.append((True, work(conn)))
                    except Exception as exc:  # noqa: BLE001 (this unit's failure is its caller's; the group goes on)
                        conn.execute("ROLLBACK TO unit")
                        outcomes.append((False, exc))
                    conn.execute("RELEASE unit")
                self._delay()
                conn.execute("COMMIT")
                self.commits += 1
                self._committed(conn)
                return outcomes
            except Exception as exc:  # noqa: BLE001 (the commit itself failed, disk full or I/O: nothing of the group stored)
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                return [(False, exc)] * len(works)

    def _committed(self, conn: sqlite3.Connection) -> None:
        for hook in self.on_commit:
            try:
                hook(conn)
            except Exception:
                log.exception("an after-commit hook failed")

    def _delay(self) -> None:
        if self.commit_delay_s:
            time.sleep(self.commit_delay_s)

    # ------------------------------------------------------------------ reading
    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(conn)`` on a read connection in a worker thread (inline: at once)."""
        if self.inline:
            with self.lock:
                return fn(self.conn)
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._read, fn)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread (CPU-heavy work such as PIN hashing: never on the loop)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return fn(conn)

    def execute(self, sql: str, params: tuple | dict = ()) -> sqlite3.Cursor:  # type: ignore[type-arg]
        with self.lock:
            return self.conn.execute(sql, params)

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:  # type: ignore[type-arg]
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: tuple | dict = ()) -> sqlite3.Row | None:  # type: ignore[type-arg]
        with self.lock:
            return self.conn.execute(sql, params).fetchone()

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Commit what is queued, stop the writer, close every connection (blocking: off the loop)."""
        if self.closed:
            return
        self.closed = True
        if self._writer is not None:
            self._turns.drain()  # a turn that ended with its loop (its hand-over never ran)
            self._queue.put(_CLOSE)
            self._writer.join()
            self._wconn.close()
        self.executor.shutdown(wait=True)
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        with self.lock:
            self.conn.close()


class _Transaction:
    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> sqlite3.Connection:
        self.store._wlock.acquire()
        try:
            self.store._wconn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.store._wlock.release()
            raise
        return self.store._wconn

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            if exc_type:
                self.store._wconn.execute("ROLLBACK")
            else:
                self.store._delay()
                self.store._wconn.execute("COMMIT")
                self.store.commits += 1
                self.store._committed(self.store._wconn)
        finally:
            self.store._wlock.release()
