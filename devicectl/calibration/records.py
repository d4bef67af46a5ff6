"""Calibration records in the service's database: the one way to write and read them.

A record decides whether a device may treat (hazard H12) and its ``monitor_correction`` multiplies
every monitored laser pulse before the kernel compares it (H02), so a record is checked before it
is written. What a record holds (docs/calibration.md, ``devicectl/calibration/procedures.py``):

| result | meaning | passing record | any record |
|---|---|---|---|
| ``gain`` | emitted / set energy | 1.0 +-10 % | 0 ... 10 (0: nothing emitted) |
| ``monitor_ratio`` | monitor / meter | 1.0 +-5 % | > 0 and <= 10 |
| ``monitor_correction`` | 1 / monitor_ratio | 1/1.05 ... 1/0.95 | 0.1 ... 10, = 1 / monitor_ratio |
| ``offset_c`` | tip sensor - reference, degC | within +-2.0 | within +-50 |

Every number is finite. A passing record that claims a value outside its tolerance is refused:
the procedure would have failed it. A failing record is always accepted when its values are
plausible — refusing it would leave the previous pass in force. The wider bounds are what a
calibration can measure at all; beyond them the meter was not in the beam or the thermometer not
on the tip. The expiry date is the service's (performed + the configured validity), never a
client's.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from devicectl.core.audit import AuditLog
from devicectl.core.store import Store

# The procedure's tolerances (devicectl/calibration/procedures.py computes them; tests pin the two as equal).
GAIN_TOLERANCE = 0.10
MONITOR_TOLERANCE = 0.05
TIP_OFFSET_TOLERANCE_C = 2.0
MONITOR_CORRECTION_RANGE = (1.0 / (1.0 + MONITOR_TOLERANCE), 1.0 / (1.0 - MONITOR_TOLERANCE))
RATIO_MAX = 10.0  # gain and monitor ratio: beyond 10x (or 1/10x) no unit drifted, the set-up was wrong
OFFSET_MAX_C = 50.0
MAX_VALID_DAYS = 730  # the longest validity settings and the calibrate command allow
NOTE_MAX = 500
_EPSILON = 1e-9  # results are rounded (4 decimals): 1.1 - 1.0 must still count as within 10 %
_RECIPROCAL = 1e-3  # monitor_correction x monitor_ratio = 1 within the rounding of both

MEASUREMENTS = {"laser": ("gain", "monitor_ratio", "monitor_correction"), "cryo": ("offset_c",)}


class CalibrationError(ValueError):
    """The calibration record cannot be stored; the message names the field and why."""


def expiry(days: int) -> str:
    return (date.today() + timedelta(days=days)).isoformat()


def _number(results: dict[str, Any], key: str) -> float | None:
    if key not in results:
        return None
    value = results[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CalibrationError(f"results.{key}: must be a number, not {value!r}")
    if not math.isfinite(value):
        raise CalibrationError(f"results.{key}: must be a finite number, not {value!r}")
    return float(value)


def _within(key: str, value: float | None, low: float, high: float, what: str, above_low: bool = False) -> None:
    if value is None:
        return
    if not (value > low if above_low else value >= low - _EPSILON) or value > high + _EPSILON:
        raise CalibrationError(f"results.{key}: {value:g} is outside {what}")


def _all_finite(value: Any, where: str) -> None:
    """No NaN or infinity anywhere in a record (the procedure's points and tolerances included)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise CalibrationError(f"{where}: must be a finite number, not {value!r}")
    if isinstance(value, dict):
        for key, item in value.items():
            _all_finite(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _all_finite(item, f"{where}.{index}")


def check_results(kind: str, passed: bool, results: dict[str, Any], complete: bool = True) -> None:
    """Refuse a record that is not what the calibration procedure could have produced.

    ``complete`` (a record sent to the API): only the kind's own results and a ``note``, and a
    passing record carries all its measurements. Without it (records the service writes itself:
    the procedure's own results with their points, a simulated unit's factory record) other keys
    may ride along, but every number is still finite and every known result within its range.
    """
    if kind not in MEASUREMENTS:
        raise CalibrationError(f"device_kind: {kind!r} is neither laser nor cryo")
    if not isinstance(passed, bool):
        raise CalibrationError(f"passed: must be true or false, not {passed!r}")
    if not isinstance(results, dict):
        raise CalibrationError(f"results: must be an object, not {results!r}")
    _all_finite(results, "results")
    measurements = MEASUREMENTS[kind]
    if complete:
        allowed = (*measurements, "note")
        for key in results:
            if key not in allowed:
                raise CalibrationError(
                    f"results.{key}: not a result of a {kind} calibration (one of {', '.join(allowed)})")
        note = results.get("note", "")
        if not isinstance(note, str) or len(note) > NOTE_MAX:
            raise CalibrationError(f"results.note: must be text of at most {NOTE_MAX} characters")
        if passed:
            for key in measurements:
                if key not in results:
                    raise CalibrationError(f"results.{key}: a passing {kind} calibration needs its measurements "
                                           f"({', '.join(measurements)})")
    gain, ratio = _number(results, "gain"), _number(results, "monitor_ratio")
    correction, offset = _number(results, "monitor_correction"), _number(results, "offset_c")
    _within("gain", gain, 0.0, RATIO_MAX, f"the measurable range 0-{RATIO_MAX:g} (emitted / set energy)")
    _within("monitor_ratio", ratio, 0.0, RATIO_MAX, f"the measurable range above 0 up to {RATIO_MAX:g} (monitor / meter)",
            above_low=True)
    _within("monitor_correction", correction, 1 / RATIO_MAX, RATIO_MAX,
            f"the measurable range {1 / RATIO_MAX:g}-{RATIO_MAX:g}")
    _within("offset_c", offset, -OFFSET_MAX_C, OFFSET_MAX_C, f"the measurable range +-{OFFSET_MAX_C:g} degC")
    if correction is not None and ratio is not None and abs(correction * ratio - 1.0) > _RECIPROCAL:
        raise CalibrationError(f"results.monitor_correction: {correction:g} is not 1 / monitor_ratio ({1 / ratio:.4f})")
    if passed:
        fail = "the tolerance of a passing record ({}): a calibration outside it failed"
        _within("gain", gain, 1 - GAIN_TOLERANCE, 1 + GAIN_TOLERANCE, fail.format(f"1.0 +-{GAIN_TOLERANCE:.0%}"))
        _within("monitor_ratio", ratio, 1 - MONITOR_TOLERANCE, 1 + MONITOR_TOLERANCE,
                fail.format(f"1.0 +-{MONITOR_TOLERANCE:.0%}"))
        low, high = MONITOR_CORRECTION_RANGE
        _within("monitor_correction", correction, low, high,
                fail.format(f"{low:.4f}-{high:.4f} (1 / a monitor within +-{MONITOR_TOLERANCE:.0%})"))
        _within("offset_c", offset, -TIP_OFFSET_TOLERANCE_C, TIP_OFFSET_TOLERANCE_C,
                fail.format(f"+-{TIP_OFFSET_TOLERANCE_C} degC"))


def usable_monitor_correction(value: Any) -> bool:
    """Whether a stored correction may be handed to the safety kernel: a finite number within the
    range a passing calibration can produce (a NaN would make every energy comparison false)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    low, high = MONITOR_CORRECTION_RANGE
    return low - _EPSILON <= value <= high + _EPSILON


def record_calibration(store: Store, audit: AuditLog, technician: str, serial: str, kind: str, passed: bool,
                       results: dict[str, Any], expires_on: str, certificate: str | None = None,
                       also: Callable[[sqlite3.Connection, int], None] | None = None) -> int:
    """Store a checked record and its audit entry in one transaction; ``also(conn, record_id)`` runs
    inside it (raising rolls everything back)."""
    check_results(kind, passed, results, complete=False)  # a bad record is refused before anything is written
    try:
        expires = date.fromisoformat(expires_on)
    except (TypeError, ValueError):
        raise CalibrationError(f"expires_on: {expires_on!r} is not a date (YYYY-MM-DD)") from None
    if not date.today() <= expires <= date.today() + timedelta(days=MAX_VALID_DAYS):
        raise CalibrationError(f"expires_on: {expires_on} is not within {MAX_VALID_DAYS} days from today")
    with store.transaction() as tx:
        cursor = tx.execute(
            "INSERT INTO calibrations (device_serial, device_kind, passed, results, technician, performed, expires_on, certificate)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (serial, kind, int(passed), json.dumps(results, allow_nan=False), technician, time.time(), expires_on,
             certificate),
        )
        audit.append(technician, "calibration.recorded", tx, device=serial, passed=passed, results=results,
                     expires_on=expires_on, certificate=certificate)
        if also is not None:
            also(tx, int(cursor.lastrowid or 0))
    return int(cursor.lastrowid or 0)


def list_calibrations(store: Store) -> list[dict[str, Any]]:
    rows = store.query("SELECT * FROM calibrations ORDER BY performed DESC, id DESC")
    return [dict(r) | {"results": json.loads(r["results"]), "passed": bool(r["passed"])} for r in rows]
