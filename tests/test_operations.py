"""Operations: `devicectl serve --simulate` leaves no stray process when it is killed with -9, and a
port already taken is an error that names it (never a silent move to another port)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devicectl.mqtt.broker import mosquitto_binary
from tests.service_harness import free_port


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def serve(tmp_path: Path, http_port: int, broker_port: int) -> subprocess.Popen[str]:
    config = tmp_path / "devicectl.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nhttp_port = {http_port}\nlocal_broker_port = {broker_port}\n')
    return subprocess.Popen([sys.executable, "-m", "devicectl.cli", "serve", "--simulate", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_kill_9_of_the_service_leaves_no_stray_process(tmp_path: Path) -> None:
    proc = serve(tmp_path, free_port(), free_port())
    assert proc.stdout is not None
    output = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        output.append(line)
        if "log in" in line:
            break
    assert any("log in" in line for line in output), "".join(output)
    children = children_of(proc.pid)
    assert mosquitto_binary(), "mosquitto is missing: `make test` installs it (apt-get install mosquitto)"
    assert len(children) >= 2, children  # the simulated bench and Mosquitto
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    strays = [pid for pid in children if alive(pid)]
    for pid in strays:  # never leave them to the next test, but fail
        os.kill(pid, signal.SIGKILL)
    assert not strays, f"still running after the service was killed: {strays}"


def test_a_taken_broker_port_is_an_error_naming_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = serve(tmp_path, free_port(), port)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2, out
    assert f"port {port} (the simulated bench's MQTT broker)" in out and "local_broker_port" in out
    assert not (tmp_path / "data" / "sim").exists()  # refused before the bench started


def test_a_taken_http_port_is_an_error_naming_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = serve(tmp_path, port, free_port())
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2 and f"port {port} (the service's HTTP port)" in out, out
