"""SCPI bench instruments over PyVISA (pure-Python backend ``@py``)."""

from .base import AsyncInstrument, InstrumentError, InstrumentTimeout, ScpiInstrument
from .energy_meter import OVERRANGE, EnergyMeter
from .thermometer import ReferenceThermometer

__all__ = [
    "OVERRANGE", "AsyncInstrument", "EnergyMeter", "InstrumentError", "InstrumentTimeout", "ReferenceThermometer",
    "ScpiInstrument",
]
