"""Typed driver of the QS-1064 laser (laser.md): one method per ICD command."""

from __future__ import annotations

import math
from typing import ClassVar

from .events import LASER_EVENTS, DeviceEvent
from .linedriver import REPLY_TIMEOUT_S, LineDriver
from .models import Idn, LaserIdn, LaserMode, LaserState, PulseCount

FIRE_MAX = 100


class LaserDriver(LineDriver):
    EVENTS: ClassVar[dict[str, type[DeviceEvent]]] = LASER_EVENTS
    IDN_MODEL: ClassVar[type[Idn]] = LaserIdn

    async def idn(self) -> LaserIdn:
        return LaserIdn.model_validate(await self.request("IDN?"))

    async def state(self) -> LaserState:
        return LaserState.model_validate(await self.request("STATE?"))

    async def set_wavelength(self, nm: int) -> int:
        return int((await self.request("WL", int(nm)))["wl"])

    async def set_energy(self, mj: int) -> int:
        return int((await self.request("ENERGY", int(mj)))["energy"])

    async def set_rate(self, hz: float) -> float:
        return float((await self.request("RATE", hz))["rate"])

    async def set_aim(self, on: bool) -> bool:
        return (await self.request("AIM", bool(on)))["aim"] == "1"

    async def ready(self) -> LaserMode:
        """Start charging (STANDBY -> CHARGING); READY follows as a STATE event after 1.5 s."""
        return LaserMode((await self.request("READY"))["state"])

    async def standby(self) -> LaserMode:
        return LaserMode((await self.request("STANDBY"))["state"])

    async def set_ready_timeout(self, seconds: int) -> int:
        return int((await self.request("READYTIMEOUT", int(seconds)))["readytimeout"])

    async def limit_pulses(self, n: int) -> int:
        """The unit's own pulse budget until the next COUNT RESET (0 after power-on)."""
        return int((await self.request("LIMIT", "PULSES", int(n)))["budget"])

    async def limit_energy(self, mj: int) -> int:
        return int((await self.request("LIMIT", "ENERGY", int(mj)))["emaxset"])

    async def count(self) -> PulseCount:
        return PulseCount.model_validate(await self.request("COUNT?"))

    async def reset_count(self) -> int:
        return int((await self.request("COUNT", "RESET"))["count"])

    async def set_service(self, on: bool) -> bool:
        return (await self.request("SERVICE", bool(on)))["service"] == "1"

    async def fire(self, n: int, rate_hz: float, watchdog_ms: int = 1000) -> int:
        """SERVICE mode: fire ``n`` pulses from READY; returns the pulses the unit fired.

        The unit answers FIRE only after its last pulse and its watchdog keeps running, so the
        pulses are sent as bursts that end well inside the watchdog (at most 100 each); the
        reply timeout of each burst is its duration plus the usual 250 ms."""
        if n < 1:
            raise ValueError("fire at least one pulse")
        per_burst = max(1, min(FIRE_MAX, math.floor(0.7 * watchdog_ms / 1000 * rate_hz)))
        fired = 0
        while fired < n:
            burst = min(per_burst, n - fired)
            timeout = (burst - 1) / rate_hz + REPLY_TIMEOUT_S
            reply = await self.request("FIRE", burst, timeout_s=timeout)
            done = int(reply["fired"])
            fired += done
            if done < burst:
                break  # the unit stopped the burst (budget, input, fault): never insist
        return fired
