"""Every ICD command row, in virtual time and over a real pty opened with pyserial."""

from __future__ import annotations

from typing import Iterator

import pytest

from simulators.host import SimulatorHost, SimulatorThread
from simulators.units import build_unit
from simulators.virtual import VirtualUnit
from tests.icd_rows import COMMON_ROWS, CRYO_ROWS, LASER_ROWS, Row, run_row
from tests.wire import SerialLine

ROWS = [("laser", r) for r in COMMON_ROWS + LASER_ROWS] + [("cryo", r) for r in COMMON_ROWS + CRYO_ROWS]
IDS = [f"{kind}-{row.id}" for kind, row in ROWS]


@pytest.mark.parametrize(("kind", "row"), ROWS, ids=IDS)
def test_row_in_virtual_time(kind: str, row: Row) -> None:
    run_row(VirtualUnit(kind), row)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def sims() -> Iterator[SimulatorThread]:
    hosts = [SimulatorHost(*build_unit(kind), tcp_port=0) for kind in ("laser", "cryo")]  # type: ignore[arg-type]
    with SimulatorThread(*hosts) as thread:
        yield thread


@pytest.mark.parametrize(("kind", "row"), ROWS, ids=IDS)
def test_row_over_a_real_pty(sims: SimulatorThread, kind: str, row: Row) -> None:
    index = 0 if kind == "laser" else 1
    sims.call("power_cycle", index)  # every row starts from power-on, as in virtual time
    if kind == "cryo":
        sims.call("set_level", index, percent=100.0)
    for name, value in (("key", 1), ("interlock", 1), ("estop", 0), ("foot", 0)) if kind == "laser" else (("estop", 0), ("probe", "P3")):
        sims.call("set_input", index, name=name, value=value)
    for code in ("F01", "F02", "F04", "F05") if kind == "laser" else ("C01", "C02", "C04"):
        sims.call("remove_fault_cause", index, code=code)
    sims.call("power_cycle", index)
    line = SerialLine(sims.hosts[index].addresses.pty, sims, index)  # type: ignore[arg-type]
    try:
        run_row(line, row)
    finally:
        line.close()
