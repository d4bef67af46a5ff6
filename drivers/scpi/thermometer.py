"""Reference thermometer RT-1 (type T thermocouple input): reads the cryo tip's true temperature."""

from __future__ import annotations

from .base import ScpiInstrument


class ReferenceThermometer(ScpiInstrument):
    def set_type(self, tc_type: str) -> None:
        """Thermocouple type T (right for the probe range) or K."""
        self.write(f"SENS:TEMP:TC:TYPE {tc_type}")

    def thermocouple_type(self) -> str:
        return self.query("SENS:TEMP:TC:TYPE?")

    def measure_c(self) -> float:
        return float(self.query("MEAS:TEMP?"))
