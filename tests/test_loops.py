"""Two loops (devicectl/core/loops.py): the devices' loop and the people's side hand work over to
each other; the service's operations run on the service loop whoever asks, and live messages
reach listeners on the other loop in order, after whatever the service loop already had due."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devicectl.core import loops
from devicectl.core.config import DeviceConfig, load_settings
from devicectl.core.hub import QUEUE_SIZE, Hub
from devicectl.core.loops import BEHIND_NICE, LoopThread, behind, call_on, post, run_on
from devicectl.core.service import Service
from devicectl.web.api import create_app
from simulators.host import SimulatorHost, SimulatorThread
from simulators.units import build_unit
from tests.service_harness import (
    ADMIN_PIN,
    ALL_CHECKED,
    Api,
    BenchProcess,
    ServiceProcess,
    measured_calibration,
)


@pytest.fixture
def other() -> Iterator[LoopThread]:
    thread = LoopThread("other").start()
    yield thread
    thread.stop()


async def _where() -> int:
    return threading.get_ident()


async def _fail() -> None:
    raise LookupError("raised over there")


def test_work_runs_on_the_loop_named_and_its_answer_or_error_comes_back(other: LoopThread) -> None:
    async def scenario() -> None:
        assert await run_on(other.loop, _where()) == other.ident != threading.get_ident()
        assert await run_on(asyncio.get_running_loop(), _where()) == threading.get_ident()  # this loop: a plain await
        assert await run_on(None, _where()) == threading.get_ident()
        with pytest.raises(LookupError, match="raised over there"):
            await run_on(other.loop, _fail())
        assert await call_on(other.loop, threading.get_ident) == other.ident
        with pytest.raises(ZeroDivisionError):
            await call_on(other.loop, lambda: 1 / 0)
        assert await other.run(_where()) == other.ident

    asyncio.run(scenario())


def test_cancelling_the_caller_cancels_the_work_over_there(other: LoopThread) -> None:
    started, ended = threading.Event(), threading.Event()

    async def long_work() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            ended.set()

    async def scenario() -> None:
        caller = asyncio.ensure_future(run_on(other.loop, long_work()))
        await asyncio.to_thread(started.wait, 5)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert await asyncio.to_thread(ended.wait, 5)

    asyncio.run(scenario())


def test_post_runs_on_the_loops_thread_without_waiting(other: LoopThread) -> None:
    seen: list[int] = []
    done = threading.Event()
    post(other.loop, lambda: (seen.append(threading.get_ident()), done.set()))
    assert done.wait(5) and seen == [other.ident]
    post(None, lambda: seen.append(threading.get_ident()))  # no loop: called now
    assert seen[-1] == threading.get_ident()


def test_a_listener_on_another_loop_gets_every_message_in_order_after_what_was_due(other: LoopThread) -> None:
    """What the service loop had due when it published (a STOP's task, say) runs before the
    hand-over; the listener gets every message of the turn, in order, on its own thread."""
    hub = Hub()
    order: list[str] = []
    threads: set[int] = set()
    delivered = threading.Event()

    def sink(message: dict[str, Any]) -> None:
        threads.add(threading.get_ident())
        order.append(f"message {message['n']}")
        if message["n"] == 2:
            delivered.set()

    async def listen() -> None:
        hub.add_sink(sink)

    async def publish() -> None:
        loop = asyncio.get_running_loop()
        loop.call_soon(order.append, "due before")  # e.g. the STOP a fact decided, scheduled as it was decided
        for n in range(3):
            hub.publish({"n": n})
        order.append("published")

    asyncio.run(other.run(listen()))

    async def scenario() -> None:
        await publish()
        await asyncio.sleep(0)  # the turn ends: what was due runs, then the hand-over

    asyncio.run(scenario())
    assert delivered.wait(5)
    assert order == ["published", "due before", "message 0", "message 1", "message 2"]
    assert threads == {other.ident}


def test_a_slow_screen_on_another_loop_loses_its_oldest_messages(other: LoopThread) -> None:
    hub = Hub()

    async def subscribe() -> asyncio.Queue[dict[str, Any]]:
        return hub.subscribe()

    queue = asyncio.run(other.run(subscribe()))

    async def flood() -> None:
        for n in range(QUEUE_SIZE + 5):
            hub.publish({"n": n})

    asyncio.run(flood())

    async def drain() -> list[int]:
        while queue.qsize() < QUEUE_SIZE:
            await asyncio.sleep(0.01)
        return [queue.get_nowait()["n"] for _ in range(queue.qsize())]

    got = asyncio.run(other.run(drain()))
    assert got == list(range(5, QUEUE_SIZE + 5)) and hub.dropped == 5


def test_a_listener_on_the_publishers_thread_gets_each_message_at_once() -> None:
    hub = Hub()
    got: list[dict[str, Any]] = []
    hub.add_sink(got.append)
    hub.publish({"n": 1})
    assert got == [{"n": 1}]


def test_the_api_runs_each_operation_on_the_service_loop(tmp_path: Path) -> None:
    """Requests are served on one loop and answered on it; the endpoint, the access rule and the
    token's check run on the service loop, and a refusal raised there is answered as such."""
    service = Service(load_settings(None, data_dir=tmp_path))
    app = create_app(service, manage_lifecycle=False)
    devices_loop = LoopThread("service").start()
    ran_on: dict[str, set[int]] = {"devices": set(), "authenticate": set()}
    devices, authenticate = service.devices, service.accounts.authenticate

    def watched_devices() -> list[dict[str, Any]]:
        ran_on["devices"].add(threading.get_ident())
        return devices()

    async def watched_authenticate(token: str | None) -> Any:
        ran_on["authenticate"].add(threading.get_ident())
        return await authenticate(token)

    service.devices = watched_devices  # type: ignore[method-assign]
    service.accounts.authenticate = watched_authenticate  # type: ignore[method-assign]

    async def scenario() -> None:
        await devices_loop.run(service.start(asyncio.get_running_loop()))
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge") as client:
                first = (await client.post("/api/login", json={"name": "admin", "pin": service.first_admin_pin})).json()
                headers = {"Authorization": f"Bearer {first['token']}"}
                changed = await client.post("/api/me/pin", json={"old_pin": service.first_admin_pin, "new_pin": "739104"},
                                            headers=headers)
                assert changed.status_code == 200
                token = (await client.post("/api/login", json={"name": "admin", "pin": "739104"})).json()["token"]
                headers = {"Authorization": f"Bearer {token}"}
                assert (await client.get("/api/devices", headers=headers)).status_code == 200
                refused = await client.get("/api/sessions/999", headers=headers)  # the access rule's, raised there
                assert refused.status_code == 403 and "only a practitioner" in refused.json()["error"]
                queue = service.hub.subscribe()  # a screen's queue, on this loop
                await service.call(lambda: [service.hub.publish({"n": n}) for n in range(3)])
                assert [(await asyncio.wait_for(queue.get(), 5))["n"] for _ in range(3)] == [0, 1, 2]
        finally:
            await devices_loop.run(service.stop())

    try:
        asyncio.run(scenario())
    finally:
        devices_loop.stop()
    assert ran_on == {"devices": {devices_loop.ident}, "authenticate": {devices_loop.ident}}


def test_a_process_the_service_starts_runs_behind_it() -> None:
    """A process does not share the service's GIL: behind the service, it never holds the devices' loop."""
    child = subprocess.run(behind([sys.executable, "-c", "import os; print(os.nice(0))"]),
                           capture_output=True, text=True, timeout=30, check=True)
    assert int(child.stdout) == min(os.nice(0) + BEHIND_NICE, 19) and BEHIND_NICE > 0


def test_without_nice_a_process_is_started_as_it_is(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(loops.shutil, "which", lambda name: None)
    assert behind(["chromium", "--headless"]) == ["chromium", "--headless"]


@pytest.mark.parametrize("realtime", [None, 10], ids=["normal-priority", "real-time-priority-as-shipped"])
def test_a_screens_stop_during_an_arm_in_flight_wins_across_the_loops(tmp_path: Path, realtime: int | None) -> None:
    """Two requests from the edge loop: an arm, held on the service loop just before it asks the
    unit anything, and a STOP from another screen. The STOP is decided and confirmed on the service
    loop while the arm is in flight; the arm then finds its permit revoked and never writes READY.
    Also with the service loop's thread at the real-time priority the shipped files give it (where
    the system grants it), which changes which thread runs first, not who wins."""
    link = tmp_path / "laser"
    host = SimulatorHost(*build_unit("laser"), link=str(link))
    with SimulatorThread(host) as sims:
        service = Service(load_settings(None, data_dir=tmp_path / "data",
                                        devices=[DeviceConfig(name="laser", type="laser", port=str(link))]))
        app = create_app(service, manage_lifecycle=False)
        devices_loop = LoopThread("service").start()
        if realtime is not None:  # as devicectl serve asks for it (refused: the race runs at normal priority)
            asyncio.run(call_on(devices_loop.loop, loops.run_realtime, realtime))
        supervisor = service.supervisors["laser"]
        arm_in_flight, stop_answered = threading.Event(), threading.Event()
        check_idle = supervisor._check_idle_before_actuating

        async def held_check() -> None:  # the arm's first step toward the unit, on the service loop
            arm_in_flight.set()
            await asyncio.to_thread(stop_answered.wait, 10)
            await check_idle()

        supervisor._check_idle_before_actuating = held_check  # type: ignore[method-assign]

        async def scenario() -> tuple[httpx.Response, dict[str, Any]]:
            await devices_loop.run(service.start(asyncio.get_running_loop()))
            try:
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge") as api:
                    async def user(name: str, pin: str) -> dict[str, str]:
                        token = (await api.post("/api/login", json={"name": name, "pin": pin})).json()["token"]
                        return {"Authorization": f"Bearer {token}"}

                    admin = await user("admin", service.first_admin_pin or "")
                    await api.post("/api/me/pin", json={"old_pin": service.first_admin_pin, "new_pin": "739104"},
                                   headers=admin)
                    admin = await user("admin", "739104")
                    for name, role, pin in (("pat", "practitioner", "4827"), ("tech", "technician", "3916")):
                        created = await api.post("/api/users", json={"name": name, "role": role, "pin": "583920"},
                                                 headers=admin)
                        assert created.status_code == 201, created.text
                        first = await user(name, "583920")
                        await api.post("/api/me/pin", json={"old_pin": "583920", "new_pin": pin}, headers=first)
                    pat, tech = await user("pat", "4827"), await user("tech", "3916")
                    while not supervisor.status.serial or supervisor.kernel.spot_mm is None:
                        await asyncio.sleep(0.02)
                    recorded = await api.post("/api/calibrations/measured", headers=tech, json=measured_calibration(
                        "laser", supervisor.status.serial))
                    assert recorded.status_code == 201, recorded.text
                    patient = (await api.post("/api/patients", headers=pat)).json()["patient_id"]
                    sid = (await api.post("/api/sessions", headers=pat, json={
                        "patient_id": patient, "device": "laser", "indication": "tattoo", "skin_type": 2,
                        "area_cm2": 2.0, "site": "left forearm", "inks": ["black"]})).json()["id"]
                    await api.put(f"/api/sessions/{sid}/checklist", headers=pat, json=ALL_CHECKED)
                    assert (await api.post(f"/api/sessions/{sid}/start", headers=pat)).status_code == 200
                    arm = asyncio.ensure_future(api.post(f"/api/sessions/{sid}/arm", headers=pat))
                    await asyncio.to_thread(arm_in_flight.wait, 10)
                    stop = (await api.post("/api/stop", headers=tech, json={"origin": "screen"})).json()
                    stop_answered.set()
                    return await arm, stop
            finally:
                stop_answered.set()
                await devices_loop.run(service.stop())

        try:
            armed, stopped = asyncio.run(scenario())
        finally:
            devices_loop.stop()
        assert stopped == {"stopped": ["laser"], "unconfirmed": []}
        assert armed.status_code == 409 and "cancelled before the unit was armed" in armed.json()["error"]
        executed = sims.call("executed")
        assert "READY" not in executed and "STOP" in executed
        assert sims.call("truth", 0)["state"] == "STANDBY"


def test_the_devices_loop_asks_for_real_time_priority_which_its_later_threads_do_not_inherit() -> None:
    """In a process of its own, for real: granted (root with CAP_SYS_NICE, or LimitRTPRIO), the thread
    runs SCHED_FIFO and a thread it starts afterwards does not; refused, the system's reason is given."""
    script = """
import os, threading
from devicectl.core.loops import run_realtime
refused = run_realtime(1)
seen = []
later = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0)))
later.start(); later.join()
print(repr(refused), os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK, seen[0], os.SCHED_FIFO, os.SCHED_OTHER)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True)
    refused, mine, later, fifo, other = out.stdout.rsplit(maxsplit=4)
    if refused == "None":
        assert (int(mine), int(later)) == (int(fifo), int(other))
    else:
        assert "not permitted" in refused.lower() and int(mine) == int(other)


def test_the_administrator_is_told_whether_real_time_priority_was_granted(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[int, int, int]] = []
    monkeypatch.setattr(loops.os, "sched_setscheduler", lambda pid, policy, param: asked.append(
        (pid, policy, param.sched_priority)))
    assert loops.ask_realtime(None) is None and asked == []
    granted = loops.ask_realtime(10)
    assert granted is not None and granted.refused is None and granted.granted
    assert granted.note == "the devices' loop runs at real-time priority 10 (SCHED_FIFO)"
    assert asked == [(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, 10)]  # this thread; not the threads it starts

    def refuse(*_: Any) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(loops.os, "sched_setscheduler", refuse)
    refused = loops.ask_realtime(10)
    assert refused is not None and refused.refused == "Operation not permitted" and not refused.granted
    assert "refused (Operation not permitted)" in refused.note and "normal priority" in refused.note
    assert "LimitRTPRIO=10" in refused.note


def test_the_real_time_priority_a_running_service_asked_for_is_said_and_audited(tmp_path: Path) -> None:
    """``devicectl serve`` with ``realtime_priority``, for real: the start-up output and the audit say
    whether it was granted (here as the system decides), and only the devices' loop (the main thread)
    runs SCHED_FIFO. A service that runs with less than it was configured for says so (H26)."""
    bench = BenchProcess(tmp_path)
    service = ServiceProcess(tmp_path, bench)
    service.config.write_text("realtime_priority = 10\n" + service.config.read_text())  # a top-level key
    service.start(users=True)
    try:
        assert service.proc is not None
        pid = service.proc.pid
        granted = os.sched_getscheduler(pid) & ~os.SCHED_RESET_ON_FORK == os.SCHED_FIFO
        priority = os.sched_getparam(pid).sched_priority
        others = {os.sched_getscheduler(int(tid)) for tid in os.listdir(f"/proc/{pid}/task") if int(tid) != pid}
        admin = Api(service.url, "admin", ADMIN_PIN)
        entries = admin.call("GET", "/api/audit")
        health = admin.call("GET", "/api/health")
        [entry] = [e for e in entries if e["action"] == "service.realtime_priority"]
        said = "".join(service.output)
    finally:
        service.stop()
        bench.stop()
    assert others == {os.SCHED_OTHER}
    assert entry["actor"] == "system" and entry["detail"]["priority"] == 10 and entry["detail"]["granted"] is granted
    assert health["realtime"] == {"priority": 10, "granted": granted}  # a monitor polling the service sees it too
    if granted:
        assert entry["detail"]["refused"] is None and "the devices' loop runs at real-time priority 10" in said
        assert priority == 10
    else:
        assert entry["detail"]["refused"] and "realtime_priority 10 was refused" in said and "LimitRTPRIO=10" in said


@pytest.mark.parametrize("priority", [0, 100])
def test_a_real_time_priority_outside_1_to_99_is_refused(tmp_path: Path, priority: int) -> None:
    with pytest.raises(ValueError, match="realtime_priority"):
        load_settings(None, data_dir=tmp_path, realtime_priority=priority)
