"""Serve a SCPI device on TCP (``TCPIP::HOST::PORT::SOCKET``, LF-terminated) and optionally a pty."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from ..transports import PtyTransport
from .parser import ScpiDevice

MAX_LINE = 4096


class ScpiHost:
    def __init__(self, device: ScpiDevice, port: int = 0, pty: bool = False,
                 before: Callable[[], None] | None = None) -> None:
        self.device = device
        self.port = port
        self.pty = pty
        self.before = before or (lambda: None)  # e.g. advance the coupled simulation to now
        self._server: asyncio.Server | None = None
        self._pty: PtyTransport | None = None
        self._pty_buffer = b""
        self.resource: str | None = None
        self.pty_path: str | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self.resource = f"TCPIP::127.0.0.1::{self.port}::SOCKET"
        if self.pty:
            self._pty = PtyTransport(self._pty_bytes)
            self.pty_path = self._pty.open()
        return self.resource

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        if self._pty is not None:
            self._pty.close()

    def answer(self, line: bytes) -> bytes | None:
        self.before()
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError:
            text = "\x00"  # not a header: an undefined-header error, like any garbage
        reply = self.device.handle_line(text)
        return None if reply is None else reply.encode("ascii") + b"\n"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readuntil(b"\n"):
                reply = self.answer(line[:MAX_LINE])
                if reply is not None:
                    writer.write(reply)
                    await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    def _pty_bytes(self, data: bytes) -> None:
        self._pty_buffer += data
        while b"\n" in self._pty_buffer:
            line, self._pty_buffer = self._pty_buffer.split(b"\n", 1)
            reply = self.answer(line)
            if reply is not None and self._pty is not None:
                self._pty.write(reply)
        self._pty_buffer = self._pty_buffer[-MAX_LINE:]
