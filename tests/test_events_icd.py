"""Every event row of the ICDs (laser.md and cryo.md "Events", line-protocol.md "Events common to
both units") through the shared codec into its typed model, and every event the simulators really
send in a short session: always the right model, never MalformedEvent or UnknownEvent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from drivers.events import (
    CRYO_EVENTS,
    LASER_EVENTS,
    Booted,
    CryogenLevel,
    CryoInputs,
    DeviceEvent,
    FaultLatched,
    FreezePhase,
    HeadTemperature,
    LaserInputs,
    LimitReached,
    LineErrorReported,
    MalformedEvent,
    Pulse,
    StateChanged,
    TipTelemetry,
    UnknownEvent,
    WatchdogExpired,
    parse_event,
)
from drivers.lineproto import Event, FrameSplitter, encode, make_fields
from simulators.virtual import VirtualUnit

TABLES = {"laser": LASER_EVENTS, "cryo": CRYO_EVENTS}

# The ICD tables as written: event -> its fields (FREEZE has one row per phase).
ICD_COMMON = {"STATE": "state cause", "FAULT": "code text", "WDT": "", "COMERR": "reason", "BOOT": "fw"}
ICD_EVENTS = {
    "laser": {
        **ICD_COMMON,
        "PULSE": "n e set t",
        "INPUT": "key interlock estop foot",
        "LIMIT": "kind",
        "TEMP": "head",
    },
    "cryo": {
        **ICD_COMMON,
        "TEMP": "tip target valve t",
        "FREEZE start": "phase t",
        "FREEZE end": "phase cause dur t",
        "LEVEL": "level pressure",
        "INPUT": "estop probe",
    },
}
STATE_CAUSES = ("cmd", "foot", "interlock", "estop", "key", "wdt", "limit", "fault", "power")
UNIT_STATES = {
    "laser": ("STANDBY", "CHARGING", "READY", "EMITTING", "FAULT"),
    "cryo": ("IDLE", "FREEZING", "THAW", "FAULT"),
}
FAULTS = {
    "laser": {
        "F01": "lamp", "F02": "energy-deviation", "F03": "overtemp", "F04": "coolant", "F05": "shutter",
    },
    "cryo": {"C01": "sensor-open", "C02": "valve-stuck", "C03": "cryogen-empty", "C04": "overpressure"},
}
FIRMWARE = {"laser": "2.3.1", "cryo": "1.4.2"}
FREEZE_END_CAUSES = ("timeout", "stop", "wdt", "estop", "fault")


@dataclass(frozen=True)
class EventRow:
    """One wire event as a unit sends it, and the typed model it must become."""

    unit: str
    name: str
    wire: dict[str, Any]  # field -> value as the unit formats it (make_fields writes it)
    model: type[DeviceEvent]
    expect: dict[str, Any] = field(default_factory=dict)  # model attribute -> typed value
    icd_row: str = ""  # the ICD row it stands for, when the event has several (FREEZE)

    @property
    def id(self) -> str:
        values = "-".join(str(v) for v in self.wire.values())
        return f"{self.unit}-{self.name}" + (f"-{values}" if values else "")


def _common_rows(unit: str) -> list[EventRow]:
    rows = [
        EventRow(unit, "STATE", {"state": state, "cause": cause}, StateChanged,
                 {"state": state, "cause": cause})
        for state in UNIT_STATES[unit]
        for cause in STATE_CAUSES
        if state != "FAULT" or cause == "fault"
    ]
    rows += [
        EventRow(unit, "FAULT", {"code": code, "text": text}, FaultLatched, {"code": code, "text": text})
        for code, text in FAULTS[unit].items()
    ]
    rows.append(EventRow(unit, "WDT", {}, WatchdogExpired))
    rows += [
        EventRow(unit, "COMERR", {"reason": r}, LineErrorReported, {"reason": r})
        for r in ("crc", "syntax", "length")
    ]
    rows.append(EventRow(unit, "BOOT", {"fw": FIRMWARE[unit]}, Booted, {"fw": FIRMWARE[unit]}))
    return rows


LASER_ROWS = _common_rows("laser") + [
    # the worked example of line-protocol.md: !00F3 PULSE n=17 e=447.9 set=450 t=1203412
    EventRow("laser", "PULSE", {"n": 17, "e": "447.9", "set": 450, "t": 1203412}, Pulse,
             {"n": 17, "energy_mj": 447.9, "set_mj": 450, "t_ms": 1203412}),
    EventRow("laser", "PULSE", {"n": 1, "e": "0.0", "set": 10, "t": 0}, Pulse,
             {"n": 1, "energy_mj": 0.0, "set_mj": 10, "t_ms": 0}),
    EventRow("laser", "PULSE", {"n": 10000, "e": "1043.6", "set": 1000, "t": 86400000}, Pulse,
             {"n": 10000, "energy_mj": 1043.6, "set_mj": 1000, "t_ms": 86400000}),
    EventRow("laser", "INPUT", {"key": True, "interlock": False, "estop": False, "foot": False}, LaserInputs,
             {"key": True, "interlock": False, "estop": False, "foot": False}),
    EventRow("laser", "INPUT", {"key": False, "interlock": True, "estop": True, "foot": True}, LaserInputs,
             {"key": False, "interlock": True, "estop": True, "foot": True}),
    EventRow("laser", "LIMIT", {"kind": "pulses"}, LimitReached, {"limit": "pulses", "kind": "LIMIT"}),
    EventRow("laser", "TEMP", {"head": "22.0"}, HeadTemperature, {"head_c": 22.0}),
    EventRow("laser", "TEMP", {"head": "41.3"}, HeadTemperature, {"head_c": 41.3}),
]

CRYO_ROWS = _common_rows("cryo") + [
    EventRow("cryo", "TEMP", {"tip": "-49.7", "target": -50, "valve": True, "t": 2350}, TipTelemetry,
             {"tip_c": -49.7, "target_c": -50, "valve": True, "t_ms": 2350}),
    EventRow("cryo", "TEMP", {"tip": "30.0", "target": -120, "valve": False, "t": 0}, TipTelemetry,
             {"tip_c": 30.0, "target_c": -120, "valve": False, "t_ms": 0}),
    EventRow("cryo", "TEMP", {"tip": "999.9", "target": -89, "valve": False, "t": 61000}, TipTelemetry,
             {"tip_c": 999.9, "target_c": -89, "valve": False, "t_ms": 61000}),
    EventRow("cryo", "FREEZE", {"phase": "start", "t": 12040}, FreezePhase,
             {"phase": "start", "cause": None, "dur_s": None, "t_ms": 12040}, "FREEZE start"),
    *[
        EventRow("cryo", "FREEZE", {"phase": "end", "cause": cause, "dur": "10.50", "t": 22540}, FreezePhase,
                 {"phase": "end", "cause": cause, "dur_s": 10.5, "t_ms": 22540}, "FREEZE end")
        for cause in FREEZE_END_CAUSES
    ],
    EventRow("cryo", "LEVEL", {"level": "100.0", "pressure": "50.0"}, CryogenLevel,
             {"level": 100.0, "pressure": 50.0}),
    EventRow("cryo", "LEVEL", {"level": "4.9", "pressure": "1.5"}, CryogenLevel,
             {"level": 4.9, "pressure": 1.5}),
    EventRow("cryo", "INPUT", {"estop": True, "probe": "P3"}, CryoInputs, {"estop": True, "probe": "P3"}),
    *[
        EventRow("cryo", "INPUT", {"estop": False, "probe": p}, CryoInputs, {"estop": False, "probe": p})
        for p in ("P1", "P5", "SPRAY", "NONE")
    ],
]

ROWS = LASER_ROWS + CRYO_ROWS


def _over_the_wire(event: Event) -> Event:
    """Encode with the shared codec and read back through the splitter, as the driver does."""
    items = list(FrameSplitter().feed(encode(event)))
    assert len(items) == 1 and isinstance(items[0], Event), items
    return items[0]


@pytest.mark.parametrize("unit", ["laser", "cryo"])
def test_rows_cover_every_event_row_of_the_icd(unit: str) -> None:
    rows = [r for r in ROWS if r.unit == unit]
    for icd_row, fields in ICD_EVENTS[unit].items():
        matching = [r for r in rows if (r.icd_row or r.name) == icd_row]
        assert matching, f"no row for {unit} {icd_row}"
        for row in matching:
            assert list(row.wire) == fields.split(), f"{row.id}: fields differ from the ICD's {fields!r}"
    assert {name.split()[0] for name in ICD_EVENTS[unit]} == set(TABLES[unit])


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
@pytest.mark.parametrize("evseq", [0x0000, 0x00F3, 0xFFFF])
def test_icd_event_parses_to_its_typed_model(row: EventRow, evseq: int) -> None:
    wire = _over_the_wire(Event(evseq, row.name, make_fields(**row.wire)))
    typed = parse_event(wire, TABLES[row.unit])
    assert not isinstance(typed, (MalformedEvent, UnknownEvent)), typed
    assert type(typed) is row.model
    assert typed.evseq == evseq
    for attribute, value in row.expect.items():
        assert getattr(typed, attribute) == value, attribute
    # every wire field lands in the model, under its wire name, and nothing else
    dumped = typed.model_dump(by_alias=True, exclude={"kind", "evseq"}, exclude_none=True)
    assert set(dumped) == set(row.wire)
    for key, value in row.wire.items():
        assert dumped[key] == _as_parsed(value, dumped[key]), key


def _as_parsed(wire_value: Any, parsed: Any) -> Any:
    """The value the unit sent, in the type the model holds (``"447.9"`` -> 447.9)."""
    if isinstance(parsed, bool) or isinstance(wire_value, bool):
        return bool(wire_value)
    return type(parsed)(wire_value)


def test_limit_event_keeps_its_discriminator_and_its_limit_kind() -> None:
    typed = parse_event(Event(5, "LIMIT", (("kind", "pulses"),)), LASER_EVENTS)
    assert typed == LimitReached(evseq=5, limit="pulses")
    assert typed.kind == "LIMIT" and typed.limit == "pulses"  # type: ignore[attr-defined]
    assert typed.model_dump() == {"evseq": 5, "kind": "LIMIT", "limit": "pulses"}


@pytest.mark.parametrize(
    ("table", "name", "fields"),
    [
        (LASER_EVENTS, "LIMIT", ()),  # kind is required
        (LASER_EVENTS, "PULSE", (("n", "1"), ("e", "1.0"), ("set", "10"), ("t", "5"), ("kind", "PULSE"))),
        (LASER_EVENTS, "PULSE", (("n", "1"), ("e", "1.0"), ("set", "10"), ("t", "5"), ("evseq", "9"))),
        (LASER_EVENTS, "TEMP", (("head", "hot"),)),
        (CRYO_EVENTS, "FREEZE", (("phase", "middle"), ("t", "5"))),
        (CRYO_EVENTS, "TEMP", (("head", "22.0"),)),  # the laser's TEMP on the cryo line
    ],
)
def test_a_wrong_event_is_surfaced_as_malformed_never_dropped(
    table: dict[str, type[DeviceEvent]], name: str, fields: tuple[tuple[str, str], ...]
) -> None:
    typed = parse_event(Event(7, name, fields), table)
    assert isinstance(typed, MalformedEvent)
    assert typed.evseq == 7 and typed.name == name and typed.fields == dict(fields) and typed.error


def test_an_event_the_table_does_not_know_is_kept_raw() -> None:
    typed = parse_event(Event(8, "LIMIT", (("kind", "pulses"),)), CRYO_EVENTS)
    assert typed == UnknownEvent(evseq=8, name="LIMIT", fields={"kind": "pulses"})


# ---------------------------------------------------------------- what the simulators really send


def _typed(v: VirtualUnit, unit: str) -> list[DeviceEvent]:
    typed = [parse_event(e, TABLES[unit]) for e in v.events]
    bad = [t for t in typed if isinstance(t, (MalformedEvent, UnknownEvent))]
    assert not bad, bad
    return typed


def test_every_event_of_a_laser_session_parses_to_a_typed_model() -> None:
    v = VirtualUnit("laser")
    v.send_raw(b"noise\r\n")  # COMERR
    v.ok("LIMIT", "PULSES", 3)
    v.ok("RATE", "10.0")
    v.ok("READY")
    assert v.run_until(lambda: v.do("truth")["state"] == "READY", timeout=2.0)
    v.do("set_input", name="foot", value=1)  # INPUT, STATE, PULSE
    assert v.run_until(lambda: bool(v.events_named("LIMIT")), timeout=2.0)
    v.do("set_input", name="foot", value=0)
    v.run(1.2, heartbeat=False, step=0.05)  # TEMP, then the watchdog: WDT
    v.do("inject_fault", code="F04")  # FAULT
    v.do("power_cycle")  # BOOT again
    typed = _typed(v, "laser")
    kinds = {type(t) for t in typed}
    assert {Booted, LineErrorReported, StateChanged, LaserInputs, Pulse, LimitReached, HeadTemperature,
            WatchdogExpired, FaultLatched} <= kinds
    assert [t.limit for t in typed if isinstance(t, LimitReached)] == ["pulses"]
    assert [t.n for t in typed if isinstance(t, Pulse)] == [1, 2, 3]
    assert all(t.set_mj == 10 and t.energy_mj > 0 for t in typed if isinstance(t, Pulse))


def test_every_event_of_a_cryo_session_parses_to_a_typed_model() -> None:
    v = VirtualUnit("cryo")
    v.send_raw(b"noise\r\n")  # COMERR
    v.ok("LIMIT", "FREEZE", 10)
    v.ok("FREEZE", 2)  # STATE, FREEZE start, TEMP
    assert v.run_until(lambda: v.do("truth")["state"] == "THAW", timeout=3.0)  # FREEZE end
    v.run(3.5)  # LEVEL every 5 s
    v.do("set_input", name="estop", value=1)  # INPUT
    v.run(1.2, heartbeat=False, step=0.05)  # WDT
    v.do("inject_fault", code="C04")
    v.run(0.05, heartbeat=False)  # FAULT
    v.do("power_cycle")  # BOOT again
    typed = _typed(v, "cryo")
    kinds = {type(t) for t in typed}
    assert {Booted, LineErrorReported, StateChanged, FreezePhase, TipTelemetry, CryogenLevel, CryoInputs,
            WatchdogExpired, FaultLatched} <= kinds
    phases = [(t.phase, t.cause) for t in typed if isinstance(t, FreezePhase)]
    assert phases == [("start", None), ("end", "timeout")]
    end = [t for t in typed if isinstance(t, FreezePhase) and t.phase == "end"][0]
    assert end.dur_s == pytest.approx(2.0, abs=0.06)
