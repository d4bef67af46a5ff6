"""Fire a few pulses in SERVICE mode and compare the laser's monitor with the energy meter.

Directly against the devices (the service must not be using the laser):

    python examples/measure_pulses.py --port /dev/ttyUSB0 --meter TCPIP::10.0.0.20::5025::SOCKET --energy 400
"""

from __future__ import annotations

import argparse
import asyncio

from devicectl.calibration.procedures import leave_laser_safe
from devicectl.client import energy_meter, laser
from drivers.events import Pulse


async def measure(port: str, resource: str, energy_mj: int, pulses: int) -> None:
    async with laser(port) as unit:
        monitor: list[float] = []
        unit.add_listener(lambda e: monitor.append(e.energy_mj) if isinstance(e, Pulse) else None)
        with energy_meter(resource) as meter:
            try:
                await unit.set_service(True)
                await unit.limit_energy(max(energy_mj, 10))
                await unit.reset_count()
                await unit.limit_pulses(pulses)
                await unit.set_energy(energy_mj)
                meter.set_wavelength(1064)
                meter.set_range(meter.range_for(energy_mj * 1.3 / 1000))
                meter.arm()
                await unit.ready()
                while (await unit.state()).state.value != "READY":
                    await asyncio.sleep(0.1)
                fired = await unit.fire(pulses, rate_hz=1.0)
                await asyncio.sleep(0.3)
                measured = [e * 1000 for e in meter.energies_j()]
            finally:
                await leave_laser_safe(unit)
    print(f"fired {fired} pulses at {energy_mj} mJ")
    for n, (mon, met) in enumerate(zip(monitor, measured), 1):
        print(f"  pulse {n}: monitor {mon:7.1f} mJ   meter {met:7.1f} mJ   monitor/meter {mon / met:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", required=True)
    parser.add_argument("--meter", required=True)
    parser.add_argument("--energy", type=int, default=400)
    parser.add_argument("--pulses", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(measure(args.port, args.meter, args.energy, args.pulses))


if __name__ == "__main__":
    main()
