"""Run simulated units in real time on real ports, with their backdoor on TCP.

``SimulatorHost`` is the edge where a sans-I/O ``LineUnit`` meets a clock and transports: bytes
from a port are fed in at once, the unit is advanced to each of its own deadlines by a loop timer,
and whatever it sends is written to every open transport. ``SimulatorThread`` runs hosts in a
background event loop, for tests that use blocking clients such as pyserial.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Self

from .backdoor import Backdoor, BackdoorError
from .clock import Clock, MonotonicClock
from .engine import LineUnit
from .transports import PtyTransport, TcpTransport

MAX_IDLE_S = 0.05


@dataclass
class HostAddresses:
    pty: str | None = None
    tcp: str | None = None
    backdoor: str | None = None

    def lines(self, name: str) -> list[str]:
        out = []
        if self.pty:
            out.append(f"{name} serial port: {self.pty}")
        if self.tcp:
            out.append(f"{name} tcp port: {self.tcp}")
        if self.backdoor:
            out.append(f"{name} backdoor: {self.backdoor} (JSON lines)")
        return out


@dataclass
class SimulatorHost:
    """One unit served in real time on a pty and/or TCP, with a JSON-lines backdoor."""

    unit: LineUnit
    backdoor: Backdoor
    clock: Clock = field(default_factory=MonotonicClock)
    pty: bool = True
    link: str | None = None
    tcp_port: int | None = None
    backdoor_port: int | None = None

    def __post_init__(self) -> None:
        self.addresses = HostAddresses()
        self._pty: PtyTransport | None = None
        self._tcp: TcpTransport | None = None
        self._backdoor_server: asyncio.Server | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._started = False
        self.unit.advance_to(self.clock.now())

    async def start(self) -> HostAddresses:
        if self.pty:
            self._pty = PtyTransport(self._on_bytes, self.link)
            self.addresses.pty = self._pty.open()
        if self.tcp_port is not None:
            self._tcp = TcpTransport(self._on_bytes, self.tcp_port)
            self.addresses.tcp = await self._tcp.open()
        if self.backdoor_port is not None:
            self._backdoor_server = await asyncio.start_server(self._backdoor_client, "127.0.0.1", self.backdoor_port)
            port = self._backdoor_server.sockets[0].getsockname()[1]
            self.addresses.backdoor = f"127.0.0.1:{port}"
        self._started = True
        self._tick()
        return self.addresses

    async def stop(self) -> None:
        self._started = False
        if self._timer is not None:
            self._timer.cancel()
        if self._pty is not None:
            self._pty.close()
        if self._tcp is not None:
            await self._tcp.close()
        if self._backdoor_server is not None:
            self._backdoor_server.close()
            with contextlib.suppress(Exception):
                await self._backdoor_server.wait_closed()

    # ------------------------------------------------------------------ the one loop
    def _tick(self) -> None:
        """Advance the unit to now, send what it says, sleep until its next deadline."""
        if not self._started:
            return
        self.unit.advance_to(self.clock.now())
        self._flush()
        if self._timer is not None:
            self._timer.cancel()
        delay = min(max(self.unit.next_deadline() - self.clock.now(), 0.0), MAX_IDLE_S)
        self._timer = asyncio.get_running_loop().call_later(delay, self._tick)

    def _on_bytes(self, data: bytes) -> None:
        self.unit.advance_to(self.clock.now())
        self.unit.receive(data)
        self._tick()

    def _flush(self) -> None:
        data = self.unit.take_output()
        if not data:
            return
        for transport in (self._pty, self._tcp):
            if transport is not None:
                transport.write(data)

    # ------------------------------------------------------------------ backdoor
    async def call(self, op: str, args: dict[str, Any] | None = None) -> Any:
        """Run a backdoor operation inside the loop, at the unit's current time."""
        if op in ("unplug", "replug"):
            return await getattr(self, op)()
        self.unit.advance_to(self.clock.now())
        result = self.backdoor.call(op, args)
        self._tick()
        return result

    async def unplug(self) -> None:
        """The cable is pulled: the port vanishes (the unit itself keeps running)."""
        if self._pty is not None:
            self._pty.close()
        if self._tcp is not None:
            await self._tcp.close()

    async def replug(self) -> dict[str, str | None]:
        """The cable is back: the same link path or TCP port (a new pty device behind it)."""
        if self._pty is not None:
            self.addresses.pty = self._pty.open()
        if self._tcp is not None:
            self.addresses.tcp = await self._tcp.open()
        return {"pty": self.addresses.pty, "tcp": self.addresses.tcp}

    async def _backdoor_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(json.dumps(await self._answer(line), default=str).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            message = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return {"id": None, "ok": False, "error": f"not JSON: {exc}"}
        if not isinstance(message, dict) or not isinstance(message.get("op"), str):
            return {"id": None, "ok": False, "error": 'expected {"op": NAME, "args": {...}}'}
        ident = message.get("id")
        try:
            result = await self.call(message["op"], message.get("args") or {})
        except BackdoorError as exc:
            return {"id": ident, "ok": False, "error": str(exc)}
        return {"id": ident, "ok": True, "result": result}


class SimulatorThread:
    """Hosts running in a background thread's event loop; a context manager for tests."""

    def __init__(self, *hosts: SimulatorHost) -> None:
        self.hosts = hosts
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="simulators", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        for host in self.hosts:
            self.submit(host.start())
        return self

    def __exit__(self, *exc: object) -> None:
        for host in self.hosts:
            self.submit(host.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def submit(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def call(self, op: str, host: int = 0, **args: Any) -> Any:
        """Backdoor operation on ``hosts[host]``, from the calling thread."""
        return self.submit(self.hosts[host].call(op, args))
