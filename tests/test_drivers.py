"""LaserDriver and CryoDriver against the simulators on real ptys (and TCP)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from typing import Any, AsyncIterator, Iterator

import pytest

from drivers import (
    Busy,
    CryoDriver,
    FaultActive,
    InterlockOpen,
    LaserDriver,
    LinkLost,
    NotAllowedInState,
    NotConnected,
    OutOfRange,
    Preempted,
    RequestTimeout,
    UnknownCommand,
)
from drivers.events import (
    Booted,
    EventGap,
    FaultLatched,
    LineErrorReported,
    LineNoise,
    LinkDown,
    LinkUp,
    Pulse,
    StateChanged,
    TipTelemetry,
    WatchdogExpired,
)
from drivers.models import CryoMode, LaserMode
from simulators.host import SimulatorHost, SimulatorThread
from simulators.units import build_unit


@pytest.fixture
def sims() -> Iterator[SimulatorThread]:
    hosts = [SimulatorHost(*build_unit(kind)) for kind in ("laser", "cryo")]  # type: ignore[arg-type]
    with SimulatorThread(*hosts) as thread:
        yield thread


@pytest.fixture
async def laser(sims: SimulatorThread) -> AsyncIterator[LaserDriver]:
    driver = LaserDriver(sims.hosts[0].addresses.pty)  # type: ignore[arg-type]
    await driver.connect()
    yield driver
    await driver.close()


@pytest.fixture
async def cryo(sims: SimulatorThread) -> AsyncIterator[CryoDriver]:
    driver = CryoDriver(sims.hosts[1].addresses.pty)  # type: ignore[arg-type]
    await driver.connect()
    yield driver
    await driver.close()


async def until(predicate: Any, timeout: float = 3.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_every_laser_command(laser: LaserDriver, sims: SimulatorThread) -> None:
    idn = await laser.idn()
    assert idn.model == "QS-1064" and idn.wavelength_list == [1064, 532] and idn.emax_mj == 1000
    assert await laser.set_watchdog(2000) == 2000
    assert await laser.watchdog() == 2000
    await laser.heartbeat()
    assert await laser.limit_energy(800) == 800
    assert await laser.limit_pulses(30) == 30
    assert await laser.set_wavelength(532) == 532
    assert await laser.set_wavelength(1064) == 1064
    assert await laser.set_energy(450) == 450
    assert await laser.set_rate(10.0) == 10.0
    assert await laser.set_rate(2.5) == 2.5
    assert await laser.set_aim(True) is True
    assert await laser.set_ready_timeout(60) == 60
    assert (await laser.count()).count == 0
    assert await laser.set_service(True) is True
    assert await laser.ready() is LaserMode.CHARGING
    await asyncio.sleep(1.6)
    state = await laser.state()
    assert state.state is LaserMode.READY and state.energy_mj == 450 and state.rate_hz == 2.5 and state.service
    assert await laser.fire(3, rate_hz=2.5, watchdog_ms=2000) == 3
    assert (await laser.count()).count == 3
    assert await laser.standby() is LaserMode.STANDBY
    assert await laser.reset_count() == 0
    assert (await laser.count()).total == 3
    assert await laser.stop() == "STANDBY"
    assert not (await laser.fault()).active
    sims.call("inject_fault", 0, code="F04")
    await asyncio.sleep(0.05)
    assert (await laser.fault()).code == "F04"
    sims.call("remove_fault_cause", 0, code="F04")
    assert await laser.clear_fault() == "STANDBY"


async def test_every_cryo_command(cryo: CryoDriver) -> None:
    idn = await cryo.idn()
    assert idn.model == "CP-2" and idn.cryogen == "N2O" and idn.tmin_c == -89
    assert await cryo.set_target(-60) == -60
    assert await cryo.limit_freeze(12.5) == 12.5
    assert await cryo.set_thaw_min(5) == 5
    assert await cryo.set_telemetry(20) == 20
    assert await cryo.freeze(2.0) is CryoMode.FREEZING
    state = await cryo.state()
    assert state.state is CryoMode.FREEZING and state.target_c == -60 and state.limit_s == 12.5
    assert await cryo.stop() == "THAW"


@pytest.mark.parametrize(
    ("call", "error", "code", "word"),
    [
        (lambda d: d.request("FOO"), UnknownCommand, "E02", "unknown-command"),
        (lambda d: d.set_energy(5000), OutOfRange, "E03", "out-of-range"),
        (lambda d: d.ready(), OutOfRange, "E03", "budget-spent"),
        (lambda d: d.fire(1, rate_hz=1.0), NotAllowedInState, "E04", "not-allowed-in-state"),
    ],
)
async def test_refusals_map_to_exceptions(laser: LaserDriver, call: Any, error: type, code: str, word: str) -> None:
    with pytest.raises(error) as info:
        await call(laser)
    assert (info.value.code, info.value.word) == (code, word)


async def test_input_fault_and_busy_refusals(laser: LaserDriver, sims: SimulatorThread) -> None:
    await laser.limit_pulses(5)
    sims.call("set_input", 0, name="interlock", value=0)
    with pytest.raises(InterlockOpen) as info:
        await laser.ready()
    assert info.value.word == "interlock-open"
    sims.call("set_input", 0, name="interlock", value=1)
    await laser.ready()
    with pytest.raises(Busy):
        await laser.set_energy(10)
    sims.call("inject_fault", 0, code="F04")
    await asyncio.sleep(0.05)
    with pytest.raises(FaultActive):
        await laser.clear_fault()


async def test_retry_uses_the_same_seq_and_the_unit_executes_once(cryo: CryoDriver, sims: SimulatorThread) -> None:
    await cryo.limit_freeze(20)
    executed = sims.call("stats", 1)["executed"]
    sims.call("silence", 1, ms=300)  # the first reply and the first retry's are lost
    assert await cryo.freeze(5) is CryoMode.FREEZING  # executed twice would be E04
    stats = sims.call("stats", 1)
    assert stats["executed"] == executed + 1
    assert stats["retransmits"] == 2
    assert cryo.stats["retries"] == 2


async def test_timeout_after_all_retries(cryo: CryoDriver, sims: SimulatorThread) -> None:
    sims.call("silence", 1, ms=900)
    started = time.monotonic()
    with pytest.raises(RequestTimeout) as info:
        await cryo.state()
    assert info.value.attempts == 3
    assert 0.7 < time.monotonic() - started < 1.0


async def test_each_request_times_out_on_its_own_clock(cryo: CryoDriver, sims: SimulatorThread) -> None:
    """One timer watches every request: it must never fire late for any of them."""
    await cryo.request("STATE?", timeout_s=5.0)  # the timer now waits 5 s
    for _ in range(50):
        await cryo.state()
    await asyncio.sleep(0.3)  # the first short request's deadline has passed: the timer re-arms
    sims.call("silence", 1, ms=900)
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        await cryo.state()
    assert 0.7 < time.monotonic() - started < 1.0
    await until(lambda: cryo.connected, timeout=3)  # after the silence the unit's watchdog needs
    assert (await cryo.state()).state is CryoMode.IDLE


async def test_corrupted_replies_and_garbage_are_survived(laser: LaserDriver, sims: SimulatorThread) -> None:
    noise: list[Any] = []
    laser.add_listener(lambda e: noise.append(e) if isinstance(e, LineNoise) else None)
    sims.call("corrupt_replies", 0, count=1)
    assert (await laser.idn()).model == "QS-1064"
    assert laser.stats["retries"] == 1
    sims.call("garbage", 0, nbytes=100)
    await asyncio.sleep(0.05)
    assert (await laser.state()).state is LaserMode.STANDBY
    assert any(n.reason == "crc" for n in noise)


async def test_events_between_request_and_reply_are_delivered_first(laser: LaserDriver) -> None:
    order: list[str] = []
    laser.add_listener(lambda e: order.append(f"event:{e.state}") if isinstance(e, StateChanged) else None)
    await laser.limit_pulses(3)
    await laser.ready()
    order.append("reply:READY")
    assert order == ["event:CHARGING", "reply:READY"]


async def test_any_number_of_subscribers_get_every_event(laser: LaserDriver, sims: SimulatorThread) -> None:
    subs = [laser.subscribe() for _ in range(3)]
    await laser.limit_pulses(4)
    await laser.set_rate(10.0)
    await laser.ready()
    await asyncio.sleep(1.6)
    sims.call("set_input", 0, name="foot", value=1)
    await asyncio.sleep(0.6)
    for sub in subs:
        seen = []
        while (event := sub.get_nowait()) is not None:
            seen.append(event)
        pulses = [e for e in seen if isinstance(e, Pulse)]
        assert [p.n for p in pulses] == [1, 2, 3, 4]
        assert pulses[0].set_mj == 10 and pulses[0].energy_mj > 0
        sub.close()


async def test_evseq_gap_is_reported_with_count_and_first_missing(laser: LaserDriver, sims: SimulatorThread) -> None:
    gaps: list[EventGap] = []
    laser.add_listener(lambda e: gaps.append(e) if isinstance(e, EventGap) else None)
    await asyncio.sleep(1.1)  # let a TEMP event set the expectation
    sims.call("drop_events", 0, count=2)
    sims.call("set_input", 0, name="interlock", value=0)  # INPUT, lost
    sims.call("set_input", 0, name="interlock", value=1)  # INPUT, lost
    sims.call("set_input", 0, name="key", value=0)  # INPUT, arrives
    await until(lambda: gaps)
    assert gaps[0].missing == 2


async def test_comerr_is_surfaced(laser: LaserDriver) -> None:
    seen: list[Any] = []
    laser.add_listener(seen.append)
    laser._line.write(b">01 HB*0000\r\n")  # a corrupted line as the cable might deliver it
    await until(lambda: any(isinstance(e, LineErrorReported) for e in seen))
    assert [e.reason for e in seen if isinstance(e, LineErrorReported)] == ["crc"]


async def test_watchdog_fires_when_the_owner_stops_feeding_its_lease(sims: SimulatorThread) -> None:
    driver = LaserDriver(sims.hosts[0].addresses.pty, heartbeat_s=0.1, owner_lease_s=0.3)  # type: ignore[arg-type]
    await driver.connect()
    try:
        events: list[Any] = []
        driver.add_listener(events.append)
        for _ in range(15):  # 1.5 s alive: the heartbeat keeps the unit's watchdog quiet
            driver.owner_alive()
            await asyncio.sleep(0.1)
        assert not any(isinstance(e, WatchdogExpired) for e in events)
        # the owner hangs (its loop still runs): the unit's own watchdog event is what counts, however
        # late a starved host gets to read it
        await until(lambda: any(isinstance(e, WatchdogExpired) for e in events), timeout=15)
    finally:
        await driver.close()


async def test_watchdog_fires_when_the_owners_loop_hangs(laser: LaserDriver, sims: SimulatorThread) -> None:
    await laser.limit_pulses(100)
    await laser.ready()
    await asyncio.sleep(1.6)
    sims.call("set_input", 0, name="foot", value=1)
    await asyncio.sleep(0.3)
    assert sims.call("truth", 0)["emitting"] is True
    time.sleep(1.3)  # the whole loop hangs: no heartbeat can leave
    truth = sims.call("truth", 0)
    assert truth["emitting"] is False and truth["shutter_open"] is False
    events: list[Any] = []
    laser.add_listener(events.append)
    await asyncio.sleep(0.1)
    assert any(isinstance(e, WatchdogExpired) for e in events)


async def test_unplug_and_replug_is_reported_and_nothing_is_resent(sims: SimulatorThread, tmp_path: Any) -> None:
    host = SimulatorHost(*build_unit("laser"), link=str(tmp_path / "laser0"))
    sims.submit(host.start())
    driver = LaserDriver(str(tmp_path / "laser0"), backoff_s=(0.05, 0.2))
    await driver.connect()
    try:
        seen: list[Any] = []
        driver.add_listener(seen.append)
        await driver.limit_pulses(20)
        sims.submit(host.unplug())
        await until(lambda: any(isinstance(e, LinkDown) for e in seen))
        with pytest.raises(NotConnected):
            await driver.state()
        sims.submit(host.call("power_cycle"))
        executed = len(sims.submit(host.call("executed")))
        sims.submit(host.replug())
        await until(lambda: any(isinstance(e, LinkUp) for e in seen))
        assert [e.reconnect for e in seen if isinstance(e, LinkUp)] == [True]
        await asyncio.sleep(0.5)
        since = sims.submit(host.call("executed"))[executed:]
        assert set(since) <= {"HB"}  # only the heartbeat: nothing that changes state is re-sent
        state = await driver.state()
        assert state.budget == 0  # the unit was reset: the owner must program it again
    finally:
        await driver.close()
        sims.submit(host.stop())


async def test_silent_unit_is_reported_down_and_reconnected(laser: LaserDriver, sims: SimulatorThread) -> None:
    seen: list[Any] = []
    laser.add_listener(seen.append)
    sims.call("silence", 0, ms=2000, direction="both")
    with pytest.raises(RequestTimeout):
        await laser.state()
    assert any(isinstance(e, LinkDown) and "silent" in e.reason for e in seen)
    with pytest.raises(NotConnected):
        await laser.state()  # nothing is sent while the unit's watchdog runs out
    await until(lambda: any(isinstance(e, LinkUp) for e in seen), timeout=4)
    await until(lambda: sims.call("truth", 0)["powered"] and laser.connected)
    # the unit answers again once its silence is over (on a starved host it may outlast one more
    # silent round of the driver's): ask until it does, within a bound
    end = time.monotonic() + 20
    while True:
        try:
            assert (await laser.idn()).model == "QS-1064"
            break
        except (RequestTimeout, NotConnected, LinkLost):
            if time.monotonic() > end:
                raise
            await until(lambda: laser.connected, timeout=20)


async def test_a_unit_that_stops_answering_is_left_to_its_own_watchdog(laser: LaserDriver, sims: SimulatorThread) -> None:
    """A mute unit that still listens: the host's retries and heartbeats would feed its watchdog
    for ever. After the first unanswered request the host sends nothing until the watchdog fired."""
    await laser.limit_pulses(1000)
    await laser.set_rate(10.0)
    await laser.ready()
    await until(lambda: sims.call("truth", 0)["state"] == "READY")
    sims.call("set_input", 0, name="foot", value=1)
    await until(lambda: sims.call("truth", 0)["state"] == "EMITTING")
    sims.call("silence", 0, ms=60_000, direction="out")  # it hears and obeys, but says nothing
    muted_at = sims.call("stats", 0)["requests"]
    with pytest.raises(RequestTimeout):
        await laser.state()
    sent_by_then = sims.call("stats", 0)["requests"]
    assert sent_by_then - muted_at <= 1 + laser.retries
    await until(lambda: sims.call("truth", 0)["state"] == "STANDBY", timeout=3)  # the unit's watchdog
    assert sims.call("stats", 0)["requests"] == sent_by_then  # silent all the while
    assert laser.silent_until > laser.clock()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_sim_process(port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "devicectl.cli", "sim", "cryo", "--tcp", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(2)]
    assert lines[1].startswith("cryo tcp port: socket://"), f"simulator did not start: {lines}"
    return proc


async def test_simulator_process_restart_over_tcp(tmp_path: Any) -> None:
    port = _free_port()
    proc = _start_sim_process(port)
    driver = CryoDriver(f"socket://127.0.0.1:{port}", backoff_s=(0.05, 0.3))
    try:
        await driver.connect()
        seen: list[Any] = []
        driver.add_listener(seen.append)
        await driver.limit_freeze(30)
        proc.kill()
        proc.wait()
        await until(lambda: any(isinstance(e, LinkDown) for e in seen))
        proc = _start_sim_process(port)
        await until(lambda: any(isinstance(e, LinkUp) for e in seen), timeout=5)
        assert (await driver.state()).limit_s == 0.0  # a new unit: limits lost, none re-sent
        telemetry = driver.subscribe()
        event = await telemetry.get(timeout=2)
        while not isinstance(event, TipTelemetry):
            event = await telemetry.get(timeout=2)
    finally:
        await driver.close()
        proc.kill()
        proc.wait()


async def test_boot_event_restarts_evseq_without_a_gap(laser: LaserDriver, sims: SimulatorThread) -> None:
    seen: list[Any] = []
    laser.add_listener(seen.append)
    await asyncio.sleep(1.1)
    sims.call("power_cycle", 0)
    await until(lambda: any(isinstance(e, Booted) for e in seen))
    assert not any(isinstance(e, EventGap) for e in seen)


async def test_fault_event_is_typed(laser: LaserDriver, sims: SimulatorThread) -> None:
    seen: list[Any] = []
    laser.add_listener(seen.append)
    sims.call("inject_fault", 0, code="F04")
    await until(lambda: any(isinstance(e, FaultLatched) for e in seen))
    fault = next(e for e in seen if isinstance(e, FaultLatched))
    assert (fault.code, fault.text) == ("F04", "coolant")


async def test_fire_is_split_into_bursts_inside_the_watchdog(laser: LaserDriver, sims: SimulatorThread) -> None:
    await laser.limit_pulses(100)
    await laser.set_service(True)
    await laser.set_rate(10.0)
    await laser.ready()
    await asyncio.sleep(1.6)
    seen: list[Any] = []
    laser.add_listener(seen.append)
    assert await laser.fire(20, rate_hz=10.0) == 20
    assert not any(isinstance(e, WatchdogExpired) for e in seen)
    assert (await laser.count()).count == 20


async def test_a_driver_not_connected_fails_loudly() -> None:
    driver = LaserDriver("/dev/does-not-exist")
    with pytest.raises(NotConnected, match="not connected"):
        await driver.state()
    with pytest.raises(NotConnected, match="cannot open"):
        await driver.connect()


def test_posix_port_reads_what_is_there_and_reports_a_vanished_device() -> None:
    """The transport's one-read port: nothing waiting is b"", a closed other end is an error."""
    import os
    import tty

    import serial

    from drivers.transport import _PosixPort

    master, slave = os.openpty()
    tty.setraw(slave)
    port = _PosixPort(os.ttyname(slave), timeout=0)
    try:
        assert port.read(1024) == b""
        os.write(master, b"<01 OK*0000\r\n")
        time.sleep(0.05)
        assert port.read(1024) == b"<01 OK*0000\r\n"
        os.close(master)
        with pytest.raises(serial.SerialException):
            port.read(1024)
    finally:
        port.close()
        os.close(slave)


async def test_stop_goes_before_every_queued_request_and_they_fail(cryo: CryoDriver, sims: SimulatorThread) -> None:
    """LIMIT, then FREEZE queued behind it; a STOP decided meanwhile must go out right after the
    exchange on the wire, and the FREEZE decided before it must never be written."""
    base = len(sims.call("executed", 1))
    limit = asyncio.ensure_future(cryo.limit_freeze(20))
    freeze = asyncio.ensure_future(cryo.freeze(10))
    await asyncio.sleep(0)  # both queued: LIMIT on the wire, FREEZE waiting
    stop = asyncio.ensure_future(cryo.stop())
    assert await limit == 20.0
    assert await stop in ("IDLE", "THAW")
    with pytest.raises(Preempted, match="preempted by STOP"):
        await freeze
    assert sims.call("executed", 1)[base:] == ["LIMIT FREEZE 20.0", "STOP"]


async def test_a_request_under_a_revoked_permit_is_never_written(laser: LaserDriver, sims: SimulatorThread) -> None:
    permit = {"valid": True}
    await laser.limit_pulses(5)
    base = len(sims.call("executed", 0))
    programming = asyncio.ensure_future(laser.set_rate(2.0))
    arming = asyncio.ensure_future(laser.request("READY", guard=lambda: permit["valid"]))
    await asyncio.sleep(0)
    permit["valid"] = False  # a STOP, lock-out or pause revoked it while READY waited its turn
    assert await programming == 2.0
    with pytest.raises(Preempted, match="permit was revoked"):
        await arming
    assert sims.call("executed", 0)[base:] == ["RATE 2.0"]
    assert (await laser.state()).state is LaserMode.STANDBY
