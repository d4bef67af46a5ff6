"""The invariants of the deterministic simulation, checked after every step.

A step is every line delivered on a wire, every line the host writes, every decision of a kernel,
every practitioner action, and a 100 ms tick of the virtual clock. A violation raises
``Violation`` at once with the seed and the last wire lines, so the run stops where it broke.

1. ``no-emission-after-halt``: the host never writes READY, FIRE or FREEZE after a STOP, lock-out
   or pause was decided, unless a new permit (AllowArm/AllowFreeze) was decided after it.
2. ``pulse-accounting``: pulses the unit emitted = pulses the host saw + pulses it reported not
   seen = pulse rows recorded (checked when the world has settled); ``freeze-accounting``: freeze
   seconds at the unit <= recorded exposure + reported lost time.
3. ``budget``: no pulse beyond the session's budget (pulses the world itself injected through a
   broken Q-switch excepted); ``freeze-cap``: no freeze beyond its cap plus the host's backup margin
   plus ``FREEZE_SLACK_S`` (a unit whose timer is stuck and which ignores STOP as well: plus its
   watchdog after the unconfirmed STOPs, soak seed 773 of the treatment worlds); ``energy``: a pulse outside +-20 % of its setting or above the cap is
   followed by a STOP decision before the host sees the next pulse.
4. ``stop-confirmed``: every STOP decided is confirmed by the unit's safe state within
   ``STOP_CONFIRM_S``, or escalated (the device locked with a reason saying it did not confirm),
   and an escalated one still ends in the unit's safe state within ``ESCALATED_SAFE_S`` (the host's
   silence lets the unit's watchdog fire).
5. ``lockout-acknowledged``: no lock-out is cleared without an audited acknowledgement;
   ``decisions-recorded``: every Stop/Lockout/Pause decided during a session is in the audit log;
   ``audit-verifies``: the audit chain verifies at the end.
6. ``ended-safe``: a session never ends "completed" while its unit emits or freezes (a unit that
   did not confirm the end's STOP ends the session "stopped by safety", with the device locked);
   ``completed-after-lockout``: a session with a lock-out nobody acknowledged never ends
   "completed"; ``reported-state``: the service never shows a safe state for a unit that has been
   emitting or freezing for longer than ``STOP_CONFIRM_S``.
7. ``service-raises``: a practitioner's action fails only with the service's own refusals.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from devicectl.core.audit import verify
from safety.cryo_kernel import BACKUP_MARGIN_S
from safety.decisions import AllowArm, AllowFreeze, Lockout, Pause, Stop

if TYPE_CHECKING:
    from .world import World

STOP_CONFIRM_S = 2.0  # the stated bound: a STOP is confirmed by the unit's safe state within this
#: an escalated STOP (the host silent toward the unit, alarm, lock-out) must still end in the unit's
#: safe state: its watchdog (1 s) fires within the host's silence (watchdog + 0.5 s margin)
ESCALATED_SAFE_S = STOP_CONFIRM_S + 1.0 + 0.5 + 0.5
FREEZE_SLACK_S = 0.35  # host tick (0.1 s) + a line each way (<= 0.1 s) + scheduling
UNIT_WATCHDOG_S = 1.0  # the cryo unit's watchdog (ICD default 1000 ms, left as is): a freeze ends 1 s after the last valid request
ESCALATION_S = 0.2  # the host's 3 STOP tries, each restarting that watchdog
ENERGY_TOLERANCE = 0.20
ENERGY_ROUNDING_MJ = 0.1  # the monitor reports 0.1 mJ

CHECKS = frozenset({
    "no-emission-after-halt", "pulse-accounting", "freeze-accounting", "budget", "freeze-cap", "energy",
    "stop-confirmed", "lockout-acknowledged", "decisions-recorded", "audit-verifies", "ended-safe",
    "completed-after-lockout", "reported-state", "service-raises",
    # checked by the scripted regression cases (tests/dst/regressions.py)
    "limits-programmed", "budget-delivered", "double-arm", "freeze-after-reboot", "false-lockout", "false-gap", "scenario",
    "stop-preempts",
})

EMITTING_COMMANDS = (b"READY", b"FIRE", b"FREEZE")
LASER_UNSAFE = ("CHARGING", "READY", "EMITTING")
SAFE_REPORTED = ("STANDBY", "IDLE", "THAW", "FAULT")
_PULSE_N = re.compile(rb" PULSE n=(\d+)")


class Violation(AssertionError):
    def __init__(self, check: str, message: str, seed: int, t: float, wire_tail: str) -> None:
        super().__init__(f"seed {seed}: invariant {check} violated at t={t:.3f}: {message}\n"
                         f"last wire lines (t, unit, > host to unit / < unit to host):\n{wire_tail}")
        self.check = check
        self.seed = seed
        self.t = t
        self.message = message


@dataclass
class DeviceWatch:
    """What the checker remembers about one device."""

    name: str
    halt_seq: int = -1
    halt_reason: str = ""
    permit_seq: int = -1
    last_written: bytes = b""
    stop_pending_since: float | None = None
    stop_pending_reason: str = ""
    was_locked: str | None = None
    acks_consumed: int = 0
    unsafe_since: float | None = None
    session_pulses: dict[int, int] = field(default_factory=dict)
    bad_pulses: dict[int, int] = field(default_factory=dict)  # pulse n -> decisions decided before it was emitted
    bad_seen_at_seq: int | None = None
    stop_seq: int = -1  # the last STOP decided
    decisions: list[tuple[int, str, str]] = field(default_factory=list)  # (session, kind, reason)
    open_plan: tuple[int, Any] | None = None  # the last session seen open with its plan


class Checker:
    def __init__(self, world: World, checks: frozenset[str]) -> None:
        self.world = world
        self.checks = checks
        self.seq = 0  # one counter over every decision, to order halts and permits
        self.devices = {name: DeviceWatch(name) for name in world.ports}
        self.emitted = 0  # pulses the laser really emitted
        self.injected = 0  # of which the world's broken Q-switch fired
        self.host_seen = 0  # PULSE events the host's driver parsed and handed to the supervisor
        self.steps = 0
        self.violation: Violation | None = None

    # ------------------------------------------------------------------ failing
    def fail(self, check: str, message: str) -> None:
        """Record the first violation and stop the world (never raises into the service's code)."""
        if check not in self.checks or self.violation is not None:
            return
        world = self.world
        self.violation = Violation(check, message, world.seed, world.now(), world.wire.tail(50))
        world.abort()

    # ------------------------------------------------------------------ hooks
    def on_host_write(self, port: Any, line: bytes) -> None:
        watch = self.devices[port.name]
        retransmit = line == watch.last_written
        watch.last_written = line
        if retransmit:
            return
        command = line[4:].split(b"*", 1)[0].split(b" ", 1)[0]
        if command in EMITTING_COMMANDS and watch.halt_seq > watch.permit_seq:
            self.fail("no-emission-after-halt",
                      f"{port.name}: the host wrote {command.decode()} after '{watch.halt_reason}' was decided "
                      "with no new permit since")

    def on_delivered(self, port: Any, direction: str, line: bytes) -> None:
        if direction == "<" and b" PULSE " in line:
            watch = self.devices[port.name]
            if watch.bad_seen_at_seq is not None:
                self.fail("energy", f"{port.name}: a pulse outside the energy tolerance was not followed by a STOP "
                                    "before the next pulse reached the host")
            match = _PULSE_N.search(line)
            emitted_at_seq = watch.bad_pulses.pop(int(match.group(1)), None) if match else None
            # the host handles the line before this listener runs: a STOP decided on this very
            # pulse (or since it was emitted) already answers it
            if emitted_at_seq is not None and watch.stop_seq <= emitted_at_seq:
                watch.bad_seen_at_seq = self.seq
        self.step()

    def on_decisions(self, device: str, fact: Any, decisions: list[Any]) -> None:
        watch = self.devices[device]
        supervisor = self.world.supervisors[device]
        for decision in decisions:
            self.seq += 1
            if isinstance(decision, (AllowArm, AllowFreeze)):
                watch.permit_seq = self.seq
            elif isinstance(decision, (Stop, Lockout, Pause)):
                watch.halt_seq = self.seq
                watch.halt_reason = decision.reason
                if supervisor.session_id is not None:
                    watch.decisions.append((supervisor.session_id, type(decision).__name__, decision.reason))
            if isinstance(decision, Stop):
                watch.bad_seen_at_seq = None
                watch.stop_seq = self.seq
                if not self.unit_safe(device) and watch.stop_pending_since is None:
                    watch.stop_pending_since = self.world.now()
                    watch.stop_pending_reason = decision.reason
        self.check_lock(device)

    def on_true_pulse(self, truth: Any) -> None:
        """Every pulse the laser really emitted (the model's own listener)."""
        world = self.world
        self.emitted += 1
        if world.injecting_pulses:
            self.injected += 1
            return
        watch = self.devices["laser"]
        supervisor = world.supervisors["laser"]
        kernel = supervisor.kernel
        session, plan = supervisor.session_id, kernel.plan
        if session is None or plan is None:
            # the session just closed and its STOP is still on the wire: the unit fires under the
            # plan it was armed with (invariant 4 bounds how long that may last)
            if watch.stop_pending_since is None or watch.open_plan is None:
                self.fail("budget", f"pulse {truth.n} ({truth.emitted_mj:.1f} mJ) emitted with no session open")
                return
            session, plan = watch.open_plan
        count = watch.session_pulses.get(session, 0) + 1
        watch.session_pulses[session] = count
        if count > plan.pulse_budget:
            self.fail("budget", f"session {session}: pulse {count} emitted, beyond the plan's budget of {plan.pulse_budget}")
        set_mj = truth.set_mj
        off = abs(truth.emitted_mj - set_mj) > ENERGY_TOLERANCE * set_mj + ENERGY_ROUNDING_MJ
        if off or truth.emitted_mj > plan.energy_cap_mj + ENERGY_ROUNDING_MJ:
            watch.bad_pulses[truth.n] = self.seq

    # ------------------------------------------------------------------ the step check
    def unit_safe(self, device: str) -> bool:
        unit = self.world.ports[device].unit
        if not unit.powered:
            return True
        model: Any = unit.model
        if device == "laser":
            return model.state not in LASER_UNSAFE
        return model.state != "FREEZING" and not model.valve_open

    def step(self) -> None:
        self.steps += 1
        now = self.world.now()
        for device, watch in self.devices.items():
            safe = self.unit_safe(device)
            supervisor = self.world.supervisors[device]
            if supervisor.session_id is not None and supervisor.kernel.plan is not None:
                watch.open_plan = (supervisor.session_id, supervisor.kernel.plan)
            if safe:
                watch.stop_pending_since = None
                watch.unsafe_since = None
            else:
                if watch.unsafe_since is None:
                    watch.unsafe_since = now
                if watch.stop_pending_since is not None and now - watch.stop_pending_since > STOP_CONFIRM_S:
                    if self.escalated(device):
                        if now - watch.stop_pending_since > ESCALATED_SAFE_S:
                            self.fail("stop-confirmed",
                                      f"{device}: STOP ('{watch.stop_pending_reason}') escalated, yet "
                                      f"{now - watch.stop_pending_since:.2f} s after it the unit is still "
                                      f"{self.world.ports[device].unit.model.state}: the host did not let its watchdog fire")
                    else:
                        self.fail("stop-confirmed",
                                  f"{device}: STOP ('{watch.stop_pending_reason}') decided {now - watch.stop_pending_since:.2f} s "
                                  f"ago, the unit is still {self.world.ports[device].unit.model.state} and the device is not "
                                  "locked as not confirming")
                if now - watch.unsafe_since > STOP_CONFIRM_S and supervisor.status.state in SAFE_REPORTED:
                    self.fail("reported-state",
                              f"{device}: the service shows {supervisor.status.state} while the unit has been "
                              f"{self.world.ports[device].unit.model.state} for {now - watch.unsafe_since:.2f} s")
            if device == "cryo":
                self.check_freeze_cap()
            self.check_lock(device)

    def escalated(self, device: str) -> bool:
        """The device is locked, and every screen alarmed, because its unit did not confirm a STOP
        (the lock-out's first reason may be an earlier one: the alarm and the kernel say it)."""
        supervisor = self.world.supervisors[device]
        locked = supervisor.kernel.locked or ""
        return bool(locked) and ("did not confirm" in locked or "did not confirm" in (supervisor.status.alarm or "")
                                 or supervisor.kernel.stop_unconfirmed)

    def check_freeze_cap(self) -> None:
        unit = self.world.ports["cryo"].unit
        model: Any = unit.model
        if not unit.powered or model.state != "FREEZING":
            return
        kernel: Any = self.world.supervisors["cryo"].kernel
        if kernel.plan is not None:
            self._cryo_cap = kernel.cryo_plan.freeze_cap_s
        # a session that just ended (its STOP still on the wire) keeps the cap the freeze began under
        cap = getattr(self, "_cryo_cap", 0.0) if model._freeze_start >= getattr(self, "_cryo_cap_since", -1.0) else 0.0
        elapsed = self.world.now() - model._freeze_start
        bound = cap + BACKUP_MARGIN_S + FREEZE_SLACK_S
        why = f"its cap of {cap} s + {BACKUP_MARGIN_S} s backup margin"
        if self.escalated("cryo"):
            # a double fault (its timer stuck AND its STOP ignored): nothing the host sends can stop
            # it; the host's silence lets its watchdog end the freeze one watchdog after the last STOP
            bound += UNIT_WATCHDOG_S + ESCALATION_S
            why += f" + {UNIT_WATCHDOG_S} s for its watchdog after the unconfirmed STOPs"
        if elapsed > bound:
            self.fail("freeze-cap", f"cryo: a freeze has run {elapsed:.2f} s, beyond {why}")

    def check_lock(self, device: str) -> None:
        watch = self.devices[device]
        locked = self.world.supervisors[device].kernel.locked
        if watch.was_locked and not locked:
            acks = self.world.acknowledgements(device)
            if acks > watch.acks_consumed:
                watch.acks_consumed = acks
            else:
                self.fail("lockout-acknowledged",
                          f"{device}: the lock-out '{watch.was_locked}' was cleared with no audited acknowledgement")
        watch.was_locked = locked

    # ------------------------------------------------------------------ actions
    def after_end(self, device: str, session_id: int, locked_before: str | None) -> None:
        outcome = self.world.store.one("SELECT outcome FROM sessions WHERE id = ?", (session_id,))["outcome"]
        supervisor = self.world.supervisors[device]
        # an unreachable unit (link down, or the host silent toward it) is left to its own
        # watchdog; ``stop-confirmed`` holds it to the same bound as any other unconfirmed STOP
        unreachable = outcome.startswith("interrupted:") and not supervisor.status.connected
        if not self.unit_safe(device) and (outcome == "completed" or not (supervisor.kernel.locked or unreachable)):
            self.fail("ended-safe", f"session {session_id} ended '{outcome}' while the {device} unit is "
                                    f"{self.world.ports[device].unit.model.state}")
        if locked_before and outcome == "completed":
            self.fail("completed-after-lockout", f"session {session_id} ended '{outcome}' with the lock-out "
                                                 f"'{locked_before}' never acknowledged")

    def service_raised(self, action: str, exc: BaseException) -> None:
        self.fail("service-raises", f"{action} raised {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ at the end, the world settled
    def final(self) -> None:
        world = self.world
        store = world.store
        # outside a session (uncommanded) pulses are kept in the audit log, not as session rows
        outside = store.one("SELECT COUNT(*) AS n FROM audit WHERE action = 'pulse.outside_session'")["n"]
        unseen_outside = store.one("SELECT COALESCE(SUM(json_extract(detail, '$.count')), 0) AS n FROM audit "
                                   "WHERE action = 'pulses.unseen' AND json_extract(detail, '$.session') IS NULL")["n"]
        rows = store.one("SELECT COUNT(*) AS n FROM pulses")["n"] + outside + unseen_outside
        not_seen = world.pulses_reported_not_seen() + unseen_outside
        if not self.emitted == self.host_seen + not_seen == rows:
            self.fail("pulse-accounting", f"the laser emitted {self.emitted} pulses, the host saw {self.host_seen}, "
                                          f"reported {not_seen} not seen, and {rows} pulse rows were recorded")
        model: Any = world.ports["cryo"].unit.model
        frozen_s = sum(float(f["dur_s"]) for f in model.freezes)
        recorded_s = store.one("SELECT COALESCE(SUM(dur_s), 0) AS s FROM freezes")["s"]
        lost_s = world.freeze_reported_lost_s()
        if frozen_s > recorded_s + lost_s + 0.05 * len(model.freezes) + 1e-6:
            self.fail("freeze-accounting", f"the cryo unit froze {frozen_s:.2f} s in {len(model.freezes)} freezes; "
                                           f"{recorded_s:.2f} s recorded and {lost_s:.2f} s reported lost")
        if "decisions-recorded" in self.checks:
            details = "\n".join(r["detail"] for r in store.query("SELECT detail FROM audit"))
            for watch in self.devices.values():
                for session, kind, reason in watch.decisions:
                    if json.dumps(reason)[1:-1] not in details:
                        self.fail("decisions-recorded", f"{watch.name}: {kind} '{reason}' of session {session} "
                                                        "is not in the audit log")
        result = verify(store.conn)
        if not result.ok:
            self.fail("audit-verifies", f"audit verify failed at entry {result.first_bad_id}: {result.reason}")
