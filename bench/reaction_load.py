"""Reaction under load: 8 lasers in sessions firing at their plan's rate with every pulse recorded,
4 WebSocket clients, 20 API requests/s and the MQTT bridge on a real Mosquitto; each trial opens one
unit's interlock and the unit measures, on its own clock, from the INPUT event written to STOP
executed. Run twice in one go: normal storage, then every commit of the store delayed by 40 ms
(``store_commit_delay_ms``: a slow SD card or a busy disk).

Goal: p99 <= 1 ms in both (2 ms at the very most), and the slow-storage p99 <= 1.2 x the normal one.

    .venv/bin/python bench/reaction_load.py [--trials 200] [--units 8] [--delay-ms 40] [--shared-cpus] [--realtime 10]

CPUs: the lasers are units with processors of their own, so by default they have the last CPU and
the service (with its MQTT broker) the others; the screens are other machines, so their process
runs beside the service at the lowest priority (nice 19): it takes the CPU the service leaves, as
the load it stands for would. ``--shared-cpus`` lets the scheduler put everything anywhere at equal
priority (a host running its own screens and simulators: the figures of the runs before the two loops).

Three processes: the lasers (this script with ``farm``, on ptys, like bench/sim_farm.py), the
clients (this script with ``clients``: WebSockets and API requests), and the service (here, as
``devicectl serve`` runs it: the devices on the service loop, uvicorn and the MQTT bridge on the
edge loop, devicectl/core/loops.py). The benchmark's own steps run on a third loop, so that
nothing of the measuring holds the loop measured.

The strongest baseline, in the same run: two more lasers of the farm, each read by a bare asyncio
reader (``BareReader``) that writes a STOP made in advance on the INPUT line, one in a process of
its own (this script with ``bare``) and one on a thread of the service's process; each is opened
after every trial's unit, under the same load, at the service's priority (``--realtime``: its
real-time priority). What they take is the host's floor; what the service takes beyond it is its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.figures import summary

HERE = Path(__file__).resolve()
#: CPUs of the service and of the lasers; None: shared by everything (--shared-cpus)
CPUS: tuple[set[int], set[int]] | None = None
REALTIME: int | None = None  #: --realtime: the service loop's thread at this SCHED_FIFO priority
LOCKOUTS: list[str] = []  # lock-outs met while re-arming (acknowledged, counted in the output)
ALL_CHECKED = {"identity_confirmed": True, "consent_signed": True, "eye_protection_all": True,
               "no_sun_last_4_weeks": True, "benign_assessed": True}


# ----------------------------------------------------------------------------- the lasers
async def farm(count: int) -> None:
    from simulators.clock import MonotonicClock
    from simulators.host import SimulatorHost
    from simulators.units import build_unit

    clock = MonotonicClock()
    hosts = []
    for i in range(count):
        unit, door = build_unit("laser", seed=i, now=clock.now(), serial=f"QS1064-{i:04d}")
        host = SimulatorHost(unit, door, clock)
        await host.start()
        hosts.append(host)
    opened_at: dict[int, float] = {}
    stop_read: dict[int, float] = {}  # when each unit's STOP reached it (time.monotonic, like the service's probe)
    stopped = [asyncio.Event() for _ in hosts]
    fired = [0] * count
    for i, host in enumerate(hosts):
        received = host._pty._on_bytes  # type: ignore[union-attr]

        def on_bytes(data: bytes, received: Any = received, i: int = i) -> None:
            if b" STOP" in data:
                stop_read.setdefault(i, time.monotonic())
                stopped[i].set()
            received(data)

        host._pty._on_bytes = on_bytes  # type: ignore[union-attr]
    for i, host in enumerate(hosts):
        host.unit.model.pulse_listeners.append(lambda *_, i=i: fired.__setitem__(i, fired[i] + 1))  # type: ignore[attr-defined]

    async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            request = json.loads(line)
            i = int(request.get("unit", 0))
            host = hosts[i]
            answer: dict[str, Any] = {"ok": True}
            op = request["op"]
            if op == "open":  # the door opens; answered when the unit has executed a STOP, or after 1 s
                host.unit.executed_at.pop("STOP", None)
                stop_read.pop(i, None)
                stopped[i].clear()
                await host.call("set_input", {"name": "interlock", "value": 0})
                opened_at[i] = host.unit.now
                answer["opened_mono"] = time.monotonic()  # INPUT written; the system-wide clock the service reads too
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopped[i].wait(), 1.0)
                await asyncio.sleep(0)  # the STOP's bytes are executed in the callback that set the event
                stop_at = host.unit.executed_at.get("STOP")
                answer["reaction_s"] = None if stop_at is None else stop_at - opened_at[i]
                answer["stop_read_mono"] = stop_read.get(i)
            elif op == "close":
                await host.call("set_input", {"name": "interlock", "value": 1})
            elif op == "foot":
                await host.call("set_input", {"name": "foot", "value": int(request["value"])})
            elif op == "fired":
                answer["fired"] = fired
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()

    server = await asyncio.start_server(control, "127.0.0.1", 0)
    # the lasers stand for units with processors of their own, which have no collector pausing all eight
    # (a STOP once waited 3.4 ms for the farm's process to read it; a collection is one such pause)
    gc.collect()
    gc.freeze()
    gc.disable()
    print(json.dumps({"ports": [h.addresses.pty for h in hosts], "control": server.sockets[0].getsockname()[1]}), flush=True)
    await asyncio.Event().wait()


class Farm:
    def __init__(self, count: int) -> None:
        self.proc = subprocess.Popen([sys.executable, str(HERE), "farm", str(count)], stdout=subprocess.PIPE, text=True,
                                     preexec_fn=units_cpu)  # noqa: PLW1509 (one system call)
        assert self.proc.stdout is not None
        info = json.loads(self.proc.stdout.readline())
        self.ports: list[str] = info["ports"]
        self.control_port: int = info["control"]

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.control_port)

    async def call(self, op: str, unit: int = 0, **args: Any) -> dict[str, Any]:
        self.writer.write(json.dumps({"op": op, "unit": unit, **args}).encode() + b"\n")
        await self.writer.drain()
        return json.loads(await self.reader.readline())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


# ----------------------------------------------------------------------------- the baseline
class BareReader:
    """The strongest baseline: the least a host can do on a unit's pty. It reads the unit's lines
    and, on an interlock INPUT, writes a STOP frame made in advance: no CRC check, no decision, no
    record, no lock. A new SEQ each time, since a unit does not execute a repeated one
    (line-protocol.md rule 4). What it takes is the machine's floor under the same load."""

    def __init__(self, port: str) -> None:
        import serial

        self._line = serial.Serial(port, 115200, timeout=0)  # raw mode, as the drivers open a line
        self._fd = self._line.fileno()
        self._buffer = b""
        self._seq = 1
        self._next = self._frame()

    def _frame(self) -> bytes:
        from drivers.lineproto import Request, encode

        return encode(Request(self._seq, "STOP"))

    def start(self) -> None:
        """On the loop of the calling thread."""
        asyncio.get_running_loop().add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        try:
            self._buffer += os.read(self._fd, 4096)
        except BlockingIOError:
            return
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if b" INPUT " in line and b"interlock=0" in line:
                os.write(self._fd, self._next)
                self._seq = self._seq % 255 + 1
                self._next = self._frame()

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self._fd)
        self._line.close()


async def bare_process(port: str, priority: int | None) -> None:
    """The baseline as a process of its own (it inherits the service's CPU and nice value; with
    ``--realtime`` it gets the service loop's real-time priority)."""
    if priority is not None:
        from devicectl.core.loops import run_realtime

        if refused := run_realtime(priority):
            raise SystemExit(f"--realtime {priority} was refused: {refused}")
    reader = BareReader(port)
    reader.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


def start_bare_process(port: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, str(HERE), "bare", port, str(REALTIME or "")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


#: where each baseline reader runs, and what the output calls it
BASELINES = {"process": "a process of its own", "thread": "a thread of the service's process"}


# ----------------------------------------------------------------------------- the clients
async def clients(url: str, token: str, sids: list[int], sockets: int, rate: float) -> None:
    import httpx
    import websockets

    received = [0]

    async def screen() -> None:
        ws_url = url.replace("http://", "ws://") + f"/ws?token={token}"
        async with websockets.connect(ws_url, max_size=None) as ws:
            async for _ in ws:
                received[0] += 1

    health: list[float] = []  # /api/health round trips (the original figure), ms

    async def requests() -> None:
        paths = [f"/api/sessions/{sid}" for sid in sids] + ["/api/devices", "/api/health", "/api/me"]
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
            n = 0
            start = time.monotonic()
            while True:
                path = paths[n % len(paths)]
                sent = time.perf_counter()
                await client.get(path)
                if path == "/api/health":
                    health.append((time.perf_counter() - sent) * 1000)
                n += 1
                await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))

    def report(*_: Any) -> None:
        print(json.dumps(summary(health)), flush=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, report)  # the benchmark ends the clients: they say what they measured
    await asyncio.gather(requests(), *[screen() for _ in range(sockets)])


# ----------------------------------------------------------------------------- the service
async def configuration(delay_ms: float, units: int, trials: int, root: Path) -> dict[str, Any]:
    import httpx
    import uvicorn

    from devicectl.core import heap, loopguard
    from devicectl.core.config import DeviceConfig, MqttConfig, load_settings
    from devicectl.core.loopguard import SWITCH_INTERVAL_S
    from devicectl.core.loops import LoopThread, call_on, run_realtime
    from devicectl.core.service import Service
    from devicectl.mqtt import broker
    from devicectl.web.api import create_app

    sys.setswitchinterval(SWITCH_INTERVAL_S)  # as devicectl serve runs
    read_at, written_at = watch_the_lines()
    # what holds the loop when an interlock opens: every callback over 0.5 ms of CPU, by kind
    held: dict[str, list[float]] = {}
    longest: list[tuple[float, str]] = []  # the two longest, as the loop guard reported them (wall time, waits)

    def note_held(what: str, seconds: float) -> None:
        first = what.split("\n")[0]
        if " serving " in first:  # a request: by its method and the route's first segments
            method, path = first.split(" serving ")[1].split(" ", 1)
            kind = f"request {method} /" + "/".join(path.strip("/").split("/")[:2])
        else:
            kind = first.split(" at ")[0][:80]
        if "garbage collection" in what:
            kind += " (with a garbage collection)"
        held.setdefault(kind, []).append(seconds * 1000)
        longest.append((seconds * 1000, what))
        longest.sort(key=lambda item: -item[0])
        del longest[2:]

    lasers = Farm(units + len(BASELINES))  # the last ones are the baselines'
    mqtt_dir = root / "mqtt"
    mqtt_port = broker.free_port()
    broker.write_config(mqtt_dir, mqtt_port)
    mosquitto = broker.start_broker(mqtt_dir, mqtt_port)
    if CPUS is not None:
        os.sched_setaffinity(mosquitto.pid, CPUS[0])  # the broker runs on the service's host
    http_port = broker.free_port()
    settings = load_settings(
        None, data_dir=root / "data", http_port=http_port, store_commit_delay_ms=delay_ms,
        devices=[DeviceConfig(name=f"laser{i}", type="laser", port=port) for i, port in enumerate(lasers.ports[:units])],
        mqtt=MqttConfig(port=mqtt_port, username="service", password_file=mqtt_dir / "service.password"))
    service = Service(settings)
    app = create_app(service, manage_lifecycle=False)  # before the devices start: nothing long on the loop then
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=http_port, log_level="warning", lifespan="off"))
    server.config.load()
    devices, edge = LoopThread("service").start(), LoopThread("edge").start()
    await devices.run(service.start(edge.loop))
    heap.settle()  # as devicectl serve does once started (H26)
    if REALTIME is not None:  # --realtime: what the administrator can grant the service thread (realtime_priority)
        refused = await call_on(devices.loop, run_realtime, REALTIME)
        if refused is not None:
            raise SystemExit(f"--realtime {REALTIME} was refused: {refused}")
    scheduled = (os.getpriority(os.PRIO_PROCESS, devices.native_id), os.sched_getscheduler(devices.native_id))
    serving: asyncio.Future[None] | None = None
    load: subprocess.Popen[bytes] | None = None
    # the baselines: one in a process of its own (it inherits this process's CPUs and nice value), one on
    # a thread of this process (it shares the interpreter lock with the service)
    bare_proc = start_bare_process(lasers.ports[units])
    bare, bare_reader = LoopThread("bare").start(), BareReader(lasers.ports[units + 1])
    await call_on(bare.loop, bare_reader.start)
    if REALTIME is not None and (refused := await call_on(bare.loop, run_realtime, REALTIME)) is not None:
        raise SystemExit(f"--realtime {REALTIME} was refused: {refused}")
    baseline: dict[str, list[float]] = {name: [] for name in BASELINES}
    baseline_missed = dict.fromkeys(BASELINES, 0)
    url = f"http://127.0.0.1:{http_port}"
    try:
        try:
            await until(lambda: all(s.status.connected and s.status.serial for s in service.supervisors.values()), 60)
        except RuntimeError:
            raise RuntimeError("the lasers did not connect: " + str([(s.status.connected, s.status.serial, s.status.refused)
                                                                     for s in service.supervisors.values()])) from None
        serving = asyncio.ensure_future(edge.run(server.serve()))
        while not server.started:
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=url, timeout=30) as api:
            admin = await login(api, "admin", service.first_admin_pin or "")
            await call(api, "POST", "/api/me/pin", admin, json={"old_pin": service.first_admin_pin, "new_pin": "902101"})
            await call(api, "POST", "/api/users", admin, json={"name": "pat", "role": "practitioner", "pin": "530719"})
            await call(api, "POST", "/api/users", admin, json={"name": "tech", "role": "technician", "pin": "648203"})
            pat, tech = await login(api, "pat", "530719"), await login(api, "tech", "648203")
            # an admin's PIN is one-time: each user sets their own at the first login
            await call(api, "POST", "/api/me/pin", pat, json={"old_pin": "530719", "new_pin": "530791"})
            await call(api, "POST", "/api/me/pin", tech, json={"old_pin": "648203", "new_pin": "648230"})
            sids = []
            for i, supervisor in enumerate(service.supervisors.values()):
                await call(api, "POST", "/api/calibrations/measured", tech, json={
                    "device_serial": supervisor.status.serial, "device_kind": "laser",
                    "points": [{"set_mj": 500, "meter_mj": [499.0, 501.0], "monitor_mj": [500.0, 500.0]}]})
                patient = (await call(api, "POST", "/api/patients", pat))["patient_id"]
                sid = (await call(api, "POST", "/api/sessions", pat, json={
                    "patient_id": patient, "device": f"laser{i}", "indication": "tattoo", "skin_type": 2,
                    "area_cm2": 200.0, "site": "back", "inks": ["black"]}))["id"]
                await call(api, "POST", f"/api/sessions/{sid}/edit", pat, json={"pulse_budget": 1500})
                await call(api, "PUT", f"/api/sessions/{sid}/checklist", pat, json=ALL_CHECKED)
                await call(api, "POST", f"/api/sessions/{sid}/start", pat)
                sids.append(sid)
            rate = (await call(api, "GET", f"/api/sessions/{sids[0]}", pat))["plan"]["rate_hz"]
            await lasers.open()
            for i, sid in enumerate(sids):
                await fire(api, pat, lasers, i, sid, service)
            load = await asyncio.to_thread(subprocess.Popen, [sys.executable, str(HERE), "clients", url,
                                                              pat["Authorization"][7:], ",".join(map(str, sids))],
                                           stdout=subprocess.PIPE, text=True, preexec_fn=other_machines)
            await asyncio.sleep(2.0)  # screens connected, requests flowing, every laser firing
            fired_before = sum((await lasers.call("fired"))["fired"])
            supervisors = list(service.supervisors.values())
            guard = loopguard.install(0.0005, note_held, devices.ident)  # the service loop, during the trials only
            started = time.monotonic()
            reactions: list[float] = []
            # (INPUT written -> read by the service, read -> STOP written, written -> read by the unit), with the reaction
            # and how often the service thread gave its CPU up (a wait: the GIL) and was preempted from read to written
            parts: list[tuple[float, float, float, float, int, int]] = []
            behind: list[float] = []  # reactions of STOPs decided while an exchange was on the line
            missed = 0
            for trial in range(trials):
                unit = trial % units
                # answered once the unit executed STOP: nothing of the benchmark runs in the service's process meanwhile
                answer = await lasers.call("open", unit)
                opened, reaction, stop_read = answer["opened_mono"], answer["reaction_s"], answer["stop_read_mono"]
                if reaction is None:
                    missed += 1
                else:
                    reactions.append(float(reaction))
                    driver = supervisors[unit].driver
                    # the INPUT frame may be read before the unit's process takes the time after writing it
                    read, busy, before = next((r for r in read_at.get(driver, ()) if r[0] >= opened - 0.01), (None, False, (0, 0)))
                    written, after = next(((t, c) for t, c in written_at.get(driver, ()) if read is not None and t >= read),
                                          (None, (0, 0)))
                    if read is not None and written is not None and stop_read is not None:
                        parts.append((read - opened, written - read, stop_read - written, float(reaction),
                                      after[0] - before[0], after[1] - before[1]))
                    if busy:
                        behind.append(float(reaction))
                await lasers.call("close", unit)
                for index, name in enumerate(BASELINES, start=units):  # the same opening, the same load
                    reaction = (await lasers.call("open", index))["reaction_s"]
                    if reaction is None:
                        baseline_missed[name] += 1
                    else:
                        baseline[name].append(float(reaction))
                    await lasers.call("close", index)
                await fire(api, pat, lasers, unit, sids[unit], service)
                await asyncio.sleep(0.05 + 0.1 * (trial % 7) / 7)  # trials at every phase of the commit cycle
            elapsed = time.monotonic() - started
            guard.uninstall()
            fired = sum((await lasers.call("fired"))["fired"]) - fired_before
            await devices.run(service.store.flush())
            for i in range(units):
                await lasers.call("foot", i, value=0)
            await asyncio.sleep(0.5)
            await devices.run(service.store.flush())
            fired_total = sum((await lasers.call("fired"))["fired"])
            recorded = await service.store.read(lambda conn: conn.execute("SELECT COUNT(*) FROM pulses WHERE seen = 1").fetchone()[0])
    finally:
        health = {"n": 0, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
        if load is not None:
            load.terminate()
            out, _ = load.communicate()
            with contextlib.suppress(ValueError, IndexError):
                health = json.loads(out.strip().splitlines()[-1])
        server.should_exit = True
        if serving is not None:
            await serving
        await devices.run(service.stop())
        edge.stop()
        devices.stop()
        await call_on(bare.loop, bare_reader.close)
        bare.stop()
        bare_proc.terminate()
        bare_proc.wait()
        lasers.close()
        mosquitto.terminate()
        mosquitto.wait()
    return {"delay_ms": delay_ms, "rate_hz": rate, "pulses_per_s": fired / elapsed, "fired": fired_total, "recorded": recorded,
            "missed": missed, **summary(reactions, 1000),
            "baseline": {name: summary(values, 1000) | {"missed": baseline_missed[name]} for name, values in baseline.items()},
            "health": health, "held": held, "longest": longest, "elapsed_s": elapsed, "parts": parts, "behind": behind,
            # how this row's process really ran the service (each row has a process of its own)
            "cpus": None if CPUS is None else [sorted(c) for c in CPUS], "service_nice": scheduled[0],
            "service_policy": {os.SCHED_OTHER: "normal", os.SCHED_FIFO: "SCHED_FIFO"}.get(scheduled[1] & ~os.SCHED_RESET_ON_FORK, "other")}


Switches = tuple[int, int]  #: the reading thread's voluntary and involuntary context switches so far


def watch_the_lines() -> tuple[dict[Any, list[tuple[float, bool, Switches]]], dict[Any, list[tuple[float, Switches]]]]:
    """When each driver read an interlock INPUT event (and whether an exchange was then on its line: a
    STOP waits for its reply, one request at a time) and wrote a STOP; time.monotonic, the clock the
    lasers' process reads too, with the thread's context switches (getrusage, under a microsecond).
    The benchmark's own probe on the serial lines, installed before they open."""
    import resource

    from drivers import transport

    def switches() -> Switches:
        usage = resource.getrusage(resource.RUSAGE_THREAD)
        return usage.ru_nvcsw, usage.ru_nivcsw

    read_at: dict[Any, list[tuple[float, bool, Switches]]] = {}
    written_at: dict[Any, list[tuple[float, Switches]]] = {}
    received, write = transport._Protocol.data_received, transport.SerialLine.write

    def data_received(self: Any, data: bytes) -> None:
        if b" INPUT " in data and b"interlock" in data:
            driver = getattr(self._on_bytes, "__self__", None)
            read_at.setdefault(driver, []).append((time.monotonic(), bool(getattr(driver, "_busy", False)), switches()))
        received(self, data)

    def written(self: Any, data: bytes) -> None:
        write(self, data)
        if b" STOP" in data:
            written_at.setdefault(getattr(self._on_bytes, "__self__", None), []).append((time.monotonic(), switches()))

    transport._Protocol.data_received = data_received  # type: ignore[method-assign]
    transport.SerialLine.write = written  # type: ignore[method-assign]
    return read_at, written_at


async def fire(api: Any, headers: dict[str, str], lasers: Farm, unit: int, sid: int, service: Any) -> None:
    """Arm the unit's session (a practitioner's request) and hold its footswitch: it fires at the plan's rate."""
    supervisor = list(service.supervisors.values())[unit]
    await lasers.call("foot", unit, value=0)
    await until(lambda: supervisor.status.details.get("spot_mm") is not None, 10)
    for _ in range(50):
        answer = await api.post(f"/api/sessions/{sid}/arm", headers=headers)
        if answer.status_code == 200:
            break
        if "acknowledge it first" in answer.text:  # a lock-out (pulses the host did not see): a person acknowledges
            LOCKOUTS.append(answer.json()["error"])
            await api.post(f"/api/sessions/{sid}/acknowledge", headers=headers)
        await asyncio.sleep(0.05)
    else:
        raise RuntimeError(f"laser{unit} does not arm: {answer.text}")
    await until(lambda: supervisor.snapshot().get("state") == "READY", 10)
    await lasers.call("foot", unit, value=1)


async def until(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        await asyncio.sleep(0.02)


async def login(api: Any, user: str, pin: str) -> dict[str, str]:
    answer = await call(api, "POST", "/api/login", {}, json={"user": user, "pin": pin})
    return {"Authorization": f"Bearer {answer['token']}"}


async def call(api: Any, method: str, path: str, headers: dict[str, str], **kwargs: Any) -> Any:
    answer = await api.request(method, path, headers=headers, **kwargs)
    if answer.status_code >= 300:
        raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text}")
    return answer.json()


def units_cpu() -> None:
    """In the child about to run the lasers: on the CPU of the units."""
    if CPUS is not None:
        os.sched_setaffinity(0, CPUS[1])


def other_machines() -> None:
    """In the child about to run the screens: beside the service, taking only the CPU it leaves."""
    if CPUS is not None:
        os.nice(19)


def row_label(delay_ms: float) -> str:
    return "normal" if not delay_ms else f"every commit {delay_ms:.0f} ms slower"


def main() -> int:
    global CPUS, REALTIME
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--units", type=int, default=8)
    parser.add_argument("--delay-ms", type=float, default=40.0)
    parser.add_argument("--shared-cpus", action="store_true", help="lasers and screens on the service's CPUs too")
    parser.add_argument("--realtime", type=int, default=None, metavar="PRIORITY",
                        help="the service loop's thread at this SCHED_FIFO priority (needs CAP_SYS_NICE or LimitRTPRIO)")
    parser.add_argument("--row", type=float, default=None, help=argparse.SUPPRESS)  # one row, in a process of its own
    args = parser.parse_args()
    REALTIME = args.realtime
    cpus = sorted(os.sched_getaffinity(0))
    if not args.shared_cpus and len(cpus) > 1:
        CPUS = (set(cpus[:-1]), {cpus[-1]})
    logging.basicConfig(level=logging.ERROR)
    if args.row is not None:
        if CPUS is not None:  # before any thread starts: the service's threads inherit it
            os.sched_setaffinity(0, CPUS[0])
        with tempfile.TemporaryDirectory(prefix="devicectl-reaction-load-") as tmp:
            row = asyncio.run(configuration(args.row, args.units, args.trials, Path(tmp)))
        print(json.dumps(row | {"lockouts": LOCKOUTS}))
        return 0
    print(f"reaction under load: {args.units} lasers in sessions (every pulse recorded), 4 WebSocket clients, "
          f"20 API requests/s, MQTT bridge on Mosquitto; {args.trials} interlock openings per row "
          f"(INPUT written -> STOP executed, on the unit's clock)")
    print(f"{'storage':<34} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'missed':>6} {'pulses/s':>8} {'fired':>6} {'recorded':>8}")
    rows = []
    for delay in (0.0, args.delay_ms):
        # each row in a process of its own: nothing of one row (a thread's priority, which the threads
        # started later inherit; the heap) reaches the next
        child = subprocess.run([sys.executable, str(HERE), *sys.argv[1:], "--row", str(delay)],
                               stdout=subprocess.PIPE, text=True, check=True)
        row = json.loads(child.stdout.strip().splitlines()[-1])
        LOCKOUTS.extend(row["lockouts"])
        rows.append(row)
        label = row_label(delay)
        print(f"{label:<34} {row['p50']:>7.2f} {row['p99']:>7.2f} {row['max']:>7.2f} {row['missed']:>6} "
              f"{row['pulses_per_s']:>8.1f} {row['fired']:>6} {row['recorded']:>8}", flush=True)
    normal, slow = rows
    print("the strongest baseline, in the same run, on the same CPU and under the same load: a bare asyncio reader "
          "on a unit's pty that writes a STOP made in advance on reading the INPUT line"
          + (f", at the service loop's real-time priority {REALTIME}" if REALTIME is not None else ", at normal priority"))
    for row in rows:
        for name, where in BASELINES.items():
            b = row["baseline"][name]
            print(f"  {row_label(row['delay_ms']):<32} {where:<34} p50 {b['p50']:.2f}  p99 {b['p99']:.2f}  max {b['max']:.2f}"
                  f"  missed {b['missed']}  (the service's p99 / this: {row['p99'] / b['p99']:.2f})")
    print("where the time goes (ms; time.monotonic on both sides): the unit writes INPUT -> the service reads it "
          "-> the service writes STOP -> the unit reads it")
    for row in rows:
        label = row_label(row["delay_ms"])
        names = ("INPUT to read", "read to STOP written", "STOP to the unit")
        for name, values in zip(names, list(zip(*row["parts"]))[:3] if row["parts"] else ((),) * 3):
            part = summary(values, 1000)
            print(f"  {label:<32} {name:<20} p50 {part['p50']:.2f}  p99 {part['p99']:.2f}  max {part['max']:.2f}")
        late = sum(1 for part in row["parts"] if part[0] > 0.0005)
        print(f"  {label:<32} INPUT read over 0.5 ms after it was written (the service thread's wake-up): "
              f"{late} of {len(row['parts'])} trials")
        slowest = sorted(row["parts"], key=lambda part: -part[3])[:5]
        print(f"  {label:<32} the 5 slowest (reaction = INPUT to read + read to STOP written + STOP to the unit; "
              "from read to written the service thread waited w times and was preempted p times): "
              + "; ".join(" = ".join((f"{r * 1000:.2f}", " + ".join(f"{x * 1000:.2f}" for x in (a, b, c)))) + f" (w {v}, p {i})"
                          for a, b, c, r, v, i in slowest))
    for row in rows:
        label = row_label(row["delay_ms"])
        waits = ", ".join(f"{r * 1000:.2f}" for r in sorted(row["behind"])) or "none"
        print(f"  {label:<32} STOPs that waited for an exchange on the line: {len(row['behind'])} (reactions ms: {waits})")
    print("/api/health round trip meanwhile (the client's clock, ms):")
    for row in rows:
        label = row_label(row["delay_ms"])
        h = row["health"]
        print(f"  {label:<32} p50 {h['p50']:.2f}  p99 {h['p99']:.2f}  max {h['max']:.2f}  ({h['n']} requests)")
    print("the loop held over 0.5 ms of CPU at a time (callbacks: count, total ms per second of run, longest ms):")
    for row in rows:
        label = row_label(row["delay_ms"])
        top = sorted(row["held"].items(), key=lambda kv: -sum(kv[1]))[:6]
        print(f"  {label}:")
        for kind, ms in top:
            print(f"    {len(ms):>6}  {sum(ms) / row['elapsed_s']:>6.1f} ms/s  {max(ms):>6.2f}  {kind}")
        for ms, what in row["longest"]:
            print(f"    the longest, {ms:.2f} ms: " + what.replace("\n", "\n    "))
    cpus = normal["cpus"]  # as the rows' processes set them (both from the same arguments)
    where = ("shared by everything" if cpus is None
             else f"service, broker and screens (nice 19) on CPU {cpus[0]}, lasers on CPU {cpus[1]}")
    print(f"CPUs: {where}; the service loop's thread: "
          + ", ".join(f"{row['service_policy']} at nice {row['service_nice']} ({row_label(row['delay_ms'])})" for row in rows)
          + f"{' (--realtime ' + str(REALTIME) + ')' if REALTIME is not None else ''}; its other threads at its nice value")
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; lock-outs acknowledged while re-arming: "
          f"{len(LOCKOUTS)}{' (' + LOCKOUTS[0] + ')' if LOCKOUTS else ''}")
    ok = max(normal["p99"], slow["p99"]) <= 1.0 and slow["p99"] <= 1.2 * normal["p99"]
    behind = normal["n"] - math.ceil(0.99 * normal["n"]) + 1  # how many trials from the worst the p99 is
    which = {1: "the worst", 2: "the second worst", 3: "the third worst"}.get(behind, f"the {behind}th worst")
    print(f"p99 is the nearest rank (of {normal['n']} trials {which}; the worst is the max); goal p99 <= 1 ms in both "
          f"and slow <= 1.2 x normal: {'met' if ok else 'NOT met'} (slow/normal p99 = {slow['p99'] / normal['p99']:.2f}); "
          f"p99 <= 2 ms at the very most: {'met' if max(normal['p99'], slow['p99']) <= 2.0 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "farm":
        asyncio.run(farm(int(sys.argv[2])))
    elif len(sys.argv) > 1 and sys.argv[1] == "bare":
        asyncio.run(bare_process(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] else None))
    elif len(sys.argv) > 1 and sys.argv[1] == "clients":
        asyncio.run(clients(sys.argv[2], sys.argv[3], [int(s) for s in sys.argv[4].split(",")], 4, 20.0))
    else:
        raise SystemExit(main())
