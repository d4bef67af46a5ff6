"""The fail-safe seam under a misbehaving unit, measured in the deterministic simulation.

Runs the real core (supervisors, drivers, kernels, records) in virtual time against the real
simulator models and prints, for each fault: seconds of emission or freezing after the fault,
pulses emitted by the unit against pulses the service counted (seen + reported not seen).
Figures are virtual time, so they are exact and the same on every machine (docs/reliability.md).

    .venv/bin/python bench/seam_faults.py
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.dst.invariants import CHECKS
from tests.dst.regressions import PRACTITIONER, arm, cryo_session, foot, laser_session, until
from tests.dst.world import World

RATE_HZ = 5.0
results: dict[str, str] = {}


def laser_truth(world: World) -> Any:
    return world.ports["laser"].unit.model


def pulses_after(world: World, t0: float) -> tuple[int, float]:
    model = laser_truth(world)
    boot = model.boot_time
    late = [boot + p.t_ms / 1000 for p in model.pulses if boot + p.t_ms / 1000 > t0]
    return len(late), (max(late) - t0 if late else 0.0)


def counted(world: World) -> tuple[int, int]:
    kernel: Any = world.supervisors["laser"].kernel
    unseen = world.pulses_reported_not_seen()
    return kernel.pulses, unseen


async def ignore_stop(world: World) -> None:
    sid = await laser_session(world, budget=34, rate_hz=RATE_HZ)
    await arm(world, sid)
    foot(world, True)
    await asyncio.sleep(1.0)
    world.ports["laser"].call("ignore_stop", on=True)
    t0 = world.now()
    asyncio.ensure_future(world.sessions.stop(PRACTITIONER, "api", "laser"))
    await asyncio.sleep(6.0)
    n, seconds = pulses_after(world, t0)
    locked = world.supervisors["laser"].kernel.locked
    results["laser ignores STOP (5 Hz)"] = (f"emission {seconds:.2f} s after the STOP ({n} pulses), ended by its watchdog "
                                           f"while the host was silent; locked: {bool(locked)}")
    foot(world, False)


async def mute(world: World) -> None:
    sid = await laser_session(world, budget=34, rate_hz=RATE_HZ)
    await arm(world, sid)
    foot(world, True)
    await asyncio.sleep(1.0)
    world.ports["laser"].call("mute", on=True)
    t0 = world.now()
    await asyncio.sleep(6.0)
    n, seconds = pulses_after(world, t0)
    foot(world, False)
    world.ports["laser"].call("mute", on=False)
    await until(world, lambda: world.supervisors["laser"].status.connected, 15.0)
    await asyncio.sleep(1.0)
    seen, unseen = counted(world)
    emitted = len(laser_truth(world).pulses)
    bound = RATE_HZ * (0.75 + 1.0)
    results["laser goes mute while emitting (5 Hz)"] = (
        f"emission {seconds:.2f} s after it went mute ({n} pulses; bound rate x (detection 0.75 s + watchdog 1 s) = "
        f"{bound:.1f}); emitted {emitted}, counted {seen} of which {unseen} reported not seen")


async def cryo_ignores_stop(world: World) -> None:
    await cryo_session(world)
    world.ports["cryo"].call("ignore_stop", on=True)
    world.ports["cryo"].call("stall_freeze_timer")
    sid = world.current["cryo"]
    await world.act("freeze", world.sessions.freeze(PRACTITIONER, sid, 3.0))
    await asyncio.sleep(12.0)
    model: Any = world.ports["cryo"].unit.model
    froze = sum(float(f["dur_s"]) for f in model.freezes)
    recorded = world.store.one("SELECT COALESCE(SUM(dur_s), 0) AS s FROM freezes")["s"]
    results["cryo ignores STOP, its timer stalled (3 s freeze)"] = (
        f"froze {froze:.2f} s in all ({froze - 3.0:.2f} s past its time), recorded {recorded:.2f} s; "
        f"locked: {bool(world.supervisors['cryo'].kernel.locked)}")


async def failed_step(world: World) -> None:
    world.ports["cryo"].call("fail_next", command="THAWMIN", code="E03", word="out-of-range")
    try:
        await cryo_session(world)
        results["failed programming step (THAWMIN refused)"] = "session started (wrong)"
    except Exception as refused:  # noqa: BLE001
        row = world.store.one("SELECT state FROM sessions ORDER BY id DESC LIMIT 1")
        results["failed programming step (THAWMIN refused)"] = f"start refused ({refused}); session {row['state']}"


def main() -> None:
    for scenario in (ignore_stop, mute, cryo_ignores_stop, failed_step):
        World(1, scenario=scenario, faults=frozenset(), checks=frozenset(CHECKS) - {"stop-confirmed"},
              tabs=1, duration_s=0.0).run()
    for name, figure in results.items():
        print(f"{name}: {figure}")


if __name__ == "__main__":
    main()
