"""SCPI as the instruments speak it (scpi-instruments.md), sans-I/O.

Headers are case-insensitive, in short or long form (``SENS:CORR:WAV`` = ``sense:correction:wavelength``),
a leading ``:`` is allowed and units are separated by ``;``. A malformed or unknown command gets no
answer and queues a standard error; a query that fails answers nothing, so the host must ask
``SYST:ERR?`` after a timeout. The error queue holds 10 entries; the 11th becomes -350.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

QUEUE_SIZE = 10
NO_ERROR = (0, "No error")
UNDEFINED_HEADER = (-113, "Undefined header")
DATA_OUT_OF_RANGE = (-222, "Data out of range")
ILLEGAL_PARAMETER = (-224, "Illegal parameter value")
MISSING_PARAMETER = (-109, "Missing parameter")
PARAMETER_NOT_ALLOWED = (-108, "Parameter not allowed")
NUMERIC_DATA_ERROR = (-120, "Numeric data error")
QUEUE_OVERFLOW = (-350, "Queue overflow")

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")


class ScpiError(Exception):
    def __init__(self, error: tuple[int, str]) -> None:
        super().__init__(f"{error[0]},\"{error[1]}\"")
        self.error = error


def parse_number(text: str) -> float:
    if not _NUMBER.match(text.strip()):
        raise ScpiError(NUMERIC_DATA_ERROR)
    return float(text)


Handler = Callable[[str | None], str | None]


@dataclass(frozen=True)
class Command:
    """One header pattern such as ``SENSe:CORRection:WAVelength``; the capitals are the short form."""

    pattern: str
    query: bool
    handler: Handler

    def matches(self, nodes: list[str]) -> bool:
        parts = self.pattern.split(":")
        if len(parts) != len(nodes):
            return False
        return all(_node_matches(part, node) for part, node in zip(parts, nodes))


def _node_matches(pattern: str, node: str) -> bool:
    short = "".join(c for c in pattern if c.isupper() or c.isdigit() or c == "*")
    return node.upper() in (short.upper(), pattern.upper())


class ScpiDevice:
    """An instrument's command table with the IEEE 488.2 common commands and the error queue."""

    def __init__(self) -> None:
        self.errors: deque[tuple[int, str]] = deque()
        self.commands: list[Command] = [
            Command("*IDN", True, lambda _: self.idn()),
            Command("*RST", False, lambda _: self.reset()),
            Command("*CLS", False, lambda _: self.errors.clear()),
            Command("*OPC", True, lambda _: "1"),
            Command("SYSTem:ERRor", True, lambda _: self._pop_error()),
            Command("SYSTem:ERRor:NEXT", True, lambda _: self._pop_error()),
        ]

    def idn(self) -> str:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def add(self, pattern: str, query: bool, handler: Handler) -> None:
        self.commands.append(Command(pattern, query, handler))

    def push_error(self, error: tuple[int, str]) -> None:
        if len(self.errors) >= QUEUE_SIZE:
            self.errors[-1] = QUEUE_OVERFLOW
            return
        self.errors.append(error)

    def _pop_error(self) -> str:
        code, text = self.errors.popleft() if self.errors else NO_ERROR
        return f'{code},"{text}"'

    def handle_line(self, line: str) -> str | None:
        """One line from the host; the answer line (queries joined by ';') or None."""
        answers = []
        for unit in line.strip().split(";"):
            unit = unit.strip()
            if not unit:
                continue
            try:
                answer = self._unit(unit)
            except ScpiError as exc:
                self.push_error(exc.error)
                continue
            if answer is not None:
                answers.append(answer)
        return ";".join(answers) if answers else None

    def _unit(self, unit: str) -> str | None:
        header, _, argument = unit.partition(" ")
        header = header.lstrip(":")
        argument = argument.strip() or None
        query = header.endswith("?")
        nodes = header.rstrip("?").split(":")
        if not all(nodes):
            raise ScpiError(UNDEFINED_HEADER)
        for command in self.commands:
            if command.query == query and command.matches(nodes):
                return command.handler(argument)
        raise ScpiError(UNDEFINED_HEADER)


def no_argument(argument: str | None) -> None:
    if argument is not None:
        raise ScpiError(PARAMETER_NOT_ALLOWED)


def required(argument: str | None) -> str:
    if argument is None:
        raise ScpiError(MISSING_PARAMETER)
    return argument
