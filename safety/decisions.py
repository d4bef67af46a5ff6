"""What the kernel decides; the service only obeys (STOP first, then records)."""

from __future__ import annotations

from dataclasses import dataclass

from .hazards import Hazard


@dataclass(frozen=True)
class Stop:
    """Send STOP to the device now."""

    reason: str
    hazard: Hazard


@dataclass(frozen=True)
class Lockout:
    """No arming or freezing until a person acknowledges (and the cause is gone)."""

    reason: str
    hazard: Hazard


@dataclass(frozen=True)
class Pause:
    """The session waits for its limits to be programmed again and a practitioner to re-confirm."""

    reason: str
    hazard: Hazard


@dataclass(frozen=True)
class Program:
    """Program one device limit or setting (defense in depth: the device enforces it too).

    Laser settings: ``wavelength_nm``, ``energy_limit_mj``, ``energy_mj``, ``rate_hz``,
    ``count_reset``, ``pulse_limit``. Cryo: ``target_c``, ``freeze_limit_s``, ``thaw_min_s``."""

    setting: str
    value: float | int


@dataclass(frozen=True)
class AllowArm:
    """The service may send READY: a practitioner asked and every gate is open."""


@dataclass(frozen=True)
class AllowFreeze:
    """The service may send FREEZE for ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class Refuse:
    """A request is refused; ``reason`` is for the practitioner, in plain words."""

    reason: str
    hazard: Hazard


@dataclass(frozen=True)
class Warn:
    """Something a practitioner must know; nothing is stopped."""

    text: str


Decision = Stop | Lockout | Pause | Program | AllowArm | AllowFreeze | Refuse | Warn
