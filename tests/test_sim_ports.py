"""Simulators on real ports: pyserial over a pty and socket://, the CLI, the JSON backdoor."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import serial

from drivers.lineproto import Reply, Request, encode
from simulators.host import SimulatorHost, SimulatorThread
from simulators.units import build_unit
from tests.wire import SerialLine


@pytest.fixture
def laser(tmp_path: Path) -> Iterator[tuple[SimulatorThread, SerialLine]]:
    host = SimulatorHost(*build_unit("laser"), tcp_port=0, link=str(tmp_path / "laser0"))
    with SimulatorThread(host) as sims:
        line = SerialLine(host.addresses.pty, sims)  # type: ignore[arg-type]
        yield sims, line
        line.close()


@pytest.fixture
def cryo() -> Iterator[tuple[SimulatorThread, SerialLine]]:
    host = SimulatorHost(*build_unit("cryo"), tcp_port=0)
    with SimulatorThread(host) as sims:
        line = SerialLine(host.addresses.pty, sims)  # type: ignore[arg-type]
        yield sims, line
        line.close()


def test_laser_treatment_burst_and_watchdog_over_a_pty(laser: tuple[SimulatorThread, SerialLine]) -> None:
    sims, line = laser
    line.ok("LIMIT", "PULSES", 50)
    line.ok("RATE", "10.0")
    line.ok("READY")
    line.run(1.7)
    line.do("set_input", name="foot", value=1)
    started = time.monotonic()
    line.run(0.55, step=0.1)
    line.ok("HB")
    pulses = len(line.events_named("PULSE"))
    assert 5 <= pulses <= 1 + 10 * (time.monotonic() - started) + 1
    line.pump(1.3)  # the host falls silent: the unit's watchdog must stop emission
    assert line.events_named("WDT")
    assert line.events_named("STATE")[-1].fields_dict() == {"state": "STANDBY", "cause": "wdt"}
    assert sims.call("truth")["shutter_open"] is False
    assert len(line.events_named("PULSE")) <= pulses + 11
    evseqs = [e.evseq for e in line.events]
    assert evseqs == list(range(evseqs[0], evseqs[0] + len(evseqs)))  # nothing lost on the pty


def test_retransmission_after_silence_over_a_pty(cryo: tuple[SimulatorThread, SerialLine]) -> None:
    sims, line = cryo
    line.ok("LIMIT", "FREEZE", 20)
    line.do("silence", ms=150)
    assert line.request("FREEZE", 5, seq=0x77, timeout=0.25) is None
    executed = sims.call("stats")["executed"]
    reply = line.request("FREEZE", 5, seq=0x77)
    assert reply == Reply(0x77, (("state", "FREEZING"),))
    stats = sims.call("stats")
    assert stats["executed"] == executed and stats["retransmits"] == 1
    line.run(0.3)
    assert sims.call("truth")["state"] == "FREEZING"


def test_bad_crc_over_a_pty_gets_comerr_and_no_action(cryo: tuple[SimulatorThread, SerialLine]) -> None:
    _, line = cryo
    frame = encode(Request(9, "LIMIT", ("FREEZE", "20")))
    line.send_raw(frame[:-6] + b"FFFF\r\n")
    line.pump(0.1)
    assert line.events_named("COMERR")[-1].fields_dict() == {"reason": "crc"}
    assert line.state()["limit"] == "0.0"


def test_cryo_freeze_over_a_pty_reaches_target(cryo: tuple[SimulatorThread, SerialLine]) -> None:
    sims, line = cryo
    line.ok("TELEM", 50)
    line.ok("LIMIT", "FREEZE", 10)
    line.ok("FREEZE", 3)
    line.run(3.3, step=0.2)
    ends = [e.fields_dict() for e in line.events_named("FREEZE") if e.fields_dict()["phase"] == "end"]
    assert ends and ends[0]["cause"] == "timeout"
    assert float(ends[0]["dur"]) == pytest.approx(3.0, abs=0.06)
    tips = [float(e.fields_dict()["tip"]) for e in line.events_named("TEMP")]
    assert min(tips) < -45.0
    assert len(tips) > 120  # 50 Hz telemetry arrives in real time


def test_tcp_port_serves_one_host_at_a_time(laser: tuple[SimulatorThread, SerialLine]) -> None:
    sims, _ = laser
    url = sims.hosts[0].addresses.tcp
    assert url and url.startswith("socket://127.0.0.1:")
    first = serial.serial_for_url(url, timeout=0.5)
    try:
        first.write(b">01 IDN?*671F\r\n")
        deadline = time.monotonic() + 2
        data = b""
        while b"<01 OK" not in data and time.monotonic() < deadline:
            data += first.read(512)
        assert b"model=QS-1064" in data
        second = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=2)
        assert second.recv(10) == b""  # closed: the line is taken
        second.close()
    finally:
        first.close()


def test_unplug_and_replug_keep_the_link_path(laser: tuple[SimulatorThread, SerialLine], tmp_path: Path) -> None:
    sims, line = laser
    link = tmp_path / "laser0"
    assert link.is_symlink()
    line.close()
    sims.submit(sims.hosts[0].unplug())
    assert not link.exists()
    sims.submit(sims.hosts[0].replug())
    again = SerialLine(str(link), sims)
    try:
        assert again.ok("IDN?")["model"] == "QS-1064"
    finally:
        again.close()


def _backdoor(port: int, op: str, **args: object) -> dict[str, object]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(json.dumps({"id": 1, "op": op, "args": args}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            data += sock.recv(65536)
    return json.loads(data)


def test_cli_runs_a_simulator_with_tcp_and_backdoor() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "devicectl.cli", "sim", "laser", "--tcp", "0", "--backdoor", "0", "--seed", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(3)]
        assert lines[0].startswith("laser serial port: /dev/pts/")
        tcp = lines[1].split(": ", 1)[1]
        backdoor_port = int(lines[2].split(": ", 1)[1].split()[0].rsplit(":", 1)[1])
        port = serial.serial_for_url(tcp, timeout=0.3)
        port.write(b">01 IDN?*671F\r\n")
        time.sleep(0.2)
        assert b"serial=QS1064-0001" in port.read(4096)
        assert _backdoor(backdoor_port, "set_input", name="interlock", value=0) == {"id": 1, "ok": True, "result": None}
        time.sleep(0.1)
        assert b"INPUT key=1 interlock=0" in port.read(4096)
        assert _backdoor(backdoor_port, "explode")["ok"] is False
        assert "set_input" in _backdoor(backdoor_port, "ops")["result"]  # type: ignore[operator]
        truth = _backdoor(backdoor_port, "truth")["result"]
        assert truth["shutter_open"] is False  # type: ignore[index]
        port.close()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_cli_refuses_a_bad_argument_clearly() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devicectl.cli", "sim", "cryo", "--cryogen", "CO2"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert "CO2" in result.stderr and "N2O" in result.stderr


def test_backdoor_answers_malformed_json_without_dying(laser: tuple[SimulatorThread, SerialLine]) -> None:
    sims, _ = laser
    host = sims.hosts[0]

    async def ask(line: bytes) -> dict[str, object]:
        return await host._answer(line)

    assert sims.submit(ask(b"{nope"))["ok"] is False
    assert sims.submit(ask(b"[1, 2]"))["ok"] is False
    assert sims.submit(ask(b'{"op": "set_input", "args": {"name": "foot"}}'))["ok"] is False
    assert sims.submit(ask(b'{"op": "stats"}'))["ok"] is True
