"""Fan-out of live messages (state, telemetry, pulses, faults) to WebSocket clients and MQTT."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

QUEUE_SIZE = 1000


class Hub:
    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[dict[str, Any]]] = set()
        self._sinks: list[Callable[[dict[str, Any]], None]] = []
        self.dropped = 0

    def publish(self, message: dict[str, Any]) -> None:
        for queue in list(self._queues):
            if queue.full():  # a slow screen loses its oldest messages, never blocks the devices
                queue.get_nowait()
                self.dropped += 1
            queue.put_nowait(message)
        for sink in list(self._sinks):
            sink(message)

    @property
    def listening(self) -> bool:
        """Anyone to tell? (Messages nobody reads are not even built.)"""
        return bool(self._queues or self._sinks)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._queues.discard(queue)

    def add_sink(self, sink: Callable[[dict[str, Any]], None]) -> None:
        self._sinks.append(sink)
