"""QS-1064 physics and state machine (laser.md), pure and stepped by ``advance(now)``.

Everything the ICD describes is enforced here, never more kindly than the unit: ranges, state
rules, the fail-safe power-on budget of 0 pulses, READYTIMEOUT, the 1/ratemax pulse spacing, the
shutter closing on any unsafe input, latched faults that clear only when their cause is gone.
Physics: emitted energy = setting x true gain (lamp ageing) x (1 + 2 % noise); the monitor reports
that x its own gain error; the head heats with the energy fired and relaxes to 22 degC (tau 120 s).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from ..unit_model import (
    CommandError,
    CommandFn,
    Deferred,
    LatchedFaults,
    UnitModel,
    busy,
    fault_active,
    not_allowed,
    parse_flag,
    parse_number,
)


class LaserState(str, Enum):
    STANDBY = "STANDBY"
    CHARGING = "CHARGING"
    READY = "READY"
    EMITTING = "EMITTING"
    FAULT = "FAULT"


ARMED = (LaserState.CHARGING, LaserState.READY, LaserState.EMITTING)
SPOTS_MM = (2.0, 3.0, 4.0, 6.0, 8.0)
FAULT_TEXTS = {
    "F01": "lamp",
    "F02": "energy-deviation",
    "F03": "overtemp",
    "F04": "coolant",
    "F05": "shutter",
}

EMAX_MJ = 1000
RATEMAX_HZ = 10.0
CHARGE_S = 1.5
AMBIENT_C = 22.0
HEAD_TAU_S = 120.0
HEAT_C_PER_J = 0.025  # 1 J at 10 Hz settles near 52 degC: F03 after about two minutes
OVERTEMP_C, OVERTEMP_CLEAR_C = 40.0, 35.0
NOISE_SD = 0.02
DEVIATION_TOLERANCE = 0.20
DEVIATION_RUN = 3
LAMP_AGEING_PER_PULSE = 2e-7  # true gain loses about 2 % per 100 000 pulses
MAX_STEP_S = 0.1


@dataclass(frozen=True)
class PulseTruth:
    """One pulse as it really was (backdoor only)."""

    n: int
    t_ms: int
    set_mj: int
    emitted_mj: float
    monitored_mj: float
    wl_nm: int
    commanded: bool = True  # False: fired by a broken Q-switch (backdoor)


class LaserModel(UnitModel):
    FW = "2.3.1"

    def __init__(self, rng: random.Random, serial: str = "QS1064-0001") -> None:
        super().__init__(rng)
        self.serial = serial
        # hardware: survives power cycles
        self.key, self.interlock, self.estop, self.foot = True, True, False, False
        self.spot_mm = 3.0
        self.base_gain = 1.0
        self.monitor_gain = 1.0
        self.deviation = 1.0  # injected systematic energy deviation (a failing crystal, say)
        self.ageing_per_pulse = LAMP_AGEING_PER_PULSE
        self.lamp_broken = False
        self.coolant_lost = False
        self.shutter_stuck = False
        self.total = 0
        self.temp_c = AMBIENT_C
        self.pulses: list[PulseTruth] = []
        self.pulse_listeners: list[Callable[[PulseTruth], None]] = []
        self._faults = LatchedFaults(FAULT_TEXTS)
        self.shutter_open = False

    # ------------------------------------------------------------------ life cycle
    def power_on(self, now: float) -> None:
        self.now = now
        self._state = LaserState.STANDBY
        self.wl = 1064
        self.energy = 10
        self.rate = Decimal("1.0")
        self.aim = False
        self.service = False
        self.readytimeout = 120
        self.budget = 0
        self.emax_limit = 10
        self.count = 0
        self.shutter_open = False
        self._faults.latched.clear()  # a reboot forgets latches; present causes latch again
        self._charge_done: float | None = None
        self._ready_since = now
        self._next_pulse: float | None = None
        self._last_pulse = float("-inf")
        self._fire: Deferred | None = None
        self._fire_left = 0
        self._fire_done = 0
        self._deviating_run = 0
        self._next_temp_event = now + 1.0
        self._update_causes()
        self._latch_present_causes()

    @property
    def true_gain(self) -> float:
        return self.base_gain * max(0.0, 1.0 - self.ageing_per_pulse * self.total)

    def truth(self) -> dict[str, object]:
        return {
            "state": self.state,
            "shutter_open": self.shutter_open,
            "emitting": self._state is LaserState.EMITTING,
            "service": self.service,
            "head_c": round(self.temp_c, 3),
            "true_gain": self.true_gain,
            "monitor_gain": self.monitor_gain,
            "count": self.count,
            "total": self.total,
            "pulses": [p.__dict__ for p in self.pulses[-1000:]],
        }

    # ------------------------------------------------------------------ transitions
    def _enter(self, state: LaserState, cause: str) -> None:
        if state is self._state:
            return
        self._state = state
        if state not in (LaserState.READY, LaserState.EMITTING):
            self._close_shutter()
        if state is not LaserState.EMITTING:
            self._next_pulse = None
        if state is LaserState.READY:
            self._ready_since = self.now
            self.shutter_open = True  # armed: the shutter opens, and closes on any unsafe input
        if state is not LaserState.CHARGING:
            self._charge_done = None
        self.emit("STATE", state=state.value, cause=cause)
        if state is not LaserState.EMITTING and self._fire is not None:
            self._finish_fire()

    def _close_shutter(self) -> None:
        if self.shutter_stuck and self.shutter_open:
            self._faults.causes.add("F05")
            self._latch("F05")
            return
        self.shutter_open = False

    def _finish_fire(self) -> None:
        assert self._fire is not None
        self._fire.complete(fired=self._fire_done)
        self._fire = None
        self._fire_left = 0

    def safe_state(self, cause: str) -> None:
        if self._state in ARMED:
            self._enter(LaserState.STANDBY, cause)
        self._close_shutter()

    def _latch(self, code: str) -> None:
        if not self._faults.latch(code):
            return
        self.emit("FAULT", code=code, text=FAULT_TEXTS[code])
        self._enter(LaserState.FAULT, "fault")
        self._close_shutter()

    def after_fault_clear(self) -> None:
        self._enter(LaserState.STANDBY, "cmd")

    def _update_causes(self) -> None:
        causes = self._faults.causes
        causes.discard("F01")
        causes.discard("F04")
        causes.discard("F05")
        if self.lamp_broken:
            causes.add("F01")
        if self.coolant_lost:
            causes.add("F04")
        if self.shutter_stuck:
            causes.add("F05")
        if abs(self.true_gain * self.deviation * self.monitor_gain - 1.0) > DEVIATION_TOLERANCE:
            causes.add("F02")
        else:
            causes.discard("F02")
        if self.temp_c > OVERTEMP_C:
            causes.add("F03")
        elif self.temp_c < OVERTEMP_CLEAR_C:
            causes.discard("F03")

    def _latch_present_causes(self) -> None:
        """Causes that latch as soon as they are present (a pulse is not needed to see them)."""
        if self.coolant_lost:
            self._latch("F04")
        if self.temp_c > OVERTEMP_C:
            self._latch("F03")

    # ------------------------------------------------------------------ time
    def next_deadline(self) -> float:
        candidates = [self._next_temp_event]
        if self._charge_done is not None:
            candidates.append(self._charge_done)
        if self._next_pulse is not None:
            candidates.append(self._next_pulse)
        if self._state is LaserState.READY:
            candidates.append(self._ready_since + self.readytimeout)
        return min(candidates)

    def advance(self, now: float) -> None:
        while self.now < now:
            # (no earlier than now: something may fall due right now)
            step_to = max(self.now, min(now, self.now + MAX_STEP_S, self.next_deadline()))
            self._relax(step_to - self.now)
            self.now = step_to
            self._timers()
            if step_to == now:
                break
        self._timers()

    def _relax(self, dt: float) -> None:
        if dt > 0:
            self.temp_c = AMBIENT_C + (self.temp_c - AMBIENT_C) * math.exp(-dt / HEAD_TAU_S)

    def _timers(self) -> None:
        now = self.now
        self._update_causes()
        self._latch_present_causes()
        if self._charge_done is not None and now >= self._charge_done:
            self._enter(LaserState.READY, "cmd")
        if self._state is LaserState.READY and now >= self._ready_since + self.readytimeout:
            self._enter(LaserState.STANDBY, "limit")
        if self._next_pulse is not None and now >= self._next_pulse:
            self._pulse()
        if now >= self._next_temp_event:
            self.emit("TEMP", head=f"{self.temp_c:.1f}")
            self._next_temp_event += 1.0

    def _pulse(self) -> None:
        if self.lamp_broken:
            self._latch("F01")
            return
        if not self._fire_one_pulse():
            return
        if self._state is not LaserState.EMITTING:
            return
        if self._budget_spent():
            return
        if self._fire is not None and self._fire_left == 0:
            self._enter(LaserState.READY, "cmd")
            return
        self._schedule_pulse()

    def _fire_one_pulse(self, commanded: bool = True) -> bool:
        """One pulse leaves the head: physics, counters, the PULSE event and the monitor's check.
        False when the monitor latched F02 on it."""
        self._last_pulse = self.now
        emitted = self.energy * self.true_gain * self.deviation * (1.0 + self.rng.gauss(0.0, NOISE_SD))
        emitted = max(0.0, emitted)
        monitored = round(emitted * self.monitor_gain, 1)
        self.count += 1
        self.total += 1
        truth = PulseTruth(self.count, self.unit_ms(), self.energy, emitted, monitored, self.wl, commanded)
        self.pulses.append(truth)
        if len(self.pulses) > 10000:
            del self.pulses[:5000]
        self.temp_c += HEAT_C_PER_J * emitted / 1000.0
        self.emit("PULSE", n=self.count, e=f"{monitored:.1f}", set=self.energy, t=truth.t_ms)
        for listener in self.pulse_listeners:
            listener(truth)
        self._ready_since = self.now
        if commanded and self._fire is not None:
            self._fire_done += 1
            self._fire_left -= 1
        if abs(monitored - self.energy) > DEVIATION_TOLERANCE * self.energy:
            self._deviating_run += 1
        else:
            self._deviating_run = 0
        if self._deviating_run >= DEVIATION_RUN:
            self._faults.causes.add("F02")
            self._latch("F02")
            return False
        self._update_causes()
        self._latch_present_causes()
        return True

    def _budget_spent(self) -> bool:
        """While EMITTING the unit stops at once when the budget is spent (LIMIT, then STANDBY)."""
        if self._state is LaserState.EMITTING and self.count >= self.budget:
            self.emit("LIMIT", kind="pulses")
            self._enter(LaserState.STANDBY, "limit")
            return True
        return False

    def uncommanded_pulses(self, count: int) -> None:
        """Backdoor: a broken Q-switch fires ``count`` pulses now, whatever the state.

        The monitor still measures them and the unit counts them like any pulse (PULSE events,
        COUNT? count and total, head heating, the F02 check); while EMITTING a budget they spend
        ends emission as it would after a commanded pulse.
        """
        if count < 1:
            raise ValueError("count must be at least 1")
        for _ in range(count):
            if not self._fire_one_pulse(commanded=False):
                return
        self._budget_spent()

    def _schedule_pulse(self) -> None:
        interval = max(1.0 / float(self.rate), 1.0 / RATEMAX_HZ)
        self._next_pulse = max(self.now, self._last_pulse + interval)

    def _start_emitting(self, cause: str) -> None:
        self._enter(LaserState.EMITTING, cause)
        self.shutter_open = True
        first = max(self.now, self._last_pulse + 1.0 / RATEMAX_HZ)
        self._next_pulse = first

    # ------------------------------------------------------------------ hardware inputs
    def set_input(self, name: str, value: object) -> None:
        """Backdoor: a hardware input changes (key, interlock, estop, foot, spot)."""
        if name == "spot":
            spot = float(value)  # type: ignore[arg-type]
            if spot not in SPOTS_MM:
                raise ValueError(f"spot must be one of {SPOTS_MM}")
            self.spot_mm = spot
            return
        if name not in ("key", "interlock", "estop", "foot"):
            raise ValueError(f"unknown laser input {name!r}")
        new = bool(int(value))  # type: ignore[call-overload]
        if getattr(self, name) == new:
            return
        setattr(self, name, new)
        self.emit("INPUT", key=self.key, interlock=self.interlock, estop=self.estop, foot=self.foot)
        unsafe = {"key": not self.key, "interlock": not self.interlock, "estop": self.estop}
        if self._state in ARMED and unsafe.get(name):
            self._enter(LaserState.STANDBY, name)
            return
        if name == "foot" and not self.service:
            if new and self._state is LaserState.READY:
                self._start_emitting("foot")
            elif not new and self._state is LaserState.EMITTING:
                self._enter(LaserState.READY, "foot")

    # ------------------------------------------------------------------ commands
    def commands(self) -> Mapping[str, CommandFn]:
        return {
            "WL": self._cmd_wl,
            "ENERGY": self._cmd_energy,
            "RATE": self._cmd_rate,
            "AIM": self._cmd_aim,
            "READY": self._cmd_ready,
            "STANDBY": self._cmd_standby,
            "READYTIMEOUT": self._cmd_readytimeout,
            "LIMIT PULSES": self._cmd_limit_pulses,
            "LIMIT ENERGY": self._cmd_limit_energy,
            "COUNT?": self._cmd_count,
            "COUNT RESET": self._cmd_count_reset,
            "SERVICE": self._cmd_service,
            "FIRE": self._cmd_fire,
        }

    def idn_fields(self) -> Mapping[str, object]:
        return {
            "vendor": "Lumetra",
            "model": "QS-1064",
            "serial": self.serial,
            "fw": self.FW,
            "wl": "1064,532",
            "emax": EMAX_MJ,
            "ratemax": f"{RATEMAX_HZ:.1f}",
        }

    def state_fields(self) -> Mapping[str, object]:
        return {
            "state": self.state,
            "key": self.key,
            "interlock": self.interlock,
            "estop": self.estop,
            "foot": self.foot,
            "wl": self.wl,
            "energy": self.energy,
            "rate": f"{self.rate:.1f}",
            "spot": f"{self.spot_mm:.1f}",
            "aim": self.aim,
            "service": self.service,
            "budget": self.budget,
            "count": self.count,
            "temp": f"{self.temp_c:.1f}",
        }

    def _require(self, *states: LaserState) -> None:
        """State rule of a setting: FAULT -> E06, CHARGING (a transition) -> E07, else E04."""
        if self._state in states:
            return
        if self._state is LaserState.FAULT:
            raise fault_active()
        if self._state is LaserState.CHARGING and LaserState.READY in states:
            raise busy()
        raise not_allowed()

    def _energy_max(self, wl: int) -> int:
        return EMAX_MJ if wl == 1064 else EMAX_MJ // 2

    def _cmd_wl(self, args: tuple[str, ...]) -> Mapping[str, object]:
        self._require(LaserState.STANDBY)
        wl = int(parse_number(args, 0, 0, 100000))
        if wl not in (1064, 532):
            raise CommandError("E03", "out-of-range")
        self.wl = wl
        # the doubler halves the maximum: a setting above it falls to the new maximum
        self.energy = min(self.energy, self._energy_max(wl))
        return {"wl": self.wl}

    def _cmd_energy(self, args: tuple[str, ...]) -> Mapping[str, object]:
        self._require(LaserState.STANDBY, LaserState.READY)
        energy = int(parse_number(args, 0, 10, self._energy_max(self.wl)))
        if energy > self.emax_limit:
            raise CommandError("E03", "over-limit")
        self.energy = energy
        return {"energy": self.energy}

    def _cmd_rate(self, args: tuple[str, ...]) -> Mapping[str, object]:
        self._require(LaserState.STANDBY, LaserState.READY)
        self.rate = parse_number(args, 1, Decimal("0.5"), Decimal(str(RATEMAX_HZ)))
        return {"rate": f"{self.rate:.1f}"}

    def _cmd_aim(self, args: tuple[str, ...]) -> Mapping[str, object]:
        if self._state is LaserState.FAULT:
            raise fault_active()
        self.aim = parse_flag(args)
        return {"aim": self.aim}

    def _cmd_ready(self, args: tuple[str, ...]) -> Mapping[str, object]:
        if args:
            raise CommandError("E03", "bad-argument")
        if self._state is LaserState.FAULT:
            raise fault_active()
        if self._state is LaserState.CHARGING:
            raise busy()
        if self._state is not LaserState.STANDBY:
            raise not_allowed()
        for ok, word in (
            (self.key, "key-off"),
            (self.interlock, "interlock-open"),
            (not self.estop, "estop-pressed"),
            (not self.foot, "footswitch-pressed"),
        ):
            if not ok:
                raise CommandError("E05", word)
        if self.count >= self.budget:
            raise CommandError("E03", "budget-spent")
        self._enter(LaserState.CHARGING, "cmd")
        self._charge_done = self.now + CHARGE_S
        return {"state": self.state}

    def _cmd_standby(self, args: tuple[str, ...]) -> Mapping[str, object]:
        if args:
            raise CommandError("E03", "bad-argument")
        if self._state is LaserState.FAULT:
            raise fault_active()
        self._enter(LaserState.STANDBY, "cmd")
        return {"state": self.state}

    def _cmd_readytimeout(self, args: tuple[str, ...]) -> Mapping[str, object]:
        self._require(LaserState.STANDBY)
        self.readytimeout = int(parse_number(args, 0, 10, 600))
        return {"readytimeout": self.readytimeout}

    def _cmd_limit_pulses(self, args: tuple[str, ...]) -> Mapping[str, object]:
        self._require(LaserState.STANDBY)
        self.budget = int(parse_number(args, 0, 0, 10000))
        return {"budget": self.budget}

    def _cmd_limit_energy(self, args: tuple[str, ...]) -> Mapping[str, object]:
        self._require(LaserState.STANDBY)
        self.emax_limit = int(parse_number(args, 0, 10, EMAX_MJ))
        # never emit above the limit: a higher setting falls to it
        self.energy = min(self.energy, self.emax_limit)
        return {"emaxset": self.emax_limit}

    def _cmd_count(self, args: tuple[str, ...]) -> Mapping[str, object]:
        if args:
            raise CommandError("E03", "bad-argument")
        return {"count": self.count, "total": self.total}

    def _cmd_count_reset(self, args: tuple[str, ...]) -> Mapping[str, object]:
        if args:
            raise CommandError("E03", "bad-argument")
        self._require(LaserState.STANDBY)
        self.count = 0
        return {"count": self.count}

    def _cmd_service(self, args: tuple[str, ...]) -> Mapping[str, object]:
        self._require(LaserState.STANDBY)
        self.service = parse_flag(args)
        return {"service": self.service}

    def _cmd_fire(self, args: tuple[str, ...]) -> Deferred:
        n = int(parse_number(args, 0, 1, 100))
        if self._state is LaserState.FAULT:
            raise fault_active()
        if self._state is LaserState.CHARGING:
            raise busy()
        if self._state is not LaserState.READY or not self.service:
            raise not_allowed()
        if self.count >= self.budget:
            raise CommandError("E03", "budget-spent")
        self._fire = Deferred()
        self._fire_left = n
        self._fire_done = 0
        deferred = self._fire
        self._start_emitting("cmd")
        self._pulse_now_if_due()
        return deferred

    def _pulse_now_if_due(self) -> None:
        if self._next_pulse is not None and self.now >= self._next_pulse:
            self._pulse()
