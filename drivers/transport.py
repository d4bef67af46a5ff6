"""The byte line to a unit: pyserial (via pyserial-asyncio-fast) on any pyserial URL.

A device path, a pty or ``socket://HOST:PORT`` all open the same way. The transport knows bytes
and ports only; ``SerialLine.write`` on a line that is not open fails loudly (``NotConnected``)
instead of dropping bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import Callable

import serial
import serial_asyncio_fast

from .errors import NotConnected

BAUDRATE = 115200


class _PosixPort(serial.Serial):
    """A device path or pty, read with one ``os.read`` when the event loop says it is readable.

    pyserial's ``read`` polls the port with ``select`` before reading, even with the timeout of 0
    that the asyncio transport sets; the loop has just seen the port readable, so that poll only
    adds a system call to every reply. It is still made when a read finds nothing, because only
    the poll tells "nothing yet" (say, after ``reset_input_buffer``) from a device that is gone;
    pyserial then raises ``SerialException`` and the transport closes, as before."""

    def read(self, size: int = 1) -> bytes:
        fd = self.fd
        if self.timeout != 0 or not self.is_open or fd is None:
            return super().read(size)  # blocking reads keep pyserial's own behaviour
        try:
            data = os.read(fd, size)
        except BlockingIOError:
            return b""
        except OSError as exc:
            raise serial.SerialException(f"read failed: {exc}") from exc
        return data or super().read(size)


class _Protocol(asyncio.Protocol):
    def __init__(self, on_bytes: Callable[[bytes], None], on_lost: Callable[[str], None]) -> None:
        self._on_bytes = on_bytes
        self._on_lost = on_lost

    def data_received(self, data: bytes) -> None:
        self._on_bytes(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_lost(f"port closed: {exc}" if exc else "port closed")


class SerialLine:
    """One open serial line; ``on_bytes`` gets everything the unit sends, ``on_lost`` the end."""

    def __init__(self, url: str, on_bytes: Callable[[bytes], None], on_lost: Callable[[str], None]) -> None:
        self.url = url
        self._on_bytes = on_bytes
        self._on_lost = on_lost
        self._transport: asyncio.Transport | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        protocol = _Protocol(self._on_bytes, self._lost)
        try:
            if "://" in self.url or os.name != "posix":
                transport, _ = await serial_asyncio_fast.create_serial_connection(
                    loop, lambda: protocol, self.url, baudrate=BAUDRATE
                )
            else:
                device = await loop.run_in_executor(None, functools.partial(_PosixPort, self.url, baudrate=BAUDRATE))
                transport, _ = await serial_asyncio_fast.connection_for_serial(loop, lambda: protocol, device)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise NotConnected(f"cannot open {self.url}: {exc}") from exc
        port = getattr(transport, "serial", None)
        if port is not None and not self.url.startswith("socket://"):
            with contextlib.suppress(Exception):
                port.reset_input_buffer()  # bytes from before we opened are not ours
        self._transport = transport

    def _lost(self, reason: str) -> None:
        if self._transport is not None:
            self._transport = None
            self._on_lost(reason)

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def write(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            raise NotConnected(f"{self.url} is not open: have you called connect()?")
        self._transport.write(data)

    def close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
