"""The serial line protocol (line-protocol.md), sans-I/O: one codec for drivers and simulators."""

from .codec import MAX_FRAME_BYTES, decode, encode
from .crc import crc16_ccitt_false
from .errors import EncodeError, FrameError, LineProtocolError
from .frames import (
    BadFrame,
    BadFrameReason,
    ErrorReply,
    Event,
    Fields,
    Frame,
    Reply,
    Request,
    format_value,
    make_fields,
)
from .splitter import FrameSplitter

__all__ = [
    "MAX_FRAME_BYTES",
    "BadFrame",
    "BadFrameReason",
    "EncodeError",
    "ErrorReply",
    "Event",
    "Fields",
    "Frame",
    "FrameError",
    "FrameSplitter",
    "LineProtocolError",
    "Reply",
    "Request",
    "crc16_ccitt_false",
    "decode",
    "encode",
    "format_value",
    "make_fields",
]
