"""Line-protocol frames as plain, immutable data (line-protocol.md, "Frames").

Frames compare by value, so tests build the frames they expect and compare. Fields keep the
device's order, which is part of what the device sends; ``fields_dict`` gives a mapping for reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

Fields = tuple[tuple[str, str], ...]


def make_fields(**values: object) -> Fields:
    """Build a fields tuple in the order given, formatting each value for the wire."""
    return tuple((key, format_value(value)) for key, value in values.items())


def format_value(value: object) -> str:
    """Format one value for the wire: decimal with '.', never an exponent, bools as 0/1."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    return str(value)


@dataclass(frozen=True)
class Request:
    """Host to device: ``>SEQ COMMAND ARG...``."""

    seq: int
    command: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reply:
    """Device to host, success: ``<SEQ OK key=value...``."""

    seq: int
    fields: Fields = ()

    def fields_dict(self) -> dict[str, str]:
        return dict(self.fields)


@dataclass(frozen=True)
class ErrorReply:
    """Device to host, refusal: ``<SEQ ER CODE WORD``."""

    seq: int
    code: str
    word: str


@dataclass(frozen=True)
class Event:
    """Device to host, unsolicited: ``!EVSEQ EVENT key=value...``."""

    evseq: int
    name: str
    fields: Fields = ()

    def fields_dict(self) -> dict[str, str]:
        return dict(self.fields)


class BadFrameReason(str, Enum):
    """Why a line was discarded; the values are the device's ``COMERR reason=`` words."""

    CRC = "crc"
    SYNTAX = "syntax"
    LENGTH = "length"


@dataclass(frozen=True)
class BadFrame:
    """A line that was discarded, with the precise reason and the raw bytes for diagnosis."""

    reason: BadFrameReason
    detail: str
    raw: bytes = b""


Frame = Request | Reply | ErrorReply | Event
