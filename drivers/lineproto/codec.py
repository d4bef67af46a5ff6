"""Encode and decode single line-protocol frames; sans-I/O, no state.

Grammar (line-protocol.md)::

    request = ">" SEQ " " COMMAND *( " " ARG ) "*" CRC CR LF
    reply   = "<" SEQ " " ( "OK" *( " " FIELD ) / "ER" " " CODE " " WORD ) "*" CRC CR LF
    event   = "!" EVSEQ " " EVENT *( " " FIELD ) "*" CRC CR LF

Decoding checks length first, then the CRC (a corrupted line is a CRC error, whatever its syntax),
then syntax, and names the exact reason. Encoding refuses anything the grammar cannot carry, so a
frame that was encoded always decodes back to itself.
"""

from __future__ import annotations

import re

from .crc import crc16_ccitt_false
from .errors import EncodeError, FrameError
from .frames import BadFrameReason, ErrorReply, Event, Fields, Frame, Reply, Request

MAX_FRAME_BYTES = 256
"""Longest frame, the terminating CR LF included."""

_COMMAND_RE = r"[A-Z?]+"
_KEY_RE = r"[a-z][a-z0-9_]*"
_VALUE_RE = r"[!-)+-<>-~]+"  # printable ASCII without space, '*' and '='
_FIELDS_RE = rf"(?: {_KEY_RE}={_VALUE_RE})*"

_COMMAND = re.compile(_COMMAND_RE + r"\Z")
_ARG = re.compile(r"[!-)+-~]+\Z")  # printable ASCII without space and '*'
_KEY = re.compile(_KEY_RE + r"\Z")
_VALUE = re.compile(_VALUE_RE + r"\Z")
_CODE = re.compile(r"E[0-9]{2}\Z")
_WORD = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*\Z")
_HEX2 = re.compile(r"[0-9A-F]{2}\Z")
_HEX4 = re.compile(r"[0-9A-F]{4}\Z")

_SYNTAX = BadFrameReason.SYNTAX


# ---------------------------------------------------------------- encoding


def encode(frame: Frame) -> bytes:
    """Serialise one frame to its wire bytes, CRC and CR LF included."""
    if isinstance(frame, Request):
        body = f">{_seq2(frame.seq)} {_command(frame.command)}"
        for arg in frame.args:
            if not _ARG.match(arg):
                raise EncodeError(f"argument {arg!r} is empty or holds a space or '*'")
            body += " " + arg
    elif isinstance(frame, Reply):
        body = f"<{_seq2(frame.seq)} OK{_fields(frame.fields)}"
    elif isinstance(frame, ErrorReply):
        if not _CODE.match(frame.code):
            raise EncodeError(f"error code {frame.code!r} is not E plus two digits")
        if not _WORD.match(frame.word):
            raise EncodeError(f"error word {frame.word!r} is not lower-case words joined by '-'")
        body = f"<{_seq2(frame.seq)} ER {frame.code} {frame.word}"
    elif isinstance(frame, Event):
        if not 0 <= frame.evseq <= 0xFFFF:
            raise EncodeError(f"EVSEQ {frame.evseq} is outside 0000-FFFF")
        body = f"!{frame.evseq:04X} {_command(frame.name)}{_fields(frame.fields)}"
    else:
        raise EncodeError(f"not a frame: {frame!r}")
    raw = body.encode("ascii")
    line = raw + b"*%04X\r\n" % crc16_ccitt_false(raw)
    if len(line) > MAX_FRAME_BYTES:
        raise EncodeError(f"frame of {len(line)} bytes exceeds {MAX_FRAME_BYTES}")
    return line


def _seq2(seq: int) -> str:
    if not 0 <= seq <= 0xFF:
        raise EncodeError(f"SEQ {seq} is outside 00-FF")
    return f"{seq:02X}"


def _command(name: str) -> str:
    if not _COMMAND.match(name):
        raise EncodeError(f"command or event {name!r} is not upper-case letters and '?'")
    return name


def _fields(fields: Fields) -> str:
    out = []
    for key, value in fields:
        if not _KEY.match(key):
            raise EncodeError(f"field key {key!r} is not lower-case letters and digits")
        if not _VALUE.match(value):
            raise EncodeError(f"field {key}={value!r}: value is empty or holds a space, '*' or '='")
        out.append(f" {key}={value}")
    return "".join(out)


# ---------------------------------------------------------------- decoding


# The frames a unit sends all the time (an OK reply, an event), matched whole, CRC included, by one
# regex each; the CRC is then checked. Anything else goes through ``decode_checked``, which names
# the reason.
_CRC_LF = rb"\*([0-9A-F]{4})\r\n\Z"
_OK_REPLY_LINE = re.compile(rb"(<([0-9A-F]{2}) OK(" + _FIELDS_RE.encode() + rb"))" + _CRC_LF)
_EVENT_LINE = re.compile(rb"(!([0-9A-F]{4}) (" + _COMMAND_RE.encode() + rb")(" + _FIELDS_RE.encode() + rb"))" + _CRC_LF)


def decode(line: bytes) -> Frame:
    """Parse one complete line (with its CR LF). Raises FrameError with the precise reason."""
    if len(line) <= MAX_FRAME_BYTES:
        match = _OK_REPLY_LINE.match(line)
        if match and int(match[4], 16) == crc16_ccitt_false(match[1]):
            return Reply(int(match[2], 16), _split_fields(match[3].decode("ascii")))
        match = _EVENT_LINE.match(line)
        if match and int(match[5], 16) == crc16_ccitt_false(match[1]):
            return Event(int(match[2], 16), match[3].decode("ascii"), _split_fields(match[4].decode("ascii")))
    return decode_checked(line)


def _split_fields(matched: str) -> Fields:
    """`` k=v k=v`` already matched by the grammar (no space or '=' inside a key or value)."""
    parts = matched[1:].replace("=", " ").split(" ")
    return tuple(zip(parts[::2], parts[1::2]))


def decode_checked(line: bytes) -> Frame:
    """``decode`` one check at a time: the path that finds the precise reason for a bad line."""
    if len(line) > MAX_FRAME_BYTES:
        raise FrameError(BadFrameReason.LENGTH, f"{len(line)} bytes, limit {MAX_FRAME_BYTES}")
    if not line.endswith(b"\r\n"):
        raise FrameError(_SYNTAX, "line does not end with CR LF")
    content = line[:-2]
    star = content.rfind(b"*")
    if star < 0:
        raise FrameError(_SYNTAX, "no '*' before the CRC")
    body, crc_text = content[:star], content[star + 1 :]
    try:
        crc_str = crc_text.decode("ascii")
    except UnicodeDecodeError:
        raise FrameError(_SYNTAX, "CRC is not ASCII") from None
    if not _HEX4.match(crc_str):
        raise FrameError(_SYNTAX, f"CRC {crc_text!r} is not four upper-case hex digits")
    expected = crc16_ccitt_false(body)
    if int(crc_str, 16) != expected:
        raise FrameError(BadFrameReason.CRC, f"CRC {crc_str}, computed {expected:04X}")
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise FrameError(_SYNTAX, "frame holds non-ASCII bytes") from None
    if not text.isprintable():
        raise FrameError(_SYNTAX, "frame holds control characters")
    if not text:
        raise FrameError(_SYNTAX, "empty frame")
    kind, rest = text[0], text[1:]
    tokens = rest.split(" ")
    if kind == ">":
        return _decode_request(tokens)
    if kind == "<":
        return _decode_reply(tokens)
    if kind == "!":
        return _decode_event(tokens)
    raise FrameError(_SYNTAX, f"frame starts with {kind!r}, not '>', '<' or '!'")


def _decode_request(tokens: list[str]) -> Request:
    seq = _parse_hex(tokens[0], _HEX2, "SEQ")
    if len(tokens) < 2 or not _COMMAND.match(tokens[1]):
        raise FrameError(_SYNTAX, "missing or malformed command")
    for arg in tokens[2:]:
        if not _ARG.match(arg):
            raise FrameError(_SYNTAX, f"malformed argument {arg!r}")
    return Request(seq, tokens[1], tuple(tokens[2:]))


def _decode_reply(tokens: list[str]) -> Reply | ErrorReply:
    seq = _parse_hex(tokens[0], _HEX2, "SEQ")
    if len(tokens) >= 2 and tokens[1] == "OK":
        return Reply(seq, _parse_fields(tokens[2:]))
    if len(tokens) >= 2 and tokens[1] == "ER":
        if len(tokens) != 4:
            raise FrameError(_SYNTAX, "ER reply needs exactly a code and a word")
        if not _CODE.match(tokens[2]):
            raise FrameError(_SYNTAX, f"malformed error code {tokens[2]!r}")
        if not _WORD.match(tokens[3]):
            raise FrameError(_SYNTAX, f"malformed error word {tokens[3]!r}")
        return ErrorReply(seq, tokens[2], tokens[3])
    raise FrameError(_SYNTAX, "reply is neither OK nor ER")


def _decode_event(tokens: list[str]) -> Event:
    evseq = _parse_hex(tokens[0], _HEX4, "EVSEQ")
    if len(tokens) < 2 or not _COMMAND.match(tokens[1]):
        raise FrameError(_SYNTAX, "missing or malformed event name")
    return Event(evseq, tokens[1], _parse_fields(tokens[2:]))


def _parse_hex(token: str, pattern: re.Pattern[str], what: str) -> int:
    if not pattern.match(token):
        raise FrameError(_SYNTAX, f"malformed {what} {token!r}")
    return int(token, 16)


def _parse_fields(tokens: list[str]) -> Fields:
    fields = []
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep or not _KEY.match(key) or not _VALUE.match(value):
            raise FrameError(_SYNTAX, f"malformed field {token!r}")
        fields.append((key, value))
    return tuple(fields)
