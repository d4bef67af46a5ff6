"""The database schema's versions: ordered Alembic migrations (SQLAlchemy 2 Core), run when a store opens.

``migrate(path)`` brings a database to the newest version (``HEAD``): a new file gets every
migration in order; a database written before the schema had versions (no ``alembic_version``
table, as written by devicectl 0.1 up to commit ab2778b) is recognised as version 0001 and
upgraded in place, its rows kept. A database already at ``HEAD`` is only looked at (no Alembic
import), so opening a store stays cheap.

A new migration: ``versions/NNNN_what.py`` with ``revision = "NNNN"``, ``down_revision`` the
previous one, and ``HEAD`` below moved to it (tests/test_migrations.py checks the two agree).
"""

from __future__ import annotations

import sqlite3
import tempfile
import threading
from pathlib import Path

from devicectl.core.whole_files import write_whole

#: the newest schema version
HEAD = "0007"
BASELINE = "0001"
SCRIPTS = Path(__file__).resolve().parent


def version(path: Path) -> str | None:
    """The schema version of the database at ``path`` (None: empty or written before versions)."""
    conn = sqlite3.connect(path)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "alembic_version" not in tables:
            return BASELINE if "users" in tables else None
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return row[0] if row else None
    finally:
        conn.close()


def config() -> object:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    return cfg


def migrate(path: Path, target: str = "head") -> None:
    """Upgrade the database at ``path`` to ``target`` (default: the newest version)."""
    if target == "head" and path.exists() and version(path) == HEAD and _versioned(path):
        return
    if target == "head" and not path.exists():  # a new database: a copy of an empty one at HEAD
        write_whole(path, _empty_at_head())  # a first start stopped while writing leaves no half database
        return
    _upgrade(path, target)


def _upgrade(path: Path, target: str) -> None:
    import sqlalchemy
    from alembic import command

    cfg = config()
    engine = sqlalchemy.create_engine(f"sqlite:///{path}", poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection  # type: ignore[attr-defined]
            tables = set(sqlalchemy.inspect(connection).get_table_names())
            if "users" in tables and "alembic_version" not in tables:
                command.stamp(cfg, BASELINE)  # type: ignore[arg-type]  # written before versions
            command.upgrade(cfg, target)  # type: ignore[arg-type]
    finally:
        engine.dispose()


_EMPTY: bytes | None = None
_EMPTY_LOCK = threading.Lock()


def _empty_at_head() -> bytes:
    """An empty database at HEAD, made once per process (the migrations run once, not per store).

    Kept in memory: it is made in a temporary folder that is removed at once, so a process leaves
    nothing behind in the system's temporary directory.
    """
    global _EMPTY
    with _EMPTY_LOCK:
        if _EMPTY is None:
            with tempfile.TemporaryDirectory(prefix="devicectl-schema-") as folder:
                empty = Path(folder) / "empty.sqlite3"
                _upgrade(empty, "head")
                conn = sqlite3.connect(empty)
                conn.execute("PRAGMA journal_mode=DELETE")  # one self-contained file to copy
                conn.close()
                _EMPTY = empty.read_bytes()
        return _EMPTY


def _versioned(path: Path) -> bool:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'").fetchone() is not None
    finally:
        conn.close()
