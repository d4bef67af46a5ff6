"""A slow-callback detector for the event loop that carries STOP.

Every callback the loop runs (a task's step, a timer, an I/O handler) is timed; one that runs
longer than the threshold is reported with what it was and where it was caught running. A
callback is measured by its thread's CPU time (``time.thread_time``, exact; getrusage's thread
times advance in 4 ms scheduler ticks and charged a short callback caught by one a whole tick, or
a long one nothing): on a shared 2-core host, wall time also counts the
milliseconds the thread waits for a CPU or for the GIL while another thread holding it is
preempted, which is the host's load, not the callback. Waiting for the disk on the loop is caught
exactly instead: any statement of the store run on a loop's thread is reported as it happens
(``blocking``), however fast, and so is any file the service's code opens there (Python's audit
event ``open``, imports included: a module first imported on the loop is read from disk there).
Waiting for the GIL is the one wait that counts: Python polls it every switch interval, and a
callback that waited 100 ms for another thread of the service holding it (one preempted by the
machine's other programs, say) spent some 5 ms of CPU so. That wait held the loop as surely as work
would have; a report gives the wall time and how often the thread gave its CPU up, which tells the
two apart. asyncio's debug mode (``slow_callback_duration``) times callbacks by wall time and also
slows every call down.

The test suite runs the service's loop under it with a 5 ms threshold (tests/conftest.py for
in-process tests, ``slow_callback_ms`` / ``DEVICECTL_SLOW_CALLBACK_MS`` for ``devicectl serve``
under tests/service_harness.py): any callback over 5 ms fails the test that caused it.
"""

from __future__ import annotations

import asyncio
import gc
import resource
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

Report = Callable[[str, float], None]

#: how long a thread waits for the GIL before the holder must hand it over (its default, 5 ms, would
#: let another thread's Python code hold the devices' loop that long; 0.5 and then 0.2 ms still showed
#: in the reaction under load, as the wait of the service thread woken by an interlock's event while
#: the edge or the store's writer ran): ``devicectl serve`` sets it
SWITCH_INTERVAL_S = 0.00005


_original_run = asyncio.events.Handle._run
_lock = threading.Lock()
_guards: list[Guard] = []


class Guard:
    """Active between ``install`` and ``uninstall``; ``report(what, seconds)`` is called on the loop's thread."""

    def __init__(self, threshold_s: float, report: Report, thread: int | None = None) -> None:
        self.threshold_s = threshold_s
        self.report = report
        self.thread = thread  # only this thread's loops (None: every loop of the process)

    def uninstall(self) -> None:
        with _lock:
            if self in _guards:
                _guards.remove(self)
            if not _guards:
                asyncio.events.Handle._run = _original_run  # type: ignore[method-assign]
                if _on_gc in gc.callbacks:
                    gc.callbacks.remove(_on_gc)


#: the callback each loop thread is running: thread id -> [start, where it was caught running (or None)]
_running: dict[int, list[Any]] = {}
_sampler: threading.Thread | None = None


def _timed_run(self: asyncio.Handle) -> None:
    thread = threading.get_ident()
    start = time.perf_counter()
    cpu0 = time.thread_time()  # CLOCK_THREAD_CPUTIME_ID: exact (getrusage's thread times come in 4 ms scheduler ticks)
    waits0, faults0 = _waits_and_faults()
    state = [start, None, 0.0, 0, False]
    _running[thread] = state
    callback = getattr(self, "_callback", None)  # a handle that ran once may drop it (then says "cancelled")
    try:
        _original_run(self)
    finally:
        _running.pop(thread, None)
        wall = time.perf_counter() - start
        if not state[4] and wall > min((g.threshold_s for g in _guards), default=0.0):  # not ``expected``
            _judge(self, callback, state, thread, wall, time.thread_time() - cpu0, waits0, faults0)


def _judge(handle: asyncio.Handle, callback: Any, state: list[Any], thread: int, wall: float, cpu: float,
           waits0: int, faults0: int) -> None:
    """Report a callback to each guard of its thread whose threshold its own CPU time passed (a wait for
    the disk, caught by ``blocking``, or for a CPU is not counted), with one description for all."""
    due = [g for g in _guards if cpu > g.threshold_s and (g.thread is None or g.thread == thread)]
    if not due:
        return
    where = f"\n      caught running in {state[1]}" if state[1] else ""
    if state[2]:
        where += f"\n      of which {state[2] * 1000:.1f} ms garbage collection (generation {state[3]} at most)"
    waits, faults = _waits_and_faults()
    where += (f"\n      {wall * 1000:.1f} ms wall time; the thread gave its CPU up {waits - waits0} times in it"
              f" (each wait for the GIL or the disk polls again) and took {faults - faults0} page faults")
    what = _describe(handle, callback) + where
    for guard in due:
        _report(guard, what, cpu)


def _waits_and_faults() -> tuple[int, int]:
    """How often this thread gave its CPU up so far, and how many page faults it took. A callback that
    waits for the GIL (another thread holds it) polls it every switch interval, and each poll is CPU
    time of the callback's thread: a wait of 100 ms costs some 5 ms of CPU. Many waits in a slow
    callback say it waited for another thread, not that it computed. A page fault is CPU time too:
    on a virtual machine one can cost tens of microseconds, when the host backs the page first."""
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_nvcsw, usage.ru_minflt + usage.ru_majflt


_gc_started: dict[int, float] = {}


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    """Garbage collection holds the interpreter in C, where the sampler cannot see it: a collection
    during a callback is added to that callback's report."""
    thread = threading.get_ident()
    if phase == "start":
        _gc_started[thread] = time.perf_counter()
        return
    started = _gc_started.pop(thread, None)
    state = _running.get(thread)
    if started is not None and state is not None:
        state[2] += time.perf_counter() - started
        state[3] = max(state[3], info.get("generation", 0))


def expected() -> None:
    """The running callback stalls the loop on purpose and when it is safe to (the idle full
    garbage collection, devicectl/core/heap.py): it is not reported."""
    state = _running.get(threading.get_ident())
    if state is not None:
        state[4] = True


def active() -> bool:
    return bool(_guards)


def blocking(what: str) -> None:
    """Report a blocking call made on an event loop's thread (the store's connections call this for
    every statement run where a loop is running): reported at once, however fast it was."""
    if not _guards or asyncio._get_running_loop() is None:
        return
    thread = threading.get_ident()
    for guard in _guards:
        if guard.thread is None or guard.thread == thread:
            _report(guard, f"blocking call on the event loop: {what}", 0.0)


_reporting = threading.local()


def _report(guard: Guard, what: str, seconds: float) -> None:
    """``guard.report``, during which files it opens (a log) are not themselves reported."""
    _reporting.active = True
    try:
        guard.report(what, seconds)
    finally:
        _reporting.active = False


#: the service's own code: a file opened on a loop's thread with one of these on the stack is reported
_SERVICE_CODE = tuple(str(Path(__file__).resolve().parents[2] / package) + "/" for package in ("devicectl", "drivers"))
_audit_hooked = False


def _on_audit(event: str, args: tuple[Any, ...]) -> None:
    """Python's audit hook: a file opened on a loop's thread by the service's code (not by a test's)."""
    if event != "open" or not _guards or asyncio._get_running_loop() is None or getattr(_reporting, "active", False):
        return
    frame = sys._getframe(1)
    while frame is not None and (not frame.f_code.co_filename.startswith(_SERVICE_CODE)
                                 or frame.f_code.co_filename == __file__):  # every callback runs under _timed_run
        frame = frame.f_back
    if frame is not None:
        blocking(f"open {args[0]} ({Path(frame.f_code.co_filename).name}:{frame.f_lineno} {frame.f_code.co_name})")


def _sample() -> None:
    """Where a slow callback is while it runs (a callback's own frame is gone once it returns)."""
    while _guards:
        time.sleep(0.002)
        threshold = min((g.threshold_s for g in _guards), default=1.0)
        now = time.perf_counter()
        frames = None
        for thread, state in list(_running.items()):
            if state[1] is None and now - state[0] > threshold * 0.6:
                frames = frames or sys._current_frames()
                frame = frames.get(thread)
                if frame is not None:
                    stack = traceback.extract_stack(frame)
                    state[1] = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(stack[-8:-1]))


def _describe(handle: asyncio.Handle, callback: Any = None) -> str:
    callback = callback or getattr(handle, "_callback", None)
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        frame = getattr(coro, "cr_frame", None)
        inner = frame.f_locals.get("awaitable") if frame is not None and frame.f_code.co_name == "_awaited" else None
        if inner is not None and getattr(inner, "cr_frame", None) is not None:  # a hand-over (loops.py): what it runs
            coro, frame = inner, inner.cr_frame
        where = f" at {frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else ""
        scope = getattr(frame.f_locals.get("self"), "scope", None) if frame is not None else None
        if isinstance(scope, dict) and "path" in scope:  # a request's task: which request it was
            where += f" serving {scope.get('method', scope.get('type', ''))} {scope['path']}"
        return f"step of task {owner.get_name()} ({getattr(coro, '__qualname__', coro)}){where}"
    if callback is not None and "cancelled" in repr(handle):
        return f"<Handle {getattr(callback, '__qualname__', callback)!s}>"
    return repr(handle)


def install(threshold_s: float, report: Report, thread: int | None = None) -> Guard:
    global _sampler
    guard = Guard(threshold_s, report, thread)
    with _lock:
        _guards.append(guard)
        asyncio.events.Handle._run = _timed_run  # type: ignore[method-assign]
        if _on_gc not in gc.callbacks:
            gc.callbacks.append(_on_gc)
        global _audit_hooked
        if not _audit_hooked:  # an audit hook cannot be removed: it does nothing while no guard is installed
            sys.addaudithook(_on_audit)
            _audit_hooked = True
        if _sampler is None or not _sampler.is_alive():
            _sampler = threading.Thread(target=_sample, name="loopguard-sampler", daemon=True)
            _sampler.start()
    return guard
