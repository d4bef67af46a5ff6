"""Errors a caller of a driver can act on; device refusals carry the unit's code and word."""

from __future__ import annotations


class DriverError(Exception):
    """Base of every driver error."""


class NotConnected(DriverError):
    """The driver has no open line: call ``connect()`` first (or it is reconnecting)."""


class LinkLost(DriverError):
    """The port vanished or went silent while a request was in flight."""


class Preempted(DriverError):
    """The request never went out (or was not retried): a STOP came first, or the permit it was
    sent under was revoked before the moment of writing."""


class OwnerNotAlive(DriverError):
    """The owner's lease ran out (its loop or kernel is hung): nothing but STOP may feed the
    unit's watchdog."""


class RequestTimeout(DriverError):
    """No valid reply after the first try and every retry with the same SEQ and bytes."""

    def __init__(self, command: str, attempts: int) -> None:
        super().__init__(f"{command}: no reply after {attempts} attempts")
        self.command = command
        self.attempts = attempts


class DeviceError(DriverError):
    """The unit refused a request with ``ER CODE WORD``."""

    code = "E??"

    def __init__(self, code: str, word: str, command: str = "") -> None:
        super().__init__(f"{command + ': ' if command else ''}{code} {word}")
        self.code = code
        self.word = word
        self.command = command


class UnknownCommand(DeviceError):
    code = "E02"


class OutOfRange(DeviceError):
    """E03: argument missing, malformed, outside its range or the programmed limit."""

    code = "E03"


class NotAllowedInState(DeviceError):
    code = "E04"


class InterlockOpen(DeviceError):
    """E05: a hardware input forbids it (interlock, key, estop, footswitch, probe, cryogen)."""

    code = "E05"


class FaultActive(DeviceError):
    code = "E06"


class Busy(DeviceError):
    code = "E07"


_BY_CODE: dict[str, type[DeviceError]] = {
    cls.code: cls for cls in (UnknownCommand, OutOfRange, NotAllowedInState, InterlockOpen, FaultActive, Busy)
}


def device_error(code: str, word: str, command: str = "") -> DeviceError:
    """The exception type for an ``ER`` reply; an unknown code is a plain DeviceError."""
    return _BY_CODE.get(code, DeviceError)(code, word, command)
