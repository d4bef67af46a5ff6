"""Two event loops: the service loop carries the devices, the edge loop carries the people.

``devicectl serve`` runs the supervisors, kernels, sessions and every decision on the service
loop (the main thread), and the HTTP server, the WebSocket senders and the MQTT client on the
edge loop (a thread of its own). Parsing requests, validating them, serialising answers, framing
WebSocket messages and MQTT packets then never hold the loop an interlock's STOP is decided on
(H26): the edge hands each operation of the service to the service loop and waits for its answer.
Everything of the service is touched on the service loop only, as in a one-loop process; in
tests and tools that run one loop, both are the same and a hand-over is a plain call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import shutil
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

T = TypeVar("T")
P = ParamSpec("P")

#: how many nice steps the processes the service starts run behind it
BEHIND_NICE = 10


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The caller's running loop, or None off any loop."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def run_on(loop: asyncio.AbstractEventLoop | None, work: Coroutine[Any, Any, T]) -> T:
    """Await ``work`` on ``loop`` (here when it is this loop or None); its exceptions are raised here.
    Cancelling the caller cancels the work."""
    if loop is None or loop is running_loop():
        return await work
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, loop))


async def call_on(loop: asyncio.AbstractEventLoop | None, fn: Callable[..., T], *args: Any) -> T:
    """Call ``fn(*args)`` on ``loop``'s thread (here when it is this loop or None) and return its result."""
    if loop is None or loop is running_loop():
        return fn(*args)
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def call() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 (handed to the caller, raised there)
            future.set_exception(exc)

    loop.call_soon_threadsafe(call)
    return await asyncio.wrap_future(future)


def post(loop: asyncio.AbstractEventLoop | None, fn: Callable[..., Any], *args: Any) -> None:
    """``fn(*args)`` on ``loop``'s thread, not awaited: now when it is this loop (or None), else at its
    next turn (what a handler that is ending still owes the service, such as a closed screen)."""
    if loop is None or loop is running_loop():
        fn(*args)
    else:
        loop.call_soon_threadsafe(fn, *args)


def on_loop(get_loop: Callable[[], asyncio.AbstractEventLoop | None],
            fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """``fn`` (a coroutine function) run on the loop ``get_loop()`` names at call time; the signature
    is kept (FastAPI reads an endpoint's parameters from it)."""

    @functools.wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        handed = _awaited(fn(*args, **kwargs))
        handed.__qualname__ = f"_awaited({getattr(fn, '__qualname__', fn)})"  # named in a slow-callback report once it ended
        return await run_on(get_loop(), handed)

    return run


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


class PerTurn:
    """Items added during one turn of the caller's loop, handed to ``deliver(items)`` in one go once the
    callbacks already due in that turn have run (a STOP decided in it goes first); off any loop, at once."""

    def __init__(self, deliver: Callable[[list[Any]], None]) -> None:
        self._deliver = deliver
        self._due: dict[asyncio.AbstractEventLoop, list[Any]] = {}  # each list touched by its loop's thread only

    def add(self, item: Any) -> None:
        loop = running_loop()
        if loop is None:
            self._deliver([item])
            return
        due = self._due.setdefault(loop, [])
        if not due:
            loop.call_soon(self._hand_over, loop)
        due.append(item)

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        items, self._due[loop] = self._due[loop], []
        self._deliver(items)

    def drain(self) -> None:
        """Deliver what turns that never ended left (their loop stopped first)."""
        for loop in list(self._due):
            items, self._due[loop] = self._due[loop], []
            if items:
                self._deliver(items)


def behind(command: list[str]) -> list[str]:
    """``command`` run BEHIND_NICE steps behind the service (``nice``; where there is none, as it is).

    Only processes the service starts (a browser printing a certificate) go behind it. Its own
    threads do not: they take turns with the devices' loop at Python's lock (the GIL), and one that
    waits behind the machine's other programs for a CPU while it holds the lock holds the devices'
    loop as long. Measured with two busy programs on the 2-core machine, the loop of a running
    service waited up to 458 ms so (a calibration through the service; 16 ms at most with its threads
    at its own nice value); ``bench/gil_inversion.py`` shows the same in isolation (H26)."""
    tool = shutil.which("nice")
    return [tool, "-n", str(BEHIND_NICE), *command] if tool else command


def run_realtime(priority: int) -> str | None:
    """The calling thread (the service loop's) at SCHED_FIFO ``priority``; threads it starts later
    do not inherit it (SCHED_RESET_ON_FORK). Returns None when granted, else the system's refusal."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


@dataclass(frozen=True)
class Realtime:
    """What became of ``realtime_priority``: printed for the administrator, audited and shown at
    /api/health (``devicectl serve``, H26)."""

    priority: int
    refused: str | None  #: the system's reason, or None when granted

    @property
    def granted(self) -> bool:
        return self.refused is None

    @property
    def note(self) -> str:
        if self.granted:
            return f"the devices' loop runs at real-time priority {self.priority} (SCHED_FIFO)"
        return (f"realtime_priority {self.priority} was refused ({self.refused}): the devices' loop runs at normal "
                f"priority; allow it with LimitRTPRIO={self.priority} in the service's unit file "
                "(deploy/systemd/devicectl.service)")


def ask_realtime(priority: int | None) -> Realtime | None:
    """With ``realtime_priority`` set: the calling thread (the devices' loop) asks for that real-time
    priority; refused, the service runs at normal priority, as without it."""
    return None if priority is None else Realtime(priority, run_realtime(priority))


class LoopThread:
    """An event loop on a thread of its own (the edge loop of ``devicectl serve``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = threading.Event()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._started.set)
        self.loop.run_forever()
        with contextlib.suppress(Exception):  # what is left (cancelled tasks, async generators) ends here
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    @property
    def native_id(self) -> int | None:
        return self._thread.native_id

    @property
    def ident(self) -> int | None:
        """The thread's identifier (the loop guard watches a loop by its thread)."""
        return self._thread.ident

    def start(self) -> LoopThread:
        self._thread.start()
        self._started.wait()
        return self

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Await ``work`` on this thread's loop."""
        return await run_on(self.loop, work)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop and wait for the thread (tasks still running there are cancelled)."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
