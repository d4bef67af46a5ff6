"""Calibration procedures: does the laser emit what it says, does the cryo tip read true?

Laser (SERVICE mode, EM-1 in the beam): fire N pulses at several setpoints, compare the setting,
the laser's own monitor and the meter. Emitted-energy gain = meter / setting; monitor ratio =
monitor / meter; the service later multiplies monitor readings by ``monitor_correction`` =
1 / monitor ratio. Cryo (RT-1 clamped on the tip): freeze at several targets and compare the tip
sensor with the reference: offset = sensor - reference.

Tolerances (documented in docs/calibration.md): emitted gain within +-10 % (half the +-20 %
delivered-energy accuracy the standards ask for, leaving room for drift until the next
calibration); monitor within +-5 % of the meter; tip sensor within +-2.0 degC. The laser is left in
STANDBY with SERVICE off on every exit, Ctrl-C included.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from pyvisa.errors import VisaIOError

from devicectl.calibration.bench_errors import BenchError, device_named, explain_device, explain_instrument
from drivers import CryoDriver, DriverError, LaserDriver
from drivers.events import FreezePhase, Pulse, TipTelemetry
from drivers.scpi import AsyncInstrument, EnergyMeter, InstrumentError, ReferenceThermometer

GAIN_TOLERANCE = 0.10
MONITOR_TOLERANCE = 0.05
TIP_OFFSET_TOLERANCE_C = 2.0
CALIBRATION_TELEMETRY_HZ = 50  # the unit's fastest (cryo.md): the sensor's window mean needs many samples
DEFAULT_TELEMETRY_HZ = 10  # the unit's power-on rate, given back after a calibration
REFERENCE_SPACING_S = 0.03
MIN_REFERENCE_SAMPLES = 10  # fewer, and the reference's window mean is off by the swing of the regulation
WINDOW_END_FRACTION = 0.9  # sampling stops before the unit's own timer ends the freeze
Progress = Callable[[str, float], None]  # (what, fraction done)
PointSink = Callable[[dict[str, Any]], None]  # each measured point as it is taken (the live plot)


@contextlib.asynccontextmanager
async def explained(kind: str, port: str, role: str, resource: str) -> AsyncIterator[None]:
    """Turn a driver's or an instrument's exception into a BenchError naming what, where, why and
    what to do next (cancellation and Ctrl-C pass unchanged)."""
    try:
        yield
    except (DriverError, ValidationError, TimeoutError, RuntimeError) as exc:  # TimeoutError: a state not reached
        raise explain_device(exc, kind, port) from exc
    except (InstrumentError, VisaIOError, OSError) as exc:
        raise explain_instrument(exc, role, resource) from exc


@dataclass
class LaserPoint:
    set_mj: int
    meter_mj: list[float] = field(default_factory=list)
    monitor_mj: list[float] = field(default_factory=list)

    @property
    def gain(self) -> float:
        return statistics.fmean(self.meter_mj) / self.set_mj

    @property
    def monitor_ratio(self) -> float:
        return statistics.fmean(self.monitor_mj) / statistics.fmean(self.meter_mj)


@dataclass
class CryoPoint:
    target_c: int
    sensor_c: list[float] = field(default_factory=list)
    reference_c: list[float] = field(default_factory=list)

    @property
    def offset_c(self) -> float:
        return statistics.fmean(self.sensor_c) - statistics.fmean(self.reference_c)


@dataclass
class Result:
    kind: str
    serial: str
    passed: bool
    reasons: list[str]
    results: dict[str, Any]
    points: list[Any]


def analyse_laser(serial: str, points: list[LaserPoint]) -> Result:
    gain = statistics.fmean(p.gain for p in points)
    monitor = statistics.fmean(p.monitor_ratio for p in points)
    reasons = []
    if abs(gain - 1.0) > GAIN_TOLERANCE:
        reasons.append(f"emitted energy is {gain:.3f} x the setting (tolerance +-{GAIN_TOLERANCE:.0%})")
    if abs(monitor - 1.0) > MONITOR_TOLERANCE:
        reasons.append(f"the laser's monitor reads {monitor:.3f} x the meter (tolerance +-{MONITOR_TOLERANCE:.0%})")
    results = {
        "gain": round(gain, 4), "monitor_ratio": round(monitor, 4), "monitor_correction": round(1.0 / monitor, 4),
        "points": [{"set_mj": p.set_mj, "meter_mean_mj": round(statistics.fmean(p.meter_mj), 2),
                    "monitor_mean_mj": round(statistics.fmean(p.monitor_mj), 2), "n": len(p.meter_mj)} for p in points],
        "tolerances": {"gain": GAIN_TOLERANCE, "monitor": MONITOR_TOLERANCE},
    }
    return Result("laser", serial, not reasons, reasons, results, points)


def analyse_cryo(serial: str, points: list[CryoPoint]) -> Result:
    offset = statistics.fmean(p.offset_c for p in points)
    reasons = []
    if abs(offset) > TIP_OFFSET_TOLERANCE_C:
        reasons.append(f"the tip sensor reads {offset:+.2f} degC off the reference (tolerance +-{TIP_OFFSET_TOLERANCE_C})")
    results = {
        "offset_c": round(offset, 3),
        "points": [{"target_c": p.target_c, "sensor_mean_c": round(statistics.fmean(p.sensor_c), 2),
                    "reference_mean_c": round(statistics.fmean(p.reference_c), 2), "n": len(p.sensor_c)} for p in points],
        "tolerances": {"offset_c": TIP_OFFSET_TOLERANCE_C},
    }
    return Result("cryo", serial, not reasons, reasons, results, points)


def _identified(result: Result, idn: Any) -> Result:
    """The certificate names the unit: vendor, model, serial and firmware from its IDN?."""
    result.results["device"] = {"vendor": idn.vendor, "model": idn.model, "serial": idn.serial, "firmware": idn.fw}
    return result


async def _wait_state(read: Callable[[], Any], wanted: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (await read()).state.value in wanted:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the unit did not reach {' or '.join(sorted(wanted))} within {timeout:.0f} s")


async def leave_laser_safe(laser: LaserDriver) -> None:
    """STANDBY with SERVICE off, whatever happened (used in every ``finally``)."""
    for step in (laser.stop, laser.standby, lambda: laser.set_service(False)):
        with contextlib.suppress(DriverError, asyncio.CancelledError):
            await step()


async def calibrate_laser(laser: LaserDriver, meter: AsyncInstrument[EnergyMeter], setpoints_mj: list[int], pulses: int,
                          rate_hz: float = 5.0, progress: Progress = lambda what, done: None,
                          on_point: PointSink = lambda point: None) -> Result:
    async with explained("laser", laser.url, "meter", meter.instrument.resource_name):
        return await _calibrate_laser(laser, meter, setpoints_mj, pulses, rate_hz, progress, on_point)


async def _calibrate_laser(laser: LaserDriver, meter: AsyncInstrument[EnergyMeter], setpoints_mj: list[int], pulses: int,
                           rate_hz: float, progress: Progress, on_point: PointSink) -> Result:
    idn = await laser.idn()
    monitor: list[Pulse] = []
    current = {"index": 0, "setpoint": setpoints_mj[0] if setpoints_mj else 0}

    def seen(event: Any) -> None:
        if not isinstance(event, Pulse):
            return
        monitor.append(event)
        done = (current["index"] + min(len(monitor), pulses) / pulses) / len(setpoints_mj)
        progress(f"{current['setpoint']} mJ: pulse {len(monitor)} of {pulses}", min(done, 1.0))

    remove = laser.add_listener(seen)
    points: list[LaserPoint] = []
    try:
        await laser.stop()
        await laser.set_service(True)
        await laser.set_wavelength(1064)
        await laser.limit_energy(idn.emax_mj)
        await laser.reset_count()
        await laser.limit_pulses(pulses * len(setpoints_mj))
        await laser.set_rate(rate_hz)
        await meter.configure_energy()
        await meter.set_wavelength(1064)
        await laser.ready()
        await _wait_state(laser.state, {"READY"}, 5.0)
        for index, setpoint in enumerate(setpoints_mj):
            current.update(index=index, setpoint=setpoint)
            progress(f"{setpoint} mJ: firing {pulses} pulses", index / len(setpoints_mj))
            await meter.set_range(EnergyMeter.range_for(setpoint * 1.3 / 1000))
            await meter.arm()
            await laser.set_energy(setpoint)
            monitor.clear()
            fired = await laser.fire(pulses, rate_hz=rate_hz, watchdog_ms=laser.watchdog_ms)
            if fired != pulses:
                raise RuntimeError(f"the laser fired {fired} of {pulses} pulses at {setpoint} mJ")
            await asyncio.sleep(0.2)  # the last PULSE event and the meter's buffer
            energies = await meter.energies_j()
            EnergyMeter.check_overrange(energies)
            point = LaserPoint(setpoint, [e * 1000 for e in energies], [p.energy_mj for p in monitor])
            points.append(point)
            on_point({"set_mj": setpoint, "meter_mj": point.meter_mj, "monitor_mj": point.monitor_mj,
                      "gain": round(point.gain, 4), "monitor_ratio": round(point.monitor_ratio, 4)})
        progress("done", 1.0)
    finally:
        remove()
        await leave_laser_safe(laser)
    return _identified(analyse_laser(idn.serial, points), idn)


async def calibrate_cryo(cryo: CryoDriver, thermometer: AsyncInstrument[ReferenceThermometer], targets_c: list[int],
                         freeze_s: float = 6.0, samples: int = 30, progress: Progress = lambda what, done: None,
                         on_point: PointSink = lambda point: None) -> Result:
    async with explained("cryo", cryo.url, "thermometer", thermometer.instrument.resource_name):
        return await _calibrate_cryo(cryo, thermometer, targets_c, freeze_s, samples, progress, on_point)


async def _calibrate_cryo(cryo: CryoDriver, thermometer: AsyncInstrument[ReferenceThermometer], targets_c: list[int],
                          freeze_s: float, samples: int, progress: Progress, on_point: PointSink) -> Result:
    """The regulated tip swings through the valve's 2 degC hysteresis several times a second, so a
    sensor reading and a reference reading taken "together" are tens of ms and up to a degree apart.
    Each point therefore compares two window means over the same stretch of the freeze: every tip
    sample (telemetry at the unit's fastest rate) against reference readings taken back to back."""
    idn = await cryo.idn()
    tips: list[tuple[float, float]] = []  # (host time received, tip degC)
    ended = asyncio.Event()  # the unit ended the current freeze

    def listen(event: object) -> None:
        if isinstance(event, TipTelemetry):
            tips.append((time.monotonic(), event.tip_c))
        elif isinstance(event, FreezePhase) and event.phase == "end":
            ended.set()

    remove = cryo.add_listener(listen)
    points: list[CryoPoint] = []
    try:
        await cryo.stop()
        await _wait_state(cryo.state, {"IDLE"}, 60.0)
        await thermometer.set_type("T")
        await cryo.set_telemetry(CALIBRATION_TELEMETRY_HZ)
        await cryo.set_thaw_min(5)
        await cryo.limit_freeze(freeze_s)
        for index, target in enumerate(targets_c):
            progress(f"{target} degC: freezing", index / len(targets_c))
            await cryo.set_target(target)
            ended.clear()
            await cryo.freeze(freeze_s)
            window_end = time.monotonic() + freeze_s * WINDOW_END_FRACTION
            await asyncio.sleep(freeze_s * 0.5)  # the tip settles on its target
            point = CryoPoint(target)
            opened = time.monotonic()
            while len(point.reference_c) < samples and time.monotonic() < window_end and not ended.is_set():
                point.reference_c.append(await thermometer.measure_c())
                progress(f"{target} degC: sample {len(point.reference_c)} of {samples}",
                         (index + 0.5 * len(point.reference_c) / samples) / len(targets_c))
                await asyncio.sleep(REFERENCE_SPACING_S)
            closed = time.monotonic()
            if ended.is_set() or len(point.reference_c) < MIN_REFERENCE_SAMPLES:  # no await since ``closed``
                raise BenchError(device_named("cryo"), cryo.url,
                                 f"the freeze at {target} degC ended before the tip was measured "
                                 f"({len(point.reference_c)} reference readings, at least {MIN_REFERENCE_SAMPLES} needed)",
                                 "repeat with a longer freeze (--freeze), or with the bench less busy")
            point.sensor_c = [tip for at, tip in tips if opened <= at <= closed]
            if not point.sensor_c:
                raise RuntimeError(f"the unit sent no tip temperature while it froze at {target} degC")
            points.append(point)
            on_point({"target_c": target, "sensor_c": point.sensor_c, "reference_c": point.reference_c,
                      "offset_c": round(point.offset_c, 3)})
            progress(f"{target} degC: thawing", (index + 0.5) / len(targets_c))
            await _wait_state(cryo.state, {"IDLE"}, 60.0)
        progress("done", 1.0)
    finally:
        remove()
        with contextlib.suppress(DriverError, asyncio.CancelledError):
            await cryo.stop()
            await cryo.limit_freeze(0)
            await cryo.set_telemetry(DEFAULT_TELEMETRY_HZ)
    return _identified(analyse_cryo(idn.serial, points), idn)

