"""Every instrument and device error of a calibration names the instrument or device, its address,
the likely cause and the next step (real failures against the simulated bench)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from devicectl.calibration.bench_errors import BenchError, explain_instrument, open_instrument
from devicectl.calibration.procedures import calibrate_cryo, calibrate_laser
from drivers import CryoDriver, LaserDriver
from drivers.scpi import AsyncInstrument, EnergyMeter
from tests.service_harness import BenchProcess, free_port


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BenchProcess]:
    bench = BenchProcess(tmp_path_factory.mktemp("bench"))
    try:
        yield bench
    finally:
        bench.stop()


def test_a_refused_connection_names_the_meter_and_what_to_check() -> None:
    address = f"TCPIP::127.0.0.1::{free_port()}::SOCKET"
    with pytest.raises(BenchError) as caught:
        open_instrument("meter", address)
    text = str(caught.value)
    assert "energy meter (EM-1)" in text and address in text and "not reachable" in text
    assert "Next: switch the energy meter on" in text and "Errno 111" not in text.split("(detail")[0]


def test_a_bad_visa_resource_name_says_how_to_write_one() -> None:
    with pytest.raises(BenchError) as caught:
        open_instrument("thermometer", "10.0.0.20:5025")
    error = caught.value
    assert error.what == "the reference thermometer (RT-1)" and error.address == "10.0.0.20:5025"
    assert error.cause == "the address is not a VISA resource name"
    assert "TCPIP::HOST::5025::SOCKET" in error.next_step


def test_the_wrong_instrument_at_an_address_is_named(bench: BenchProcess) -> None:
    with pytest.raises(BenchError) as caught:
        open_instrument("meter", bench.addresses["thermometer"])
    assert "wrong instrument at that address: it answers as Thermoline RT-1" in str(caught.value)
    with pytest.raises(BenchError) as serial:
        open_instrument("meter", bench.addresses["meter"], expected_serial="EM1-9999")
    assert "another EM-1 at that address" in str(serial.value) and "EM1-9999" in str(serial.value)


def test_scpi_error_113_from_the_wrong_instrument_is_explained(bench: BenchProcess) -> None:
    async def main() -> None:
        with EnergyMeter(bench.addresses["thermometer"], timeout_ms=500) as not_a_meter:
            async with LaserDriver(str(bench.link_dir / "laser")) as laser:
                await calibrate_laser(laser, AsyncInstrument(not_a_meter), [200], 2)

    with pytest.raises(BenchError) as caught:
        asyncio.run(main())
    text = str(caught.value)
    assert "energy meter (EM-1)" in text and bench.addresses["thermometer"] in text
    assert "wrong instrument at that address" in text and "-113" in text and "CONF:ENER" in text
    assert bench.laser("truth")["state"] == "STANDBY" and bench.laser("truth")["service"] is False
    assert "wrong instrument" in str(explain_instrument(caught.value, "meter", "x"))  # already explained: kept


def test_the_laser_port_given_to_the_cryo_procedure_is_a_wrong_device_type(bench: BenchProcess) -> None:
    async def main() -> None:
        with contextlib.closing(open_instrument("thermometer", bench.addresses["thermometer"])) as thermometer:
            async with CryoDriver(str(bench.link_dir / "laser")) as cryo:
                await calibrate_cryo(cryo, AsyncInstrument(thermometer), [-30], 2.0)

    with pytest.raises(BenchError) as caught:
        asyncio.run(main())
    text = str(caught.value)
    assert "the cryo unit (CP-2)" in text and str(bench.link_dir / "laser") in text
    assert "wrong device type on that port" in text and "perhaps the laser" in text
    assert "pydantic.dev" not in text and "devicectl calibrate laser" in text


def test_the_standalone_command_prints_the_explanation(bench: BenchProcess, tmp_path: Path) -> None:
    answer = subprocess.run(
        [sys.executable, "-m", "devicectl.cli", "calibrate", "laser", "--port", str(bench.link_dir / "laser"),
         "--meter", f"TCPIP::127.0.0.1::{free_port()}::SOCKET", "--user", "nobody", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, env={**os.environ, "DEVICECTL_PIN": "0000", "COLUMNS": "200"}, timeout=60)
    assert answer.returncode == 2  # nobody logs in: refused before any instrument is touched
    assert "refused" in answer.stdout


def test_the_standalone_command_explains_an_unreachable_meter(bench: BenchProcess, tmp_path: Path) -> None:
    from devicectl.calibration.standalone import run_calibration
    from tests.service_harness import ServiceProcess, set_up_users

    service = ServiceProcess(tmp_path, bench).start()
    try:
        set_up_users(service, bench, calibrate=False)
    finally:
        service.stop()
    meter = f"TCPIP::127.0.0.1::{free_port()}::SOCKET"
    answer = subprocess.run(
        [sys.executable, "-m", "devicectl.cli", "calibrate", "laser", "--port", str(bench.link_dir / "laser"),
         "--meter", meter, "--user", "tech", "--data-dir", str(service.data_dir), "--setpoints", "200", "--pulses", "2"],
        capture_output=True, text=True, env={**os.environ, "DEVICECTL_PIN": "3916", "COLUMNS": "300"}, timeout=60)
    assert answer.returncode == 3, answer.stdout
    out = " ".join(answer.stdout.split())
    assert "energy meter (EM-1)" in out and meter in out and "not reachable" in out and "Next:" in out
    assert run_calibration  # the same path as the command


def test_a_freeze_ended_by_the_unit_before_the_tip_was_measured_records_no_point(bench: BenchProcess) -> None:
    """The window means compare the same stretch of a running freeze: samples of a thawing tip are not
    a calibration point, whatever the procedure had collected so far."""
    pressed: list[asyncio.Task[object]] = []

    def progress(what: str, done: float) -> None:
        if "sample 1 of" in what and not pressed:
            pressed.append(asyncio.ensure_future(asyncio.to_thread(bench.cryo, "set_input", name="estop", value=1)))

    async def main() -> None:
        with contextlib.closing(open_instrument("thermometer", bench.addresses["thermometer"])) as thermometer:
            async with CryoDriver(str(bench.link_dir / "cryo")) as cryo:
                try:
                    await calibrate_cryo(cryo, AsyncInstrument(thermometer), [-30], 4.0, samples=1000, progress=progress)
                finally:
                    await asyncio.gather(*pressed)

    try:
        with pytest.raises(BenchError) as caught:
            asyncio.run(main())
    finally:
        bench.cryo("set_input", name="estop", value=0)
    text = str(caught.value)
    assert "the cryo unit (CP-2)" in text and "the freeze at -30 degC ended before the tip was measured" in text
    assert "longer freeze" in text
    truth = bench.cryo("truth")
    assert truth["state"] != "FREEZING" and truth["valve_open"] is False
    assert truth["freezes"][-1]["cause"] == "estop"
