"""Typed replies of the units (pydantic at the driver's boundary), built from wire fields."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field


class _Reply(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")


class Idn(_Reply):
    """``IDN?``: common identity plus each unit's own fields."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="allow")
    vendor: str
    model: str
    serial: str
    fw: str


class LaserIdn(Idn):
    wavelengths_nm: str = Field(alias="wl")
    emax_mj: int = Field(alias="emax")
    ratemax_hz: float = Field(alias="ratemax")

    @property
    def wavelength_list(self) -> list[int]:
        return [int(w) for w in self.wavelengths_nm.split(",")]


class CryoIdn(Idn):
    cryogen: str
    tmin_c: int = Field(alias="tmin")


class LaserMode(str, Enum):
    STANDBY = "STANDBY"
    CHARGING = "CHARGING"
    READY = "READY"
    EMITTING = "EMITTING"
    FAULT = "FAULT"


class CryoMode(str, Enum):
    IDLE = "IDLE"
    FREEZING = "FREEZING"
    THAW = "THAW"
    FAULT = "FAULT"


class LaserState(_Reply):
    """``STATE?`` of the laser."""

    state: LaserMode
    key: bool
    interlock: bool
    estop: bool
    foot: bool
    wl_nm: int = Field(alias="wl")
    energy_mj: int = Field(alias="energy")
    rate_hz: float = Field(alias="rate")
    spot_mm: float = Field(alias="spot")
    aim: bool
    service: bool
    budget: int
    count: int
    temp_c: float = Field(alias="temp")


class CryoState(_Reply):
    """``STATE?`` of the cryo unit."""

    state: CryoMode
    tip_c: float = Field(alias="tip")
    target_c: int = Field(alias="target")
    valve: bool
    level: float
    pressure: float
    probe: str
    estop: bool
    elapsed_s: float = Field(alias="elapsed")
    limit_s: float = Field(alias="limit")


class FaultStatus(_Reply):
    code: str
    text: str

    @property
    def active(self) -> bool:
        return self.code != "NONE"


class PulseCount(_Reply):
    count: int
    total: int
