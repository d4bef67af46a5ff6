"""Run the simulated bench and the service as real processes for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx

from devicectl.core import migrations
from devicectl.core.procs import die_with_parent
from simulators.backdoor import remote_call


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def backdoor(address: str, op: str, **args: Any) -> Any:
    answer = remote_call(address, op, args)
    assert answer["ok"], answer
    return answer["result"]


#: the service's loop guard in every subprocess test (tests/conftest.py has the in-process one)
SLOW_CALLBACK_MS = 5.0


class BenchProcess:
    def __init__(self, root: Path) -> None:
        self.link_dir = root / "sim"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devicectl.cli", "sim", "bench", "--json", "--link-dir", str(self.link_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            preexec_fn=die_with_parent,  # a killed test run leaves no simulated bench behind
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the bench did not start"
        self.addresses: dict[str, str] = json.loads(line)

    def laser(self, op: str, **args: Any) -> Any:
        return backdoor(self.addresses["laser_backdoor"], op, **args)

    def cryo(self, op: str, **args: Any) -> Any:
        return backdoor(self.addresses["cryo_backdoor"], op, **args)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def new_database(data_dir: Path) -> None:
    """A new service's database, as its first start makes it (``migrate`` writes the same bytes there), made
    once per test run instead of by every service started (0.3 s of Alembic each); an existing one is kept."""
    path = data_dir / "devicectl.sqlite3"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        migrations.migrate(path)


class ServiceProcess:
    def __init__(self, root: Path, bench: BenchProcess, extra_config: str = "") -> None:
        self.root = root
        self.data_dir = root / "data"
        self.port = free_port()
        self.config = root / "devicectl.toml"
        self.config.write_text(
            f'data_dir = "{self.data_dir}"\nhttp_port = {self.port}\n'
            f'meter = "{bench.addresses["meter"]}"\nthermometer = "{bench.addresses["thermometer"]}"\n'
            f'[[devices]]\nname = "laser"\ntype = "laser"\nport = "{bench.link_dir / "laser"}"\n'
            f'[[devices]]\nname = "cryo"\ntype = "cryo"\nport = "{bench.link_dir / "cryo"}"\n'
            + extra_config
        )
        self.output: list[str] = []
        self.users_seeded = False
        self.proc: subprocess.Popen[str] | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, users: bool = False) -> "ServiceProcess":
        """``users``: on a copy of the data ``set_up_users`` leaves (``users_template``), which then only logs
        the three users in (0.5 s of first-run PIN changes saved per test); else on a new database."""
        self.users_seeded = users
        if users:
            assert not self.data_dir.exists(), "the users' template is for a new service"
            template = users_template()
            for name in TEMPLATE_FILES:
                (self.root / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(template / name, self.root / name)
        else:
            new_database(self.data_dir)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devicectl.cli", "serve", "--config", str(self.config)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=die_with_parent,  # a killed test run leaves no service behind
            # the loop guard (devicectl/core/loopguard.py): every callback over 5 ms is written to slow-callbacks.log
            env={**os.environ, "PYTHONUNBUFFERED": "1", "DEVICECTL_SLOW_CALLBACK_MS": str(SLOW_CALLBACK_MS)},
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"service exited: {''.join(self.output)}")
            self.output.append(line)
            if "log in" in line:
                break
        # keep reading what it says: a service that wrote more than a pipe holds would block on it
        threading.Thread(target=self._read_on, args=(self.proc.stdout,), daemon=True).start()
        self.wait_connected()
        return self

    def _read_on(self, out: Any) -> None:
        for line in out:
            self.output.append(line)

    def wait_connected(self, timeout: float = 60.0) -> None:
        # a bound, not a figure under test: on a starved host the units connect late
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"{self.url}/api/health", timeout=1).json()
                if all(health["devices"].values()):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise AssertionError("devices did not connect")

    def thread_nice(self) -> dict[int, int]:
        """The nice value of each of the service's threads, by native thread id (Linux /proc)."""
        assert self.proc is not None
        nice = {}
        for stat in Path(f"/proc/{self.proc.pid}/task").glob("*/stat"):
            with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
                nice[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[16])
        return nice

    @property
    def first_pin(self) -> str | None:
        for line in self.output:
            if "one-time PIN" in line:
                return line.split("one-time PIN ")[1].split()[0]
        return None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.check_loop()

    def check_loop(self) -> None:
        """Fail loudly if the service's event loop ran any callback over SLOW_CALLBACK_MS."""
        log = self.data_dir / "slow-callbacks.log"
        if log.exists() and log.read_text().strip():
            found = log.read_text()
            log.rename(log.with_suffix(".reported"))  # reported once
            raise AssertionError(f"the service's event loop was blocked:\n{found}")


class Api:
    """A logged-in user's client."""

    def __init__(self, url: str, user: str, pin: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=10)
        answer = self.client.post("/api/login", json={"user": user, "pin": pin})
        assert answer.status_code == 200, answer.text
        self.token = answer.json()["token"]
        self.client.headers["Authorization"] = f"Bearer {self.token}"

    def call(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        answer = self.client.request(method, path, **kwargs)
        assert answer.status_code == expect, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json()

    def wait(self, path: str, predicate: Any, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = self.call("GET", path)
            if predicate(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{path}: condition not met: {value}")
            time.sleep(0.02)


#: the PINs the harness's users end up with (admin: 6 digits at least; none trivial)
ADMIN_PIN, PAT_PIN, TECH_PIN = "902137", "4827", "3916"
ONE_TIME_PIN = "583920"  #: what the admin gives a new user, who sets their own at the first login


def new_user(url: str, admin: "Api", name: str, role: str, pin: str) -> "Api":
    """A user the admin creates with a one-time PIN; they log in and set ``pin`` (the returned client
    holds that first login)."""
    admin.call("POST", "/api/users", 201, json={"name": name, "role": role, "pin": ONE_TIME_PIN})
    api = Api(url, name, ONE_TIME_PIN)
    api.call("POST", "/api/me/pin", json={"old_pin": ONE_TIME_PIN, "new_pin": pin})
    return api


def set_up_users(service: ServiceProcess, bench: BenchProcess, calibrate: bool = True) -> tuple[Api, Api, Api]:
    """admin (PIN changed), a practitioner and a technician (each set their own PIN at the first login);
    the technician records calibrations. On a service started with ``users=True`` all that is done: they log in."""
    if service.users_seeded:
        assert calibrate, "the users' template has the calibrations"
        return Api(service.url, "admin", ADMIN_PIN), Api(service.url, "pat", PAT_PIN), Api(service.url, "tech", TECH_PIN)
    pin = service.first_pin
    assert pin
    admin = Api(service.url, "admin", pin)
    admin.call("POST", "/api/users", 403, json={"name": "x", "role": "practitioner", "pin": "4827"})  # one-time PIN first
    admin.call("POST", "/api/me/pin", json={"old_pin": pin, "new_pin": ADMIN_PIN})
    practitioner = new_user(service.url, admin, "pat", "practitioner", PAT_PIN)
    technician = new_user(service.url, admin, "tech", "technician", TECH_PIN)
    for kind in ("laser", "cryo") if calibrate else ():
        technician.call("POST", "/api/calibrations/measured", 201, json=measured_calibration(kind, bench.addresses[f"{kind}_serial"]))
    return admin, practitioner, technician


#: what a service's data is, relative to its root: the database, the audit key and the signed checkpoints
TEMPLATE_FILES = ("data/devicectl.sqlite3", "data-audit.key", "data-audit-checkpoints.jsonl")
_users_template: tempfile.TemporaryDirectory[str] | None = None


def users_template() -> Path:
    """A service's data right after ``set_up_users`` (its first run through the API, as a clinic's would be),
    made once per test run by a service of its own and removed at exit."""
    global _users_template
    if _users_template is None:
        folder = tempfile.TemporaryDirectory(prefix="devicectl-users-")
        root = Path(folder.name)
        bench = BenchProcess(root)
        service = ServiceProcess(root, bench).start()
        try:
            set_up_users(service, bench)
        finally:
            service.stop()
            bench.stop()
        _users_template = folder
    return Path(_users_template.name)


#: measurements of a unit within every tolerance (the service computes the record from them)
PASSING_POINTS = {
    "laser": [{"set_mj": 200, "meter_mj": [199.0, 201.0], "monitor_mj": [200.0, 200.5]},
              {"set_mj": 500, "meter_mj": [498.0, 502.0], "monitor_mj": [499.0, 501.0]}],
    "cryo": [{"target_c": -50, "sensor_c": [-50.2, -49.9], "reference_c": [-50.0, -50.1]}],
}


def measured_calibration(kind: str, serial: str, points: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The body of ``POST /api/calibrations/measured``: passing measurements unless ``points`` are given."""
    return {"device_serial": serial, "device_kind": kind, "points": points or PASSING_POINTS[kind]}


@contextlib.contextmanager
def running_system(root: Path) -> Iterator[tuple[BenchProcess, ServiceProcess, Api, Api, Api]]:
    """The simulated bench and the service on it, with admin, practitioner and technician set up;
    both processes stopped afterwards."""
    bench = BenchProcess(root)
    service = ServiceProcess(root, bench).start(users=True)
    try:
        admin, practitioner, technician = set_up_users(service, bench)
        yield bench, service, admin, practitioner, technician
    finally:
        service.stop()
        bench.stop()


ALL_CHECKED = {"identity_confirmed": True, "consent_signed": True, "eye_protection_all": True,
               "no_sun_last_4_weeks": True, "benign_assessed": True}


def laser_session(api: Api, budget: int = 5, area_cm2: float = 2.0) -> int:
    patient = api.call("POST", "/api/patients", 201)["patient_id"]
    session = api.call("POST", "/api/sessions", 201, json={
        "patient_id": patient, "device": "laser", "indication": "tattoo", "skin_type": 2, "area_cm2": area_cm2,
        "site": "left forearm", "inks": ["black"],
    })
    sid = session["id"]
    api.call("POST", f"/api/sessions/{sid}/edit", json={"pulse_budget": budget, "rate_hz": 5.0})
    return sid


def ready(api: Api, sid: int) -> None:
    api.wait(f"/api/sessions/{sid}", lambda s: s["live"]["details"].get("spot_mm") is not None)
    api.call("POST", f"/api/sessions/{sid}/arm")
    api.wait(f"/api/sessions/{sid}", lambda s: s["live"]["state"] == "READY")
