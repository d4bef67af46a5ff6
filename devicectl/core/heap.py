"""Garbage collection kept off the moments that matter: the loop carrying STOP must not stall.

CPython's cyclic collector holds the interpreter while it walks the heap, on whichever thread
triggers it. Measured on this service: a full collection over what start-up builds (modules,
routes, models: ~150 000 objects) takes 60-70 ms; the young generations mostly well under 1 ms,
but under the reaction benchmark's load a few a minute take 0.6-2.6 ms, on whichever thread
allocates (bench/reaction_load.py lists them among the loop's callbacks over 0.5 ms). So (H26):

- ``settle()`` once start-up is done: collect, then freeze what is left (it lives as long as the
  service) so that no later collection walks it; and full collections are no longer triggered by
  allocation (the young generations still are: they are cheap).
- ``freeze_late_import()`` after a module imported past start-up on purpose (matplotlib, at the
  first calibration certificate: ~50 000 objects, 20-40 ms more for every later full collection):
  what it built is frozen too.
- ``keep(idle)`` then runs the full collection itself, when no device is armed or freezing; if the
  devices are never idle that long it collects anyway after ``LONGEST_WITHOUT_S`` (what is
  unfrozen by then is small, and each unit's own limits and watchdog hold meanwhile), so memory
  stays bounded.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable

from devicectl.core import loopguard

#: allocation never triggers a full collection (``keep`` does them); generations 0 and 1 as CPython's defaults
THRESHOLDS = (700, 10, 1_000_000_000)
EVERY_S = 30.0
LONGEST_WITHOUT_S = 1800.0


def settle() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


def freeze_late_import() -> None:
    """Freeze what a module imported after ``settle`` built (it lives as long as the service), if this
    process settled (the service; elsewhere nothing is frozen). Whatever else is alive at that moment
    is frozen with it: it is freed when unreferenced, only a cycle among it is never collected."""
    if gc.get_freeze_count():
        gc.freeze()


async def keep(idle: Callable[[], bool], every_s: float = EVERY_S, longest_without_s: float = LONGEST_WITHOUT_S,
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
               collect: Callable[[], object] = gc.collect) -> None:
    """Run until cancelled: a full collection every ``every_s`` while ``idle()``, and at least every
    ``longest_without_s``."""
    last = clock()
    while True:
        await sleep(every_s)
        quiet = idle()
        if quiet or clock() - last >= longest_without_s:
            if quiet:
                loopguard.expected()  # nothing emits or freezes: this stall is the one meant to happen
            collect()
            last = clock()
