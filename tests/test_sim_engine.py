"""Rules of exchange both units share (line-protocol.md), in virtual time."""

from __future__ import annotations

import pytest

from drivers.lineproto import BadFrame, Reply, Request, encode
from simulators.virtual import VirtualUnit

KINDS = ["laser", "cryo"]


@pytest.mark.parametrize("kind", KINDS)
def test_boot_event_first_with_evseq_zero(kind: str) -> None:
    v = VirtualUnit(kind)  # type: ignore[arg-type]
    assert v.events[0].name == "BOOT" and v.events[0].evseq == 0
    assert v.events[0].fields_dict()["fw"] == v.ok("IDN?")["fw"]


@pytest.mark.parametrize("kind", KINDS)
def test_evseq_increments_by_one_and_wraps(kind: str) -> None:
    v = VirtualUnit(kind)  # type: ignore[arg-type]
    v.unit._evseq = 0xFFFE
    v.send_raw(b"garbage\r\n")
    v.send_raw(b"garbage\r\n")
    v.send_raw(b"garbage\r\n")
    assert [e.evseq for e in v.events_named("COMERR")] == [0xFFFE, 0xFFFF, 0x0000]


@pytest.mark.parametrize(
    ("kind", "arm", "safe_state"),
    [("laser", "laser", "STANDBY"), ("cryo", "cryo", "THAW")],
)
def test_watchdog_expiry_stops_and_sends_wdt(kind: str, arm: str, safe_state: str) -> None:
    v = VirtualUnit(kind)  # type: ignore[arg-type]
    if arm == "laser":
        v.ok("LIMIT", "PULSES", 1000)
        v.ok("READY")
        v.run(1.6)
        v.do("set_input", name="foot", value=1)
        v.run(0.5)
        assert v.state()["state"] == "EMITTING"
    else:
        v.ok("LIMIT", "FREEZE", 30)
        v.ok("FREEZE", 20)
        v.run(0.5)
    v.ok("HB")
    count_before = len(v.events_named("PULSE"))
    v.run(0.99, heartbeat=False, step=0.01)
    assert not v.events_named("WDT"), "watchdog fired before its 1000 ms"
    v.run(0.05, heartbeat=False, step=0.01)
    assert len(v.events_named("WDT")) == 1
    state_events = [e.fields_dict() for e in v.events_named("STATE")]
    assert state_events[-1] == {"state": safe_state, "cause": "wdt"}
    truth = v.do("truth")
    if kind == "laser":
        assert truth["shutter_open"] is False and truth["emitting"] is False
        pulses = len(v.events_named("PULSE"))
        v.run(2.0)
        assert len(v.events_named("PULSE")) == pulses, "emission resumed after the watchdog"
        assert pulses - count_before <= 10  # 1 Hz default: no pulse after expiry
    else:
        assert truth["valve_open"] is False
        end = [e.fields_dict() for e in v.events_named("FREEZE") if e.fields_dict()["phase"] == "end"]
        assert end[-1]["cause"] == "wdt"


@pytest.mark.parametrize("kind", KINDS)
def test_every_valid_request_restarts_the_watchdog(kind: str) -> None:
    v = VirtualUnit(kind)  # type: ignore[arg-type]
    v.ok("WDT", 200)
    for _ in range(20):
        v.run(0.15, heartbeat=False)
        v.request("FOO")  # refused, but a valid request: restarts the watchdog
    assert not v.events_named("WDT")
    v.send_raw(b">01 HB*0000\r\n")  # a bad CRC does not restart it
    v.run(0.21, heartbeat=False, step=0.01)
    assert v.events_named("WDT")


def test_watchdog_value_is_used_and_not_kept_across_boot() -> None:
    v = VirtualUnit("cryo")
    v.ok("WDT", 3000)
    v.run(2.9, heartbeat=False, step=0.05)
    assert not v.events_named("WDT")
    v.run(0.2, heartbeat=False, step=0.05)
    assert v.events_named("WDT")
    v.do("power_cycle")
    assert v.ok("WDT?") == {"wdt": "1000"}


def test_retransmitted_request_is_not_executed_twice() -> None:
    v = VirtualUnit("laser")
    v.ok("LIMIT", "PULSES", 10)
    first = v.request("READY", seq=0x40)
    assert first == Reply(0x40, (("state", "CHARGING"),))
    again = v.request("READY", seq=0x40)
    assert again == first  # the cached reply, not E04 from a second execution
    assert v.unit.stats["retransmits"] == 1
    assert len([e for e in v.events_named("STATE") if e.fields_dict()["state"] == "CHARGING"]) == 1


def test_retransmit_window_is_two_seconds_and_new_seq_executes() -> None:
    v = VirtualUnit("laser")
    v.ok("LIMIT", "PULSES", 10)
    v.request("READY", seq=0x41)
    v.run(2.1)  # heart-beats in between are new requests: the cache now holds HB
    assert v.refused("READY") == ("E04", "not-allowed-in-state")
    v.ok("STANDBY")
    v.request("COUNT", "RESET", seq=0x50)
    v.clock.advance(2.5)
    v.unit.advance_to(v.clock.now())
    v.request("COUNT", "RESET", seq=0x50)
    assert v.unit.stats["retransmits"] == 0


def test_reply_lost_in_silence_is_recovered_by_retransmission() -> None:
    v = VirtualUnit("cryo")
    v.ok("LIMIT", "FREEZE", 20)
    v.do("silence", ms=100)
    assert v.request("FREEZE", 10, seq=0x33) is None  # executed, reply lost
    v.run(0.15, heartbeat=False, step=0.05)
    executed = v.unit.stats["executed"]
    reply = v.request("FREEZE", 10, seq=0x33)
    assert reply == Reply(0x33, (("state", "FREEZING"),))
    assert v.unit.stats["executed"] == executed  # answered from the cache
    assert float(v.state()["elapsed"]) >= 0.1  # the freeze that runs is the first one


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b">01 IDN?*671E\r\n", "crc"),
        (b">01 IDN?\r\n", "syntax"),
        (b"<01 OK*" + b"%04X" % 0 + b"\r\n", "crc"),
        (encode(Reply(1, ())), "syntax"),  # a reply is not a request
        (b">01 " + b"X" * 300 + b"\r\n", "length"),
    ],
)
def test_bad_lines_are_discarded_with_comerr(data: bytes, reason: str) -> None:
    v = VirtualUnit("laser")
    v.send_raw(data)
    assert [e.fields_dict() for e in v.events_named("COMERR")] == [{"reason": reason}]
    assert not v.replies


def test_bad_crc_request_is_not_acted_on() -> None:
    v = VirtualUnit("laser")
    good = encode(Request(5, "LIMIT", ("PULSES", "50")))
    v.send_raw(good[:-6] + b"0000\r\n")
    assert v.state()["budget"] == "0"


@pytest.mark.parametrize("kind", KINDS)
def test_power_cycle_loses_settings_and_reboots(kind: str) -> None:
    v = VirtualUnit(kind)  # type: ignore[arg-type]
    if kind == "laser":
        v.ok("LIMIT", "PULSES", 50)
        v.ok("LIMIT", "ENERGY", 500)
    else:
        v.ok("LIMIT", "FREEZE", 30)
        v.ok("TARGET", -70)
    v.ok("WDT", 4000)
    v.events.clear()
    v.do("power_cycle")
    assert v.events[0].name == "BOOT" and v.events[0].evseq == 0
    state = v.state()
    if kind == "laser":
        assert state["budget"] == "0"
        assert v.refused("ENERGY", 11) == ("E03", "over-limit")
        assert v.refused("READY") == ("E03", "budget-spent")
    else:
        assert state["limit"] == "0.0" and state["target"] == "-50"
        assert v.refused("FREEZE", 1) == ("E03", "over-limit")
    assert v.ok("WDT?") == {"wdt": "1000"}


def test_power_off_is_dark_until_power_on() -> None:
    v = VirtualUnit("laser")
    v.do("power_off")
    assert v.request("IDN?") is None
    v.do("power_on")
    assert v.events[-1].name == "BOOT"
    assert v.ok("IDN?")["model"] == "QS-1064"


def test_corrupted_reply_crc_is_seen_by_the_host() -> None:
    v = VirtualUnit("laser")
    v.do("corrupt_replies", count=1)
    assert v.request("IDN?") is None
    assert isinstance(v.bad_frames[-1], BadFrame) and v.bad_frames[-1].reason.value == "crc"
    assert v.ok("IDN?")["model"] == "QS-1064"


def test_dropped_events_leave_an_evseq_gap() -> None:
    v = VirtualUnit("laser")
    v.do("drop_events", count=2)
    for _ in range(3):
        v.send_raw(b"x\r\n")
    seqs = [e.evseq for e in v.events]
    assert seqs == [0, 3]


def test_garbage_burst_reaches_the_host_as_bad_frames() -> None:
    v = VirtualUnit("laser", seed=3)
    v.do("garbage", nbytes=40)
    assert v.bad_frames
    assert v.ok("IDN?")["model"] == "QS-1064"


def test_silence_in_drops_the_hosts_bytes() -> None:
    v = VirtualUnit("laser")
    v.do("silence", ms=200, direction="in")
    assert v.request("LIMIT", "PULSES", 9) is None
    v.run(0.25, heartbeat=False)
    assert v.state()["budget"] == "0"


def test_backdoor_refuses_unknown_operations_and_bad_arguments() -> None:
    from simulators.backdoor import BackdoorError

    v = VirtualUnit("laser")
    with pytest.raises(BackdoorError, match="unknown operation"):
        v.do("explode")
    with pytest.raises(BackdoorError, match="set_input"):
        v.do("set_input", name="door")
    with pytest.raises(BackdoorError, match="unknown laser input"):
        v.do("set_input", name="door", value=1)
    with pytest.raises(BackdoorError, match="unknown laser fault"):
        v.do("inject_fault", code="C01")
