"""CP-2 physics and state machine (cryo.md), pure and stepped by ``advance(now)``.

The unit regulates on its own thermocouple (true tip + fixed offset + 0.3 degC noise) with a
2 degC hysteresis valve; with the valve open the tip cools toward the cryogen's temperature
(tau 1.5 s), closed it warms toward 30 degC in contact (tau 8 s). The unit ends a freeze by its own
timer; LIMIT FREEZE is 0 after power-on, so nothing freezes until the host programs it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from decimal import Decimal
from enum import Enum

from ..unit_model import (
    CommandError,
    CommandFn,
    LatchedFaults,
    UnitModel,
    fault_active,
    not_allowed,
    parse_number,
)


class CryoState(str, Enum):
    IDLE = "IDLE"
    FREEZING = "FREEZING"
    THAW = "THAW"
    FAULT = "FAULT"


CRYOGENS = {
    # cryogen: (tmin degC = its temperature at the tip, power-on target, nominal pressure bar)
    "N2O": (-89, -50, 50.0),
    "LN2": (-196, -120, 1.5),
}
PROBES = ("P1", "P3", "P5", "SPRAY", "NONE")
FAULT_TEXTS = {
    "C01": "sensor-open",
    "C02": "valve-stuck",
    "C03": "cryogen-empty",
    "C04": "overpressure",
}
COOL_TAU_S = 1.5
WARM_TAU_S = 8.0
CONTACT_C = 30.0
HYSTERESIS_C = 2.0
SENSOR_NOISE_SD = 0.3
OPEN_CIRCUIT_READING_C = 999.9
LEVEL_USE_PER_S = 0.05
LEVEL_EVENT_S = 5.0
LEVEL_THRESHOLDS = (20.0, 5.0)
EMPTY_LEVEL = 2.0
OVERPRESSURE_BAR = 60.0
VALVE_STUCK_S = 2.0
MAX_STEP_S = 0.005


class CryoModel(UnitModel):
    FW = "1.4.2"

    def __init__(self, rng: random.Random, cryogen: str = "N2O", serial: str = "CP2-0001") -> None:
        super().__init__(rng)
        if cryogen not in CRYOGENS:
            raise ValueError(f"cryogen must be one of {sorted(CRYOGENS)}")
        self.cryogen = cryogen
        self.tmin, self._default_target, self.nominal_pressure = CRYOGENS[cryogen]
        self.serial = serial
        # hardware: survives power cycles
        self.estop = False
        self.probe = "P3"
        self.tip_true = CONTACT_C
        self.sensor_offset = 0.0
        self.sensor_open = False
        self.valve_stuck = False
        self.level = 100.0
        self.pressure_override: float | None = None
        self._faults = LatchedFaults(FAULT_TEXTS)
        self.valve_cmd = False
        self.timer_stuck = False  # injected: the unit's own freeze timer fails (the host must stop it)
        self.freezes: list[dict[str, object]] = []
        self._reading = CONTACT_C

    # ------------------------------------------------------------------ life cycle
    def power_on(self, now: float) -> None:
        self.now = now
        self._state = CryoState.IDLE
        self.target = self._default_target
        self.limit = Decimal(0)
        self.thawmin = Decimal(20)
        self.telem = 10
        self.valve_cmd = False
        self._faults.latched.clear()
        self._freeze_start = 0.0
        self._freeze_end = 0.0
        self._thaw_start = now
        self._next_telem = now + 1.0 / self.telem
        self._next_level = now + LEVEL_EVENT_S
        self._shut_since: float | None = None
        self._cooling_while_shut = 0.0
        self._reading = self._read_sensor()
        self._check_causes()

    @property
    def valve_open(self) -> bool:
        """The valve as it really is: commanded, or stuck open."""
        return self.valve_cmd or self.valve_stuck

    @property
    def pressure(self) -> float:
        if self.pressure_override is not None:
            return self.pressure_override
        return self.nominal_pressure * (0.6 + 0.4 * self.level / 100.0)

    def truth(self) -> dict[str, object]:
        return {
            "state": self.state,
            "tip_true_c": round(self.tip_true, 3),
            "tip_reading_c": round(self._reading, 3),
            "valve_open": self.valve_open,
            "valve_cmd": self.valve_cmd,
            "level": round(self.level, 3),
            "pressure": round(self.pressure, 3),
            "freezes": list(self.freezes[-100:]),
        }

    # ------------------------------------------------------------------ transitions
    def _enter(self, state: CryoState, cause: str) -> None:
        if state is self._state:
            return
        self._state = state
        if state is CryoState.THAW:
            self._thaw_start = self.now
        self.emit("STATE", state=state.value, cause=cause)

    def _end_freeze(self, cause: str, next_state: CryoState, state_cause: str) -> None:
        self.timer_stuck = False
        self.valve_cmd = False
        self._shut_since = self.now
        dur = self.now - self._freeze_start
        self.freezes.append({"dur_s": round(dur, 3), "cause": cause, "end_ms": self.unit_ms()})
        self.emit("FREEZE", phase="end", cause=cause, dur=f"{dur:.2f}", t=self.unit_ms())
        self._enter(next_state, state_cause)

    def safe_state(self, cause: str) -> None:
        if self._state is CryoState.FREEZING:
            end_cause = {"cmd": "stop", "wdt": "wdt", "power": "stop"}.get(cause, cause)
            self._end_freeze(end_cause, CryoState.THAW, cause)
        self._close_valve()

    def _close_valve(self) -> None:
        if self.valve_cmd:
            self.valve_cmd = False
            self._shut_since = self.now

    def _latch(self, code: str) -> None:
        if not self._faults.latch(code):
            return
        self.emit("FAULT", code=code, text=FAULT_TEXTS[code])
        if self._state is CryoState.FREEZING:
            self._end_freeze("fault", CryoState.FAULT, "fault")
        else:
            self._enter(CryoState.FAULT, "fault")
        self._close_valve()

    def after_fault_clear(self) -> None:
        self._enter(CryoState.IDLE, "cmd")

    def _check_causes(self) -> None:
        causes = self._faults.causes
        stuck = self.valve_stuck and self._cooling_while_shut > VALVE_STUCK_S
        empty = self.level < EMPTY_LEVEL
        over = self.pressure > OVERPRESSURE_BAR
        if not (self.sensor_open or stuck or empty or over or causes):
            return  # no cause present and none to clear: the usual case, checked every step
        present = {"C01": self.sensor_open, "C02": stuck, "C03": empty, "C04": over}
        for code, on in present.items():
            if on:
                causes.add(code)
                self._latch(code)
            elif code != "C02" or not self.valve_stuck:
                causes.discard(code)

    # ------------------------------------------------------------------ time
    def next_deadline(self) -> float:
        deadline = min(self._next_telem, self._next_level)
        if self._state is CryoState.FREEZING and not self.timer_stuck:
            deadline = min(deadline, self._freeze_end)
        return deadline

    def advance(self, now: float) -> None:
        while self.now < now:
            step_to = min(now, self.now + MAX_STEP_S, max(self.next_deadline(), self.now))
            self._physics(step_to - self.now)
            self.now = step_to
            self._timers()
            if step_to == self.now and step_to >= now:
                break
        self._timers()

    def _physics(self, dt: float) -> None:
        if dt <= 0:
            return
        flowing = self.valve_open and self.level > 0
        if flowing:
            sink, tau = float(self.tmin), COOL_TAU_S
            self.level = max(0.0, self.level - LEVEL_USE_PER_S * dt)
        else:
            sink, tau = CONTACT_C, WARM_TAU_S
        self.tip_true = sink + (self.tip_true - sink) * math.exp(-dt / tau)
        # the tip keeps cooling while cryogen flows through a valve commanded shut
        if flowing and not self.valve_cmd:
            self._cooling_while_shut += dt
        else:
            self._cooling_while_shut = 0.0

    def _read_sensor(self) -> float:
        if self.sensor_open:
            return OPEN_CIRCUIT_READING_C
        return self.tip_true + self.sensor_offset + self.rng.gauss(0.0, SENSOR_NOISE_SD)

    def _timers(self) -> None:
        now = self.now
        level_before = getattr(self, "_level_seen", self.level)
        self._reading = self._read_sensor()
        self._check_causes()
        if self._state is CryoState.FREEZING:
            if now >= self._freeze_end and not self.timer_stuck:
                self._end_freeze("timeout", CryoState.THAW, "cmd")
            elif self._reading > self.target + HYSTERESIS_C / 2:
                self.valve_cmd = True
            elif self._reading < self.target - HYSTERESIS_C / 2 and self.valve_cmd:
                self._close_valve()
        if (
            self._state is CryoState.THAW
            and self._reading > 0.0
            and now - self._thaw_start >= float(self.thawmin)
        ):
            self._enter(CryoState.IDLE, "cmd")
        if now >= self._next_telem:
            self.emit("TEMP", tip=f"{self._reading:.1f}", target=self.target, valve=self.valve_open, t=self.unit_ms())
            self._next_telem += 1.0 / self.telem
            if self._next_telem <= now:  # fell behind: no burst of stale samples
                self._next_telem = now + 1.0 / self.telem
        # (the level only moves while cryogen flows: no mark can be crossed otherwise)
        crossed = self.level != level_before and any(self.level < mark <= level_before for mark in LEVEL_THRESHOLDS)
        self._level_seen = self.level
        if now >= self._next_level or crossed:
            self.emit("LEVEL", level=f"{self.level:.1f}", pressure=f"{self.pressure:.1f}")
            while self._next_level <= now:
                self._next_level += LEVEL_EVENT_S

    # ------------------------------------------------------------------ hardware inputs
    def set_input(self, name: str, value: object) -> None:
        """Backdoor: estop (0/1) or probe (P1, P3, P5, SPRAY, NONE) changes."""
        if name == "estop":
            new: object = bool(int(value))  # type: ignore[call-overload]
        elif name == "probe":
            new = str(value).upper()
            if new not in PROBES:
                raise ValueError(f"probe must be one of {PROBES}")
        else:
            raise ValueError(f"unknown cryo input {name!r}")
        if getattr(self, name) == new:
            return
        setattr(self, name, new)
        self.emit("INPUT", estop=self.estop, probe=self.probe)
        if self._state is CryoState.FREEZING:
            if self.estop:
                self._end_freeze("estop", CryoState.THAW, "estop")
            elif self.probe == "NONE":
                # the ICD names no cause for a probe pulled mid-freeze; the unit stops the freeze
                self._end_freeze("stop", CryoState.THAW, "cmd")

    # ------------------------------------------------------------------ commands
    def commands(self) -> Mapping[str, CommandFn]:
        return {
            "TARGET": self._cmd_target,
            "FREEZE": self._cmd_freeze,
            "LIMIT FREEZE": self._cmd_limit_freeze,
            "THAWMIN": self._cmd_thawmin,
            "TELEM": self._cmd_telem,
        }

    def idn_fields(self) -> Mapping[str, object]:
        return {
            "vendor": "Glacis",
            "model": "CP-2",
            "serial": self.serial,
            "fw": self.FW,
            "cryogen": self.cryogen,
            "tmin": self.tmin,
        }

    def state_fields(self) -> Mapping[str, object]:
        elapsed = self.now - self._freeze_start if self._state is CryoState.FREEZING else 0.0
        return {
            "state": self.state,
            "tip": f"{self._reading:.1f}",
            "target": self.target,
            "valve": self.valve_open,
            "level": f"{self.level:.1f}",
            "pressure": f"{self.pressure:.1f}",
            "probe": self.probe,
            "estop": self.estop,
            "elapsed": f"{elapsed:.1f}",
            "limit": f"{self.limit:.1f}",
        }

    def _require(self, *states: CryoState) -> None:
        if self._state in states:
            return
        if self._state is CryoState.FAULT:
            raise fault_active()
        raise not_allowed()

    def _cmd_target(self, args: tuple[str, ...]) -> Mapping[str, object]:
        self._require(CryoState.IDLE, CryoState.THAW)
        self.target = int(parse_number(args, 0, self.tmin, -20))
        return {"target": self.target}

    def _cmd_freeze(self, args: tuple[str, ...]) -> Mapping[str, object]:
        self._require(CryoState.IDLE)
        seconds = parse_number(args, 1, Decimal("0.5"), Decimal("60.0"))
        if self.probe == "NONE":
            raise CommandError("E05", "no-probe")
        if self.estop:
            raise CommandError("E05", "estop-pressed")
        if self.level < 5.0:
            raise CommandError("E05", "cryogen-low")
        if seconds > self.limit:
            raise CommandError("E03", "over-limit")
        self._freeze_start = self.now
        self._freeze_end = self.now + float(seconds)
        self._enter(CryoState.FREEZING, "cmd")
        self.emit("FREEZE", phase="start", t=self.unit_ms())
        self._timers()  # the valve opens at once
        return {"state": self.state}

    def _cmd_limit_freeze(self, args: tuple[str, ...]) -> Mapping[str, object]:
        self._require(CryoState.IDLE)
        self.limit = parse_number(args, 1, 0, Decimal("60.0"))
        return {"limit": f"{self.limit:.1f}"}

    def _cmd_thawmin(self, args: tuple[str, ...]) -> Mapping[str, object]:
        self._require(CryoState.IDLE)
        self.thawmin = parse_number(args, 0, 5, 300)
        return {"thawmin": int(self.thawmin)}

    def _cmd_telem(self, args: tuple[str, ...]) -> Mapping[str, object]:
        self.telem = int(parse_number(args, 0, 1, 50))
        self._next_telem = min(self._next_telem, self.now + 1.0 / self.telem)
        return {"telem": self.telem}
