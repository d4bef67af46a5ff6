"""Device events → what the supervisor does with them, by table (one row per event type).

``FACTS``: the safety kernel's fact for the event, and what goes on the record (a pulse, a freeze).
``STATUS``: what the event changes in the device's status shown on every screen.
Both are pure: event and time in, data out; the supervisor hands the fact to the kernel first
(a STOP never waits for a record) and runs the follow-ups (``FOLLOW_UPS``: a lost event may have
been a pulse, a link that came up must be identified again).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from drivers.events import (
    Booted,
    CryogenLevel,
    CryoInputs,
    EventGap,
    FaultLatched,
    FreezePhase,
    HeadTemperature,
    LaserInputs,
    LimitReached,
    LineErrorReported,
    LineNoise,
    LinkDown,
    LinkUp,
    MalformedEvent,
    Pulse,
    StateChanged,
    TipTelemetry,
    UnknownEvent,
    WatchdogExpired,
)
from safety import facts as F

if TYPE_CHECKING:
    from devicectl.core.supervisor import DeviceStatus

Record = tuple[str, dict[str, Any]]
Translation = Callable[[Any, float], tuple[Any, "Record | None"]]


def _freeze_phase(e: FreezePhase, now: float) -> tuple[Any, Record | None]:
    if e.phase == "start":
        return F.FreezeStartSeen(now), None
    return F.FreezeEndSeen(e.cause or "unknown", e.dur_s or 0.0, now), ("freeze", {"dur_s": e.dur_s, "cause": e.cause})


#: event type -> (kernel fact, record or None)
FACTS: dict[type, Translation] = {
    StateChanged: lambda e, now: (F.DeviceStateSeen(e.state, e.cause, now), None),
    Pulse: lambda e, now: (F.PulseSeen(e.n, e.energy_mj, e.set_mj, now),
                           ("pulse", {"n": e.n, "energy_mj": e.energy_mj, "set_mj": e.set_mj, "t_ms": e.t_ms})),
    LaserInputs: lambda e, now: (F.LaserInputsSeen(e.key, e.interlock, e.estop, e.foot, now), None),
    TipTelemetry: lambda e, now: (F.TipSeen(e.tip_c, e.valve, now), None),
    FreezePhase: _freeze_phase,
    CryoInputs: lambda e, now: (F.CryoInputsSeen(e.estop, e.probe, now), None),
    HeadTemperature: lambda e, now: (F.TelemetrySeen(now), None),
    CryogenLevel: lambda e, now: (F.TelemetrySeen(now), None),
    FaultLatched: lambda e, now: (F.FaultSeen(e.code, e.text, now), None),
    WatchdogExpired: lambda e, now: (F.WatchdogSeen(now), None),
    Booted: lambda e, now: (F.BootSeen(now), None),
    EventGap: lambda e, now: (F.EventGapSeen(e.missing, now), None),
    MalformedEvent: lambda e, now: (F.EventGapSeen(1, now), None),  # an unreadable event is a lost one
    LinkDown: lambda e, now: (F.LinkLost(e.reason, now), None),
    LinkUp: lambda e, now: (F.LinkRestored(now), None),
}


#: event types that are deliberately no fact, and why (every event type is in FACTS or here)
NOT_FACTS: dict[type, str] = {
    LimitReached: "the unit stopped at its own limit: its STATE event that follows is the fact; the kernel counts "
                  "every pulse itself",
    LineErrorReported: "the unit discarded one of our lines: the driver's exchange retries or fails with it",
    LineNoise: "a line from the unit failed its CRC or syntax: an event lost so shows as an EVSEQ gap",
    UnknownEvent: "not in the ICD: shown on every screen and MQTT with its raw fields; its EVSEQ still counts",
}


def _telemetry(status: DeviceStatus, e: Any) -> None:
    status.details.update({k: v for k, v in e.model_dump().items() if k not in ("evseq", "kind")})


def _state(status: DeviceStatus, e: StateChanged) -> None:
    status.state = e.state


def _fault(status: DeviceStatus, e: FaultLatched) -> None:
    status.fault = f"{e.code} {e.text}"


def _booted(status: DeviceStatus, e: Booted) -> None:
    status.fault = None


def _link_down(status: DeviceStatus, e: LinkDown) -> None:
    status.connected, status.last_reason = False, e.reason


#: event type -> its change to the device's status
STATUS: dict[type, Callable[[Any, Any], None]] = {
    StateChanged: _state,
    LaserInputs: lambda s, e: s.details.update(key=e.key, interlock=e.interlock, estop=e.estop, foot=e.foot),
    TipTelemetry: lambda s, e: s.details.update(tip_c=e.tip_c, valve=e.valve, target_c=e.target_c),
    CryoInputs: lambda s, e: s.details.update(estop=e.estop, probe=e.probe),
    HeadTemperature: _telemetry,
    CryogenLevel: _telemetry,
    FaultLatched: _fault,
    Booted: _booted,
    LinkDown: _link_down,
}

#: event type -> the supervisor's follow-up (a method name), run as its own task
FOLLOW_UPS: dict[type, str] = {
    EventGap: "_reconcile_quietly",  # a lost event may have been a pulse
    MalformedEvent: "_reconcile_quietly",
    LinkUp: "_on_link_up",  # identify the unit, program its limits, reconcile its counts
}


def translate(event: Any, now: float, status: DeviceStatus) -> tuple[Any, Record | None]:
    """The event's status change applied; its fact and record returned (``(None, None)``: not a device event)."""
    change = STATUS.get(type(event))
    if change is not None:
        change(status, event)
    row = FACTS.get(type(event))
    return row(event, now) if row is not None else (None, None)
