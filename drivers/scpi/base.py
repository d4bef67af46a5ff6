"""What both instruments share: opening over VISA, checked writes, queries that explain timeouts.

A SCPI instrument answers nothing to a bad command and nothing to a failed query, so every setting
is followed by ``SYST:ERR?`` and every timeout is followed by ``SYST:ERR?``: the caller gets the
instrument's own error code and text instead of a bare timeout.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Self, TypeVar

import pyvisa
from pyvisa.errors import VisaIOError
from pyvisa.resources import MessageBasedResource

_ERROR = re.compile(r'\s*([+-]?\d+)\s*,\s*"(.*)"\s*\Z')
MAX_DRAIN = 20


class InstrumentError(Exception):
    """The instrument reported an error (code and text from its queue)."""

    def __init__(self, code: int, message: str, command: str) -> None:
        super().__init__(f"{command}: {code},\"{message}\"")
        self.code = code
        self.message = message
        self.command = command


class InstrumentTimeout(InstrumentError):
    """No answer, and the instrument's error queue does not say why."""

    def __init__(self, command: str) -> None:
        super().__init__(0, "no answer and no error queued", command)


class ScpiInstrument:
    """A SCPI instrument on a VISA resource (``TCPIP::HOST::PORT::SOCKET`` or ``ASRL...``)."""

    def __init__(self, resource: str, *, timeout_ms: int = 1000, manager: pyvisa.ResourceManager | None = None) -> None:
        self.resource_name = resource
        self.timeout_ms = timeout_ms
        self._manager = manager
        self._own_manager = manager is None
        self._inst: MessageBasedResource | None = None
        self._lock = threading.Lock()

    def open(self) -> ScpiInstrument:
        if self._manager is None:
            self._manager = pyvisa.ResourceManager("@py")
        inst = self._manager.open_resource(self.resource_name)
        if not isinstance(inst, MessageBasedResource):  # SCPI needs lines: a socket or a serial port
            inst.close()
            raise TypeError(f"{self.resource_name} is not a message-based VISA resource")
        inst.read_termination = "\n"
        inst.write_termination = "\n"
        inst.timeout = self.timeout_ms
        self._inst = inst
        self.clear_errors()
        return self

    def close(self) -> None:
        if self._inst is not None:
            self._inst.close()
            self._inst = None
        if self._own_manager and self._manager is not None:
            self._manager.close()
            self._manager = None

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def inst(self) -> MessageBasedResource:
        if self._inst is None:
            raise RuntimeError(f"{self.resource_name} is not open: have you called open()?")
        return self._inst

    # ------------------------------------------------------------------ exchange
    def next_error(self) -> tuple[int, str]:
        answer = self.inst.query("SYST:ERR?")
        match = _ERROR.match(answer)
        if not match:
            raise InstrumentError(-1, f"unreadable error queue answer {answer!r}", "SYST:ERR?")
        return int(match.group(1)), match.group(2)

    def clear_errors(self) -> list[tuple[int, str]]:
        """Read the queue empty (what an earlier session left there)."""
        drained = []
        with self._lock:
            for _ in range(MAX_DRAIN):
                code, message = self.next_error()
                if code == 0:
                    break
                drained.append((code, message))
        return drained

    def write(self, command: str) -> None:
        """A setting, then SYST:ERR?: a refused setting raises InstrumentError."""
        with self._lock:
            self.inst.write(command)
            code, message = self.next_error()
        if code != 0:
            raise InstrumentError(code, message, command)

    def query(self, command: str) -> str:
        """A query; on timeout SYST:ERR? says why (or InstrumentTimeout)."""
        with self._lock:
            try:
                return self.inst.query(command).strip()
            except VisaIOError as exc:
                if exc.error_code != pyvisa.constants.StatusCode.error_timeout:
                    raise
                code, message = self.next_error()
        if code != 0:
            raise InstrumentError(code, message, command)
        raise InstrumentTimeout(command)

    def idn(self) -> dict[str, str]:
        vendor, model, serial, firmware = (self.query("*IDN?").split(",") + ["", "", "", ""])[:4]
        return {"vendor": vendor, "model": model, "serial": serial, "firmware": firmware}

    def reset(self) -> None:
        self.write("*RST")

    def operation_complete(self) -> bool:
        return self.query("*OPC?") == "1"


T = TypeVar("T", bound=ScpiInstrument)


class AsyncInstrument(Generic[T]):
    """The service's view: each blocking VISA call runs in a worker thread (``asyncio.to_thread``)."""

    def __init__(self, instrument: T) -> None:
        self.instrument = instrument

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.instrument, name)
        if callable(method):
            async def call(*args: Any, **kwargs: Any) -> Any:
                return await asyncio.to_thread(method, *args, **kwargs)

            return call
        raise AttributeError(name)  # the protocol of __getattr__: not a method to call
