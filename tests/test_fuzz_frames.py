"""100 000 garbage and bit-flipped frames into the codec, the driver's receive path and the
simulated unit: nothing crashes, and no bad frame is ever acted on."""

from __future__ import annotations

import random
from typing import Any

from drivers.events import DeviceEvent, LineNoise
from drivers.laser import LaserDriver
from drivers.lineproto import (
    BadFrame,
    ErrorReply,
    Event,
    FrameSplitter,
    Reply,
    Request,
    decode,
    encode,
    make_fields,
)
from drivers.lineproto.errors import FrameError
from simulators.virtual import VirtualUnit

FRAMES = 100_000
REQUESTS = [Request(s, c, a) for s, (c, a) in enumerate([
    ("LIMIT", ("PULSES", "50")), ("READY", ()), ("ENERGY", ("450",)), ("FIRE", ("3",)), ("STOP", ()), ("WDT", ("200",)),
    ("SERVICE", ("1",)), ("COUNT", ("RESET",)), ("AIM", ("1",)), ("RATE", ("9.5",)),
])]
EVENTS = [
    Event(1, "PULSE", make_fields(n=17, e="447.9", set=450, t=1203412)),
    Event(2, "STATE", make_fields(state="EMITTING", cause="foot")),
    Event(3, "FAULT", make_fields(code="F02", text="energy-deviation")),
    Event(4, "INPUT", make_fields(key=1, interlock=0, estop=0, foot=1)),
]
REPLIES = [Reply(7, make_fields(state="READY")), ErrorReply(8, "E05", "interlock-open")]


def mutations(rng: random.Random, frames: list[bytes], count: int) -> list[bytes]:
    out = []
    for i in range(count):
        frame = bytearray(rng.choice(frames))
        kind = i % 4
        if kind == 0:  # one flipped bit anywhere before CR LF
            pos = rng.randrange(len(frame) - 2)
            frame[pos] ^= 1 << rng.randrange(8)
        elif kind == 1:  # a burst of random bytes inside the frame
            pos = rng.randrange(len(frame) - 2)
            frame[pos:pos + 3] = bytes(rng.randrange(256) for _ in range(3))
        elif kind == 2:  # truncated and glued to the next
            frame = frame[: rng.randrange(1, len(frame) - 2)]
        else:  # pure noise of line length
            frame = bytearray(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
        out.append(bytes(frame) + (b"\r\n" if kind in (2, 3) else b""))
    return out


def test_codec_never_raises_anything_but_its_own_error() -> None:
    rng = random.Random(1)
    frames = [encode(f) for f in REQUESTS + EVENTS + REPLIES]
    decoded_valid = 0
    for line in mutations(rng, frames, FRAMES):
        try:
            frame = decode(line)
        except FrameError:
            continue
        decoded_valid += 1
        assert encode(frame) == line  # anything accepted is a genuine, well-formed frame
    splitter = FrameSplitter()
    stream = b"".join(mutations(rng, frames, 5000))
    for i in range(0, len(stream), 37):
        for item in splitter.feed(stream[i:i + 37]):
            assert isinstance(item, (BadFrame, Request, Reply, ErrorReply, Event))
    assert decoded_valid < FRAMES * 0.01


def test_driver_receive_path_survives_and_types_everything() -> None:
    rng = random.Random(2)
    driver = LaserDriver("socket://127.0.0.1:9")  # never connected: only its receive path is fed
    seen: list[Any] = []
    driver.add_listener(seen.append)
    frames = [encode(f) for f in EVENTS + REPLIES]
    data = mutations(rng, frames, FRAMES // 2)
    for line in data:
        driver._on_bytes(line)
    assert seen, "bad frames are reported, not swallowed"
    assert all(isinstance(e, (DeviceEvent, LineNoise)) or e.kind == "GAP" for e in seen)
    assert driver.stats["noise"] > FRAMES // 2 * 0.9


def test_simulated_unit_never_acts_on_a_bad_frame() -> None:
    rng = random.Random(3)
    unit = VirtualUnit("laser", seed=3)
    unit.ok("WDT", 5000)
    before = dict(unit.unit.stats)
    frames = [encode(f) for f in REQUESTS]
    executed_valid = 0
    for line in mutations(rng, frames, FRAMES // 2):
        try:
            decode(line)
            executed_valid += 1
        except FrameError:
            pass
        unit.send_raw(line)
        if len(unit.events) > 1000:
            unit.events.clear()
    assert unit.unit.stats["executed"] - before["executed"] == executed_valid == 0
    state = unit.state()
    assert state["budget"] == "0" and state["state"] == "STANDBY" and state["service"] == "0"
    assert unit.unit.stats["comerr"] - before["comerr"] > FRAMES // 2 * 0.9
