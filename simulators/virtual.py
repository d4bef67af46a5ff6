"""A simulated unit in virtual time, driven request by request: no ports, no sleeps.

Tests and later layers use it to run a whole treatment in milliseconds. It plays the host's side
of the wire with the shared codec, keeps every event received, and can keep the watchdog fed
while time passes.
"""

from __future__ import annotations

from typing import Any

from drivers.lineproto import BadFrame, ErrorReply, Event, FrameSplitter, Reply, Request, encode

from .clock import VirtualClock
from .units import DeviceKind, build_unit


class VirtualUnit:
    def __init__(self, kind: DeviceKind, seed: int = 0, **options: Any) -> None:
        self.clock = VirtualClock()
        self.unit, self.backdoor = build_unit(kind, seed=seed, **options)
        self._splitter = FrameSplitter()
        self.events: list[Event] = []
        self.replies: list[Reply | ErrorReply] = []
        self.bad_frames: list[BadFrame] = []
        self._seq = 0
        self._collect()

    # ------------------------------------------------------------------ wire
    def send_raw(self, data: bytes) -> None:
        self.unit.advance_to(self.clock.now())
        self.unit.receive(data)
        self._collect()

    def request(self, command: str, *args: str | float, seq: int | None = None) -> Reply | ErrorReply | None:
        """Send one request and return its reply (None if the unit sent none yet)."""
        if seq is None:
            self._seq = (self._seq + 1) & 0xFF
            seq = self._seq
        before = len(self.replies)
        self.send_raw(encode(Request(seq, command, tuple(str(a) for a in args))))
        for reply in self.replies[before:]:
            if reply.seq == seq:
                return reply
        return None

    def ok(self, command: str, *args: str | float) -> dict[str, str]:
        """A request that must succeed; its reply fields."""
        reply = self.request(command, *args)
        if isinstance(reply, Reply):
            return reply.fields_dict()
        raise AssertionError(f"{command} {args}: expected OK, got {reply}")

    def refused(self, command: str, *args: str | float) -> tuple[str, str]:
        """A request that must be refused; its (code, word)."""
        reply = self.request(command, *args)
        if isinstance(reply, ErrorReply):
            return reply.code, reply.word
        raise AssertionError(f"{command} {args}: expected ER, got {reply}")

    def _collect(self) -> None:
        for item in self._splitter.feed(self.unit.take_output()):
            if isinstance(item, Event):
                self.events.append(item)
            elif isinstance(item, (Reply, ErrorReply)):
                self.replies.append(item)
            elif isinstance(item, BadFrame):
                self.bad_frames.append(item)

    # ------------------------------------------------------------------ time
    def run(self, seconds: float, heartbeat: bool = True, step: float = 0.25) -> None:
        """Let ``seconds`` pass, sending HB every ``step`` s when ``heartbeat`` (the host alive)."""
        end = self.clock.now() + seconds
        while self.clock.now() < end:
            self.clock.advance(min(step, end - self.clock.now()))
            self.unit.advance_to(self.clock.now())
            self._collect()
            if heartbeat:
                self.request("HB")

    def run_until(self, predicate: Any, timeout: float, heartbeat: bool = True, step: float = 0.05) -> bool:
        end = self.clock.now() + timeout
        while self.clock.now() < end:
            if predicate():
                return True
            self.run(step, heartbeat=heartbeat, step=step)
        return bool(predicate())

    # ------------------------------------------------------------------ reading
    def events_named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.name == name]

    def state(self) -> dict[str, str]:
        return self.ok("STATE?")

    def do(self, op: str, **args: Any) -> Any:
        """A backdoor operation at the current virtual time."""
        self.unit.advance_to(self.clock.now())
        result = self.backdoor.call(op, args)
        self._collect()
        return result
