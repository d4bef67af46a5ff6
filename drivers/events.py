"""Typed events: what the units send unsolicited, and what the driver itself observes.

Device events carry their EVSEQ. Link events (``EventGap``, ``LinkDown``, ``LinkUp``,
``LineNoise``) come from the driver. A device event whose fields do not parse is never dropped:
it arrives as ``MalformedEvent`` with the reason, because a fault report must not be swallowed.

``kind`` is the model's own discriminator, never read from the wire: a wire field of the same name
(the laser's ``LIMIT kind=pulses``) is carried by the field whose alias names it (``limit``).
"""

from __future__ import annotations

from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .lineproto import Event


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")


class DeviceEvent(_Model):
    evseq: int


class StateChanged(DeviceEvent):
    kind: Literal["STATE"] = "STATE"
    state: str
    cause: str


class FaultLatched(DeviceEvent):
    kind: Literal["FAULT"] = "FAULT"
    code: str
    text: str


class WatchdogExpired(DeviceEvent):
    kind: Literal["WDT"] = "WDT"


class LineErrorReported(DeviceEvent):
    """The unit discarded one of our lines (``COMERR``)."""

    kind: Literal["COMERR"] = "COMERR"
    reason: str


class Booted(DeviceEvent):
    """The unit (re)started: every host setting is lost and must be programmed again."""

    kind: Literal["BOOT"] = "BOOT"
    fw: str


class Pulse(DeviceEvent):
    kind: Literal["PULSE"] = "PULSE"
    n: int
    energy_mj: float = Field(alias="e")
    set_mj: int = Field(alias="set")
    t_ms: int = Field(alias="t")


class LaserInputs(DeviceEvent):
    kind: Literal["INPUT"] = "INPUT"
    key: bool
    interlock: bool
    estop: bool
    foot: bool


class LimitReached(DeviceEvent):
    """``LIMIT kind=pulses``: the budget is spent; the wire's ``kind`` is ``limit`` here."""

    kind: Literal["LIMIT"] = "LIMIT"
    limit: str = Field(alias="kind")


class HeadTemperature(DeviceEvent):
    kind: Literal["TEMP"] = "TEMP"
    head_c: float = Field(alias="head")


class TipTelemetry(DeviceEvent):
    kind: Literal["TEMP"] = "TEMP"
    tip_c: float = Field(alias="tip")
    target_c: int = Field(alias="target")
    valve: bool
    t_ms: int = Field(alias="t")


class FreezePhase(DeviceEvent):
    kind: Literal["FREEZE"] = "FREEZE"
    phase: Literal["start", "end"]
    cause: str | None = None
    dur_s: float | None = Field(default=None, alias="dur")
    t_ms: int = Field(alias="t")


class CryogenLevel(DeviceEvent):
    kind: Literal["LEVEL"] = "LEVEL"
    level: float
    pressure: float


class CryoInputs(DeviceEvent):
    kind: Literal["INPUT"] = "INPUT"
    estop: bool
    probe: str


class UnknownEvent(DeviceEvent):
    """An event this driver does not know; kept with its raw fields."""

    kind: Literal["UNKNOWN"] = "UNKNOWN"
    name: str
    fields: dict[str, str]


class MalformedEvent(DeviceEvent):
    """A known event whose fields did not parse: surfaced, never dropped."""

    kind: Literal["MALFORMED"] = "MALFORMED"
    name: str
    fields: dict[str, str]
    error: str


# ---------------------------------------------------------------- observed by the driver


class EventGap(_Model):
    """EVSEQ jumped: ``missing`` events were lost on the wire, the first being ``first_missing``."""

    kind: Literal["GAP"] = "GAP"
    missing: int
    first_missing: int


class LineNoise(_Model):
    """A line from the unit was discarded (bad CRC, syntax or length)."""

    kind: Literal["NOISE"] = "NOISE"
    reason: str
    detail: str


class LinkDown(_Model):
    """The port vanished or went silent; the driver is reconnecting."""

    kind: Literal["LINK_DOWN"] = "LINK_DOWN"
    reason: str


class LinkUp(_Model):
    """The line is open again. After a reconnect the unit must be treated as reset: every
    limit must be programmed again and nothing may be re-armed automatically."""

    kind: Literal["LINK_UP"] = "LINK_UP"
    reconnect: bool


#: every event a driver hands out: the unit's own (a ``DeviceEvent`` of the driver's table, or
#: ``UnknownEvent``/``MalformedEvent``) and the driver's own about the line
DriverEvent = DeviceEvent | EventGap | LineNoise | LinkDown | LinkUp

COMMON_EVENTS: dict[str, type[DeviceEvent]] = {
    "STATE": StateChanged,
    "FAULT": FaultLatched,
    "WDT": WatchdogExpired,
    "COMERR": LineErrorReported,
    "BOOT": Booted,
}
LASER_EVENTS: dict[str, type[DeviceEvent]] = {
    **COMMON_EVENTS,
    "PULSE": Pulse,
    "INPUT": LaserInputs,
    "LIMIT": LimitReached,
    "TEMP": HeadTemperature,
}
CRYO_EVENTS: dict[str, type[DeviceEvent]] = {
    **COMMON_EVENTS,
    "TEMP": TipTelemetry,
    "FREEZE": FreezePhase,
    "LEVEL": CryogenLevel,
    "INPUT": CryoInputs,
}


@cache
def _field_names(model: type[DeviceEvent]) -> dict[str, str]:
    """Wire key -> field name of a device event model; the discriminator and EVSEQ never come
    from the fields of a wire event."""
    return {
        info.alias or name: name
        for name, info in model.model_fields.items()
        if name not in ("kind", "evseq")
    }


def parse_event(event: Event, table: dict[str, type[DeviceEvent]]) -> DeviceEvent:
    """A wire event as its typed model; never raises."""
    fields = event.fields_dict()
    model = table.get(event.name)
    if model is None:
        return UnknownEvent(evseq=event.evseq, name=event.name, fields=fields)
    names = _field_names(model)
    unexpected = [key for key in fields if key not in names]
    if unexpected:
        reason = "; ".join(f"{key}: unexpected field" for key in unexpected)
        return MalformedEvent(evseq=event.evseq, name=event.name, fields=fields, error=reason)
    # by field name (populate_by_name), so a wire key never lands on the discriminator
    data: dict[str, object] = {names[key]: value for key, value in fields.items()}
    data["evseq"] = event.evseq
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        reason = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return MalformedEvent(evseq=event.evseq, name=event.name, fields=fields, error=reason)
