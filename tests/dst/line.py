"""An in-memory serial line between a host driver and a simulated unit, in the loop's time.

``UnitPort`` plays the part of simulators/host.py for one ``LineUnit``: bytes from the host are
fed in when they arrive, the unit is advanced to each of its own deadlines by a loop timer, and
whatever it sends goes back to the host. Each direction has its own fixed latency (0-50 ms per
line, line-protocol.md), so lines arrive whole and in order. The cable can be pulled (the host
sees the port vanish, the unit keeps running) and put back. Every line that crosses is kept in a
bounded wire log and folded into a running digest, so two runs can be compared bit for bit.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Callable
from typing import Any

from drivers.errors import NotConnected
from simulators.backdoor import Backdoor
from simulators.engine import LineUnit

WIRE_LOG_LINES = 4000
MAX_LATENCY_S = 0.050

WireEntry = tuple[float, str, str, bytes]  # (t, unit name, ">" host to unit or "<" unit to host, line)


class WireLog:
    """The last lines that crossed any line of the world, and a digest of every one since t = 0."""

    def __init__(self, maxlen: int = WIRE_LOG_LINES) -> None:
        self.lines: deque[WireEntry] = deque(maxlen=maxlen)
        self._digest = hashlib.sha256()
        self.count = 0
        self.frozen = False

    def add(self, t: float, unit: str, direction: str, line: bytes) -> None:
        if self.frozen:
            return
        self.lines.append((t, unit, direction, line))
        self._digest.update(b"%.6f %s %s " % (t, unit.encode(), direction.encode()) + line)
        self.count += 1

    def digest(self) -> str:
        return self._digest.hexdigest()

    def tail(self, n: int = 50) -> str:
        entries = list(self.lines)[-n:]
        return "\n".join(f"{t:10.3f} {unit:5} {d} {line.decode('ascii', 'replace').rstrip()}" for t, unit, d, line in entries)


class HostSide:
    """What the driver holds (``drivers.linedriver.Line``): open, write, close."""

    def __init__(self, port: UnitPort, on_bytes: Callable[[bytes], None], on_lost: Callable[[str], None]) -> None:
        self.port = port
        self.on_bytes = on_bytes
        self.on_lost = on_lost
        self.open_ = False

    async def open(self) -> None:
        if not self.port.plugged:
            raise NotConnected(f"{self.port.name}: no such port (unplugged)")
        self.open_ = True
        self.port.attach(self)

    def write(self, data: bytes) -> None:
        if self.open_:
            self.port.from_host(data)

    def close(self) -> None:
        if self.open_:
            self.open_ = False
            self.port.detach(self)


class UnitPort:
    """One simulated unit on one in-memory line; ``factory`` is the driver's ``line_factory``."""

    def __init__(self, name: str, unit: LineUnit, backdoor: Backdoor, latency_to_unit_s: float,
                 latency_to_host_s: float, wire: WireLog) -> None:
        self.name = name
        self.unit = unit
        self.backdoor = backdoor
        self.latency_to_unit_s = latency_to_unit_s
        self._in_flight_to_unit: deque[tuple[bytes, int]] = deque()
        self._in_flight_to_host: deque[tuple[bytes, int]] = deque()
        self.latency_to_host_s = latency_to_host_s
        self.wire = wire
        self.plugged = True
        self.host: HostSide | None = None
        self._generation = 0  # a line delivered after the cable was pulled is lost
        self._to_unit = bytearray()
        self._to_host = bytearray()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: called with (port, line) after each line is written by the host (before it travels)
        self.on_host_write: list[Callable[[UnitPort, bytes], None]] = []
        #: called with (port, direction, line) after each line is delivered
        self.on_delivered: list[Callable[[UnitPort, str, bytes], None]] = []

    # ------------------------------------------------------------------ life
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.unit.advance_to(loop.time())
        self.tick()

    def factory(self, url: str, on_bytes: Callable[[bytes], None], on_lost: Callable[[str], None]) -> HostSide:
        return HostSide(self, on_bytes, on_lost)

    def attach(self, host: HostSide) -> None:
        self.host = host
        self._generation += 1
        self._to_host.clear()

    def detach(self, host: HostSide) -> None:
        if self.host is host:
            self.host = None
            self._generation += 1

    def unplug(self) -> None:
        """The cable is pulled: the port vanishes, lines in flight are lost, the unit runs on."""
        self.plugged = False
        host = self.host
        self.host = None
        self._generation += 1
        if host is not None and host.open_:
            host.open_ = False
            host.on_lost("the device was unplugged")

    def replug(self) -> None:
        self.plugged = True

    # ------------------------------------------------------------------ the unit's time
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    def tick(self) -> None:
        """Advance the unit to now, send what it said, wake again at its next deadline."""
        loop = self.loop
        now = loop.time()
        self.unit.advance_to(now)
        self._flush()
        deadline = self.unit.next_deadline()
        due = max(deadline, now)
        timer = self._timer
        if timer is not None:
            if timer.when() == due:
                return  # already armed for it (most ticks come from lines, not from the unit's clock)
            timer.cancel()
            self._timer = None
        if deadline != float("inf"):
            self._timer = loop.call_at(due, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None  # it fired: the next tick arms a new one
        self.tick()

    def call(self, op: str, **args: Any) -> Any:
        """A backdoor operation at the unit's current time (then the unit runs on)."""
        self.unit.advance_to(self.loop.time())
        self._flush()
        result = self.backdoor.call(op, args)
        self.tick()
        return result

    # ------------------------------------------------------------------ host to unit
    def from_host(self, data: bytes) -> None:
        self._to_unit += data
        while (end := self._to_unit.find(b"\n")) >= 0:
            line = bytes(self._to_unit[: end + 1])
            del self._to_unit[: end + 1]
            for listener in self.on_host_write:
                listener(self, line)
            self._in_flight_to_unit.append((line, self._generation))
            self.loop.call_later(self.latency_to_unit_s, self._deliver_next_to_unit)

    def _deliver_next_to_unit(self) -> None:
        # a serial line is FIFO: the loop does not order timers due at the same instant, so each
        # timer delivers the oldest line in flight, not the one it was armed for
        line, generation = self._in_flight_to_unit.popleft()
        if generation != self._generation or not self.plugged:
            return  # the cable was pulled while the line was on its way
        self.wire.add(self.loop.time(), self.name, ">", line)
        self.unit.advance_to(self.loop.time())
        self.unit.receive(line)
        self.tick()
        for listener in self.on_delivered:
            listener(self, ">", line)

    # ------------------------------------------------------------------ unit to host
    def _flush(self) -> None:
        data = self.unit.take_output()
        if not data:
            return
        if not self.plugged or self.host is None:
            return  # nobody on the other end: the bytes fall on the floor
        self._to_host += data
        while (end := self._to_host.find(b"\n")) >= 0:
            line = bytes(self._to_host[: end + 1])
            del self._to_host[: end + 1]
            self._in_flight_to_host.append((line, self._generation))
            self.loop.call_later(self.latency_to_host_s, self._deliver_next_to_host)

    def _deliver_next_to_host(self) -> None:
        line, generation = self._in_flight_to_host.popleft()  # FIFO, as above
        host = self.host
        if generation != self._generation or host is None or not host.open_:
            return
        self.wire.add(self.loop.time(), self.name, "<", line)
        host.on_bytes(line)
        for listener in self.on_delivered:
            listener(self, "<", line)
