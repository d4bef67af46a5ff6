"""The simulated calibration bench: laser, cryo, energy meter and thermometer on one clock.

The meter receives the true emitted energy of every laser pulse; the thermometer reads the cryo
tip's true temperature (scpi-instruments.md, "The simulated bench").
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .clock import Clock, MonotonicClock
from .cryo.model import CryoModel
from .host import HostAddresses, SimulatorHost
from .laser.model import LaserModel, PulseTruth
from .scpi.host import ScpiHost
from .scpi.instruments import EnergyMeter, ReferenceThermometer
from .units import build_unit


@dataclass
class Bench:
    laser: SimulatorHost
    cryo: SimulatorHost
    meter: ScpiHost
    thermometer: ScpiHost
    clock: Clock = field(default_factory=MonotonicClock)

    @property
    def hosts(self) -> list[SimulatorHost]:
        return [self.laser, self.cryo]

    async def start(self) -> dict[str, str]:
        for host in self.hosts:
            await host.start()
        await self.meter.start()
        await self.thermometer.start()
        return self.addresses()

    async def stop(self) -> None:
        for host in self.hosts:
            await host.stop()
        await self.meter.stop()
        await self.thermometer.stop()

    def addresses(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, host in (("laser", self.laser), ("cryo", self.cryo)):
            a: HostAddresses = host.addresses
            for kind, value in (("port", a.pty), ("tcp", a.tcp), ("backdoor", a.backdoor)):
                if value:
                    out[f"{name}_{kind}"] = value
        out["laser_serial"] = str(self.laser.unit.model.idn_fields()["serial"])
        out["cryo_serial"] = str(self.cryo.unit.model.idn_fields()["serial"])
        out["meter"] = self.meter.resource or ""
        out["thermometer"] = self.thermometer.resource or ""
        if self.meter.pty_path:
            out["meter_pty"] = self.meter.pty_path
        if self.thermometer.pty_path:
            out["thermometer_pty"] = self.thermometer.pty_path
        return out


def build_bench(
    seed: int = 0,
    clock: Clock | None = None,
    tcp: bool = False,
    backdoor: bool = True,
    instrument_ports: tuple[int, int] = (0, 0),
    instrument_pty: bool = False,
    link_dir: str | None = None,
) -> Bench:
    clock = clock or MonotonicClock()
    rng = random.Random(seed ^ 0xBE7C)
    laser_unit, laser_door = build_unit("laser", seed=seed, now=clock.now())
    cryo_unit, cryo_door = build_unit("cryo", seed=seed + 1, now=clock.now())
    links = (f"{link_dir}/laser", f"{link_dir}/cryo") if link_dir else (None, None)
    laser_host = SimulatorHost(laser_unit, laser_door, clock, tcp_port=0 if tcp else None,
                               backdoor_port=0 if backdoor else None, link=links[0])
    cryo_host = SimulatorHost(cryo_unit, cryo_door, clock, tcp_port=0 if tcp else None,
                              backdoor_port=0 if backdoor else None, link=links[1])
    laser_model, cryo_model = laser_unit.model, cryo_unit.model
    assert isinstance(laser_model, LaserModel) and isinstance(cryo_model, CryoModel)
    meter = EnergyMeter(random.Random(rng.random()))

    def land(pulse: PulseTruth) -> None:
        meter.receive_pulse(pulse.emitted_mj, pulse.wl_nm)

    laser_model.pulse_listeners.append(land)

    def tip_now() -> float:
        cryo_unit.advance_to(clock.now())
        return cryo_model.tip_true

    thermometer = ReferenceThermometer(random.Random(rng.random()), tip_now)
    return Bench(
        laser_host,
        cryo_host,
        ScpiHost(meter, instrument_ports[0], instrument_pty, before=lambda: laser_unit.advance_to(clock.now())),
        ScpiHost(thermometer, instrument_ports[1], instrument_pty),
        clock,
    )
