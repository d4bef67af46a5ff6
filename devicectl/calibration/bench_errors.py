"""Errors a technician can act on: which instrument or device, at which address, the likely
cause and the next step — instead of "[Errno 111] Connection refused" or a pydantic dump.

Used by the calibration procedures (devicectl/calibration/procedures.py), the standalone calibrate command
and the service's calibration runs. ``open_instrument`` also checks that the instrument at the
address is the one the procedure needs (``*IDN?`` model, and the serial when configured).
"""

from __future__ import annotations

import errno
import socket
from datetime import date
from typing import Any, TypeVar

from pydantic import ValidationError
from pyvisa.errors import VisaIOError

from drivers import DriverError, NotConnected, RequestTimeout
from drivers.scpi import EnergyMeter, InstrumentError, InstrumentTimeout, ReferenceThermometer, ScpiInstrument

#: what each role on the bench is, and the model its *IDN? must name
INSTRUMENTS = {
    "meter": ("energy meter", "EM-1", EnergyMeter),
    "thermometer": ("reference thermometer", "RT-1", ReferenceThermometer),
}
DEVICES = {"laser": ("laser", "QS-1064"), "cryo": ("cryo unit", "CP-2")}
_VI_ERROR_INV_RSRC_NAME = -1073807342
_VI_ERROR_RSRC_NFOUND = -1073807343


class BenchError(Exception):
    """A device or instrument problem, in words: what, where, the likely cause, what to do next."""

    def __init__(self, what: str, address: str, cause: str, next_step: str, detail: str = "") -> None:
        self.what, self.address, self.cause, self.next_step, self.detail = what, address, cause, next_step, detail
        text = f"{what} at {address}: {cause}. Next: {next_step}"
        if detail:
            text += f" (detail: {detail})"
        super().__init__(text)

    def as_dict(self) -> dict[str, str]:
        return {"what": self.what, "address": self.address, "cause": self.cause, "next_step": self.next_step,
                "detail": self.detail, "message": str(self)}


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]


def explain_instrument(exc: BaseException, role: str, resource: str) -> BenchError:
    """An exception from opening or using a bench instrument, explained."""
    if isinstance(exc, BenchError):
        return exc
    what = f"the {INSTRUMENTS[role][0]} ({INSTRUMENTS[role][1]})"
    model = INSTRUMENTS[role][1]
    if isinstance(exc, VisaIOError) and exc.error_code == _VI_ERROR_INV_RSRC_NAME:
        return BenchError(what, resource, "the address is not a VISA resource name",
                          "write it as TCPIP::HOST::5025::SOCKET (network) or ASRL/dev/ttyUSB2::INSTR (serial) in the "
                          "configuration or the command's option", _short(exc))
    if isinstance(exc, VisaIOError) and exc.error_code == _VI_ERROR_RSRC_NFOUND:
        return BenchError(what, resource, "no instrument is found at that address",
                          "check the address, that the instrument is switched on and its cable plugged in", _short(exc))
    if isinstance(exc, ConnectionRefusedError) or (isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED):
        return BenchError(what, resource, "not reachable: nothing accepts connections on that host and port",
                          f"switch the {INSTRUMENTS[role][0]} on, check its network cable and that its SCPI socket "
                          "(port 5025) is enabled, and that the host and port are right", _short(exc))
    if isinstance(exc, (socket.gaierror, TimeoutError)) or "could not connect" in str(exc) or \
            isinstance(exc, OSError):
        return BenchError(what, resource, "not reachable (the host is unknown, the port or cable missing)",
                          "check the address and that the instrument is on the bench network or plugged in",
                          _short(exc))
    if isinstance(exc, InstrumentTimeout):
        return BenchError(what, resource, f"no answer to {exc.command}",
                          f"check that the instrument at this address is an {model} and is not busy; power-cycle it",
                          _short(exc))
    if isinstance(exc, InstrumentError) and exc.code in (-113, -100, -102, -110):
        return BenchError(what, resource, f"wrong instrument at that address: it does not know {exc.command!r} "
                          f"({exc.code} {exc.message})",
                          f"connect the {model} there, or give the address of the {model}", _short(exc))
    if isinstance(exc, InstrumentError) and exc.message.startswith("overrange"):
        return BenchError(what, resource, "a pulse exceeded the meter's range",
                          "check the meter head sits in the beam and its range; repeat the calibration", _short(exc))
    if isinstance(exc, InstrumentError):
        return BenchError(what, resource, f"the instrument refused {exc.command!r} ({exc.code} {exc.message})",
                          "check its settings on the front panel, reset it (*RST) and repeat", _short(exc))
    return BenchError(what, resource, "an unexpected problem with the instrument",
                      "check the instrument and its connection, then repeat", _short(exc))


def device_named(kind: str) -> str:
    """How an error names a unit: "the cryo unit (CP-2)"."""
    name, model = DEVICES[kind]
    return f"the {name} ({model})"


def explain_device(exc: BaseException, kind: str, port: str) -> BenchError:
    """An exception from a unit's driver during a procedure, explained."""
    if isinstance(exc, BenchError):
        return exc
    (name, model), what = DEVICES[kind], device_named(kind)
    if isinstance(exc, ValidationError):
        other = next((k for k in DEVICES if k != kind), kind)
        return BenchError(what, port, f"wrong device type on that port: the unit there does not identify itself as a "
                          f"{model} (perhaps the {DEVICES[other][0]})",
                          f"connect the {name} to this port, or give the {name}'s port (the other unit's procedure is "
                          f"`devicectl calibrate {other}`)", f"{exc.error_count()} fields of its IDN? did not fit")
    if isinstance(exc, RequestTimeout):
        return BenchError(what, port, f"the unit does not answer ({exc})",
                          "if the service runs, it holds this port: calibrate through it (--service URL, or the "
                          "technician screen); otherwise check the unit is on and its cable plugged in", _short(exc))
    if isinstance(exc, NotConnected):
        return BenchError(what, port, "the port cannot be opened (missing, unplugged, or held by another program)",
                          "check the cable and the port's name (prefer /dev/serial/by-id/...); if the service runs, "
                          "calibrate through it (--service URL)", _short(exc))
    if isinstance(exc, DriverError):
        return BenchError(what, port, f"the unit refused a step of the procedure ({exc})",
                          "read its fault (technician screen), check its inputs (key, interlock, emergency stop, "
                          "probe, cryogen) and repeat", _short(exc))
    if isinstance(exc, (TimeoutError, RuntimeError)):
        return BenchError(what, port, str(exc) or "the unit did not do what the procedure asked",
                          "check its inputs (key, interlock, emergency stop, footswitch, probe, cryogen) and its "
                          "fault (technician screen), then repeat", _short(exc))
    return BenchError(what, port, "an unexpected problem", "check the unit and repeat", _short(exc))


I = TypeVar("I", bound=ScpiInstrument)


def open_instrument(role: str, resource: str, expected_serial: str | None = None, timeout_ms: int = 1000,
                    calibration_due: date | str | None = None, today: date | None = None) -> Any:
    """Open the bench instrument in ``role`` (blocking) and check it is the one needed and, when its
    own calibration due date is known, that it is not overdue (a certificate from an overdue reference
    is not traceable)."""
    _, model, cls = INSTRUMENTS[role]
    instrument = cls(resource, timeout_ms=timeout_ms)
    try:
        instrument.open()
        idn = instrument.idn()
    except Exception as exc:
        instrument.close()
        raise explain_instrument(exc, role, resource) from exc
    what = f"the {INSTRUMENTS[role][0]} ({model})"
    if idn["model"] != model:
        instrument.close()
        found = f"{idn['vendor']} {idn['model']} {idn['serial']}".strip()
        raise BenchError(what, resource, f"wrong instrument at that address: it answers as {found or 'nothing known'}",
                         f"connect the {model} there, or give the address of the {model}")
    if expected_serial and idn["serial"] != expected_serial:
        instrument.close()
        raise BenchError(what, resource, f"another {model} at that address: serial {idn['serial']}, the configuration "
                         f"names {expected_serial}",
                         "use the configured reference instrument (its calibration is the one on record), or update "
                         "the configuration with this instrument's serial and calibration due date")
    due = date.fromisoformat(calibration_due) if isinstance(calibration_due, str) else calibration_due
    if due is not None and due < (today or date.today()):
        instrument.close()
        raise BenchError(what, resource, f"its own calibration was due on {due.isoformat()}: what it measures now is "
                         "not traceable", "have the instrument calibrated, then enter its new due date (the service's "
                         f"[instruments.{role}] calibration_due, or --reference-due on a bench without a service)")
    return instrument
