"""Byte transports for simulated devices: a pseudo-terminal and a single-client TCP port.

Each gives the host side of the line a real device file or socket so that pyserial opens it like
a unit (``/dev/pts/N`` or ``socket://127.0.0.1:PORT``). Both call ``on_bytes`` with what the host
sent and take ``write(bytes)`` for what the unit sends; bytes with nobody listening are lost, as
on a serial line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import Callable

OnBytes = Callable[[bytes], None]


class PtyTransport:
    """The unit's end of a pty; ``port`` is the slave path a host opens."""

    def __init__(self, on_bytes: OnBytes, link: str | None = None) -> None:
        self._on_bytes = on_bytes
        self._link = link
        self._master: int | None = None
        self._slave: int | None = None
        self.port: str | None = None

    def open(self) -> str:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.port = os.ttyname(slave)
        if self._link:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._link)
            os.symlink(self.port, self._link)
        asyncio.get_running_loop().add_reader(master, self._readable)
        return self._link or self.port

    def _readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO: no process holds the slave open right now
            return
        if data:
            self._on_bytes(data)

    def write(self, data: bytes) -> None:
        if self._master is None:
            return
        try:
            os.write(self._master, data)
        except (BlockingIOError, OSError):
            pass  # nobody reads the port: the bytes are lost, as on a serial line

    def close(self) -> None:
        """Unplug: the port vanishes."""
        if self._master is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._master)
            for fd in (self._master, self._slave):
                with contextlib.suppress(OSError):
                    os.close(fd)  # type: ignore[arg-type]
            self._master = self._slave = None
        if self._link:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._link)


class TcpTransport:
    """One host at a time on a TCP port, like the one cable of a serial line."""

    def __init__(self, on_bytes: OnBytes, port: int = 0, host: str = "127.0.0.1") -> None:
        self._on_bytes = on_bytes
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.port: int | None = None

    async def open(self) -> str:
        self._server = await asyncio.start_server(self._client, self._host, self._port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._port = self.port  # a replug comes back on the same port
        return f"socket://{self._host}:{self.port}"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._writer is not None and not self._writer.is_closing():
            writer.close()  # the line is taken
            return
        self._writer = writer
        try:
            while data := await reader.read(4096):
                self._on_bytes(data)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if self._writer is writer:
                self._writer = None
            writer.close()

    def write(self, data: bytes) -> None:
        writer = self._writer
        if writer is not None and not writer.is_closing():
            writer.write(data)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
