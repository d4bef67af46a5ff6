"""Calibration records in the service's database: the one way to write and read them."""

from __future__ import annotations

import json
import time
from datetime import date, timedelta
from typing import Any

from .audit import AuditLog
from .store import Store


def expiry(days: int) -> str:
    return (date.today() + timedelta(days=days)).isoformat()


def record_calibration(store: Store, audit: AuditLog, technician: str, serial: str, kind: str, passed: bool,
                       results: dict[str, Any], expires_on: str, certificate: str | None = None) -> int:
    date.fromisoformat(expires_on)  # a malformed date is refused before anything is written
    with store.transaction() as tx:
        cursor = tx.execute(
            "INSERT INTO calibrations (device_serial, device_kind, passed, results, technician, performed, expires_on, certificate)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (serial, kind, int(passed), json.dumps(results), technician, time.time(), expires_on, certificate),
        )
        audit.append(technician, "calibration.recorded", tx, device=serial, passed=passed, results=results,
                     expires_on=expires_on, certificate=certificate)
    return int(cursor.lastrowid or 0)


def list_calibrations(store: Store) -> list[dict[str, Any]]:
    rows = store.query("SELECT * FROM calibrations ORDER BY performed DESC, id DESC")
    return [dict(r) | {"results": json.loads(r["results"]), "passed": bool(r["passed"])} for r in rows]
