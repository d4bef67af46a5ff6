"""The supervisor between a real driver (on a pty to a simulator) and the kernel."""

from __future__ import annotations

import asyncio
from typing import Any

from devicectl.config import DeviceConfig
from devicectl.hub import Hub
from devicectl.supervisor import DeviceSupervisor
from safety import facts as F
from safety.decisions import Refuse
from simulators.host import SimulatorHost, SimulatorThread
from simulators.units import build_unit
from tests.safety_scenarios import LASER_PLAN


async def until(predicate: Any, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met")


async def test_a_lost_link_cannot_be_reconfirmed_until_limits_are_programmed_again(tmp_path: Any) -> None:
    host = SimulatorHost(*build_unit("laser"), link=str(tmp_path / "laser"))
    with SimulatorThread(host) as sims:
        supervisor = DeviceSupervisor(DeviceConfig(name="laser", type="laser", port=str(tmp_path / "laser")), Hub(),
                                      lambda kind, data: None)
        supervisor.driver.backoff_s = (0.05, 0.2)
        await supervisor.start()
        try:
            await until(lambda: supervisor.status.connected)
            await supervisor.run_decisions(F.SessionOpened(LASER_PLAN, supervisor.clock()))
            sims.submit(host.unplug())
            await until(lambda: supervisor.kernel.paused is not None)
            await asyncio.sleep(0.3)
            refused = supervisor.handle(F.Reconfirmed("practitioner", supervisor.clock()))
            assert isinstance(refused[0], Refuse) and "programmed again" in refused[0].reason
            sims.submit(host.replug())
            await until(lambda: supervisor.kernel.reprogrammed, timeout=8)
            assert f"LIMIT PULSES {LASER_PLAN.pulse_budget}" in sims.call("executed")
            assert supervisor.handle(F.Reconfirmed("practitioner", supervisor.clock())) == []
            assert supervisor.kernel.paused is None and not supervisor.kernel.armed
        finally:
            await supervisor.close()
