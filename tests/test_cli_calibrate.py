"""``devicectl calibrate``: what each command hands to the service or to a bench without one, and the
errors for arguments that cannot work (the procedures themselves: test_calibration.py, test_technician.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from devicectl import cli
from devicectl.calibration import remote, standalone

runner = CliRunner()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    seen: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(remote, "run_remote_calibration", lambda *a, **k: seen.append(("service", a, k)) or 0)
    monkeypatch.setattr(standalone, "run_calibration", lambda *a, **k: seen.append(("bench", a, k)) or 0)
    return seen


def test_the_cryo_command_hands_its_targets_and_freeze_to_the_service(calls: list[Any]) -> None:
    answer = runner.invoke(cli.app, ["calibrate", "cryo", "--service", "http://127.0.0.1:8000", "--user", "tech",
                                     "--targets", "-40,-60", "--freeze", "5"], env={"DEVICECTL_PIN": "3916"})
    assert answer.exit_code == 0, answer.output
    assert calls == [("service", ("http://127.0.0.1:8000", "cryo", "tech", "3916", {"targets": [-40, -60], "freeze": 5.0}),
                      {})]


def test_the_laser_command_on_a_bench_without_a_service(calls: list[Any], tmp_path: Path) -> None:
    answer = runner.invoke(cli.app, ["calibrate", "laser", "--port", "/dev/ttyUSB0", "--meter", "TCPIP::em1::INSTR",
                                     "--user", "tech", "--data-dir", str(tmp_path), "--setpoints", "300,600",
                                     "--pulses", "4", "--reference-serial", "EM1-0042",
                                     "--reference-due", "2027-03-01"], env={"DEVICECTL_PIN": "3916"})
    assert answer.exit_code == 0, answer.output
    reference = {"serial": "EM1-0042", "calibration_due": "2027-03-01", "certificate": None}
    assert calls == [("bench", ("laser", "/dev/ttyUSB0", "TCPIP::em1::INSTR", "tech", "3916", tmp_path, 180, reference),
                      {"setpoints": [300, 600], "pulses": 4, "rate": 5.0})]


@pytest.mark.parametrize(("args", "said"), [
    (["cryo", "--port", "/dev/ttyUSB1"], "or --port and --thermometer for a bench without a service"),
    (["laser", "--meter", "TCPIP::em1::INSTR"], "or --port and --meter for a bench without a service"),
    (["laser", "--service", "http://x", "--setpoints", "200,5x0"], "setpoint must be whole numbers"),
    (["cryo", "--service", "http://x", "--targets", ","], "give at least one target"),
    (["cryo", "--service", "http://x", "--freeze", "1"], "'--freeze': Input should be greater than or equal to 2"),
])
def test_arguments_that_cannot_work_are_refused_before_anything_runs(calls: list[Any], args: list[str], said: str) -> None:
    answer = runner.invoke(cli.app, ["calibrate", *args, "--user", "tech"], env={"DEVICECTL_PIN": "3916"})
    assert answer.exit_code == 2 and said in " ".join(answer.output.replace("│", " ").split()), answer.output
    assert calls == []
