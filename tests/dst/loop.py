"""An asyncio event loop whose clock is virtual: nothing ever sleeps in real time.

``VirtualTimeLoop`` is a plain ``SelectorEventLoop`` (so every asyncio primitive the service uses
behaves as in production) with two changes: ``time()`` returns a virtual clock, and its selector
never blocks: when no callback is ready, the clock jumps straight to the earliest timer. All I/O of
the simulated world is in memory (tests/dst/line.py), so there is nothing to wait for. One run of
the same coroutine on a new loop executes exactly the same callbacks in the same order.

It is a script-friendly loop of our own rather than looptime's pytest plugin: ``make soak`` runs
thousands of worlds from a plain script, each on a new loop that starts at t = 0.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class Deadlock(RuntimeError):
    """Nothing is ready and no timer is pending: the world would wait forever."""


class _InstantSelector(selectors.BaseSelector):
    """Keeps the loop's registrations (its self-pipe) and returns at once, moving time forward."""

    def __init__(self) -> None:
        self._keys: dict[int, selectors.SelectorKey] = {}
        self.loop: VirtualTimeLoop | None = None

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._keys[fd] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        return self._keys.pop(fd)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        loop = self.loop
        assert loop is not None
        if timeout is None:
            raise Deadlock(f"nothing left to run at t={loop.time():.3f}")
        if timeout > 0:
            scheduled = loop._scheduled  # the heap of TimerHandles; [0] is the earliest
            loop._now = max(loop._now, scheduled[0].when() if scheduled else loop._now + timeout)
        return []

    def get_map(self) -> Mapping[int, selectors.SelectorKey]:
        return self._keys

    def close(self) -> None:
        self._keys.clear()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A loop starting at ``start`` virtual seconds; ``time()`` moves only between callbacks."""

    _scheduled: list[asyncio.TimerHandle]

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        selector = _InstantSelector()
        super().__init__(selector)
        selector.loop = self
        self._clock_resolution = 1e-9

    def time(self) -> float:
        return self._now


def run(coro: Coroutine[Any, Any, T], start: float = 0.0) -> T:
    """Run ``coro`` to completion on a new virtual-time loop and close the loop."""
    loop = VirtualTimeLoop(start)
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)
    finally:
        try:
            _cancel_all(loop)
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
