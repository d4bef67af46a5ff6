"""Named regression cases: one seed plus a forced scenario for each known fail-safe defect.

Each case runs a ``World`` whose practitioners follow a fixed script (the seed still decides the
line latencies and the units' noise) and strikes one fault at one moment. ``check`` names the
invariant the defect breaks. tests/test_dst.py runs every case; a case whose defect is still
present is marked ``xfail(strict=True)`` there (``PENDING_FIX``), so the mark must go when the fix
lands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from devicectl.core.sessions import SessionError

from .invariants import CHECKS
from .world import ALL_CHECKED, CHECKS_PENDING_FIX, PRACTITIONER, SECOND_PRACTITIONER, World

Scenario = Callable[[World], Awaitable[None]]


@dataclass(frozen=True)
class Regression:
    name: str
    defect: str
    seed: int
    scenario: Scenario | None  # None: the seed's own random world, with only ``faults``
    check: str  # the invariant the defect breaks
    faults: frozenset[str] = frozenset()
    tabs: int = 1

    def world(self, **overrides: Any) -> World:
        """Every invariant that holds today, and the one this defect breaks."""
        checks = (CHECKS - CHECKS_PENDING_FIX) | {self.check}
        return World(self.seed, scenario=self.scenario, faults=self.faults, checks=checks, tabs=self.tabs, **overrides)


# ----------------------------------------------------------------------------- script helpers
async def laser_session(world: World, budget: int = 10, rate_hz: float = 5.0) -> int:
    sessions, user = world.sessions, PRACTITIONER
    patient = await sessions.new_patient(user)
    sid = (await sessions.create(user, patient, "laser", {"indication": "tattoo", "skin_type": 2, "area_cm2": 2.0,
                                                          "site": "left forearm", "inks": ["black"]}))["id"]
    await sessions.edit(user, sid, {"pulse_budget": budget, "rate_hz": rate_hz})
    await sessions.set_checklist(user, sid, ALL_CHECKED)
    await sessions.start(user, sid)
    world.current["laser"] = sid
    await until(world, lambda: world.supervisors["laser"].status.details.get("spot_mm") is not None)
    return sid


async def cryo_session(world: World, indication: str = "scar") -> int:
    sessions, user = world.sessions, PRACTITIONER
    patient = await sessions.new_patient(user)
    sid = (await sessions.create(user, patient, "cryo", {"indication": indication, "skin_type": 2, "area_cm2": 0.5,
                                                         "site": "back"}))["id"]
    await sessions.set_checklist(user, sid, ALL_CHECKED)
    await sessions.start(user, sid)
    world.current["cryo"] = sid
    return sid


async def until(world: World, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = world.now() + timeout_s
    while not predicate():
        if world.now() > deadline:
            world.checker.fail("scenario", "a scripted condition was never reached")
            return
        await asyncio.sleep(0.01)


def laser_state(world: World) -> str:
    return str(world.ports["laser"].unit.model.state)  # type: ignore[attr-defined]


async def arm(world: World, sid: int) -> None:
    await world.act("arm", world.sessions.arm(PRACTITIONER, sid))
    await until(world, lambda: laser_state(world) == "READY")


def foot(world: World, down: bool) -> None:
    world.ports["laser"].call("set_input", name="foot", value=int(down))


# ----------------------------------------------------------------------------- the defects
async def ignores_stop(world: World) -> None:
    """a. The unit answers STOP with its state and carries on firing."""
    sid = await laser_session(world, budget=30, rate_hz=2.0)
    await arm(world, sid)
    foot(world, True)
    await asyncio.sleep(0.5)
    world.ports["laser"].call("ignore_stop", on=True)
    asyncio.ensure_future(world.sessions.stop(PRACTITIONER, "api", "laser"))
    await asyncio.sleep(4.0)
    foot(world, False)


async def mute_while_firing(world: World) -> None:
    """b. The unit goes mute while firing: the host's retries and reconnects feed its watchdog."""
    sid = await laser_session(world, budget=30, rate_hz=2.0)
    await arm(world, sid)
    foot(world, True)
    await asyncio.sleep(0.5)
    world.ports["laser"].call("mute", on=True)
    await asyncio.sleep(6.0)
    foot(world, False)
    world.ports["laser"].call("mute", on=False)


async def stop_during_arm(world: World) -> None:
    """c. STOP while an arm is being programmed: LIMIT PULSES n, STOP, READY on the wire."""
    sid = await laser_session(world, budget=10)
    task = asyncio.get_running_loop().create_task(world.act("arm", world.sessions.arm(PRACTITIONER, sid)))
    await until(world, lambda: any(b"LIMIT PULSES" in line for _, u, d, line in list(world.wire.lines)[-3:] if d == ">"))
    asyncio.ensure_future(world.sessions.stop(SECOND_PRACTITIONER, "ui", "laser"))
    await task
    await asyncio.sleep(3.0)


async def pulses_while_unplugged(world: World) -> None:
    """d. Pulses fired while the cable was out are lost to the budget and the records."""
    sid = await laser_session(world, budget=30, rate_hz=5.0)
    await arm(world, sid)
    foot(world, True)
    await asyncio.sleep(0.3)
    world.ports["laser"].unplug()
    await asyncio.sleep(0.6)
    world.ports["laser"].replug()
    await asyncio.sleep(2.0)
    foot(world, False)
    await asyncio.sleep(1.0)


async def lockout_then_completed(world: World) -> None:
    """e. A lock-out is not recorded with the session, and the session still ends 'completed'."""
    sid = await laser_session(world, budget=10)
    world.injecting_pulses = True
    world.ports["laser"].call("uncommanded_pulse", count=1)
    world.injecting_pulses = False
    await until(world, lambda: world.supervisors["laser"].kernel.locked is not None)
    locked = world.supervisors["laser"].kernel.locked
    await world.act("end", world.sessions.end(PRACTITIONER, sid))
    world.checker.after_end("laser", sid, locked)


async def new_session_clears_lockout(world: World) -> None:
    """f. Opening a new session clears a lock-out nobody acknowledged."""
    sid = await laser_session(world, budget=10)
    world.injecting_pulses = True
    world.ports["laser"].call("uncommanded_pulse", count=1)
    world.injecting_pulses = False
    await until(world, lambda: world.supervisors["laser"].kernel.locked is not None)
    await world.act("end", world.sessions.end(PRACTITIONER, sid))
    await world.act("start", laser_session(world, budget=10))
    await asyncio.sleep(1.0)


async def failed_programming_step(world: World) -> None:
    """g. THAWMIN refused at session start: the session is 'active' anyway."""
    world.ports["cryo"].call("fail_next", command="THAWMIN", code="E03", word="out-of-range")
    try:
        sid = await cryo_session(world)
    except SessionError as refused:  # the session is not started, with the reason
        if "THAWMIN" not in str(refused):
            world.checker.fail("limits-programmed", f"the refusal does not name the failed step: {refused}")
        sid = int(world.store.one("SELECT MAX(id) AS id FROM sessions")["id"])
    await asyncio.sleep(0.5)
    row = world.store.one("SELECT state FROM sessions WHERE id = ?", (sid,))
    model: Any = world.ports["cryo"].unit.model
    plan: Any = world.supervisors["cryo"].kernel.plan
    if row["state"] == "active" and plan is not None and int(model.thawmin) != plan.thaw_min_s:
        world.checker.fail("limits-programmed", f"session {sid} is active but the unit holds THAWMIN {model.thawmin}, "
                                                f"not the plan's {plan.thaw_min_s}")


async def rearm_budget(world: World) -> None:
    """h. Re-arm sends LIMIT PULSES <remaining> without COUNT RESET: a 10-pulse plan delivers 7."""
    sid = await laser_session(world, budget=10, rate_hz=5.0)
    await arm(world, sid)
    foot(world, True)
    await until(world, lambda: world.supervisors["laser"].kernel.pulses >= 3)
    foot(world, False)
    await asyncio.sleep(0.5)
    asyncio.ensure_future(world.sessions.stop(PRACTITIONER, "ui", "laser"))
    await asyncio.sleep(0.5)
    await arm(world, sid)
    foot(world, True)
    await asyncio.sleep(4.0)
    foot(world, False)
    await asyncio.sleep(1.0)
    delivered = world.checker.devices["laser"].session_pulses.get(sid, 0)
    if delivered != 10:
        world.checker.fail("budget-delivered", f"a 10-pulse plan delivered {delivered} pulses")


async def double_arm(world: World) -> None:
    """h. A double-tapped ARM ends in a STOP instead of READY."""
    sid = await laser_session(world, budget=10)
    await world.act("double arm", asyncio.gather(world.sessions.arm(PRACTITIONER, sid), world.sessions.arm(PRACTITIONER, sid),
                                                 return_exceptions=True))
    await asyncio.sleep(2.5)
    if laser_state(world) != "READY" or not world.supervisors["laser"].kernel.armed:
        world.checker.fail("double-arm", f"after a double-tapped ARM the laser is {laser_state(world)}, "
                                         f"armed={world.supervisors['laser'].kernel.armed}")


async def cryo_reboot_mid_freeze(world: World) -> None:
    """i. The cryo unit reboots mid-freeze: 'a freeze is already under way' forever."""
    sid = await cryo_session(world, "scar")
    await world.act("freeze", world.sessions.freeze(PRACTITIONER, sid, 10.0))
    await asyncio.sleep(2.0)
    world.ports["cryo"].call("power_cycle")
    await asyncio.sleep(35.0)  # the thaw the plan asks for, and the limits programmed again
    await world.act("reconfirm", world.sessions.reconfirm(PRACTITIONER, sid))
    try:
        await world.sessions.freeze(PRACTITIONER, sid, 5.0)
    except SessionError as exc:
        if "already under way" in str(exc):
            world.checker.fail("freeze-after-reboot", f"after the reboot every freeze is refused: {exc}")


async def state_in_flight_at_stop(world: World) -> None:
    """j. A STATE event in flight when a STOP is decided is judged uncommanded (false lock-out)."""
    sid = await laser_session(world, budget=30, rate_hz=2.0)
    await arm(world, sid)
    foot(world, True)
    await asyncio.sleep(1.0)
    foot(world, False)  # the unit says STATE READY (foot) ...
    asyncio.ensure_future(world.sessions.stop(PRACTITIONER, "ui", "laser"))  # ... while the host decides STOP
    await asyncio.sleep(2.0)
    locked = world.supervisors["laser"].kernel.locked
    if locked:
        world.checker.fail("false-lockout", f"a STOP with a STATE event in flight locked the laser: {locked}")


async def limit_event_gap(world: World) -> None:
    """j. ``LIMIT kind=pulses`` at the end of the budget gives a false 'events lost' STOP."""
    sid = await laser_session(world, budget=5, rate_hz=5.0)
    reasons: list[str] = []
    world.supervisors["laser"].decision_listeners.append(
        lambda fact, decisions: reasons.extend(getattr(d, "reason", "") for d in decisions))
    await arm(world, sid)
    foot(world, True)
    await asyncio.sleep(2.0)
    foot(world, False)
    await asyncio.sleep(1.0)
    lost = [r for r in reasons if "lost" in r or "unreadable" in r]
    if lost:
        world.checker.fail("false-gap", f"the unit's LIMIT event was taken for lost events: {lost[0]}")


async def stop_preempts_queue(world: World) -> None:
    """A STOP decided while the service's own requests queue up (poll, counts) goes out next: the
    queued requests fail instead of being written ahead of it (the unit keeps firing meanwhile)."""
    sid = await laser_session(world, budget=30, rate_hz=5.0)
    await arm(world, sid)
    foot(world, True)
    await asyncio.sleep(0.5)
    written: list[bytes] = []
    world.ports["laser"].on_host_write.append(lambda port, line: written.append(line))
    driver = world.supervisors["laser"].driver
    queued = [asyncio.ensure_future(driver.state()) for _ in range(4)] + [asyncio.ensure_future(driver.count())]
    await asyncio.sleep(0)  # every one of them is waiting for the line
    in_flight = len(written)
    asyncio.ensure_future(world.sessions.stop(PRACTITIONER, "ui", "laser"))
    await asyncio.gather(*queued, return_exceptions=True)
    await asyncio.sleep(1.0)
    foot(world, False)
    after = [line[4:].split(b"*", 1)[0] for line in written[in_flight:]]  # (the exchange on the wire is not retried)
    if not after or after[0] != b"STOP":
        world.checker.fail("stop-preempts", f"after the STOP was decided the host wrote {after[:6]} before STOP")


async def _sync(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


CASES: tuple[Regression, ...] = (
    # a and c: found by random seeds (the scripted versions below do not reproduce them)
    Regression("a_unit_ignores_stop_seed", "a", 4, None, "stop-confirmed", frozenset({"ignore_stop"})),
    Regression("a_unit_ignores_stop", "a", 101, ignores_stop, "stop-confirmed"),
    Regression("b_mute_unit_keeps_firing", "b", 102, mute_while_firing, "stop-confirmed"),
    Regression("c_estop_races_freeze_seed", "c", 10, None, "no-emission-after-halt", frozenset({"estop"})),
    Regression("c_second_tab_stop_races_arm_seed", "c", 25, None, "no-emission-after-halt", tabs=2),
    Regression("c_stop_during_arm", "c", 103, stop_during_arm, "no-emission-after-halt"),
    Regression("d_pulses_lost_while_unplugged", "d", 104, pulses_while_unplugged, "pulse-accounting"),
    Regression("e_lockout_session_completed", "e", 105, lockout_then_completed, "completed-after-lockout"),
    Regression("f_new_session_clears_lockout", "f", 106, new_session_clears_lockout, "lockout-acknowledged"),
    Regression("g_failed_programming_step", "g", 107, failed_programming_step, "limits-programmed"),
    Regression("h_double_arm_stops", "h", 109, double_arm, "double-arm"),
    Regression("i_cryo_reboot_mid_freeze", "i", 110, cryo_reboot_mid_freeze, "freeze-after-reboot"),
    Regression("j_state_in_flight_at_stop", "j", 111, state_in_flight_at_stop, "false-lockout"),
    Regression("j_limit_event_gap", "j", 112, limit_event_gap, "false-gap"),
    Regression("k_stop_preempts_queued_requests", "k", 113, stop_preempts_queue, "stop-preempts"),
)
