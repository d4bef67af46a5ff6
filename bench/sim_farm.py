"""A farm of N simulated cryo units on ptys, streaming telemetry, with one JSON-lines control port.

Used by bench/reaction.py: ``estop`` presses a unit's emergency stop and notes the time the unsafe
event was written; ``reaction`` returns how long until that unit received STOP (same clock).
Run: python bench/sim_farm.py N TELEM_HZ  (prints one JSON line: the ports and the control port)
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulators.clock import MonotonicClock
from simulators.host import SimulatorHost
from simulators.units import build_unit


async def main(count: int, telem_hz: int) -> None:
    clock = MonotonicClock()
    hosts = []
    for i in range(count):
        unit, door = build_unit("cryo", seed=i, now=clock.now(), serial=f"CP2-{i:04d}")
        unit.model.telem = telem_hz  # type: ignore[attr-defined]
        host = SimulatorHost(unit, door, clock)
        await host.start()
        hosts.append(host)
    pressed_at: dict[int, float] = {}

    async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            request = json.loads(line)
            i = int(request["unit"])
            host = hosts[i]
            answer: dict[str, object] = {"ok": True}
            if request["op"] == "estop":
                host.unit.executed_at.pop("STOP", None)
                await host.call("set_input", {"name": "estop", "value": 1})
                pressed_at[i] = host.unit.now  # the INPUT event is on the wire
            elif request["op"] == "release":
                await host.call("set_input", {"name": "estop", "value": 0})
            elif request["op"] == "reaction":
                stop_at = host.unit.executed_at.get("STOP")
                answer["reaction_s"] = None if stop_at is None else stop_at - pressed_at[i]
            elif request["op"] == "stats":
                answer["events"] = sum(h.unit.stats["events"] for h in hosts)
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()

    server = await asyncio.start_server(control, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"ports": [h.addresses.pty for h in hosts], "control": port}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 50))
