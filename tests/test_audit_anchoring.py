"""The audit log cannot be quietly cut or rewritten: a keyed chain (HMAC-SHA-256, the key outside
the data folder) and signed checkpoints in a separate append-only file. Each attack tampers the
real database (or checkpoint) file the service wrote, then runs ``devicectl audit verify``."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from devicectl.core.audit import default_checkpoint_file, default_key_file
from devicectl.core.config import load_settings
from devicectl.core.service import Service
from devicectl.web.api import create_app

EVERY = 5
LEGACY = Path(__file__).parent / "fixtures" / "devicectl-ab2778b.sqlite3"


def run_service(data_dir: Path, logins: int = 8) -> None:
    """The service writes its log (logins, refusals), then stops (a checkpoint of the head)."""
    service = Service(load_settings(None, data_dir=data_dir, audit_checkpoint_every=EVERY))
    with TestClient(create_app(service)) as client:
        pin = service.first_admin_pin
        for _ in range(logins):
            client.post("/api/login", json={"name": "nobody", "pin": "9183"})
        if pin:
            client.post("/api/login", json={"name": "admin", "pin": pin})


def audit_verify(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devicectl.cli", "audit", "verify", "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=60)


def open_db(data_dir: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(data_dir / "devicectl.sqlite3")
    conn.execute("DROP TRIGGER audit_no_update")  # someone with file access goes around the triggers
    conn.execute("DROP TRIGGER audit_no_delete")
    return conn


def test_the_key_lives_outside_the_data_folder_owner_only_and_checkpoints_are_written(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run_service(data)
    key = default_key_file(data)
    assert key.exists() and data.resolve() not in key.resolve().parents
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    marks = [json.loads(line) for line in default_checkpoint_file(data).read_text().splitlines()]
    ids = [m["id"] for m in marks]
    assert ids[:2] == [EVERY, 2 * EVERY] and all(m["sig"] for m in marks)
    last = sqlite3.connect(data / "devicectl.sqlite3").execute("SELECT MAX(id), COUNT(*) FROM audit").fetchone()
    assert ids[-1] == last[0]  # the shutdown checkpoint is the head
    result = audit_verify(data)
    assert result.returncode == 0, result.stderr
    assert f"{last[1]} entries" in result.stdout


def test_entries_cut_from_the_end_are_detected(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run_service(data)
    conn = open_db(data)
    last = conn.execute("SELECT MAX(id) FROM audit").fetchone()[0]
    conn.execute("DELETE FROM audit WHERE id > ?", (last - 2,))
    conn.commit()
    conn.close()
    result = audit_verify(data)
    assert result.returncode == 1 and "cut from its end" in result.stderr


def test_a_chain_recomputed_without_the_key_is_detected(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run_service(data)
    conn = open_db(data)
    rows = conn.execute("SELECT id, ts, actor, action, detail FROM audit ORDER BY id").fetchall()
    prev = "0" * 64
    for entry_id, ts, actor, action, detail in rows:  # entry 3 rewritten, every hash after it recomputed
        actor = "mallory" if entry_id == 3 else actor
        canonical = json.dumps([prev, entry_id, repr(ts), actor, action, detail], separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        conn.execute("UPDATE audit SET actor = ?, prev_hash = ?, hash = ?, keyed = 0 WHERE id = ?",
                     (actor, prev, digest, entry_id))
        prev = digest
    conn.commit()
    conn.close()
    result = audit_verify(data)
    assert result.returncode == 1 and "entry 1" in result.stderr and "recomputed without the key" in result.stderr
    default_checkpoint_file(data).unlink()  # the checkpoints gone as well: the key still says from when it is keyed
    result = audit_verify(data)
    assert result.returncode == 1 and "recomputed without the key" in result.stderr


def test_reordered_entries_are_detected(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run_service(data)
    conn = open_db(data)
    four, five = (conn.execute("SELECT ts, actor, action, detail, prev_hash, hash FROM audit WHERE id = ?", (i,)).fetchone()
                  for i in (4, 5))
    for entry_id, row in ((4, five), (5, four)):  # entries 4 and 5 swapped, ids kept
        conn.execute("UPDATE audit SET ts = ?, actor = ?, action = ?, detail = ?, prev_hash = ?, hash = ? WHERE id = ?",
                     (*row, entry_id))
    conn.commit()
    conn.close()
    result = audit_verify(data)
    assert result.returncode == 1 and "entry 4" in result.stderr and "reordered" in result.stderr


def test_a_missing_or_forged_checkpoint_is_detected(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run_service(data, logins=14)
    path = default_checkpoint_file(data)
    lines = path.read_text().splitlines()
    assert len(lines) >= 3
    path.write_text("\n".join(lines[:1] + lines[2:]) + "\n")  # the second checkpoint removed
    result = audit_verify(data)
    assert result.returncode == 1 and "a checkpoint is missing" in result.stderr
    forged = json.loads(lines[1]) | {"mac": "0" * 64}
    path.write_text("\n".join([lines[0], json.dumps(forged)] + lines[2:]) + "\n")
    result = audit_verify(data)
    assert result.returncode == 1 and "not signed by the audit key" in result.stderr


def test_a_database_from_before_keeps_verifying_by_the_old_rule_up_to_the_first_keyed_entry(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copyfile(LEGACY, data / "devicectl.sqlite3")  # written by ab2778b: unkeyed entries, no key yet
    before = sqlite3.connect(LEGACY).execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    assert before > 0
    run_service(data)  # migrated (keyed column), the key made: new entries keyed from the next id
    conn = sqlite3.connect(data / "devicectl.sqlite3")
    keyed = conn.execute("SELECT MIN(id), MAX(id) FROM audit WHERE keyed = 1").fetchone()
    assert keyed[0] == before + 1 and conn.execute("SELECT COUNT(*) FROM audit WHERE keyed = 0").fetchone()[0] == before
    conn.close()
    result = audit_verify(data)
    assert result.returncode == 0, result.stderr
    conn = open_db(data)
    conn.execute("UPDATE audit SET actor = 'mallory' WHERE id = 2")  # an old entry is still held by the old rule
    conn.commit()
    conn.close()
    result = audit_verify(data)
    assert result.returncode == 1 and "entry 2" in result.stderr and "changed" in result.stderr


def test_a_damaged_key_is_refused_everywhere_and_never_replaced(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """An empty or cut key would verify (and sign) with a weaker key, and a new key would leave the
    entries it signed unverifiable: the service, `audit verify` and a standalone calibration refuse it."""
    from devicectl.calibration.standalone import run_calibration

    data = tmp_path / "data"
    run_service(data, logins=2)
    key = default_key_file(data)
    good = key.read_bytes()
    for damaged in (b"", good[:40] + b"\n" + good.split(b"\n", 1)[1], b"not a key\nkeyed_from 1\n", b"\xff\xfe\x00"):
        key.write_bytes(damaged)
        result = audit_verify(data)
        assert result.returncode == 2 and f"the audit key file {key} is damaged" in result.stderr, result
        served = subprocess.run([sys.executable, "-m", "devicectl.cli", "serve", "--data-dir", str(data), "--port", "0"],
                                capture_output=True, text=True, timeout=60)
        assert served.returncode == 2 and "is damaged" in served.stderr and "restore it" in served.stderr, served
        assert run_calibration("laser", "/dev/null", "TCPIP::em1::INSTR", "tech", "3916", data, 180) == 2
        assert "is damaged" in " ".join(capsys.readouterr().out.split())
        assert key.read_bytes() == damaged  # left as found, for the clinic to restore
    key.write_bytes(good)
    assert audit_verify(data).returncode == 0


def test_a_start_stopped_while_making_the_key_leaves_none_behind(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from devicectl.core import audit, whole_files

    key = tmp_path / "data-audit.key"

    def lost(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(whole_files.os, "fsync", lost)
    with pytest.raises(OSError, match="Input/output"):
        audit.load_key(key, create=True)
    assert list(tmp_path.iterdir()) == []  # no empty key that a later start would take as the key
    monkeypatch.undo()
    made = audit.load_key(key, create=True, next_id=lambda: 7)
    assert made is not None and len(made.secret) == audit.KEY_BYTES and made.keyed_from == 7
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and [p.name for p in tmp_path.iterdir()] == [key.name]
    assert audit.load_key(key, create=True) == made  # made once
