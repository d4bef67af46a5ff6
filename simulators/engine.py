"""Device side of the line protocol for one unit: what both units share (line-protocol.md).

``LineUnit`` is sans-I/O: bytes in through ``receive``, bytes out through ``take_output``, time in
through ``advance_to(now)``. It owns framing (the shared codec), EVSEQ, the watchdog (never off),
the 2 s retransmit cache, COMERR, BOOT and the common commands, and it can be told to misbehave on
the wire like a real cable (silence, garbage, corrupted CRCs, lost events) or like a faulty unit's
firmware (STOP acknowledged but ignored, a unit that listens but no longer speaks, a refused
programming step). A faulty unit stays faulty across power cycles: only the backdoor repairs it.
"""

from __future__ import annotations

import random
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from drivers.lineproto import (
    BadFrame,
    ErrorReply,
    Event,
    FrameSplitter,
    Reply,
    Request,
    encode,
    make_fields,
)

from .unit_model import (
    CommandError,
    Deferred,
    UnitModel,
    bad_argument,
    busy,
    fault_active,
    parse_number,
    unknown_command,
)

RETRANSMIT_WINDOW_S = 2.0
WDT_DEFAULT_MS = 1000
WDT_MIN_MS, WDT_MAX_MS = 100, 5000
_ERROR_CODE = re.compile(r"E[0-9]{2}\Z")
_ERROR_WORD = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*\Z")


@dataclass
class _CachedRequest:
    raw: bytes
    at: float
    reply: bytes | None  # None while a deferred reply is still pending


class LineUnit:
    """One simulated unit on one serial line."""

    def __init__(self, model: UnitModel, *, seed: int = 0, now: float = 0.0) -> None:
        self.model = model
        self.rng = random.Random(seed ^ 0x5EED)
        self._out = bytearray()
        self.powered = True
        # wire trouble, set through the backdoor
        self._silent_out_until = float("-inf")
        self._silent_in_until = float("-inf")
        self._corrupt_replies = 0
        self._drop_events = 0
        # firmware misbehaviour, set through the backdoor; survives power cycles
        self.ignore_stop = False
        self.muted = False
        self._fail_next: list[tuple[str, CommandError]] = []
        self.stats = {"requests": 0, "executed": 0, "retransmits": 0, "comerr": 0, "events": 0}
        #: the last requests executed (not retransmissions), as "COMMAND ARG...", for tests
        self.executed: deque[str] = deque(maxlen=200)
        #: when each command was last received and executed (unit clock), for reaction benchmarks
        self.executed_at: dict[str, float] = {}
        #: the unit's own record of its watchdog: when it last restarted, when it fired (unit clock)
        self.last_valid_request_at: float | None = None
        self.watchdog_fired_at: list[float] = []
        model.bind(self._emit_event)
        self._boot(now)

    # ------------------------------------------------------------------ life cycle
    def _boot(self, now: float) -> None:
        self._now = now
        self._splitter = FrameSplitter()
        self._evseq = 0
        self.wdt_ms = WDT_DEFAULT_MS
        self._wdt_deadline: float | None = now + WDT_DEFAULT_MS / 1000
        self._last: _CachedRequest | None = None
        self._pending: tuple[int, Deferred] | None = None
        self._pending_cache: _CachedRequest | None = None
        self.model.boot_time = now
        self._emit_event("BOOT", {"fw": self.model.FW})
        self.model.power_on(now)

    def power_off(self) -> None:
        """Cut power: the unit goes dark (no bytes in or out) and forgets every host setting."""
        self.model.safe_state("power")
        self.powered = False
        self._out.clear()

    def power_on(self) -> None:
        self.powered = True
        self._boot(self._now)

    def power_cycle(self) -> None:
        self.power_off()
        self.power_on()

    # ------------------------------------------------------------------ time
    def advance_to(self, now: float) -> None:
        """Run the unit up to ``now``: watchdog first where it falls due, then the model."""
        if now < self._now:
            return
        if not self.powered:
            self._now = now
            return
        if self._wdt_deadline is not None and self._wdt_deadline <= now:
            self.model.advance(self._wdt_deadline)
            self._now = self._wdt_deadline
            self._wdt_deadline = None
            self.watchdog_fired_at.append(self._now)
            self._emit_event("WDT", {})
            self.model.safe_state("wdt")
        self.model.advance(now)
        self._now = now
        self._flush_pending()

    def next_deadline(self) -> float:
        """When the unit next acts on its own (for a real-time host's sleep)."""
        if not self.powered:
            return float("inf")
        deadline = self.model.next_deadline()
        if self._wdt_deadline is not None:
            deadline = min(deadline, self._wdt_deadline)
        return deadline

    @property
    def now(self) -> float:
        return self._now

    # ------------------------------------------------------------------ bytes
    def receive(self, data: bytes) -> None:
        """Bytes from the host's side of the line."""
        if not self.powered or self._now < self._silent_in_until:
            return
        for item in self._splitter.feed(data):
            if isinstance(item, BadFrame):
                self.stats["comerr"] += 1
                self._emit_event("COMERR", {"reason": item.reason.value})
            elif isinstance(item, Request):
                self._on_request(item, item_bytes=encode(item))
            else:  # a reply or event sent to the unit is not a request: bad syntax
                self.stats["comerr"] += 1
                self._emit_event("COMERR", {"reason": "syntax"})

    def take_output(self) -> bytes:
        """Bytes for the host's side of the line, since the last call."""
        data = bytes(self._out)
        self._out.clear()
        return data

    def _send(self, data: bytes) -> None:
        if self.powered and not self.muted and self._now >= self._silent_out_until:
            self._out += data

    # ------------------------------------------------------------------ requests
    def _on_request(self, request: Request, item_bytes: bytes) -> None:
        self.stats["requests"] += 1
        self._restart_watchdog()
        last = self._last
        if (
            last is not None
            and last.raw == item_bytes
            and self._now - last.at <= RETRANSMIT_WINDOW_S
        ):
            self.stats["retransmits"] += 1
            last.at = self._now
            if last.reply is not None:
                self._send(last.reply)
            return
        cached = _CachedRequest(item_bytes, self._now, None)
        self._last = cached
        failure = self._take_failure(request)
        if failure is not None:  # refused without being executed (a retransmission gets the same ER)
            self._reply(cached, request.seq, failure)
            return
        self.stats["executed"] += 1
        self.executed.append(" ".join((request.command,) + request.args))
        self.executed_at[request.command] = self._now
        if self._pending is not None and request.command != "STOP":
            self._reply(cached, request.seq, busy())
            return
        try:
            result = self._execute(request)
        except CommandError as refusal:
            self._reply(cached, request.seq, refusal)
            return
        if isinstance(result, Deferred):
            self._pending = (request.seq, result)
            self._pending_cache = cached
            self._flush_pending()
        else:
            self._flush_pending()
            self._reply(cached, request.seq, result)

    def _reply(self, cached: _CachedRequest, seq: int, result: Mapping[str, object] | CommandError) -> None:
        if isinstance(result, CommandError):
            frame = encode(ErrorReply(seq, result.code, result.word))
        else:
            frame = encode(Reply(seq, make_fields(**result)))
        cached.reply = frame
        if self._corrupt_replies > 0:
            self._corrupt_replies -= 1
            frame = self._corrupt_crc(frame)
        self._send(frame)

    def _flush_pending(self) -> None:
        if self._pending is not None and self._pending[1].done:
            seq, deferred = self._pending
            self._pending = None
            assert deferred.fields is not None and self._pending_cache is not None
            self._reply(self._pending_cache, seq, deferred.fields)

    def _restart_watchdog(self) -> None:
        self.last_valid_request_at = self._now
        self._wdt_deadline = self._now + self.wdt_ms / 1000

    def _execute(self, request: Request) -> Mapping[str, object] | Deferred:
        command, args = request.command, request.args
        common = self._common(command, args)
        if common is not None:
            return common
        table = self.model.commands()
        if args and f"{command} {args[0]}" in table:
            return table[f"{command} {args[0]}"](args[1:])
        if command in table:
            return table[command](args)
        if any(key.startswith(command + " ") for key in table):
            raise bad_argument()  # a known command with an unknown sub-word
        raise unknown_command()

    def _common(self, command: str, args: tuple[str, ...]) -> Mapping[str, object] | None:
        """Commands common to both units (line-protocol.md); None when not one of them."""
        model = self.model
        if command == "IDN?" and not args:
            return model.idn_fields()
        if command == "STATE?" and not args:
            return model.state_fields()
        if command == "HB" and not args:
            return {}
        if command == "WDT":
            self.wdt_ms = int(parse_number(args, 0, WDT_MIN_MS, WDT_MAX_MS))
            self._restart_watchdog()
            return {"wdt": self.wdt_ms}
        if command == "WDT?" and not args:
            return {"wdt": self.wdt_ms}
        if command == "STOP" and not args:
            if not self.ignore_stop:
                model.safe_state("cmd")
            return {"state": model.state}
        if command == "FAULT?" and not args:
            code, text = model.faults.first()
            return {"code": code, "text": text}
        if command == "FAULT" and args == ("CLEAR",):
            if model.faults.active:
                if not model.faults.try_clear():
                    raise fault_active()
                model.after_fault_clear()
            return {"state": model.state}
        if command in ("IDN?", "STATE?", "HB", "WDT?", "STOP", "FAULT?", "FAULT"):
            raise bad_argument()
        return None

    # ------------------------------------------------------------------ events
    def _emit_event(self, name: str, fields: Mapping[str, object]) -> None:
        frame = encode(Event(self._evseq, name, make_fields(**fields)))
        self._evseq = (self._evseq + 1) & 0xFFFF
        self.stats["events"] += 1
        if self._drop_events > 0:
            self._drop_events -= 1
            return
        self._send(frame)

    # ------------------------------------------------------------------ wire trouble
    def inject_silence(self, ms: float, direction: str = "out") -> None:
        """The line goes dead for ``ms``: ``out`` loses the unit's bytes (it still acts on
        requests, so retransmission is exercised), ``in`` loses the host's, ``both`` both."""
        if direction not in ("out", "in", "both"):
            raise ValueError("direction must be out, in or both")
        until = self._now + ms / 1000
        if direction in ("out", "both"):
            self._silent_out_until = until
        if direction in ("in", "both"):
            self._silent_in_until = until

    def inject_garbage(self, nbytes: int, terminate: bool = True) -> None:
        """Random bytes on the line towards the host (line noise), ending in CR LF if asked."""
        noise = bytes(self.rng.randrange(256) for _ in range(nbytes))
        self._send(noise + (b"\r\n" if terminate else b""))

    def corrupt_replies(self, count: int) -> None:
        """The next ``count`` replies leave with a wrong CRC."""
        self._corrupt_replies = count

    def drop_events(self, count: int) -> None:
        """The next ``count`` events are lost on the wire (their EVSEQ is used: a gap)."""
        self._drop_events = count

    # ------------------------------------------------------------------ firmware misbehaviour
    def set_ignore_stop(self, on: bool = True) -> None:
        """``STOP`` is answered ``OK state=<current state>`` but not acted on (everything else,
        watchdog and estop included, still works)."""
        self.ignore_stop = bool(on)

    def set_muted(self, on: bool = True) -> None:
        """The unit keeps receiving and executing requests (each valid one restarts the watchdog)
        but sends nothing, replies nor events, until unmuted. Events still use their EVSEQ, so
        the host sees a gap afterwards; a WDT event while muted is lost like any other."""
        self.muted = bool(on)

    def fail_next(self, command: str, code: str = "E02", word: str = "unknown-command") -> None:
        """The next request whose text (``"LIMIT PULSES 20"``) starts with ``command`` is refused
        with ``ER code word`` and not executed; once."""
        if not command or command != command.strip():
            raise ValueError("command must be the non-empty start of a request, e.g. 'LIMIT PULSES'")
        if not _ERROR_CODE.match(code):
            raise ValueError(f"error code {code!r} is not E plus two digits")
        if not _ERROR_WORD.match(word):
            raise ValueError(f"error word {word!r} is not lower-case words joined by '-'")
        self._fail_next.append((command, CommandError(code, word)))

    def _take_failure(self, request: Request) -> CommandError | None:
        if not self._fail_next:
            return None
        text = " ".join((request.command,) + request.args)
        for index, (prefix, failure) in enumerate(self._fail_next):
            if text.startswith(prefix):
                del self._fail_next[index]
                return failure
        return None

    @staticmethod
    def _corrupt_crc(frame: bytes) -> bytes:
        crc = int(frame[-6:-2], 16) ^ 0x0101
        return frame[:-6] + b"%04X\r\n" % crc

