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
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

T = TypeVar("T")
P = ParamSpec("P")

#: how many nice steps the process's other threads run behind the service loop's (Linux: each
#: thread has its own nice value, and raising it needs no privilege)
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
        return await run_on(get_loop(), _awaited(fn(*args, **kwargs)))

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


def put_behind(devices_thread: int | None) -> None:
    """Every thread of this process but ``devices_thread`` (a native thread id) yields the CPU to it:
    when the devices' loop wakes for an event it runs at once, before the edge, the store's writer
    and the workers. Threads started later inherit the nice value of the thread that starts them
    (where thread priorities are not supported, nothing changes)."""
    for thread in _native_threads():
        if thread != devices_thread:
            _behind(thread)


def _behind(thread: int) -> None:
    """One thread (a native id) BEHIND_NICE steps behind (where thread priorities are not supported: as it is)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, thread, BEHIND_NICE)


def _native_threads() -> list[int]:
    """Every thread of this process, with those libraries start on their own (a numerical library's
    workers, started when it is imported): Linux lists them all; elsewhere, the threads Python knows."""
    try:
        return [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        return [t.native_id for t in threading.enumerate() if t.native_id is not None]


def behind_executor() -> concurrent.futures.ThreadPoolExecutor:
    """The service loop's default executor (``asyncio.to_thread``: instruments, certificates, their PDFs
    printed by a browser). Its threads start on first use, from the service loop, so they would run
    at the devices' priority, and so would the processes they start: each puts itself behind as it
    starts (H26)."""
    return concurrent.futures.ThreadPoolExecutor(thread_name_prefix="devicectl-worker", initializer=_behind_self)


def _behind_self() -> None:
    _behind(threading.get_native_id())


def run_realtime(priority: int) -> str | None:
    """The calling thread (the service loop's) at SCHED_FIFO ``priority``; threads it starts later
    do not inherit it (SCHED_RESET_ON_FORK). Returns None when granted, else the system's refusal."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


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
