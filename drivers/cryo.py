"""Typed driver of the CP-2 cryo unit (cryo.md): one method per ICD command."""

from __future__ import annotations

from typing import ClassVar

from .events import CRYO_EVENTS, DeviceEvent
from .linedriver import LineDriver
from .models import CryoIdn, CryoMode, CryoState, Idn


class CryoDriver(LineDriver):
    EVENTS: ClassVar[dict[str, type[DeviceEvent]]] = CRYO_EVENTS
    IDN_MODEL: ClassVar[type[Idn]] = CryoIdn

    async def idn(self) -> CryoIdn:
        return CryoIdn.model_validate(await self.request("IDN?"))

    async def state(self) -> CryoState:
        return CryoState.model_validate(await self.request("STATE?"))

    async def set_target(self, celsius: int) -> int:
        return int((await self.request("TARGET", int(celsius)))["target"])

    async def freeze(self, seconds: float) -> CryoMode:
        """Start one freeze of ``seconds``; the unit ends it by its own timer."""
        return CryoMode((await self.request("FREEZE", float(seconds)))["state"])

    async def limit_freeze(self, seconds: float) -> float:
        """The unit's own cap on one freeze (0 after power-on: nothing freezes)."""
        return float((await self.request("LIMIT", "FREEZE", float(seconds)))["limit"])

    async def set_thaw_min(self, seconds: int) -> int:
        return int((await self.request("THAWMIN", int(seconds)))["thawmin"])

    async def set_telemetry(self, hz: int) -> int:
        return int((await self.request("TELEM", int(hz)))["telem"])
