"""What every simulated unit model has in common: refusals, latched faults, deferred replies.

A model is the unit's physics and state machine (Lewis's device): pure, stepped by
``advance(now)``, speaking to the outside only through the ``emit`` callback and its command
methods. The protocol engine (``engine.LineUnit``) owns framing, the watchdog and retransmission.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

EmitFn = Callable[[str, Mapping[str, object]], None]
CommandFn = Callable[[tuple[str, ...]], "Mapping[str, object] | Deferred"]


class CommandError(Exception):
    """The unit refuses a request with ``ER CODE WORD`` (line-protocol.md, error codes)."""

    def __init__(self, code: str, word: str) -> None:
        super().__init__(f"{code} {word}")
        self.code = code
        self.word = word


def unknown_command() -> CommandError:
    return CommandError("E02", "unknown-command")


def out_of_range() -> CommandError:
    return CommandError("E03", "out-of-range")


def bad_argument() -> CommandError:
    return CommandError("E03", "bad-argument")


def not_allowed() -> CommandError:
    return CommandError("E04", "not-allowed-in-state")


def fault_active() -> CommandError:
    return CommandError("E06", "fault-active")


def busy() -> CommandError:
    return CommandError("E07", "busy")


def parse_number(args: tuple[str, ...], decimals: int, lo: Decimal | int, hi: Decimal | int) -> Decimal:
    """Parse the single numeric argument of a setting, as strictly as the unit does.

    ``decimals`` is how many digits after the point the unit accepts (0: whole numbers). A
    missing, extra or malformed argument is ``bad-argument``; a number outside ``lo..hi`` is
    ``out-of-range``.
    """
    if len(args) != 1:
        raise bad_argument()
    text = args[0]
    whole, _, frac = text.lstrip("-").partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()) or len(frac) > decimals or text.endswith("."):
        raise bad_argument()
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise bad_argument() from None
    if not Decimal(lo) <= value <= Decimal(hi):
        raise out_of_range()
    return value


def parse_flag(args: tuple[str, ...]) -> bool:
    """A 0/1 argument."""
    if args not in (("0",), ("1",)):
        raise bad_argument() if len(args) != 1 or not args[0].isdigit() else out_of_range()
    return args[0] == "1"


@dataclass
class Deferred:
    """A reply the unit sends later (the laser's ``FIRE`` answers after its last pulse)."""

    fields: Mapping[str, object] | None = None

    @property
    def done(self) -> bool:
        return self.fields is not None

    def complete(self, **fields: object) -> None:
        self.fields = fields


@dataclass
class LatchedFaults:
    """Faults latch when their cause appears and clear only on request once the cause is gone.

    ``causes`` holds the fault codes whose physical cause is present now; the model keeps it
    current. ``latched`` keeps the order of latching; ``FAULT?`` reports the oldest.
    """

    texts: Mapping[str, str]
    causes: set[str] = field(default_factory=set)
    latched: list[str] = field(default_factory=list)

    def latch(self, code: str) -> bool:
        """Latch ``code``; True when it was not latched before."""
        if code not in self.texts:
            raise ValueError(f"unknown fault code {code!r}")
        if code in self.latched:
            return False
        self.latched.append(code)
        return True

    @property
    def active(self) -> bool:
        return bool(self.latched)

    def first(self) -> tuple[str, str]:
        if not self.latched:
            return "NONE", "none"
        code = self.latched[0]
        return code, self.texts[code]

    def try_clear(self) -> bool:
        """Clear every latched fault if no latched fault's cause is still present."""
        if any(code in self.causes for code in self.latched):
            return False
        self.latched.clear()
        return True


class UnitModel(ABC):
    """Physics and state machine of one unit; the engine drives it."""

    #: firmware version reported by IDN? and BOOT
    FW: str = "1.0.0"
    #: the unit's state name while a fault is latched
    FAULT_STATE = "FAULT"

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._emit: EmitFn = lambda name, fields: None
        self.boot_time = 0.0
        self.now = 0.0

    def bind(self, emit: EmitFn) -> None:
        self._emit = emit

    def emit(self, name: str, **fields: object) -> None:
        self._emit(name, fields)

    def unit_ms(self, now: float | None = None) -> int:
        """The unit's own clock in ms since it booted, as sent in ``t=`` fields."""
        return round(((self.now if now is None else now) - self.boot_time) * 1000)

    # -- life cycle -------------------------------------------------------------------------
    @abstractmethod
    def power_on(self, now: float) -> None:
        """Enter the power-on state: safe, host settings at their fail-safe values.

        Physical properties (gains, offsets, inputs, cryogen, lifetime counters) survive."""

    @abstractmethod
    def advance(self, now: float) -> None:
        """Advance physics and timers to ``now`` (never backwards)."""

    @abstractmethod
    def next_deadline(self) -> float:
        """The next time at which the model has something to do on its own."""

    # -- behaviour the engine needs ---------------------------------------------------------
    @abstractmethod
    def commands(self) -> Mapping[str, CommandFn]:
        """Unit-specific commands, keyed ``"WL"`` or ``"LIMIT PULSES"`` (command + sub-word)."""

    @abstractmethod
    def idn_fields(self) -> Mapping[str, object]: ...

    @abstractmethod
    def state_fields(self) -> Mapping[str, object]: ...

    @abstractmethod
    def safe_state(self, cause: str) -> None:
        """STOP, watchdog expiry: stop emission or freezing at once (FAULT stays FAULT)."""

    @property
    def state(self) -> str:
        """The unit's state name (each model keeps an Enum in ``_state``)."""
        return self._state.value  # type: ignore[attr-defined, no-any-return]

    @property
    def faults(self) -> LatchedFaults:
        return self._faults  # type: ignore[attr-defined, no-any-return]

    @abstractmethod
    def after_fault_clear(self) -> None:
        """Leave FAULT for the unit's idle state once every latched fault is cleared."""

    @abstractmethod
    def truth(self) -> dict[str, object]:
        """The true physical state, for the backdoor (never visible on the serial line)."""
