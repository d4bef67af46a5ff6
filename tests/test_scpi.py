"""SCPI instruments: the parser sans-I/O, and EM-1 / RT-1 through PyVISA '@py' on the simulated bench."""

from __future__ import annotations

import asyncio
import random
import statistics
from typing import Iterator

import pytest

from drivers import CryoDriver, LaserDriver
from drivers.scpi import (
    OVERRANGE,
    AsyncInstrument,
    EnergyMeter,
    InstrumentError,
    InstrumentTimeout,
    ReferenceThermometer,
)
from simulators.bench import Bench, build_bench
from simulators.host import SimulatorThread
from simulators.scpi.instruments import EnergyMeter as EnergyMeterSim
from simulators.scpi.instruments import ReferenceThermometer as ThermometerSim

# ----------------------------------------------------------------------------- parser, no I/O


def meter_sim() -> EnergyMeterSim:
    return EnergyMeterSim(random.Random(1))


def errors(device: EnergyMeterSim) -> list[str]:
    out = []
    while (answer := device.handle_line("SYST:ERR?")) != '0,"No error"':
        out.append(answer)
    return out


@pytest.mark.parametrize("header", ["SENS:CORR:WAV?", "sense:correction:wavelength?", "Sens:Corr:Wavelength?", ":SENS:CORR:WAV?"])
def test_headers_are_case_insensitive_short_or_long(header: str) -> None:
    assert meter_sim().handle_line(header) == "1064"


def test_units_separated_by_semicolons() -> None:
    device = meter_sim()
    assert device.handle_line("SENS:CORR:WAV 532;SENS:CORR:WAV?;*OPC?") == "532;1"


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("FOO:BAR?", '-113,"Undefined header"'),
        ("SENS:CORR:WAVE?", '-113,"Undefined header"'),
        ("SENS:CORR:WAV 1200", '-222,"Data out of range"'),
        ("SENS:CORR:WAV 300", '-222,"Data out of range"'),
        ("SENS:ENER:RANG 5", '-224,"Illegal parameter value"'),
        ("SENS:CORR:WAV", '-109,"Missing parameter"'),
        ("SENS:CORR:WAV abc", '-120,"Numeric data error"'),
        ("INIT 3", '-108,"Parameter not allowed"'),
    ],
)
def test_bad_commands_answer_nothing_and_queue_an_error(line: str, error: str) -> None:
    device = meter_sim()
    assert device.handle_line(line) is None
    assert errors(device) == [error]


def test_error_queue_order_overflow_and_cls() -> None:
    device = meter_sim()
    for _ in range(12):
        device.handle_line("NOPE")
    queued = errors(device)
    assert len(queued) == 10 and queued[-1] == '-350,"Queue overflow"' and queued[0] == '-113,"Undefined header"'
    device.handle_line("NOPE")
    device.handle_line("*CLS")
    assert errors(device) == []


def test_rst_restores_settings_but_not_the_error_queue() -> None:
    device = meter_sim()
    device.handle_line("SENS:CORR:WAV 532;SENS:ENER:RANG 0.2;NOPE")
    device.handle_line("*RST")
    assert device.handle_line("SENS:CORR:WAV?;SENS:ENER:RANG?") == "1064;2.00E+00"
    assert errors(device) == ['-113,"Undefined header"']


def test_numbers_in_any_form() -> None:
    device = meter_sim()
    device.handle_line("SENS:ENER:RANG 2E-1")
    assert device.handle_line("SENS:ENER:RANG?") == "2.00E-01"
    device.handle_line("SENS:ENER:RANG 0.020")
    assert device.handle_line("SENS:ENER:RANG?") == "2.00E-02"


def test_meter_error_overrange_and_wrong_wavelength() -> None:
    device = EnergyMeterSim(random.Random(7))
    assert device.handle_line("FETC:ENER?") == "9.9100E+37"
    readings = [device.receive_pulse(450.0, 1064) for _ in range(400)]
    assert statistics.mean(readings) == pytest.approx(0.450, rel=0.003)
    assert statistics.stdev(readings) / 0.45 == pytest.approx(0.01, rel=0.15)
    device.handle_line("INIT;SENS:CORR:WAV 532")
    biased = [device.receive_pulse(450.0, 1064) for _ in range(400)]
    assert statistics.mean(biased) == pytest.approx(0.450 * 1.03, rel=0.003)
    device.handle_line("INIT;SENS:ENER:RANG 0.2")
    assert device.receive_pulse(450.0, 1064) == OVERRANGE
    assert device.handle_line("FETC:ENER?") == "9.9100E+37"
    assert device.handle_line("FETC:ENER:COUN?") == "1"


def test_meter_buffer_holds_at_most_1000() -> None:
    device = meter_sim()
    for _ in range(1005):
        device.receive_pulse(100.0, 1064)
    assert device.handle_line("FETC:ENER:COUN?") == "1000"
    assert len(device.handle_line("FETC:ENER:ALL?").split(",")) == 1000  # type: ignore[union-attr]


def test_thermometer_error_and_wrong_type() -> None:
    device = ThermometerSim(random.Random(3), lambda: -50.0)
    readings = [float(device.handle_line("MEAS:TEMP?")) for _ in range(300)]  # type: ignore[arg-type]
    assert statistics.mean(readings) == pytest.approx(-50.0, abs=0.05)
    assert statistics.stdev(readings) == pytest.approx(0.2, rel=0.2)
    device.handle_line("SENS:TEMP:TC:TYPE K")
    wrong = [float(device.handle_line("MEAS:TEMP?")) for _ in range(100)]  # type: ignore[arg-type]
    assert abs(statistics.mean(wrong) + 50.0) > 2.0
    device.handle_line("SENS:TEMP:TC:TYPE J")
    assert device.handle_line("SYST:ERR?") == '-224,"Illegal parameter value"'


# ----------------------------------------------------------------------------- through PyVISA, on the bench


@pytest.fixture(scope="module")
def bench() -> Iterator[tuple[Bench, SimulatorThread]]:
    bench = build_bench(seed=5, instrument_pty=True)
    with SimulatorThread(bench.laser, bench.cryo) as sims:
        sims.submit(bench.meter.start())
        sims.submit(bench.thermometer.start())
        yield bench, sims
        sims.submit(bench.meter.stop())
        sims.submit(bench.thermometer.stop())


@pytest.fixture
def meter(bench: tuple[Bench, SimulatorThread]) -> Iterator[EnergyMeter]:
    with EnergyMeter(bench[0].meter.resource, timeout_ms=300) as instrument:  # type: ignore[arg-type]
        instrument.reset()
        yield instrument  # type: ignore[misc]


@pytest.fixture
def thermometer(bench: tuple[Bench, SimulatorThread]) -> Iterator[ReferenceThermometer]:
    with ReferenceThermometer(bench[0].thermometer.resource, timeout_ms=300) as instrument:  # type: ignore[arg-type]
        instrument.reset()
        yield instrument  # type: ignore[misc]


def test_every_meter_command_over_visa(meter: EnergyMeter) -> None:
    assert meter.idn()["model"] == "EM-1"
    assert meter.operation_complete()
    meter.configure_energy()
    meter.set_wavelength(532)
    assert meter.wavelength() == 532
    meter.set_range(0.2)
    assert meter.range() == 0.2
    meter.arm()
    assert meter.count() == 0 and meter.energies_j() == []
    assert meter.last_energy_j() == OVERRANGE


def test_refused_setting_raises_with_the_instruments_error(meter: EnergyMeter) -> None:
    with pytest.raises(InstrumentError) as info:
        meter.set_wavelength(1500)
    assert (info.value.code, info.value.message) == (-222, "Data out of range")
    with pytest.raises(ValueError):
        meter.set_range(5.0)
    assert meter.clear_errors() == []


def test_bad_query_times_out_and_the_error_queue_says_why(meter: EnergyMeter) -> None:
    with pytest.raises(InstrumentError) as info:
        meter.query("FETC:POWER?")
    assert info.value.code == -113 and not isinstance(info.value, InstrumentTimeout)


def test_every_thermometer_command_over_visa(thermometer: ReferenceThermometer) -> None:
    assert thermometer.idn()["model"] == "RT-1"
    assert thermometer.thermocouple_type() == "T"
    thermometer.set_type("K")
    assert thermometer.thermocouple_type() == "K"
    with pytest.raises(InstrumentError) as info:
        thermometer.set_type("X")
    assert info.value.code == -224
    thermometer.set_type("T")
    assert -10.0 < thermometer.measure_c() < 40.0


def test_async_facade(thermometer: ReferenceThermometer) -> None:
    async def read() -> float:
        return await AsyncInstrument(thermometer).measure_c()

    assert -10.0 < asyncio.run(read()) < 40.0


def test_serial_resource_on_a_pty(bench: tuple[Bench, SimulatorThread]) -> None:
    with EnergyMeter(f"ASRL{bench[0].meter.pty_path}::INSTR", timeout_ms=500) as instrument:
        assert instrument.idn()["model"] == "EM-1"


async def test_bench_meter_records_every_service_mode_pulse(bench: tuple[Bench, SimulatorThread], meter: EnergyMeter) -> None:
    bench_, sims = bench
    meter.set_wavelength(1064)
    meter.set_range(2.0)
    meter.arm()
    driver = LaserDriver(bench_.laser.addresses.pty)  # type: ignore[arg-type]
    await driver.connect()
    try:
        await driver.limit_energy(600)
        await driver.set_energy(500)
        await driver.limit_pulses(12)
        await driver.set_rate(10.0)
        await driver.set_service(True)
        await driver.ready()
        await asyncio.sleep(1.6)
        assert await driver.fire(12, rate_hz=10.0) == 12
    finally:
        await driver.stop()
        await driver.close()
    energies = meter.energies_j()
    assert meter.count() == 12 and len(energies) == 12
    truth = sims.call("truth", 0)["pulses"][-12:]
    for measured, pulse in zip(energies, truth):
        assert measured == pytest.approx(pulse["emitted_mj"] / 1000.0, rel=0.04)  # 4 x the meter's 1 %


async def test_bench_thermometer_follows_a_freeze(bench: tuple[Bench, SimulatorThread], thermometer: ReferenceThermometer) -> None:
    bench_, sims = bench
    driver = CryoDriver(bench_.cryo.addresses.pty)  # type: ignore[arg-type]
    await driver.connect()
    try:
        before = await asyncio.to_thread(thermometer.measure_c)
        await driver.limit_freeze(6)
        await driver.freeze(5)
        await asyncio.sleep(4.0)
        cold = await asyncio.to_thread(thermometer.measure_c)
        truth = sims.call("truth", 1)["tip_true_c"]
    finally:
        await driver.stop()
        await driver.close()
    assert before > 0.0
    assert cold < -40.0
    assert cold == pytest.approx(truth, abs=1.5)  # the tip moves between the two reads


def test_cli_sim_bench_prints_every_address() -> None:
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "devicectl.cli", "sim", "bench"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        lines = dict(proc.stdout.readline().strip().split(": ", 1) for _ in range(8))
        assert set(lines) == {"laser_port", "laser_backdoor", "cryo_port", "cryo_backdoor", "laser_serial", "cryo_serial",
                              "meter", "thermometer"}
        with EnergyMeter(lines["meter"], timeout_ms=500) as meter_:
            assert meter_.idn()["model"] == "EM-1"
        with ReferenceThermometer(lines["thermometer"], timeout_ms=500) as thermometer_:
            assert thermometer_.idn()["model"] == "RT-1"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
