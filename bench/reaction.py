"""Interlock reaction: an unsafe event written by a simulator -> the STOP frame received by it.

N cryo units stream 50 Hz telemetry from a farm process; the real service (one supervisor and
safety kernel per unit, records, audit) runs in this process. Each trial presses one unit's
emergency stop; the farm measures, on its own clock, from writing the INPUT event to receiving
STOP. Also: how many units one service process supervises before p99 exceeds 5 ms or an event is
lost. Goals: p99 <= 2 ms with 8 units; >= 64 units.
Run: make bench (or .venv/bin/python bench/reaction.py [trials] [max_units])
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.figures import summary
from devicectl.core.config import DeviceConfig, load_settings
from devicectl.core.service import Service

TRIALS = int(sys.argv[1]) if len(sys.argv) > 1 else 150
MAX_UNITS = int(sys.argv[2]) if len(sys.argv) > 2 else 128
HERE = Path(__file__).resolve().parent


class Farm:
    def __init__(self, count: int) -> None:
        self.proc = subprocess.Popen([sys.executable, str(HERE / "sim_farm.py"), str(count), "50"],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        info = json.loads(self.proc.stdout.readline())
        self.ports: list[str] = info["ports"]
        self.control_port: int = info["control"]

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.control_port)

    async def call(self, op: str, unit: int) -> dict[str, object]:
        self.writer.write(json.dumps({"op": op, "unit": unit}).encode() + b"\n")
        await self.writer.drain()
        return json.loads(await self.reader.readline())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


async def run(count: int) -> dict[str, float]:
    farm = Farm(count)
    data = Path(tempfile.mkdtemp(prefix="devicectl-bench-"))
    settings = load_settings(None, data_dir=data, devices=[
        DeviceConfig(name=f"cryo{i}", type="cryo", port=port) for i, port in enumerate(farm.ports)])
    service = Service(settings)
    await service.start()
    try:
        deadline = time.monotonic() + 30
        while not all(s.status.connected for s in service.supervisors.values()):
            if time.monotonic() > deadline:
                raise RuntimeError("units did not connect")
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)  # let telemetry flow
        await farm.open()
        reactions = []
        missed = 0
        for trial in range(TRIALS):
            unit = trial % count
            await farm.call("estop", unit)
            reaction = None
            for _ in range(100):
                await asyncio.sleep(0.002)
                reaction = (await farm.call("reaction", unit))["reaction_s"]
                if reaction is not None:
                    break
            if reaction is None:
                missed += 1
            else:
                reactions.append(float(reaction))
            await farm.call("release", unit)
            await asyncio.sleep(0.02)
        gaps = sum(s.driver.stats["gaps"] + s.driver.stats["noise"] for s in service.supervisors.values())
        events = int((await farm.call("stats", 0))["events"])
    finally:
        await service.stop()
        farm.close()
    figures = summary(reactions, 1000)
    return {"units": count, "p50_ms": figures["p50"], "p99_ms": figures["p99"], "max_ms": figures["max"],
            "missed": missed, "lost_or_bad_events": gaps, "events": events}


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    print(f"interlock reaction (estop INPUT written -> STOP received), {TRIALS} trials per size, 50 Hz telemetry per unit")
    print(f"{'units':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'missed':>7} {'lost/bad events':>16} {'events sent':>12}")
    results = {}
    for count in (1, 8, 16, 32, 64, 96, 128):
        if count > MAX_UNITS:
            break
        r = asyncio.run(run(count))
        results[count] = r
        print(f"{count:>6} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['max_ms']:>8.2f} {r['missed']:>7} "
              f"{r['lost_or_bad_events']:>16} {r['events']:>12}", flush=True)
    capacity = max((n for n, r in results.items() if r["p99_ms"] <= 5.0 and r["lost_or_bad_events"] == 0 and r["missed"] == 0),
                   default=0)
    eight = results.get(8)
    print(f"goal p99 <= 2 ms with 8 units: {'met' if eight and eight['p99_ms'] <= 2.0 else 'NOT met'}"
          f" ({eight['p99_ms']:.2f} ms)" if eight else "")
    print(f"units supervised with p99 <= 5 ms and no event lost: {capacity} (goal >= 64)")


if __name__ == "__main__":
    main()
