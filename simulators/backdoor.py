"""The backdoor: a control channel beside the device port, as in Lewis.

Tests and technicians use it to do what the host can never do over the serial line: press the
footswitch, open the door interlock, break the lamp, make the wire misbehave, make the unit's
firmware misbehave (ignore STOP, fall mute, refuse a programming step, fire uncommanded pulses),
pull the power, and read the true physical state. The same operations serve the Python API (call the methods) and the
JSON-lines TCP protocol (``{"id": 1, "op": "set_input", "args": {"name": "foot", "value": 1}}``
answered by ``{"id": 1, "ok": true, "result": ...}`` or ``{"id": 1, "ok": false, "error": "..."}``).
"""

from __future__ import annotations

import inspect
import json
import socket
from collections.abc import Callable
from typing import Any

from .cryo.model import CryoModel
from .engine import LineUnit
from .laser.model import OVERTEMP_C, LaserModel


class BackdoorError(Exception):
    """A backdoor operation was malformed or refused."""


class Backdoor:
    """Operations common to every unit: wire trouble, power and the true state."""

    #: names of the operations the JSON-lines protocol may call
    OPERATIONS: tuple[str, ...] = (
        "ops",
        "truth",
        "stats",
        "executed",
        "silence",
        "garbage",
        "corrupt_replies",
        "drop_events",
        "power_cycle",
        "power_off",
        "power_on",
        "ignore_stop",
        "mute",
        "fail_next",
    )

    def __init__(self, unit: LineUnit) -> None:
        self.unit = unit

    def ops(self) -> list[str]:
        """Every operation this backdoor offers."""
        return list(self.OPERATIONS)

    def truth(self) -> dict[str, Any]:
        """The true physical state (never visible on the serial line)."""
        return {"powered": self.unit.powered, "now": self.unit.now, "last_valid_request_at": self.unit.last_valid_request_at,
                "watchdog_fired_at": list(self.unit.watchdog_fired_at[-20:]), "boot_time": self.unit.model.boot_time,
                **self.unit.model.truth()}

    def stats(self) -> dict[str, int]:
        """Counters of the line engine: requests, executed, retransmits, comerr, events."""
        return dict(self.unit.stats)

    def executed(self) -> list[str]:
        """The last requests the unit executed, oldest first ("LIMIT PULSES 20")."""
        return list(self.unit.executed)

    def silence(self, ms: float, direction: str = "out") -> None:
        """The line goes dead for ``ms``: ``out`` (the unit's bytes), ``in`` (the host's) or ``both``."""
        self.unit.inject_silence(ms, direction)

    def garbage(self, nbytes: int = 32, terminate: bool = True) -> None:
        """Random bytes towards the host (line noise), ending in CR LF if ``terminate``."""
        self.unit.inject_garbage(int(nbytes), bool(terminate))

    def corrupt_replies(self, count: int = 1) -> None:
        """The next ``count`` replies leave with a wrong CRC."""
        self.unit.corrupt_replies(int(count))

    def drop_events(self, count: int = 1) -> None:
        """The next ``count`` events are lost on the wire (a gap in EVSEQ)."""
        self.unit.drop_events(int(count))

    def power_cycle(self) -> None:
        """Power off and on: the unit reboots (BOOT) with every host setting lost."""
        self.unit.power_cycle()

    def power_off(self) -> None:
        """Cut power: the unit goes safe and dark."""
        self.unit.power_off()

    def power_on(self) -> None:
        """Restore power: the unit boots."""
        self.unit.power_on()

    def ignore_stop(self, on: bool = True) -> None:
        """Faulty firmware: ``STOP`` is answered ``OK state=<current state>`` but not acted on (a
        laser keeps READY or EMITTING and fires while the footswitch is held; a cryo unit keeps
        FREEZING). Watchdog, estop and the unit's own timers still work. ``on=False`` repairs it."""
        self.unit.set_ignore_stop(_flag(on, "on"))

    def mute(self, on: bool = True) -> None:
        """The unit listens but no longer speaks: it still executes every request (each valid one
        restarts its watchdog) but sends no reply and no event until unmuted. Unsent events still
        use their EVSEQ (the host sees a gap afterwards); a watchdog expiry still makes the unit
        safe, its WDT event lost."""
        self.unit.set_muted(_flag(on, "on"))

    def fail_next(self, command: str, code: str = "E02", word: str = "unknown-command") -> None:
        """A failed programming step: the next request whose text (``"THAWMIN 20"``,
        ``"LIMIT PULSES 5"``) starts with ``command`` is refused with ``ER code word`` and not
        executed. One-shot; several calls arm several refusals."""
        self.unit.fail_next(str(command), str(code), str(word))

    def call(self, op: str, args: dict[str, Any] | None = None) -> Any:
        """Run one named operation with keyword arguments (the JSON-lines entry point)."""
        if op not in self.OPERATIONS:
            raise BackdoorError(f"unknown operation {op!r}; known: {', '.join(self.OPERATIONS)}")
        method: Callable[..., Any] = getattr(self, op)
        args = args or {}
        if not isinstance(args, dict):
            raise BackdoorError("args must be an object")
        try:
            inspect.signature(method).bind(**args)
        except TypeError as exc:
            raise BackdoorError(f"{op}: {exc}") from None
        try:
            return method(**args)
        except (ValueError, TypeError, KeyError) as exc:
            raise BackdoorError(f"{op}: {exc}") from None


class LaserBackdoor(Backdoor):
    OPERATIONS = Backdoor.OPERATIONS + (
        "set_input",
        "inject_fault",
        "remove_fault_cause",
        "set_gain",
        "set_gain_drift",
        "set_monitor_gain",
        "set_energy_deviation",
        "set_head_temp",
        "uncommanded_pulse",
    )

    @property
    def model(self) -> LaserModel:
        model = self.unit.model
        assert isinstance(model, LaserModel)
        return model

    def set_input(self, name: str, value: Any) -> None:
        """key, interlock, estop, foot (0/1) or spot (mm)."""
        self.model.set_input(name, value)

    def inject_fault(self, code: str) -> None:
        """Give a fault its physical cause: it latches as the unit would see it.

        F01 the lamp fails to fire at the next pulse; F02 emitted energy 35 % high (three
        deviating pulses latch it); F03 the head overheats; F04 coolant flow is lost; F05 the
        shutter sticks open (latches when the unit next closes it).
        """
        model = self.model
        if code == "F01":
            model.lamp_broken = True
        elif code == "F02":
            model.deviation = 1.35
        elif code == "F03":
            model.temp_c = OVERTEMP_C + 5.0
        elif code == "F04":
            model.coolant_lost = True
        elif code == "F05":
            model.shutter_stuck = True
        else:
            raise ValueError(f"unknown laser fault {code!r}")

    def remove_fault_cause(self, code: str) -> None:
        """Repair what ``inject_fault`` broke (the fault stays latched until FAULT CLEAR)."""
        model = self.model
        if code == "F01":
            model.lamp_broken = False
        elif code == "F02":
            model.deviation = 1.0
        elif code == "F03":
            model.temp_c = 30.0
        elif code == "F04":
            model.coolant_lost = False
        elif code == "F05":
            model.shutter_stuck = False
            if model.state not in ("READY", "EMITTING"):
                model.shutter_open = False
        else:
            raise ValueError(f"unknown laser fault {code!r}")

    def set_gain(self, gain: float) -> None:
        """The lamp's true gain before ageing (1.00 when new)."""
        self.model.base_gain = _positive(gain, "gain")

    def set_gain_drift(self, per_pulse: float) -> None:
        """Fraction of gain lost per pulse fired (lamp ageing)."""
        self.model.ageing_per_pulse = float(per_pulse)

    def set_monitor_gain(self, gain: float) -> None:
        """The internal monitor's gain error (1.00 when true)."""
        self.model.monitor_gain = _positive(gain, "monitor gain")

    def set_energy_deviation(self, factor: float) -> None:
        """A systematic factor on the emitted energy (1.00 = none)."""
        self.model.deviation = _positive(factor, "deviation")

    def set_head_temp(self, celsius: float) -> None:
        """The head's true temperature in degC (above 40 latches F03 overtemp)."""
        self.model.temp_c = float(celsius)

    def uncommanded_pulse(self, count: int = 1) -> None:
        """A broken Q-switch: the unit emits ``count`` pulses now, whatever its state. They are
        PULSE events (``n`` = count after each) and count in ``COUNT?`` count and total, with the
        energy the model computes."""
        if isinstance(count, bool) or int(count) != count:
            raise ValueError("count must be a whole number")
        self.model.uncommanded_pulses(int(count))


class CryoBackdoor(Backdoor):
    OPERATIONS = Backdoor.OPERATIONS + (
        "set_input",
        "inject_fault",
        "remove_fault_cause",
        "set_sensor_offset",
        "set_valve_stuck",
        "set_level",
        "set_pressure",
        "nearly_empty",
        "stall_freeze_timer",
    )

    @property
    def model(self) -> CryoModel:
        model = self.unit.model
        assert isinstance(model, CryoModel)
        return model

    def set_input(self, name: str, value: Any) -> None:
        """estop (0/1) or probe (P1, P3, P5, SPRAY, NONE)."""
        self.model.set_input(name, value)

    def inject_fault(self, code: str) -> None:
        """C01 thermocouple open; C02 valve stuck open; C03 cylinder empty; C04 overpressure."""
        model = self.model
        if code == "C01":
            model.sensor_open = True
        elif code == "C02":
            model.valve_stuck = True
        elif code == "C03":
            model.level = 1.0
        elif code == "C04":
            model.pressure_override = 65.0
        else:
            raise ValueError(f"unknown cryo fault {code!r}")

    def remove_fault_cause(self, code: str) -> None:
        model = self.model
        if code == "C01":
            model.sensor_open = False
        elif code == "C02":
            model.valve_stuck = False
        elif code == "C03":
            model.level = 100.0
        elif code == "C04":
            model.pressure_override = None
        else:
            raise ValueError(f"unknown cryo fault {code!r}")

    def set_sensor_offset(self, celsius: float) -> None:
        """Fixed error of the tip thermocouple (0 when new)."""
        self.model.sensor_offset = float(celsius)

    def set_valve_stuck(self, stuck: bool = True) -> None:
        self.model.valve_stuck = bool(stuck)

    def set_level(self, percent: float) -> None:
        if not 0.0 <= float(percent) <= 100.0:
            raise ValueError("level must be 0-100 %")
        self.model.level = float(percent)

    def set_pressure(self, bar: float | None) -> None:
        """Override the supply pressure (None: follow the cryogen level)."""
        self.model.pressure_override = None if bar is None else float(bar)

    def stall_freeze_timer(self) -> None:
        """The unit's own freeze timer fails for the next freeze: only a STOP (or watchdog, estop,
        fault) ends it. For proving the host's backup timer."""
        self.model.timer_stuck = True

    def nearly_empty(self) -> None:
        """Scenario: a cylinder at 6 %, just above the unit's cryogen-low refusal."""
        self.model.level = 6.0


def _flag(value: Any, what: str) -> bool:
    """A JSON on/off: true/false or 1/0 (never a string, whose truth would be a surprise)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"{what} must be true or false")


def remote_call(address: str, op: str, args: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """One operation over a backdoor's JSON-lines TCP protocol (``HOST:PORT``); the answer as sent
    (``ok`` with ``result``, or ``error``)."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(json.dumps({"id": 1, "op": op, "args": args}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    answer: dict[str, Any] = json.loads(data)
    return answer


def _positive(value: Any, what: str) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError(f"{what} must be positive")
    return number
