"""Energy meter EM-1 (pyroelectric head): measures the energy the laser really emitted."""

from __future__ import annotations

from .base import InstrumentError, ScpiInstrument

OVERRANGE = 9.91e37
RANGES_J = (0.02, 0.2, 2.0, 20.0)


class EnergyMeter(ScpiInstrument):
    def configure_energy(self) -> None:
        self.write("CONF:ENER")

    def set_wavelength(self, nm: int) -> None:
        """Wavelength correction, 400-1100 nm; it must match the laser's."""
        self.write(f"SENS:CORR:WAV {int(nm)}")

    def wavelength(self) -> int:
        return int(float(self.query("SENS:CORR:WAV?")))

    def set_range(self, full_scale_j: float) -> None:
        if full_scale_j not in RANGES_J:
            raise ValueError(f"range must be one of {RANGES_J} J")
        self.write(f"SENS:ENER:RANG {full_scale_j:g}")

    def range(self) -> float:
        return float(self.query("SENS:ENER:RANG?"))

    @staticmethod
    def range_for(energy_j: float) -> float:
        """The smallest full scale that holds ``energy_j`` with 25 % headroom."""
        for full_scale in RANGES_J:
            if energy_j * 1.25 <= full_scale:
                return full_scale
        raise ValueError(f"{energy_j} J is beyond the meter's largest range")

    def arm(self) -> None:
        """INIT: clear the pulse buffer."""
        self.write("INIT")

    def last_energy_j(self) -> float:
        """The last pulse in J; OVERRANGE (9.91E37) before any pulse or above the range."""
        return float(self.query("FETC:ENER?"))

    def count(self) -> int:
        return int(self.query("FETC:ENER:COUN?"))

    def energies_j(self) -> list[float]:
        """Every buffered pulse, oldest first (at most 1000)."""
        text = self.query("FETC:ENER:ALL?")
        return [float(v) for v in text.split(",")] if text else []

    @staticmethod
    def check_overrange(values: list[float]) -> None:
        if any(v >= OVERRANGE for v in values):
            raise InstrumentError(0, "overrange: a pulse exceeded the meter's range", "FETC:ENER:ALL?")
