"""The line-protocol codec: ICD golden examples, precise errors, splitting, property tests."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.lineproto import (
    MAX_FRAME_BYTES,
    BadFrame,
    BadFrameReason,
    EncodeError,
    ErrorReply,
    Event,
    FrameError,
    FrameSplitter,
    Reply,
    Request,
    crc16_ccitt_false,
    decode,
    encode,
    make_fields,
)
from drivers.lineproto.codec import decode_checked

GOLDEN = [
    (b">01 IDN?*671F", Request(0x01, "IDN?")),
    (b">2A ENERGY 450*82D2", Request(0x2A, "ENERGY", ("450",))),
    (b"<2A OK energy=450*2E9E", Reply(0x2A, (("energy", "450"),))),
    (b">2B READY*7D5B", Request(0x2B, "READY")),
    (b"<2B ER E05 interlock-open*C23C", ErrorReply(0x2B, "E05", "interlock-open")),
    (
        b"!00F3 PULSE n=17 e=447.9 set=450 t=1203412*279D",
        Event(0x00F3, "PULSE", (("n", "17"), ("e", "447.9"), ("set", "450"), ("t", "1203412"))),
    ),
]


def test_crc_check_value() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1


@pytest.mark.parametrize(("line", "frame"), GOLDEN)
def test_golden_examples_decode(line: bytes, frame: object) -> None:
    assert decode(line + b"\r\n") == frame


@pytest.mark.parametrize(("line", "frame"), GOLDEN)
def test_golden_examples_encode(line: bytes, frame: object) -> None:
    assert encode(frame) == line + b"\r\n"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("line", "reason", "detail"),
    [
        (b">01 IDN?*671E\r\n", BadFrameReason.CRC, "computed 671F"),
        (b">01 IDN?*671F\n", BadFrameReason.SYNTAX, "CR LF"),
        (b">01 IDN?671F\r\n", BadFrameReason.SYNTAX, "no '*'"),
        (b">01 IDN?*671f\r\n", BadFrameReason.SYNTAX, "four upper-case hex"),
        (b">01 IDN?*67\r\n", BadFrameReason.SYNTAX, "four upper-case hex"),
        (b">" + b"A" * 300 + b"*0000\r\n", BadFrameReason.LENGTH, "limit 256"),
    ],
)
def test_bad_lines_name_their_reason(line: bytes, reason: BadFrameReason, detail: str) -> None:
    with pytest.raises(FrameError) as info:
        decode(line)
    assert info.value.reason is reason
    assert detail in info.value.detail


def _framed(body: bytes) -> bytes:
    return body + b"*%04X\r\n" % crc16_ccitt_false(body)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b">1 IDN?", "malformed SEQ"),
        (b">zz IDN?", "malformed SEQ"),
        (b">01 idn?", "command"),
        (b">01", "command"),
        (b"<01 MAYBE", "neither OK nor ER"),
        (b"<01 ER E5 interlock-open", "error code"),
        (b"<01 ER E05 Interlock_Open", "error word"),
        (b"<01 ER E05", "exactly a code and a word"),
        (b"<01 OK energy", "malformed field"),
        (b"<01 OK Energy=4", "malformed field"),
        (b"<01 OK energy=", "malformed field"),
        (b"!F3 PULSE", "malformed EVSEQ"),
        (b"!00F3 pulse", "event name"),
        (b"?01 IDN?", "starts with"),
        (b"", "empty frame"),
        (b">01 ENERGY  450", "malformed argument"),
        (b">01 IDN?\x01", "control characters"),
        (b">01 IDN\xff", "non-ASCII"),
    ],
)
def test_syntax_errors_are_precise(body: bytes, detail: str) -> None:
    with pytest.raises(FrameError) as info:
        decode(_framed(body))
    assert info.value.reason is BadFrameReason.SYNTAX
    assert detail in info.value.detail


def test_frame_of_exactly_256_bytes_is_accepted_and_257_refused() -> None:
    def event_of_total_length(total: int) -> bytes:
        # "!0001 X v=" + value + "*CRC\r\n": fixed parts are 10 + 7 bytes
        return encode(Event(1, "X", (("v", "a" * (total - 17)),)))

    assert len(event_of_total_length(256)) == MAX_FRAME_BYTES
    assert decode(event_of_total_length(256)).name == "X"  # type: ignore[union-attr]
    with pytest.raises(EncodeError):
        event_of_total_length(257)


@pytest.mark.parametrize(
    "frame",
    [
        Request(256, "IDN?"),
        Request(1, "idn?"),
        Request(1, "ENERGY", ("4 5",)),
        Request(1, "ENERGY", ("",)),
        Reply(1, (("Energy", "4"),)),
        Reply(1, (("e", "a*b"),)),
        ErrorReply(1, "E5", "x"),
        ErrorReply(1, "E05", "Bad Word"),
        Event(0x10000, "X"),
    ],
)
def test_encoding_refuses_what_the_wire_cannot_carry(frame: object) -> None:
    with pytest.raises(EncodeError):
        encode(frame)  # type: ignore[arg-type]


def test_make_fields_formats_numbers_without_exponent() -> None:
    assert make_fields(a=1e-7, b=True, c=450, d=2.5) == (("a", "0.0000001"), ("b", "1"), ("c", "450"), ("d", "2.5"))


# ---------------------------------------------------------------- splitter


def test_splitter_survives_partial_lines_byte_by_byte() -> None:
    stream = b"".join(line + b"\r\n" for line, _ in GOLDEN)
    splitter = FrameSplitter()
    out = []
    for i in range(len(stream)):
        out += splitter.feed(stream[i : i + 1])
    assert out == [frame for _, frame in GOLDEN]
    assert splitter.pending == 0


def test_splitter_reports_garbage_and_recovers() -> None:
    splitter = FrameSplitter()
    out = splitter.feed(b"\x00\xff noise\r\n>01 IDN?*671F\r\nxx>2B READY*7D5B\r\n>2B READY*7D5B\r\n")
    assert isinstance(out[0], BadFrame) and out[0].reason is BadFrameReason.CRC or out[0].reason is BadFrameReason.SYNTAX
    assert out[1] == Request(1, "IDN?")
    assert isinstance(out[2], BadFrame)
    assert out[3] == Request(0x2B, "READY")


def test_splitter_discards_overlong_line_once_and_bounds_its_buffer() -> None:
    splitter = FrameSplitter()
    out = []
    for _ in range(100):
        out += splitter.feed(b"A" * 100)
        assert splitter.pending <= MAX_FRAME_BYTES
    out += splitter.feed(b"\r\n>01 IDN?*671F\r\n")
    assert [type(x) for x in out] == [BadFrame, Request]
    assert out[0].reason is BadFrameReason.LENGTH  # type: ignore[union-attr]


# ---------------------------------------------------------------- properties

_commands = st.from_regex(r"[A-Z]{1,8}\??", fullmatch=True)
_args = st.from_regex(r"[!-)+-~]{1,10}", fullmatch=True)
_keys = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True)
_values = st.from_regex(r"[!-)+-<>-~]{1,10}", fullmatch=True)
_fields = st.lists(st.tuples(_keys, _values), max_size=6).map(tuple)
_frames = st.one_of(
    st.builds(Request, st.integers(0, 255), _commands, st.lists(_args, max_size=5).map(tuple)),
    st.builds(Reply, st.integers(0, 255), _fields),
    st.builds(
        ErrorReply,
        st.integers(0, 255),
        st.from_regex(r"E[0-9]{2}", fullmatch=True),
        st.from_regex(r"[a-z]{1,8}(-[a-z]{1,8}){0,2}", fullmatch=True),
    ),
    st.builds(Event, st.integers(0, 0xFFFF), _commands, _fields),
)


@given(_frames)
def test_every_encoded_frame_decodes_to_itself(frame: object) -> None:
    assert decode(encode(frame)) == frame  # type: ignore[arg-type]


@given(st.lists(_frames, max_size=8), st.lists(st.integers(1, 40), max_size=20))
def test_splitter_reassembles_any_slicing(frames: list[object], cuts: list[int]) -> None:
    stream = b"".join(encode(f) for f in frames)  # type: ignore[arg-type]
    splitter, out, pos = FrameSplitter(), [], 0
    for cut in cuts + [len(stream)]:
        out += splitter.feed(stream[pos : pos + cut])
        pos += cut
    out += splitter.feed(stream[pos:])
    assert out == frames


def _outcome(decoder: object, line: bytes) -> object:
    try:
        return decoder(line)  # type: ignore[operator]
    except FrameError as exc:
        return (exc.reason, exc.detail)


def _body(frame: object) -> bytes:
    line = encode(frame)  # type: ignore[arg-type]
    return line[: line.rfind(b"*")]


def _with_crc(body: bytes, good: bool = True) -> bytes:
    return body + b"*%04X\r\n" % (crc16_ccitt_false(body) ^ (0 if good else 1))


def _one_byte_edits(body: bytes, alphabet: bytes) -> list[bytes]:
    """Every line one inserted, replaced or deleted byte away from ``body``."""
    out = []
    for pos in range(len(body) + 1):
        out += [body[:pos] + bytes([b]) + body[pos:] for b in alphabet]
        if pos < len(body):
            out += [body[:pos] + bytes([b]) + body[pos + 1 :] for b in alphabet]
            out.append(body[:pos] + body[pos + 1 :])
    return out


_NEAR = [
    *(line[: line.rfind(b"*")] for line, _ in GOLDEN),
    _body(Reply(0xFF, ())),
    _body(Reply(0x00, (("a_1", "x"), ("b", "!~<>")))),
    _body(Event(0xABCD, "STATE?", ())),
]


@pytest.mark.parametrize("body", _NEAR)
def test_the_fast_decoder_agrees_with_the_checked_one_one_edit_away(body: bytes) -> None:
    """decode() takes a shortcut for well-formed replies and events; it must never differ."""
    alphabet = b" =*<>!?_-~.,0129AEFGKOafgkoz\t\x00\x7f\x80\xff"
    for edited in _one_byte_edits(body, alphabet):
        line = _with_crc(edited)
        assert _outcome(decode, line) == _outcome(decode_checked, line), line


_near_frames = st.one_of(
    _frames.map(_body),
    st.tuples(st.sampled_from([b"<", b"!", b">", b"<2A OK", b"!00F3 PULSE", b"<2A OK k="]), st.binary(max_size=40)).map(
        b"".join
    ),
)


@settings(max_examples=1000)
@given(_near_frames, st.booleans())
def test_the_fast_decoder_agrees_with_the_checked_one_on_any_line(body: bytes, good_crc: bool) -> None:
    """decode() takes a shortcut for well-formed replies and events; it must never differ."""
    line = _with_crc(body, good_crc)
    assert _outcome(decode, line) == _outcome(decode_checked, line)


@settings(max_examples=500)
@given(st.binary(max_size=600))
def test_random_bytes_never_raise_anything_but_the_codec_error(data: bytes) -> None:
    try:
        decode(data)
    except FrameError:
        pass
    for item in FrameSplitter().feed(data):
        assert isinstance(item, (BadFrame, Request, Reply, ErrorReply, Event))


@given(_frames, st.integers(0, 255), st.integers(0, 7))
def test_a_flipped_bit_is_never_taken_for_a_different_valid_frame(frame: object, pos: int, bit: int) -> None:
    line = bytearray(encode(frame))  # type: ignore[arg-type]
    index = pos % (len(line) - 2)  # keep CR LF so that the line is complete
    line[index] ^= 1 << bit
    try:
        decoded = decode(bytes(line))
    except FrameError:
        return
    assert decoded == frame  # CRC-16 detects every single-bit error
