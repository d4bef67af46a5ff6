"""Every command row of laser.md, cryo.md and line-protocol.md as data: a set-up, one request,
and the reply the ICD demands. The same rows run in virtual time and over a real pty."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# set-up steps: ("req", CMD, *ARGS) must answer OK; ("door", OP, {args}); ("wait", seconds)
Step = tuple[Any, ...]


@dataclass(frozen=True)
class Row:
    id: str
    request: tuple[Any, ...]
    expect: tuple[Any, ...]  # ("OK", {field: value} subset) or ("ER", code, word)
    setup: tuple[Step, ...] = ()


LASER_ARMABLE: tuple[Step, ...] = (("req", "LIMIT", "PULSES", 100), ("req", "LIMIT", "ENERGY", 1000))
LASER_READY: tuple[Step, ...] = LASER_ARMABLE + (("req", "READY"), ("wait", 1.7))
LASER_CHARGING: tuple[Step, ...] = LASER_ARMABLE + (("req", "READY"),)
LASER_FAULT: tuple[Step, ...] = (("door", "inject_fault", {"code": "F04"}),)

COMMON_ROWS = [
    Row("hb", ("HB",), ("OK", {})),
    Row("wdt-set", ("WDT", 2500), ("OK", {"wdt": "2500"})),
    Row("wdt-get", ("WDT?",), ("OK", {"wdt": "1000"})),
    Row("wdt-low", ("WDT", 99), ("ER", "E03", "out-of-range")),
    Row("wdt-high", ("WDT", 5001), ("ER", "E03", "out-of-range")),
    Row("wdt-never-off", ("WDT", 0), ("ER", "E03", "out-of-range")),
    Row("wdt-bad", ("WDT", "1e3"), ("ER", "E03", "bad-argument")),
    Row("wdt-missing", ("WDT",), ("ER", "E03", "bad-argument")),
    Row("unknown", ("FOO",), ("ER", "E02", "unknown-command")),
    Row("fault-none", ("FAULT?",), ("OK", {"code": "NONE", "text": "none"})),
    Row("fault-clear-none", ("FAULT", "CLEAR"), ("OK", {})),
    Row("fault-bad-sub", ("FAULT", "RESET"), ("ER", "E03", "bad-argument")),
]

LASER_ROWS = [
    Row("idn", ("IDN?",), ("OK", {"model": "QS-1064", "wl": "1064,532", "emax": "1000", "ratemax": "10.0"})),
    Row(
        "state-power-on",
        ("STATE?",),
        ("OK", {"state": "STANDBY", "wl": "1064", "energy": "10", "rate": "1.0", "aim": "0", "service": "0",
                "budget": "0", "count": "0", "key": "1", "interlock": "1", "estop": "0", "foot": "0", "spot": "3.0"}),
    ),
    Row("wl-532", ("WL", 532), ("OK", {"wl": "532"})),
    Row("wl-other", ("WL", 800), ("ER", "E03", "out-of-range")),
    Row("wl-in-ready", ("WL", 532), ("ER", "E04", "not-allowed-in-state"), LASER_READY),
    Row("energy-power-on-limit", ("ENERGY", 11), ("ER", "E03", "over-limit")),
    Row("energy-ok", ("ENERGY", 450), ("OK", {"energy": "450"}), LASER_ARMABLE),
    Row("energy-low", ("ENERGY", 9), ("ER", "E03", "out-of-range"), LASER_ARMABLE),
    Row("energy-emax", ("ENERGY", 1001), ("ER", "E03", "out-of-range"), LASER_ARMABLE),
    Row("energy-532-half", ("ENERGY", 501), ("ER", "E03", "out-of-range"), LASER_ARMABLE + (("req", "WL", 532),)),
    Row("energy-not-whole", ("ENERGY", "450.5"), ("ER", "E03", "bad-argument"), LASER_ARMABLE),
    Row("energy-in-ready", ("ENERGY", 300), ("OK", {"energy": "300"}), LASER_READY),
    Row("energy-charging-busy", ("ENERGY", 300), ("ER", "E07", "busy"), LASER_CHARGING),
    Row("energy-in-fault", ("ENERGY", 10), ("ER", "E06", "fault-active"), LASER_FAULT),
    Row("rate-ok", ("RATE", "2.5"), ("OK", {"rate": "2.5"})),
    Row("rate-low", ("RATE", "0.4"), ("ER", "E03", "out-of-range")),
    Row("rate-high", ("RATE", "10.1"), ("ER", "E03", "out-of-range")),
    Row("rate-two-decimals", ("RATE", "2.25"), ("ER", "E03", "bad-argument")),
    Row("aim-on", ("AIM", 1), ("OK", {"aim": "1"})),
    Row("aim-bad", ("AIM", 2), ("ER", "E03", "out-of-range")),
    Row("aim-in-fault", ("AIM", 1), ("ER", "E06", "fault-active"), LASER_FAULT),
    Row("ready-budget-0", ("READY",), ("ER", "E03", "budget-spent")),
    Row("ready-ok", ("READY",), ("OK", {"state": "CHARGING"}), LASER_ARMABLE),
    Row("ready-key", ("READY",), ("ER", "E05", "key-off"), LASER_ARMABLE + (("door", "set_input", {"name": "key", "value": 0}),)),
    Row("ready-interlock", ("READY",), ("ER", "E05", "interlock-open"),
        LASER_ARMABLE + (("door", "set_input", {"name": "interlock", "value": 0}),)),
    Row("ready-estop", ("READY",), ("ER", "E05", "estop-pressed"), LASER_ARMABLE + (("door", "set_input", {"name": "estop", "value": 1}),)),
    Row("ready-foot-held", ("READY",), ("ER", "E05", "footswitch-pressed"),
        LASER_ARMABLE + (("door", "set_input", {"name": "foot", "value": 1}),)),
    Row("ready-in-fault", ("READY",), ("ER", "E06", "fault-active"), LASER_FAULT),
    Row("ready-in-ready", ("READY",), ("ER", "E04", "not-allowed-in-state"), LASER_READY),
    Row("ready-charging", ("READY",), ("ER", "E07", "busy"), LASER_CHARGING),
    Row("standby", ("STANDBY",), ("OK", {"state": "STANDBY"}), LASER_READY),
    Row("standby-in-fault", ("STANDBY",), ("ER", "E06", "fault-active"), LASER_FAULT),
    Row("readytimeout", ("READYTIMEOUT", 30), ("OK", {"readytimeout": "30"})),
    Row("readytimeout-low", ("READYTIMEOUT", 9), ("ER", "E03", "out-of-range")),
    Row("readytimeout-high", ("READYTIMEOUT", 601), ("ER", "E03", "out-of-range")),
    Row("readytimeout-in-ready", ("READYTIMEOUT", 30), ("ER", "E04", "not-allowed-in-state"), LASER_READY),
    Row("limit-pulses", ("LIMIT", "PULSES", 500), ("OK", {"budget": "500"})),
    Row("limit-pulses-high", ("LIMIT", "PULSES", 10001), ("ER", "E03", "out-of-range")),
    Row("limit-pulses-in-ready", ("LIMIT", "PULSES", 5), ("ER", "E04", "not-allowed-in-state"), LASER_READY),
    Row("limit-energy", ("LIMIT", "ENERGY", 600), ("OK", {"emaxset": "600"})),
    Row("limit-energy-low", ("LIMIT", "ENERGY", 9), ("ER", "E03", "out-of-range")),
    Row("limit-energy-high", ("LIMIT", "ENERGY", 1001), ("ER", "E03", "out-of-range")),
    Row("limit-energy-in-ready", ("LIMIT", "ENERGY", 600), ("ER", "E04", "not-allowed-in-state"), LASER_READY),
    Row("limit-unknown", ("LIMIT", "FREEZE", 5), ("ER", "E03", "bad-argument")),
    Row("count", ("COUNT?",), ("OK", {"count": "0", "total": "0"})),
    Row("count-reset", ("COUNT", "RESET"), ("OK", {"count": "0"})),
    Row("count-reset-in-ready", ("COUNT", "RESET"), ("ER", "E04", "not-allowed-in-state"), LASER_READY),
    Row("service", ("SERVICE", 1), ("OK", {"service": "1"})),
    Row("service-in-ready", ("SERVICE", 1), ("ER", "E04", "not-allowed-in-state"), LASER_READY),
    Row("fire-not-service", ("FIRE", 1), ("ER", "E04", "not-allowed-in-state"), LASER_READY),
    Row("fire-standby", ("FIRE", 1), ("ER", "E04", "not-allowed-in-state"), (("req", "SERVICE", 1),)),
    Row("fire-zero", ("FIRE", 0), ("ER", "E03", "out-of-range")),
    Row("fire-101", ("FIRE", 101), ("ER", "E03", "out-of-range")),
    Row("fire-one", ("FIRE", 1), ("OK", {"fired": "1"}), (("req", "SERVICE", 1),) + LASER_READY),
    Row("stop", ("STOP",), ("OK", {"state": "STANDBY"}), LASER_READY),
    Row("stop-in-fault", ("STOP",), ("OK", {"state": "FAULT"}), LASER_FAULT),
    Row("fault-query", ("FAULT?",), ("OK", {"code": "F04", "text": "coolant"}), LASER_FAULT),
    Row("fault-clear-cause-present", ("FAULT", "CLEAR"), ("ER", "E06", "fault-active"), LASER_FAULT),
    Row("fault-clear-cause-gone", ("FAULT", "CLEAR"), ("OK", {"state": "STANDBY"}),
        LASER_FAULT + (("door", "remove_fault_cause", {"code": "F04"}),)),
]

CRYO_IDLE_LIMIT: tuple[Step, ...] = (("req", "LIMIT", "FREEZE", 30),)
CRYO_FREEZING: tuple[Step, ...] = CRYO_IDLE_LIMIT + (("req", "FREEZE", 20),)
CRYO_THAW: tuple[Step, ...] = CRYO_IDLE_LIMIT + (("req", "FREEZE", "0.5"), ("wait", 0.7))
CRYO_FAULT: tuple[Step, ...] = (("door", "inject_fault", {"code": "C04"}), ("wait", 0.05))

CRYO_ROWS = [
    Row("idn", ("IDN?",), ("OK", {"model": "CP-2", "cryogen": "N2O", "tmin": "-89"})),
    Row("state-power-on", ("STATE?",),
        ("OK", {"state": "IDLE", "target": "-50", "valve": "0", "probe": "P3", "estop": "0", "limit": "0.0", "elapsed": "0.0"})),
    Row("target", ("TARGET", -60), ("OK", {"target": "-60"})),
    Row("target-tmin", ("TARGET", -89), ("OK", {"target": "-89"})),
    Row("target-below-tmin", ("TARGET", -90), ("ER", "E03", "out-of-range")),
    Row("target-warm", ("TARGET", -19), ("ER", "E03", "out-of-range")),
    Row("target-not-whole", ("TARGET", "-30.5"), ("ER", "E03", "bad-argument")),
    Row("target-in-thaw", ("TARGET", -40), ("OK", {"target": "-40"}), CRYO_THAW),
    Row("target-freezing", ("TARGET", -40), ("ER", "E04", "not-allowed-in-state"), CRYO_FREEZING),
    Row("freeze-power-on-limit", ("FREEZE", 5), ("ER", "E03", "over-limit")),
    Row("freeze-ok", ("FREEZE", "10.5"), ("OK", {"state": "FREEZING"}), CRYO_IDLE_LIMIT),
    Row("freeze-over-limit", ("FREEZE", "30.1"), ("ER", "E03", "over-limit"), CRYO_IDLE_LIMIT),
    Row("freeze-short", ("FREEZE", "0.4"), ("ER", "E03", "out-of-range"), CRYO_IDLE_LIMIT),
    Row("freeze-long", ("FREEZE", "60.1"), ("ER", "E03", "out-of-range"), CRYO_IDLE_LIMIT),
    Row("freeze-two-decimals", ("FREEZE", "5.25"), ("ER", "E03", "bad-argument"), CRYO_IDLE_LIMIT),
    Row("freeze-no-probe", ("FREEZE", 5), ("ER", "E05", "no-probe"),
        CRYO_IDLE_LIMIT + (("door", "set_input", {"name": "probe", "value": "NONE"}),)),
    Row("freeze-estop", ("FREEZE", 5), ("ER", "E05", "estop-pressed"),
        CRYO_IDLE_LIMIT + (("door", "set_input", {"name": "estop", "value": 1}),)),
    Row("freeze-cryogen-low", ("FREEZE", 5), ("ER", "E05", "cryogen-low"), CRYO_IDLE_LIMIT + (("door", "set_level", {"percent": 4.9}),)),
    Row("freeze-nearly-empty-ok", ("FREEZE", 5), ("OK", {"state": "FREEZING"}), CRYO_IDLE_LIMIT + (("door", "nearly_empty", {}),)),
    Row("freeze-in-freezing", ("FREEZE", 5), ("ER", "E04", "not-allowed-in-state"), CRYO_FREEZING),
    Row("freeze-in-thaw", ("FREEZE", 5), ("ER", "E04", "not-allowed-in-state"), CRYO_THAW),
    Row("freeze-in-fault", ("FREEZE", 5), ("ER", "E06", "fault-active"), CRYO_FAULT),
    Row("limit-freeze", ("LIMIT", "FREEZE", "12.5"), ("OK", {"limit": "12.5"})),
    Row("limit-freeze-high", ("LIMIT", "FREEZE", "60.1"), ("ER", "E03", "out-of-range")),
    Row("limit-freeze-freezing", ("LIMIT", "FREEZE", 10), ("ER", "E04", "not-allowed-in-state"), CRYO_FREEZING),
    Row("thawmin", ("THAWMIN", 30), ("OK", {"thawmin": "30"})),
    Row("thawmin-low", ("THAWMIN", 4), ("ER", "E03", "out-of-range")),
    Row("thawmin-high", ("THAWMIN", 301), ("ER", "E03", "out-of-range")),
    Row("thawmin-in-thaw", ("THAWMIN", 30), ("ER", "E04", "not-allowed-in-state"), CRYO_THAW),
    Row("telem", ("TELEM", 50), ("OK", {"telem": "50"})),
    Row("telem-in-freezing", ("TELEM", 20), ("OK", {"telem": "20"}), CRYO_FREEZING),
    Row("telem-low", ("TELEM", 0), ("ER", "E03", "out-of-range")),
    Row("telem-high", ("TELEM", 51), ("ER", "E03", "out-of-range")),
    Row("stop-freezing", ("STOP",), ("OK", {"state": "THAW"}), CRYO_FREEZING),
    Row("stop-in-fault", ("STOP",), ("OK", {"state": "FAULT"}), CRYO_FAULT),
    Row("fault-query", ("FAULT?",), ("OK", {"code": "C04", "text": "overpressure"}), CRYO_FAULT),
    Row("fault-clear-cause-present", ("FAULT", "CLEAR"), ("ER", "E06", "fault-active"), CRYO_FAULT),
    Row("fault-clear-cause-gone", ("FAULT", "CLEAR"), ("OK", {"state": "IDLE"}),
        CRYO_FAULT + (("door", "remove_fault_cause", {"code": "C04"}),)),
    Row("laser-command", ("ENERGY", 10), ("ER", "E02", "unknown-command")),
]


def run_row(line: Any, row: Row) -> None:
    """Apply the set-up to ``line`` (VirtualUnit or SerialLine), send the request, check the reply."""
    for step in row.setup:
        if step[0] == "req":
            line.ok(*step[1:])
        elif step[0] == "door":
            line.do(step[1], **step[2])
        elif step[0] == "wait":
            line.run(step[1])
    if row.expect[0] == "OK":
        fields = line.ok(*row.request)
        assert {k: fields.get(k) for k in row.expect[1]} == row.expect[1], fields
    else:
        assert line.refused(*row.request) == (row.expect[1], row.expect[2])
