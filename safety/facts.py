"""Facts the kernel is told: people's actions, the device's events, and time (``at``, seconds).

Plain frozen data; the service builds them from driver events and API calls. Time only ever
enters as a value, so tests feed a list of facts and compare the decisions that come out.
"""

from __future__ import annotations

from dataclasses import dataclass

from .checklist import ChecklistAnswers, ChecklistContext
from .plans import Plan


class Role:
    PRACTITIONER = "practitioner"
    TECHNICIAN = "technician"
    ADMIN = "admin"


# ----------------------------------------------------------------------------- people and service


@dataclass(frozen=True)
class SessionOpened:
    plan: Plan
    at: float = 0.0
    monitor_correction: float = 1.0  # from the device's passed calibration (monitor reads x this)


@dataclass(frozen=True)
class SessionClosed:
    at: float = 0.0


@dataclass(frozen=True)
class ArmRequested:
    """A practitioner asks to arm the laser (READY)."""

    role: str
    answers: ChecklistAnswers
    context: ChecklistContext
    at: float = 0.0


@dataclass(frozen=True)
class FreezeRequested:
    """A practitioner asks for one freeze of ``seconds``."""

    role: str
    seconds: float
    answers: ChecklistAnswers
    context: ChecklistContext
    at: float = 0.0


@dataclass(frozen=True)
class StopRequested:
    """STOP from anyone logged in, the screen, MQTT or the service itself."""

    origin: str
    at: float = 0.0


@dataclass(frozen=True)
class LockoutAcknowledged:
    """A person saw why the session locked and says the cause is dealt with. It never arms."""

    role: str
    at: float = 0.0


@dataclass(frozen=True)
class LimitsReprogrammed:
    """The service programmed every limit again after a reset and read them back."""

    at: float = 0.0


@dataclass(frozen=True)
class Reconfirmed:
    """A practitioner re-confirms a paused session (after a reboot or reconnect). It never arms."""

    role: str
    at: float = 0.0


# ----------------------------------------------------------------------------- devices


@dataclass(frozen=True)
class DeviceStateSeen:
    state: str
    cause: str
    at: float = 0.0


@dataclass(frozen=True)
class LaserInputsSeen:
    key: bool
    interlock: bool
    estop: bool
    foot: bool
    at: float = 0.0


@dataclass(frozen=True)
class SpotSeen:
    """The handpiece's spot diameter (read from STATE?)."""

    spot_mm: float
    at: float = 0.0


@dataclass(frozen=True)
class PulseSeen:
    n: int
    energy_mj: float  # the unit's monitor
    set_mj: int
    at: float = 0.0


@dataclass(frozen=True)
class CryoInputsSeen:
    estop: bool
    probe: str
    at: float = 0.0


@dataclass(frozen=True)
class TipSeen:
    tip_c: float
    valve: bool
    at: float = 0.0


@dataclass(frozen=True)
class FreezeStartSeen:
    at: float = 0.0


@dataclass(frozen=True)
class FreezeEndSeen:
    cause: str
    dur_s: float
    at: float = 0.0


@dataclass(frozen=True)
class TelemetrySeen:
    """Any other sign of life from the device (TEMP, LEVEL...)."""

    at: float = 0.0


@dataclass(frozen=True)
class FaultSeen:
    code: str
    text: str
    at: float = 0.0


@dataclass(frozen=True)
class WatchdogSeen:
    at: float = 0.0


@dataclass(frozen=True)
class BootSeen:
    at: float = 0.0


@dataclass(frozen=True)
class EventGapSeen:
    missing: int
    at: float = 0.0


@dataclass(frozen=True)
class LinkLost:
    reason: str
    at: float = 0.0


@dataclass(frozen=True)
class LinkRestored:
    at: float = 0.0


@dataclass(frozen=True)
class PulsesUnseen:
    """The unit's own counter shows ``count`` pulses the host never saw (a gap, a reconnect, a
    reboot): they count against the budget and are recorded as "not seen by the host"."""

    count: int
    at: float = 0.0


@dataclass(frozen=True)
class FreezeUnanswered:
    """FREEZE was written but never answered: the unit may have frozen, unseen, for at most
    ``bound_s`` (until its own timer or watchdog ended it)."""

    bound_s: float
    at: float = 0.0


@dataclass(frozen=True)
class StopConfirmed:
    """The unit answered STOP with its safe state (and, for the cryo unit, a closed valve)."""

    state: str
    at: float = 0.0


@dataclass(frozen=True)
class StopUnconfirmed:
    """A STOP was refused, unanswered or answered with an unsafe state: the host went silent so
    the unit's watchdog stops it, and a person must use the unit's own emergency stop."""

    reason: str
    at: float = 0.0


@dataclass(frozen=True)
class ClockTick:
    at: float


DEVICE_FACTS = (
    DeviceStateSeen, LaserInputsSeen, SpotSeen, PulseSeen, CryoInputsSeen, TipSeen, FreezeStartSeen,
    FreezeEndSeen, TelemetrySeen, FaultSeen, WatchdogSeen, BootSeen, EventGapSeen,
)
