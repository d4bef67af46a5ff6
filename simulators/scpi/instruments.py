"""The two bench instruments (scpi-instruments.md) as SCPI devices with their measurement errors.

EM-1 sees the energy the laser really emitted (not its monitor): 1 % of reading, plus 3 % when its
wavelength correction does not match the laser's, overrange 9.91E37 above the range. RT-1 reads the
cryo tip's true temperature within 0.2 degC with a type T thermocouple setting, worse with type K.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from .parser import (
    DATA_OUT_OF_RANGE,
    ILLEGAL_PARAMETER,
    ScpiDevice,
    ScpiError,
    no_argument,
    parse_number,
    required,
)

OVERRANGE = 9.91e37
RANGES_J = (0.02, 0.2, 2.0, 20.0)
BUFFER_MAX = 1000
METER_ERROR = 0.01
WRONG_WAVELENGTH_BIAS = 0.03
WAVELENGTH_MATCH_NM = 5
THERMOMETER_ERROR_C = 0.2
WRONG_TYPE_GAIN = 0.04  # reading a type T couple as type K: several degrees off at -50 degC


def _number(value: float, digits: int) -> str:
    return f"{value:.{digits}E}"


class EnergyMeter(ScpiDevice):
    def __init__(self, rng: random.Random, serial: str = "EM1-0001") -> None:
        super().__init__()
        self.rng = rng
        self.serial = serial
        self.reset()
        self.add("CONFigure:ENERgy", False, lambda a: no_argument(a))
        self.add("SENSe:CORRection:WAVelength", False, self._set_wavelength)
        self.add("SENSe:CORRection:WAVelength", True, lambda a: (no_argument(a), str(self.wavelength_nm))[1])
        self.add("SENSe:ENERgy:RANGe", False, self._set_range)
        self.add("SENSe:ENERgy:RANGe", True, lambda a: (no_argument(a), _number(self.range_j, 2))[1])
        self.add("INITiate", False, self._init)
        self.add("FETCh:ENERgy", True, self._last)
        self.add("FETCh:ENERgy:COUNt", True, lambda a: (no_argument(a), str(len(self.buffer)))[1])
        self.add("FETCh:ENERgy:ALL", True, self._all)

    def idn(self) -> str:
        return f"Radiometrix,EM-1,{self.serial},3.1.0"

    def reset(self) -> None:
        self.wavelength_nm = 1064
        self.range_j = 2.0
        self.buffer: list[float] = []
        self.last = OVERRANGE

    def _set_wavelength(self, argument: str | None) -> None:
        value = parse_number(required(argument))
        if not 400 <= value <= 1100:
            raise ScpiError(DATA_OUT_OF_RANGE)
        self.wavelength_nm = round(value)

    def _set_range(self, argument: str | None) -> None:
        value = parse_number(required(argument))
        for full_scale in RANGES_J:
            if abs(value - full_scale) <= full_scale * 1e-6:
                self.range_j = full_scale
                return
        raise ScpiError(ILLEGAL_PARAMETER)

    def _init(self, argument: str | None) -> None:
        no_argument(argument)
        self.buffer.clear()
        self.last = OVERRANGE

    def _last(self, argument: str | None) -> str:
        no_argument(argument)
        return _number(self.last, 4)

    def _all(self, argument: str | None) -> str:
        no_argument(argument)
        return ",".join(_number(v, 4) for v in self.buffer)

    def receive_pulse(self, emitted_mj: float, wavelength_nm: int) -> float:
        """A laser pulse lands on the head; returns what the meter records (J)."""
        energy_j = emitted_mj / 1000.0
        reading = energy_j * (1.0 + self.rng.gauss(0.0, METER_ERROR))
        if abs(self.wavelength_nm - wavelength_nm) > WAVELENGTH_MATCH_NM:
            reading *= 1.0 + WRONG_WAVELENGTH_BIAS
        if reading > self.range_j:
            reading = OVERRANGE
        self.last = reading
        if len(self.buffer) < BUFFER_MAX:
            self.buffer.append(reading)
        return reading


class ReferenceThermometer(ScpiDevice):
    def __init__(self, rng: random.Random, read_true_c: Callable[[], float], serial: str = "RT1-0001") -> None:
        super().__init__()
        self.rng = rng
        self.read_true_c = read_true_c
        self.serial = serial
        self.reset()
        self.add("SENSe:TEMPerature:TC:TYPE", False, self._set_type)
        self.add("SENSe:TEMPerature:TC:TYPE", True, lambda a: (no_argument(a), self.tc_type)[1])
        self.add("MEASure:TEMPerature", True, self._measure)

    def idn(self) -> str:
        return f"Thermoline,RT-1,{self.serial},1.2.4"

    def reset(self) -> None:
        self.tc_type = "T"

    def _set_type(self, argument: str | None) -> None:
        value = required(argument).upper()
        if value not in ("T", "K"):
            raise ScpiError(ILLEGAL_PARAMETER)
        self.tc_type = value

    def _measure(self, argument: str | None) -> str:
        no_argument(argument)
        true_c = self.read_true_c()
        reading = true_c + self.rng.gauss(0.0, THERMOMETER_ERROR_C)
        if self.tc_type != "T":
            reading += WRONG_TYPE_GAIN * (true_c - 25.0)  # K's curve read off a T couple
        return _number(reading, 3)
