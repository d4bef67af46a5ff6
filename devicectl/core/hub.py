"""Fan-out of live messages (state, telemetry, pulses, faults) to WebSocket clients and MQTT.

Messages are published on the service loop; a listener may live on another loop (the edge loop
of ``devicectl serve``, devicectl/core/loops.py). Listeners on the publisher's thread get each
message at once; those of another loop get what one turn of the publisher's loop published in one
hand-over, after the callbacks already due (a STOP decided with the message goes first), so the
devices' path pays one wake-up per turn, never one per message and listener.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from devicectl.core.loops import PerTurn, running_loop

QUEUE_SIZE = 1000

Message = dict[str, Any]
Sink = Callable[[Message], None]


class Hub:
    def __init__(self) -> None:
        #: each listener (a queue or a sink) -> its loop (None: none) and the thread that loop runs on
        self._listeners: dict[Any, tuple[asyncio.AbstractEventLoop | None, int]] = {}
        self._outbox = PerTurn(self._hand_over)  # for listeners of other threads, until the publisher's turn ends
        self.dropped = 0

    def publish(self, message: Message) -> None:
        here = threading.get_ident()
        elsewhere = False
        for listener, (_, thread) in list(self._listeners.items()):
            if thread == here:
                self._give(listener, message)
            else:
                elsewhere = True
        if elsewhere:
            self._outbox.add(message)

    def _hand_over(self, batch: list[Message]) -> None:
        here = threading.get_ident()
        loops = {loop for loop, thread in self._listeners.values() if thread != here and loop is not None}
        for loop in loops:
            try:
                loop.call_soon_threadsafe(self._deliver, loop, batch)
            except RuntimeError:  # that loop is closed: its listeners are gone with it
                pass

    def _deliver(self, loop: asyncio.AbstractEventLoop, batch: list[Message]) -> None:
        listeners = [listener for listener, (its_loop, _) in list(self._listeners.items()) if its_loop is loop]
        for message in batch:
            for listener in listeners:
                self._give(listener, message)

    def _give(self, listener: Any, message: Message) -> None:
        if isinstance(listener, asyncio.Queue):
            if listener.full():  # a slow screen loses its oldest messages, never blocks the devices
                listener.get_nowait()
                self.dropped += 1
            listener.put_nowait(message)
        else:
            listener(message)

    @property
    def listening(self) -> bool:
        """Anyone to tell? (Messages nobody reads are not even built.)"""
        return bool(self._listeners)

    def subscribe(self) -> asyncio.Queue[Message]:
        """A queue of every message from now on, filled on the caller's loop."""
        queue: asyncio.Queue[Message] = asyncio.Queue(QUEUE_SIZE)
        self._listeners[queue] = (running_loop(), threading.get_ident())
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Message]) -> None:
        self._listeners.pop(queue, None)

    def add_sink(self, sink: Sink) -> None:
        """``sink(message)`` for every message, called on the caller's loop (it never blocks nor raises)."""
        self._listeners[sink] = (running_loop(), threading.get_ident())

