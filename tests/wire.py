"""Test helpers: a host end of a real serial line (pyserial on a pty or socket://) with the
same face as ``simulators.virtual.VirtualUnit``, so one table of ICD rows runs over both."""

from __future__ import annotations

import time
from typing import Any

import serial

from drivers.lineproto import BadFrame, ErrorReply, Event, FrameSplitter, Reply, Request, encode
from simulators.host import SimulatorThread


class SerialLine:
    def __init__(self, url: str, sims: SimulatorThread, host: int = 0) -> None:
        self.port = serial.serial_for_url(url, baudrate=115200, timeout=0.02)
        self.port.reset_input_buffer()
        self.sims, self.host = sims, host
        self.splitter = FrameSplitter()
        self.events: list[Event] = []
        self.replies: list[Reply | ErrorReply] = []
        self.bad_frames: list[BadFrame] = []
        self._seq = 0

    def close(self) -> None:
        self.port.close()

    def pump(self, seconds: float = 0.0) -> None:
        end = time.monotonic() + seconds
        while True:
            data = self.port.read(4096)
            for item in self.splitter.feed(data):
                if isinstance(item, Event):
                    self.events.append(item)
                elif isinstance(item, BadFrame):
                    self.bad_frames.append(item)
                else:
                    self.replies.append(item)  # type: ignore[arg-type]
            if time.monotonic() >= end and (not data or len(data) < 4096):
                return

    def send_raw(self, data: bytes) -> None:
        self.port.write(data)
        self.port.flush()

    def request(self, command: str, *args: Any, seq: int | None = None, timeout: float = 0.25) -> Reply | ErrorReply | None:
        if seq is None:
            self._seq = (self._seq + 1) & 0xFF
            seq = self._seq
        before = len(self.replies)
        self.send_raw(encode(Request(seq, command, tuple(str(a) for a in args))))
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.pump()
            for reply in self.replies[before:]:
                if reply.seq == seq:
                    return reply
        return None

    def ok(self, command: str, *args: Any) -> dict[str, str]:
        reply = self.request(command, *args)
        assert isinstance(reply, Reply), f"{command} {args}: expected OK, got {reply}"
        return reply.fields_dict()

    def refused(self, command: str, *args: Any) -> tuple[str, str]:
        reply = self.request(command, *args)
        assert isinstance(reply, ErrorReply), f"{command} {args}: expected ER, got {reply}"
        return reply.code, reply.word

    def run(self, seconds: float, heartbeat: bool = True, step: float = 0.25) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.pump(min(step, max(0.0, end - time.monotonic())))
            if heartbeat:
                self.request("HB")

    def events_named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.name == name]

    def state(self) -> dict[str, str]:
        return self.ok("STATE?")

    def do(self, op: str, **args: Any) -> Any:
        result = self.sims.call(op, self.host, **args)
        self.pump(0.02)
        return result
