"""The supervisor between a real driver (on a pty to a simulator) and the kernel."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Literal

import pytest

from devicectl.core.config import DeviceConfig
from devicectl.core.hub import Hub
from devicectl.core.supervisor import DeviceSupervisor
from drivers import DriverError, NotConnected
from safety import facts as F
from safety.cryo_kernel import CryoKernel
from safety.decisions import Refuse
from simulators.host import SimulatorHost, SimulatorThread
from simulators.units import build_unit
from tests.safety_scenarios import CONTEXT, CRYO_PLAN, GOOD, LASER_PLAN


async def until(predicate: Any, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met")


@contextlib.asynccontextmanager
async def supervised(tmp_path: Any, kind: Literal["laser", "cryo"] = "laser") -> AsyncIterator[tuple[DeviceSupervisor, SimulatorThread]]:
    """A simulated unit on a pty and a supervisor connected to it; closed afterwards."""
    host = SimulatorHost(*build_unit(kind), link=str(tmp_path / kind))
    with SimulatorThread(host) as sims:
        supervisor = DeviceSupervisor(DeviceConfig(name=kind, type=kind, port=str(tmp_path / kind)), Hub(),
                                      lambda kind, data: None)
        await supervisor.start()
        try:
            await until(lambda: supervisor.status.connected)
            yield supervisor, sims
        finally:
            await supervisor.close()


async def test_a_lost_link_cannot_be_reconfirmed_until_limits_are_programmed_again(tmp_path: Any) -> None:
    host = SimulatorHost(*build_unit("laser"), link=str(tmp_path / "laser"))
    with SimulatorThread(host) as sims:
        supervisor = DeviceSupervisor(DeviceConfig(name="laser", type="laser", port=str(tmp_path / "laser")), Hub(),
                                      lambda kind, data: None)
        supervisor.driver.backoff_s = (0.05, 0.2)
        await supervisor.start()
        try:
            await until(lambda: supervisor.status.connected)
            await supervisor.run_decisions(F.SessionOpened(LASER_PLAN, supervisor.clock()))
            sims.submit(host.unplug())
            await until(lambda: supervisor.kernel.paused is not None)
            await asyncio.sleep(0.3)
            refused = supervisor.handle(F.Reconfirmed("practitioner", supervisor.clock()))
            assert isinstance(refused[0], Refuse) and "programmed again" in refused[0].reason
            sims.submit(host.replug())
            await until(lambda: supervisor.kernel.reprogrammed, timeout=8)
            assert f"LIMIT PULSES {LASER_PLAN.pulse_budget}" in sims.call("executed")
            assert supervisor.handle(F.Reconfirmed("practitioner", supervisor.clock())) == []
            assert supervisor.kernel.paused is None and not supervisor.kernel.armed
        finally:
            await supervisor.close()


async def test_swapped_cables_are_refused_naming_both(tmp_path: Any) -> None:
    """The laser's port configured as the cryo unit: never 'connected', never used."""
    host = SimulatorHost(*build_unit("laser"), link=str(tmp_path / "laser"))
    with SimulatorThread(host):
        supervisor = DeviceSupervisor(DeviceConfig(name="cryo", type="cryo", port=str(tmp_path / "laser")), Hub(),
                                      lambda kind, data: None)
        await supervisor.start()
        try:
            await until(lambda: supervisor.status.refused is not None)
            assert not supervisor.status.connected
            assert "QS-1064" in supervisor.status.refused and "CP-2" in supervisor.status.refused
            assert "check the cables" in supervisor.status.refused
        finally:
            await supervisor.close()


async def test_a_laser_that_ignores_stop_is_left_to_its_watchdog_and_locked(tmp_path: Any) -> None:
    """A unit over a pty that answers STOP with READY: never reported stopped; the host goes
    silent so the unit's watchdog stops it, and the device is locked with the alarm."""
    async with supervised(tmp_path) as (supervisor, sims):
        try:
            await supervisor.run_decisions(F.SessionOpened(LASER_PLAN, supervisor.clock()))
            await until(lambda: supervisor.kernel.spot_mm is not None, timeout=5)
            sims.call("ignore_stop", 0, on=True)
            await supervisor.request(F.ArmRequested("practitioner", GOOD, CONTEXT, supervisor.clock()))
            await until(lambda: sims.call("truth", 0)["state"] == "READY")
            confirmed = await supervisor.stop_and_confirm("test")
            assert confirmed is False
            assert supervisor.kernel.locked and "did not confirm STOP" in supervisor.kernel.locked
            assert supervisor.status.alarm and "emergency stop" in supervisor.status.alarm
            await until(lambda: sims.call("truth", 0)["state"] == "STANDBY", timeout=3)  # its watchdog
            truth = sims.call("truth", 0)
            assert truth["watchdog_fired_at"], "the unit's own watchdog ended it"
        finally:
            sims.call("ignore_stop", 0, on=False)


async def test_a_supervisor_started_late_still_identifies_its_unit(tmp_path: Any) -> None:
    """Built, then started after longer than its owner lease (migrations, a slow start-up): the
    lease starts at start(), and a link-up that could not identify the unit is tried again."""
    host = SimulatorHost(*build_unit("laser"), link=str(tmp_path / "laser"))
    with SimulatorThread(host):
        supervisor = DeviceSupervisor(DeviceConfig(name="laser", type="laser", port=str(tmp_path / "laser")), Hub(),
                                      lambda kind, data: None)
        await asyncio.sleep(0.7)  # the scenario: longer than the 0.5 s lease between building and starting
        await supervisor.start()
        try:
            await until(lambda: supervisor.status.connected, timeout=5)
            assert supervisor.status.serial is not None
        finally:
            await supervisor.close()


async def test_a_refused_programming_step_over_a_pty_fails_the_session_opening(tmp_path: Any) -> None:
    """The unit refuses THAWMIN (one failed step): opening the session raises with the step named,
    so the service never reports a session active on unprogrammed limits."""
    async with supervised(tmp_path, "cryo") as (supervisor, sims):
        sims.call("fail_next", 0, command="THAWMIN", code="E03", word="out-of-range")
        with pytest.raises(DriverError, match="THAWMIN"):
            await supervisor.run_decisions(F.SessionOpened(CRYO_PLAN, supervisor.clock()))


async def test_a_cryo_unit_rebooted_mid_freeze_over_a_pty_never_wedges_the_kernel(tmp_path: Any) -> None:
    host = SimulatorHost(*build_unit("cryo"), link=str(tmp_path / "cryo"))
    recorded: list[tuple[str, dict[str, Any]]] = []
    with SimulatorThread(host) as sims:
        supervisor = DeviceSupervisor(DeviceConfig(name="cryo", type="cryo", port=str(tmp_path / "cryo")), Hub(),
                                      lambda kind, data: recorded.append((kind, data)))
        supervisor.session_id = 1
        await supervisor.start()
        try:
            await until(lambda: supervisor.status.connected)
            await supervisor.run_decisions(F.SessionOpened(CRYO_PLAN, supervisor.clock()))
            await supervisor.request(F.FreezeRequested("practitioner", 10.0, GOOD, CONTEXT, supervisor.clock()))
            kernel = supervisor.kernel
            assert isinstance(kernel, CryoKernel)
            await until(lambda: kernel.freezing_since is not None)
            sims.call("power_cycle", 0)
            await until(lambda: kernel.freezing_since is None and kernel.paused is not None)
            assert kernel.cycles_done == 1 and kernel.exposure_s > 0
            assert any(kind == "freeze" and data["cause"] == "lost" for kind, data in recorded)
            await until(lambda: kernel.reprogrammed, timeout=8)
            assert supervisor.handle(F.Reconfirmed("practitioner", supervisor.clock())) == []
            later = supervisor.clock() + CRYO_PLAN.thaw_min_s + 1
            decisions = kernel.handle(F.FreezeRequested("practitioner", 2.0, GOOD, CONTEXT, later))
            assert not any("already under way" in getattr(d, "reason", "") for d in decisions)
        finally:
            await supervisor.close()


@pytest.mark.parametrize("failure", [NotConnected("the line closed under the STOP"), DriverError("write failed")])
async def test_a_stop_failing_in_its_first_step_is_escalated_after_the_decision_is_reported(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch, failure: Exception) -> None:
    """The STOP's first step runs inside the decision (H26). If it fails there, the decision is still
    reported and recorded first and the escalation it led to after it: the record never shows an
    unconfirmed STOP before the STOP that was asked for."""
    async with supervised(tmp_path) as (supervisor, sims):
        await supervisor.run_decisions(F.SessionOpened(LASER_PLAN, supervisor.clock()))
        await until(lambda: supervisor.kernel.spot_mm is not None, timeout=5)
        await supervisor.request(F.ArmRequested("practitioner", GOOD, CONTEXT, supervisor.clock()))
        await until(lambda: sims.call("truth", 0)["state"] == "READY")
        reported: list[str] = []
        supervisor.decision_listeners.append(lambda fact, decisions: reported.append(type(fact).__name__))
        calls: list[str] = []

        async def failing_stop() -> str:
            calls.append("STOP")
            raise failure

        monkeypatch.setattr(supervisor.driver, "stop", failing_stop)
        confirmed = supervisor.stop_and_confirm("test")
        assert calls and reported == ["StopRequested"]  # the STOP was tried inside the decision, and failed
        assert await confirmed is False
        assert reported[0] == "StopRequested" and reported[-1] == "StopUnconfirmed"  # going silent is a LinkLost between
        assert supervisor.kernel.locked and "did not confirm STOP" in supervisor.kernel.locked
        assert supervisor.status.alarm and "emergency stop" in supervisor.status.alarm
        await until(lambda: sims.call("truth", 0)["state"] == "STANDBY", timeout=3)  # the host went silent
        assert sims.call("truth", 0)["watchdog_fired_at"], "the unit's own watchdog ended it"


async def test_a_stop_is_on_a_free_line_before_the_decision_returns(tmp_path: Any) -> None:
    """A person's STOP and an interlock's: the STOP is written in the step that decided it, not in
    a later turn of the loop (H26: the hop was the largest share of the reaction under load)."""
    from drivers.events import LaserInputs

    async with supervised(tmp_path) as (supervisor, sims):
        driver = supervisor.driver
        written: list[bytes] = []
        write = driver._line.write

        def recorded(data: bytes) -> None:
            written.append(data)
            write(data)

        driver._line.write = recorded  # type: ignore[method-assign]
        await until(lambda: not driver._busy)  # nothing awaited between this and the STOP below
        confirmed = supervisor.stop_and_confirm("test")
        assert any(b" STOP" in data for data in written), "the STOP waited for another turn of the loop"
        assert await confirmed is True

        await supervisor.run_decisions(F.SessionOpened(LASER_PLAN, supervisor.clock()))
        await until(lambda: supervisor.kernel.spot_mm is not None, timeout=5)
        await supervisor.request(F.ArmRequested("practitioner", GOOD, CONTEXT, supervisor.clock()))
        at_the_event: list[tuple[bool, bool]] = []  # (the line was free, a STOP was written in the event's step)
        dispatch = driver._dispatch

        def watched(event: Any) -> None:
            free, before = not driver._busy, len(written)
            dispatch(event)
            if isinstance(event, LaserInputs) and not event.interlock:
                at_the_event.append((free, any(b" STOP" in data for data in written[before:])))

        driver._dispatch = watched  # type: ignore[method-assign]
        sims.call("set_input", 0, name="interlock", value=0)
        await until(lambda: bool(at_the_event) and sims.call("truth", 0)["state"] == "STANDBY")
        free, stopped = at_the_event[0]
        assert stopped or not free, "the interlock's STOP waited for another turn of the loop on a free line"
