"""Cryo freeze timing: the unit's freeze duration error, and the host's backup STOP delay.

1. Freeze duration error: freezes of several lengths on a simulated unit on a real pty, through
   the driver; the unit reports each freeze's duration (FREEZE phase=end dur).
2. Host backup STOP: the unit's own freeze timer is made to fail (backdoor); the safety kernel's
   backup timer must stop the freeze at its time + 0.5 s. Measured on the unit's clock: from the
   freeze's planned end to the STOP it received.
Run: make bench (or .venv/bin/python bench/cryo_timing.py)
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers import CryoDriver
from drivers.events import FreezePhase, TipTelemetry
from safety import facts as F
from safety.checklist import Calibration, ChecklistAnswers, ChecklistContext
from safety.cryo_kernel import BACKUP_MARGIN_S, CryoKernel
from safety.decisions import AllowFreeze, Stop
from safety.plans import Indication, PlanRequest, plan_treatment
from simulators.host import SimulatorHost, SimulatorThread
from simulators.units import build_unit

GOOD = ChecklistAnswers(identity_confirmed=True, consent_signed=True, no_sun_last_4_weeks=True)
CONTEXT = ChecklistContext(date.today(), Calibration("bench", True, date.today() + timedelta(days=1)))


async def durations(port: str, lengths: list[float]) -> list[tuple[float, float]]:
    out = []
    async with CryoDriver(port) as cryo:
        ends: list[FreezePhase] = []
        cryo.add_listener(lambda e: ends.append(e) if isinstance(e, FreezePhase) and e.phase == "end" else None)
        await cryo.set_thaw_min(5)
        for length in lengths:
            await cryo.limit_freeze(length)
            await cryo.freeze(length)
            while not ends:
                await asyncio.sleep(0.01)
            out.append((length, ends.pop().dur_s or 0.0))
            while (await cryo.state()).state.value != "IDLE":
                await asyncio.sleep(0.1)
    return out


async def backup_stop(sims: SimulatorThread, port: str, seconds: float) -> float:
    """The unit's timer is stuck; the host kernel's backup timer stops the freeze."""
    host = sims.hosts[0]
    kernel = CryoKernel()
    plan = plan_treatment(PlanRequest(Indication.SCAR, 2, False, 1.0, "chest"))
    async with CryoDriver(port) as cryo:
        while (await cryo.state()).state.value != "IDLE":
            await asyncio.sleep(0.1)
        kernel.handle(F.SessionOpened(plan, time.monotonic()))
        stops: list[Stop] = []

        def telemetry(event: object) -> None:  # as the supervisor does: every TEMP is a sign of life
            if isinstance(event, TipTelemetry):
                stops.extend(d for d in kernel.handle(F.TipSeen(event.tip_c, event.valve, time.monotonic()))
                             if isinstance(d, Stop))

        cryo.add_listener(telemetry)
        await cryo.limit_freeze(20)
        decisions = kernel.handle(F.FreezeRequested("practitioner", seconds, GOOD, CONTEXT, time.monotonic()))
        assert any(isinstance(d, AllowFreeze) for d in decisions)
        sims.call("stall_freeze_timer", 0)  # the unit's own timer will not end this freeze
        await cryo.freeze(seconds)
        started_unit = host.unit.now
        kernel.handle(F.FreezeStartSeen(time.monotonic()))
        while True:
            await asyncio.sleep(0.01)
            stops.extend(d for d in kernel.handle(F.ClockTick(time.monotonic())) if isinstance(d, Stop))
            if stops:
                await cryo.stop()
                break
        assert "backup" in stops[0].reason, stops[0]
        stop_unit = host.unit.executed_at["STOP"]
    return stop_unit - (started_unit + seconds)


def main() -> None:
    unit, door = build_unit("cryo", seed=9)
    with SimulatorThread(SimulatorHost(unit, door)) as sims:
        port = sims.hosts[0].addresses.pty
        assert port
        results = asyncio.run(durations(port, [1.0, 2.5, 5.0, 5.0, 10.0]))
        errors_ms = [(dur - length) * 1000 for length, dur in results]
        print("freeze duration error (unit-reported dur - requested):")
        for (length, dur), err in zip(results, errors_ms):
            print(f"  {length:5.1f} s -> {dur:6.2f} s  error {err:+6.1f} ms")
        print(f"  mean {statistics.fmean(errors_ms):+.1f} ms, worst {max(errors_ms, key=abs):+.1f} ms")
        delays = [asyncio.run(backup_stop(sims, port, 2.0)) * 1000 for _ in range(5)]
        print(f"host backup STOP after the freeze's planned end (unit timer stuck; margin {BACKUP_MARGIN_S * 1000:.0f} ms):"
              f" mean {statistics.fmean(delays):.1f} ms, max {max(delays):.1f} ms"
              f" -> beyond the margin: mean {statistics.fmean(delays) - BACKUP_MARGIN_S * 1000:.1f} ms")


if __name__ == "__main__":
    main()
