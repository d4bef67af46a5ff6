"""The host side of line-protocol.md for one unit, over asyncio.

One request in flight at a time; a reply that does not come in 250 ms is asked for again with the
same SEQ and bytes (the unit's retransmit cache makes that safe) and then fails with
``RequestTimeout``; every new request gets a new SEQ. Events reach every listener and subscriber
as typed models while requests are in flight; EVSEQ gaps and discarded lines are reported.

Heartbeat: an asyncio task of the owner's own loop sends ``HB`` when the line is otherwise idle,
and only while the owner keeps calling ``owner_alive()`` (when ``owner_lease_s`` is set): a hung
loop or a hung owner lets the unit's watchdog fire, as it must.

STOP preempts: it goes out right after the exchange already on the wire (which is then not
retried), ahead of every queued request; queued requests fail with ``Preempted``. A request sent
under a permit (``guard``) is written only if the guard still holds at the moment of writing.

A unit that stops answering is left alone: after a request goes unanswered the driver sends
nothing at all (no retries, heartbeats, polls or reconnect traffic) until the unit's watchdog has
surely fired (``WDT`` ms after the last byte sent, plus a margin), because every valid request
restarts that watchdog and a runaway unit must be allowed to reach its safe state.

Reconnect: a port that closes, or a unit that stops answering, is reported as ``LinkDown``; the
driver reopens it with backoff and reports ``LinkUp(reconnect=True)``. The expected EVSEQ is kept
across a reconnect, so events lost meanwhile show as an ``EventGap``. It never sends anything on
its own after a reconnect: the owner must treat the unit as reset, program every limit again, and
never re-arm without a person.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, ClassVar, NamedTuple, Protocol, Self

from .errors import (
    DriverError,
    LinkLost,
    NotConnected,
    OwnerNotAlive,
    Preempted,
    RequestTimeout,
    device_error,
)
from .events import (
    COMMON_EVENTS,
    Booted,
    DeviceEvent,
    DriverEvent,
    EventGap,
    LineNoise,
    LinkDown,
    LinkUp,
    parse_event,
)
from .lineproto import BadFrame, ErrorReply, Event, FrameSplitter, Reply, Request, encode, format_value
from .models import FaultStatus, Idn
from .transport import SerialLine

log = logging.getLogger(__name__)

REPLY_TIMEOUT_S = 0.25
RETRIES = 2
WDT_DEFAULT_MS = 1000
#: how much longer than the unit's watchdog the host stays silent toward a unit that went mute
SILENCE_MARGIN_S = 0.5
Guard = Callable[[], bool]
Listener = Callable[[DriverEvent], None]


class Line(Protocol):
    """What the driver needs of a byte line: ``SerialLine`` for ports, an in-memory line in the
    deterministic simulation. Built as ``factory(url, on_bytes, on_lost)``."""

    async def open(self) -> None: ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


LineFactory = Callable[[str, Callable[[bytes], None], Callable[[str], None]], Line]


class EventSubscription:
    """An async stream of every event from the moment of subscription; use as a context manager."""

    def __init__(self, driver: LineDriver) -> None:
        self._driver = driver
        self._queue: asyncio.Queue[DriverEvent] = asyncio.Queue()

    def _put(self, event: DriverEvent) -> None:
        self._queue.put_nowait(event)

    async def get(self, timeout: float | None = None) -> DriverEvent:
        return await asyncio.wait_for(self._queue.get(), timeout)

    def get_nowait(self) -> DriverEvent | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def __aiter__(self) -> AsyncIterator[DriverEvent]:
        return self

    async def __anext__(self) -> DriverEvent:
        return await self._queue.get()

    def close(self) -> None:
        self._driver._subscriptions.discard(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LineDriver:
    """What both unit drivers share: the exchange, the event stream, the link's life."""

    EVENTS: ClassVar[dict[str, type[DeviceEvent]]] = COMMON_EVENTS
    IDN_MODEL: ClassVar[type[Idn]] = Idn

    def __init__(
        self,
        url: str,
        *,
        reply_timeout_s: float = REPLY_TIMEOUT_S,
        retries: int = RETRIES,
        heartbeat_s: float | None = 0.25,
        owner_lease_s: float | None = None,
        reconnect: bool = True,
        backoff_s: tuple[float, float] = (0.1, 2.0),
        silent_after: int = 1,
        line_factory: LineFactory = SerialLine,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.clock = clock  # the loop's time; the deterministic simulation passes its virtual one
        self.reply_timeout_s = reply_timeout_s
        self.retries = retries
        self.heartbeat_s = heartbeat_s
        self.owner_lease_s = owner_lease_s
        self.reconnect = reconnect
        self.backoff_s = backoff_s
        self.silent_after = silent_after
        self._line = line_factory(url, self._on_bytes, self._on_lost)
        self._splitter = FrameSplitter()
        self._busy = False  # a request owns the line
        self._waiters: list[tuple[asyncio.Future[None], bool, str]] = []  # (future, is STOP, command), in turn order
        self._stops_waiting = 0
        self._quiet_until = float("-inf")  # send nothing before this (the unit's watchdog must fire)
        self.watchdog_ms = WDT_DEFAULT_MS  # what the unit was last told (power-on default)
        self.pulses_seen = 0  # PULSE events dispatched over the driver's life (never reset)
        self.pulses_seen_at_reply = 0  # ... when the last reply arrived: counts reconcile against it
        #: the last reply answered a retry: the unit may have re-sent what it cached at first receipt
        self.last_reply_retransmitted = False
        self._seq = 0
        self._pending: _Pending | None = None
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop  # the loop of the open line, set by connect()
        self._expected_evseq: int | None = None
        self._listeners: list[Listener] = []
        self._subscriptions: set[EventSubscription] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._connected = False
        self._timeouts_in_a_row = 0
        self._last_sent = 0.0
        self._owner_seen = self.clock()
        self.stats = {"requests": 0, "retries": 0, "timeouts": 0, "stray_replies": 0, "noise": 0, "gaps": 0, "reconnects": 0}

    # ------------------------------------------------------------------ life cycle
    async def connect(self) -> None:
        """Open the line and start the heartbeat. Raises NotConnected if the port cannot open."""
        self._closing = False
        self._expected_evseq = None  # a new connection: nothing is known of the unit's numbering
        await self._open()
        if self.heartbeat_s:
            self._spawn(self._heartbeat_loop())

    async def close(self) -> None:
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._line.close()
        self._connected = False
        self._fail_pending(NotConnected("driver closed"))
        self._drop_deadline_timer()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._connected

    async def _open(self) -> None:
        self._splitter = FrameSplitter()
        self._loop = asyncio.get_running_loop()
        self._drop_deadline_timer()  # it may be armed on a loop that is gone
        await self._line.open()
        self._connected = True
        self._timeouts_in_a_row = 0

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_lost(self, reason: str) -> None:
        self._link_down(reason)

    def _link_down(self, reason: str) -> None:
        if not self._connected or self._closing:
            return
        self._connected = False
        self._line.close()
        self._fail_pending(LinkLost(reason))
        self._fail_waiters(LinkLost(reason))
        self._dispatch(LinkDown(reason=reason))
        if self.reconnect:
            self._spawn(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        delay, ceiling = self.backoff_s
        while not self._closing:
            await asyncio.sleep(max(delay, self._quiet_until - self.clock()))
            try:
                await self._open()
            except NotConnected:
                delay = min(delay * 2, ceiling)
                continue
            self.stats["reconnects"] += 1
            self._dispatch(LinkUp(reconnect=True))
            return

    # ------------------------------------------------------------------ events
    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` synchronously for every event (the lowest-latency path).

        Returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def subscribe(self) -> EventSubscription:
        subscription = EventSubscription(self)
        self._subscriptions.add(subscription)
        return subscription

    def _dispatch(self, event: DriverEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a listener's bug must not stop the line; it is logged loudly
                log.exception("event listener failed on %r", event)
        for subscription in list(self._subscriptions):
            subscription._put(event)

    # ------------------------------------------------------------------ bytes in
    def _on_bytes(self, data: bytes) -> None:
        for item in self._splitter.feed(data):
            if isinstance(item, (Reply, ErrorReply)):
                pending = self._pending
                if pending is not None and pending.seq == item.seq and not pending.future.done():
                    self.pulses_seen_at_reply = self.pulses_seen
                    pending.future.set_result(item)
                else:
                    self.stats["stray_replies"] += 1
            elif isinstance(item, Event):
                self._on_event(item)
            elif isinstance(item, BadFrame):
                self.stats["noise"] += 1
                self._dispatch(LineNoise(reason=item.reason.value, detail=item.detail))
            else:  # a request from the unit's side makes no sense
                self.stats["noise"] += 1
                self._dispatch(LineNoise(reason="syntax", detail="request frame from the unit"))

    def _on_event(self, event: Event) -> None:
        typed = parse_event(event, self.EVENTS)
        expected = self._expected_evseq
        if isinstance(typed, Booted):
            expected = None  # the unit restarted its numbering
        if expected is not None and event.evseq != expected:
            missing = (event.evseq - expected) & 0xFFFF
            self.stats["gaps"] += 1
            self._dispatch(EventGap(missing=missing, first_missing=expected))
        self._expected_evseq = (event.evseq + 1) & 0xFFFF
        if event.name == "PULSE":
            self.pulses_seen += 1
        self._dispatch(typed)

    # ------------------------------------------------------------------ requests
    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFF
        return self._seq

    async def request(self, command: str, *args: object, timeout_s: float | None = None,
                      guard: Guard | None = None) -> dict[str, str]:
        """Send one request and return its reply fields; ``ER`` raises the mapped DeviceError.

        ``guard`` is asked at the moment of writing, with no await in between: if it no longer
        holds (the permit was revoked) nothing is written and ``Preempted`` is raised."""
        text_args = tuple(map(_arg, args)) if args else ()
        is_stop = command == "STOP"
        await self._acquire(is_stop, command)
        try:
            self._check_can_send(is_stop)
            seq = self._next_seq()
            data = _encode_request(seq, command, text_args)
            self.stats["requests"] += 1
            reply = await self._exchange(seq, data, timeout_s or self.reply_timeout_s, guard, is_stop,
                                         _request_name(command, text_args))
            if reply is None:
                raise RequestTimeout(_request_name(command, text_args), 1 + self.retries)
        finally:
            self._release()
        if isinstance(reply, ErrorReply):
            raise device_error(reply.code, reply.word, _request_name(command, text_args))
        return reply.fields_dict()

    def _check_can_send(self, is_stop: bool) -> None:
        if not self._connected:
            raise NotConnected(f"{self.url} is not connected" + (" (reconnecting)" if self.reconnect and not self._closing else ""))
        now = self.clock()
        if now < self._quiet_until:
            raise NotConnected(f"{self.url}: silent toward the unit for {self._quiet_until - now:.1f} s so its watchdog fires")
        if not is_stop and self.owner_lease_s is not None and now - self._owner_seen > self.owner_lease_s:
            raise OwnerNotAlive(f"{self.url}: the owner is not alive; only STOP may be sent")

    # ------------------------------------------------------------------ whose turn it is
    async def _acquire(self, is_stop: bool, command: str) -> None:
        """Take the line: first come, first served, except that STOP goes before every queued
        request, and those queued requests fail (they were decided before the STOP)."""
        if is_stop:
            self._stops_waiting += 1
            self._fail_waiters(None, keep_stops=True)
        try:
            if not self._busy and not self._waiters:
                self._busy = True
                return
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if is_stop:
                position = sum(1 for _, stop, _ in self._waiters if stop)
                self._waiters.insert(position, (future, True, command))
            else:
                self._waiters.append((future, False, command))
            try:
                await future
            except BaseException:
                self._waiters = [w for w in self._waiters if w[0] is not future]
                if future.done() and not future.cancelled() and future.exception() is None:
                    self._release()  # the turn was handed over as we were cancelled: pass it on
                raise
        finally:
            if is_stop:
                self._stops_waiting -= 1

    def _release(self) -> None:
        while self._waiters:
            future, _, _ = self._waiters.pop(0)
            if not future.done():
                future.set_result(None)  # the line stays busy: it is handed over
                return
        self._busy = False

    def _fail_waiters(self, exc: Exception | None, keep_stops: bool = False) -> None:
        """Fail the queued requests with ``exc`` (None: each with "preempted by STOP")."""
        kept: list[tuple[asyncio.Future[None], bool, str]] = []
        for future, stop, command in self._waiters:
            if stop and keep_stops:
                kept.append((future, stop, command))
            elif not future.done():
                future.set_exception(exc or Preempted(f"{command}: preempted by STOP"))
        self._waiters = kept

    async def _exchange(self, seq: int, data: bytes, timeout_s: float, guard: Guard | None, is_stop: bool,
                        name: str) -> Reply | ErrorReply | None:
        """Send ``data`` until its reply comes; None after every attempt timed out."""
        loop = self._loop
        for attempt in range(1 + self.retries):
            if attempt and self._stops_waiting and not is_stop:
                raise Preempted(f"{name}: not retried, a STOP waits")
            if guard is not None and not guard():
                raise Preempted(f"{name}: the permit was revoked (STOP, lock-out or pause) before it was sent")
            pending = _Pending(seq, loop.create_future(), loop.time() + timeout_s)
            self._pending = pending
            if attempt:
                self.stats["retries"] += 1
            self._line.write(data)  # the same SEQ and bytes on every attempt
            self._last_sent = self.clock()
            self._watch_deadline(loop, pending.deadline)
            try:
                reply = await pending.future
            except TimeoutError:
                continue
            finally:
                self._pending = None
            self._timeouts_in_a_row = 0
            self.last_reply_retransmitted = attempt > 0
            return reply
        self.stats["timeouts"] += 1
        self._timeouts_in_a_row += 1
        if self._timeouts_in_a_row >= self.silent_after:
            self.go_silent(f"unit silent: {self._timeouts_in_a_row} request(s) unanswered")
        return None

    def go_silent(self, reason: str) -> None:
        """Send nothing to the unit until its watchdog has surely fired, then reconnect.

        The unit restarts its watchdog on every valid request, so only silence lets a unit that
        no longer answers (or no longer obeys STOP) reach its own safe state."""
        self._quiet_until = max(self._quiet_until, self._last_sent + self.watchdog_ms / 1000 + SILENCE_MARGIN_S)
        self._link_down(reason)

    @property
    def silent_until(self) -> float:
        """Until when (driver clock) the host sends nothing to the unit."""
        return self._quiet_until

    def _watch_deadline(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """Make sure a timer fires by ``deadline``.

        One timer watches every request: arming and cancelling one per request cost about as much
        as decoding the reply (bench/driver_rtt.py). A timer that fires while a later request still
        has time left re-arms for that request's deadline; one due later is brought forward."""
        timer = self._deadline_timer
        if timer is not None and timer.when() <= deadline:
            return
        if timer is not None:
            timer.cancel()
        self._deadline_timer = loop.call_at(deadline, self._on_deadline_timer, loop)

    def _drop_deadline_timer(self) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None

    def _on_deadline_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._deadline_timer = None
        pending = self._pending
        if pending is None or pending.future.done():
            return  # idle: the next request arms it again
        if loop.time() >= pending.deadline:
            pending.future.set_exception(TimeoutError())
        else:
            self._watch_deadline(loop, pending.deadline)

    def _fail_pending(self, exc: Exception) -> None:
        if self._pending is not None and not self._pending.future.done():
            self._pending.future.set_exception(exc)

    # ------------------------------------------------------------------ heartbeat
    def owner_alive(self) -> None:
        """The owner says it is alive; with ``owner_lease_s`` set, HB is sent only after this."""
        self._owner_seen = self.clock()

    async def _heartbeat_loop(self) -> None:
        assert self.heartbeat_s
        while True:
            await asyncio.sleep(self.heartbeat_s)
            now = self.clock()
            if not self._connected or self._busy or now < self._quiet_until:
                continue
            if self.owner_lease_s is not None and now - self._owner_seen > self.owner_lease_s:
                continue  # the owner is hung: the unit's watchdog must be allowed to fire
            if now - self._last_sent < self.heartbeat_s:
                continue  # other requests keep the watchdog alive
            with contextlib.suppress(DriverError):
                await self.request("HB")

    # ------------------------------------------------------------------ common commands
    async def idn(self) -> Idn:
        return self.IDN_MODEL.model_validate(await self.request("IDN?"))

    async def heartbeat(self) -> None:
        await self.request("HB")

    async def set_watchdog(self, ms: int) -> int:
        self.watchdog_ms = max(self.watchdog_ms, int(ms))  # until the echo, assume the longer one
        self.watchdog_ms = int((await self.request("WDT", int(ms)))["wdt"])
        return self.watchdog_ms

    async def watchdog(self) -> int:
        return int((await self.request("WDT?"))["wdt"])

    async def stop(self) -> str:
        """STOP: the unit's immediate safe state; always accepted. Returns the state."""
        return (await self.request("STOP"))["state"]

    async def fault(self) -> FaultStatus:
        return FaultStatus.model_validate(await self.request("FAULT?"))

    async def clear_fault(self) -> str:
        return (await self.request("FAULT", "CLEAR"))["state"]


class _Pending(NamedTuple):
    """The request in flight: its SEQ, the future its reply resolves, when this attempt times out."""

    seq: int
    future: asyncio.Future[Reply | ErrorReply]
    deadline: float


@functools.lru_cache(maxsize=2048)
def _encode_request(seq: int, command: str, args: tuple[str, ...]) -> bytes:
    """The wire bytes of a request; the same few requests recur with every SEQ, so they are kept."""
    return encode(Request(seq, command, args))


def _request_name(command: str, args: tuple[str, ...]) -> str:
    """How errors name a request: the command and its arguments as sent."""
    return " ".join((command,) + args)


def _arg(value: object) -> str:
    """One request argument as the wire wants it (bools 0/1, decimals without exponent)."""
    return format_value(value)
