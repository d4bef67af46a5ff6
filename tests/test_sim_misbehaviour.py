"""A faulty unit, made so through the backdoor: STOP acknowledged but ignored, a unit that listens
but no longer speaks, a refused programming step, uncommanded pulses; in virtual time, and once
through the JSON-lines backdoor of a simulator on a real pty."""

from __future__ import annotations

import json
import socket
import time
from typing import Any, Callable, Iterator

import pytest

from drivers.lineproto import ErrorReply, Reply
from simulators.backdoor import BackdoorError, CryoBackdoor, LaserBackdoor
from simulators.host import SimulatorHost, SimulatorThread
from simulators.units import build_unit
from simulators.virtual import VirtualUnit
from tests.wire import SerialLine

KINDS = ["laser", "cryo"]
NEW_COMMON_OPS = ("ignore_stop", "mute", "fail_next")


def laser_ready(budget: int = 100, rate: str = "10.0") -> VirtualUnit:
    v = VirtualUnit("laser")
    v.ok("LIMIT", "PULSES", budget)
    v.ok("LIMIT", "ENERGY", 1000)
    v.ok("ENERGY", 450)
    v.ok("RATE", rate)
    v.ok("READY")
    assert v.run_until(lambda: v.do("truth")["state"] == "READY", timeout=2.0)
    return v


def laser_emitting(budget: int = 100) -> VirtualUnit:
    v = laser_ready(budget)
    v.do("set_input", name="foot", value=1)
    assert v.state()["state"] == "EMITTING"
    return v


def cryo_freezing(seconds: float = 10) -> VirtualUnit:
    v = VirtualUnit("cryo")
    v.ok("LIMIT", "FREEZE", 30)
    v.ok("FREEZE", seconds)
    return v


def pulses(v: VirtualUnit) -> list[dict[str, str]]:
    return [e.fields_dict() for e in v.events_named("PULSE")]


# ---------------------------------------------------------------- the operations are offered


@pytest.mark.parametrize("backdoor", [LaserBackdoor, CryoBackdoor])
def test_every_misbehaviour_is_a_documented_backdoor_operation(backdoor: type) -> None:
    ops = backdoor.OPERATIONS
    expected = NEW_COMMON_OPS + (("uncommanded_pulse",) if backdoor is LaserBackdoor else ())
    for op in expected + ("set_energy_deviation", "set_monitor_gain") * (backdoor is LaserBackdoor):
        assert op in ops
        assert getattr(backdoor, op).__doc__, f"{op} has no docstring"
    if backdoor is CryoBackdoor:
        assert "stall_freeze_timer" in ops and "uncommanded_pulse" not in ops


# ---------------------------------------------------------------- ignore_stop


def test_laser_ignoring_stop_keeps_firing_while_the_footswitch_is_held() -> None:
    v = laser_emitting()
    v.do("ignore_stop")
    fired = len(pulses(v))
    assert v.ok("STOP") == {"state": "EMITTING"}
    v.run(1.0)
    assert v.do("truth")["state"] == "EMITTING" and v.do("truth")["shutter_open"] is True
    assert len(pulses(v)) >= fired + 9  # 10 Hz, unabated
    assert {"state": "STANDBY", "cause": "cmd"} not in [e.fields_dict() for e in v.events_named("STATE")]
    v.do("set_input", name="foot", value=0)
    assert v.ok("STOP") == {"state": "READY"}  # answered with the state it stays in
    assert v.state()["state"] == "READY"
    v.do("ignore_stop", on=False)
    assert v.ok("STOP") == {"state": "STANDBY"}
    assert v.do("truth")["shutter_open"] is False


def test_laser_ignoring_stop_still_obeys_the_watchdog_and_estop() -> None:
    v = laser_emitting()
    v.do("ignore_stop")
    v.ok("STOP")
    v.run(1.1, heartbeat=False, step=0.05)
    assert len(v.events_named("WDT")) == 1
    assert v.events_named("STATE")[-1].fields_dict() == {"state": "STANDBY", "cause": "wdt"}
    v.do("set_input", name="foot", value=0)
    v.ok("READY")
    assert v.run_until(lambda: v.do("truth")["state"] == "READY", timeout=2.0)
    v.ok("STOP")
    v.do("set_input", name="estop", value=1)
    assert v.events_named("STATE")[-1].fields_dict() == {"state": "STANDBY", "cause": "estop"}
    assert v.do("truth")["shutter_open"] is False


def test_cryo_ignoring_stop_keeps_freezing_until_its_own_timer_ends_it() -> None:
    v = cryo_freezing(3)
    v.do("ignore_stop", on=True)
    v.run(0.5)
    assert v.ok("STOP") == {"state": "FREEZING"}
    v.run(1.0)
    assert v.do("truth")["state"] == "FREEZING" and v.do("truth")["valve_open"] is True
    assert v.run_until(lambda: v.do("truth")["state"] == "THAW", timeout=2.0)
    ends = [e.fields_dict() for e in v.events_named("FREEZE") if e.fields_dict()["phase"] == "end"]
    assert [e["cause"] for e in ends] == ["timeout"]
    assert float(ends[0]["dur"]) == pytest.approx(3.0, abs=0.06)


def test_cryo_ignoring_stop_still_obeys_the_watchdog() -> None:
    v = cryo_freezing(20)
    v.do("ignore_stop")
    v.ok("STOP")
    v.run(1.1, heartbeat=False, step=0.05)
    assert v.events_named("WDT")
    ends = [e.fields_dict() for e in v.events_named("FREEZE") if e.fields_dict()["phase"] == "end"]
    assert [e["cause"] for e in ends] == ["wdt"]
    assert v.do("truth")["valve_open"] is False


def test_ignore_stop_survives_a_power_cycle_and_only_takes_a_flag() -> None:
    v = laser_ready()
    v.do("ignore_stop")
    v.do("power_cycle")
    v.ok("LIMIT", "PULSES", 10)
    v.ok("READY")
    assert v.run_until(lambda: v.do("truth")["state"] == "READY", timeout=2.0)
    assert v.ok("STOP") == {"state": "READY"}  # a reboot does not repair the firmware
    with pytest.raises(BackdoorError):
        v.do("ignore_stop", on="false")


# ---------------------------------------------------------------- mute


@pytest.mark.parametrize("kind", KINDS)
def test_muted_unit_executes_requests_and_keeps_its_watchdog_fed(kind: str) -> None:
    v = VirtualUnit(kind)  # type: ignore[arg-type]
    v.do("mute")
    command = ("LIMIT", "PULSES", 20) if kind == "laser" else ("LIMIT", "FREEZE", "12.5")
    assert v.request(*command) is None  # nothing comes back ...
    assert v.do("executed")[-1] == " ".join(map(str, command))  # ... yet it was executed
    heard = len(v.events) + len(v.replies)
    v.run(3.0, step=0.25)  # HB every 250 ms: valid requests restart the watchdog
    assert v.do("stats")["events"] > 1  # telemetry went on (TEMP), consuming EVSEQ
    assert len(v.events) + len(v.replies) == heard
    v.do("mute", on=False)
    state = v.state()
    assert state["budget" if kind == "laser" else "limit"] == ("20" if kind == "laser" else "12.5")
    assert v.do("stats")["events"] > 0 and not v.events_named("WDT")


@pytest.mark.parametrize(
    ("kind", "arm", "safe"), [("laser", laser_emitting, "STANDBY"), ("cryo", cryo_freezing, "THAW")]
)
def test_muted_unit_still_goes_safe_on_its_watchdog_and_the_wdt_event_is_lost(
    kind: str, arm: Callable[[], VirtualUnit], safe: str
) -> None:
    v = arm()
    last_heard = v.events[-1].evseq
    sent_before = v.do("stats")["events"]
    v.do("mute")
    v.run(0.8, step=0.2)
    assert v.do("truth")["state"] != safe  # fed by HB it carries on, unheard
    v.run(1.2, heartbeat=False, step=0.05)
    truth = v.do("truth")
    assert truth["state"] == safe
    assert (truth["shutter_open"] if kind == "laser" else truth["valve_open"]) is False
    assert not v.events_named("WDT")
    sent_while_muted = v.do("stats")["events"] - sent_before
    v.do("mute", on=False)
    v.do("set_input", name="estop", value=1)  # an input change: the first event heard again
    first_after = v.events[-1]
    assert first_after.name == "INPUT"
    assert first_after.evseq == (last_heard + sent_while_muted + 1) & 0xFFFF
    assert first_after.evseq - last_heard > 2  # a gap: STATE and WDT among the lost


# ---------------------------------------------------------------- fail_next


def test_fail_next_refuses_one_programming_step_without_executing_it() -> None:
    v = VirtualUnit("cryo")
    v.do("fail_next", command="THAWMIN")
    v.ok("LIMIT", "FREEZE", 10)  # other commands are not touched
    assert v.refused("THAWMIN", 30) == ("E02", "unknown-command")
    assert "THAWMIN 30" not in v.do("executed")
    assert v.ok("THAWMIN", 30) == {"thawmin": "30"}  # one-shot
    assert v.do("executed")[-1] == "THAWMIN 30"


def test_fail_next_matches_command_and_arguments_with_its_own_code() -> None:
    v = VirtualUnit("laser")
    v.do("fail_next", command="LIMIT PULSES", code="E03", word="out-of-range")
    assert v.ok("LIMIT", "ENERGY", 500) == {"emaxset": "500"}
    reply = v.request("LIMIT", "PULSES", 20, seq=0x42)
    assert reply == ErrorReply(0x42, "E03", "out-of-range")
    assert v.request("LIMIT", "PULSES", 20, seq=0x42) == reply  # a retransmission: the same ER
    assert v.do("stats")["retransmits"] == 1
    assert v.state()["budget"] == "0"  # the failed step left the fail-safe budget
    assert v.refused("READY") == ("E03", "budget-spent")
    assert v.ok("LIMIT", "PULSES", 20) == {"budget": "20"}


def test_fail_next_restarts_the_watchdog_and_arms_several_refusals() -> None:
    v = VirtualUnit("cryo")
    v.do("fail_next", command="TARGET")
    v.do("fail_next", command="TARGET -60", code="E04", word="not-allowed-in-state")
    v.run(0.8, heartbeat=False, step=0.05)
    assert v.refused("TARGET", -60) == ("E02", "unknown-command")  # the first armed matches first
    v.run(0.8, heartbeat=False, step=0.05)
    assert not v.events_named("WDT")  # the refused request was a valid one: watchdog restarted
    assert v.refused("TARGET", -60) == ("E04", "not-allowed-in-state")
    assert v.ok("TARGET", -60) == {"target": "-60"}


@pytest.mark.parametrize(
    "args",
    [
        {"command": ""},
        {"command": "HB", "code": "X02"},
        {"command": "HB", "word": "Not Allowed"},
        {"cmd": "HB"},
    ],
)
def test_fail_next_refuses_what_the_wire_cannot_carry(args: dict[str, Any]) -> None:
    with pytest.raises(BackdoorError):
        VirtualUnit("laser").do("fail_next", **args)


# ---------------------------------------------------------------- uncommanded pulses


def test_broken_qswitch_fires_in_standby_and_the_unit_counts_it() -> None:
    v = VirtualUnit("laser")
    assert v.state()["state"] == "STANDBY"
    v.do("uncommanded_pulse", count=3)
    fired = pulses(v)
    assert [p["n"] for p in fired] == ["1", "2", "3"]
    assert all(p["set"] == "10" and float(p["e"]) == pytest.approx(10.0, rel=0.1) for p in fired)
    assert v.ok("COUNT?") == {"count": "3", "total": "3"}
    assert v.state()["state"] == "STANDBY"
    truth = v.do("truth")
    assert [p["commanded"] for p in truth["pulses"]] == [False] * 3
    assert truth["shutter_open"] is False  # a real fault: the pulses hit a closed shutter
    v.do("uncommanded_pulse")
    assert pulses(v)[-1]["n"] == "4"


def test_broken_qswitch_spending_the_budget_while_emitting_stops_emission() -> None:
    v = laser_emitting(budget=5)
    fired = len(pulses(v))
    v.do("uncommanded_pulse", count=5 - fired)
    assert v.events_named("LIMIT")[-1].fields_dict() == {"kind": "pulses"}
    assert v.events_named("STATE")[-1].fields_dict() == {"state": "STANDBY", "cause": "limit"}
    v.run(1.0)
    assert len(pulses(v)) == 5
    assert v.ok("COUNT?") == {"count": "5", "total": "5"}


def test_uncommanded_pulse_takes_a_whole_positive_count() -> None:
    v = VirtualUnit("laser")
    for count in (0, -1, 1.5, True):
        with pytest.raises(BackdoorError):
            v.do("uncommanded_pulse", count=count)
    assert not v.events_named("PULSE")


# ---------------------------------------------------------------- counters and elapsed time


def test_lifetime_pulse_total_survives_a_power_cycle() -> None:
    v = laser_emitting(budget=100)
    v.run(0.55)
    v.do("set_input", name="foot", value=0)
    fired = int(v.ok("COUNT?")["total"])
    assert fired >= 5
    v.do("power_cycle")
    assert [e.evseq for e in v.events_named("BOOT")] == [0, 0]
    assert v.ok("COUNT?") == {"count": "0", "total": str(fired)}
    v.do("uncommanded_pulse", count=2)
    assert v.ok("COUNT?") == {"count": "2", "total": str(fired + 2)}


def test_cryo_state_elapsed_is_seconds_into_the_current_freeze() -> None:
    v = VirtualUnit("cryo")
    v.ok("LIMIT", "FREEZE", 30)
    v.run(4.0)  # the unit has been on a while: elapsed counts from the freeze, not from boot
    assert v.state()["elapsed"] == "0.0"
    v.ok("FREEZE", 10)
    v.run(2.5)
    assert float(v.state()["elapsed"]) == pytest.approx(2.5, abs=0.11)
    v.run(2.0)
    assert float(v.state()["elapsed"]) == pytest.approx(4.5, abs=0.11)
    v.ok("STOP")
    assert v.state()["elapsed"] == "0.0"


def test_cryo_elapsed_runs_past_the_set_time_when_the_freeze_timer_stalls() -> None:
    v = VirtualUnit("cryo")
    v.ok("LIMIT", "FREEZE", 30)
    v.do("stall_freeze_timer")
    v.ok("FREEZE", 2)
    v.run(3.5)
    state = v.state()
    assert state["state"] == "FREEZING"
    assert float(state["elapsed"]) == pytest.approx(3.5, abs=0.11)


# ---------------------------------------------------------------- over the JSON-lines backdoor on a pty


@pytest.fixture
def laser_on_pty() -> Iterator[tuple[SimulatorThread, SerialLine, int]]:
    host = SimulatorHost(*build_unit("laser"), tcp_port=None, backdoor_port=0)
    with SimulatorThread(host) as sims:
        assert host.addresses.backdoor is not None
        port = int(host.addresses.backdoor.rsplit(":", 1)[1])
        line = SerialLine(host.addresses.pty, sims)  # type: ignore[arg-type]
        yield sims, line, port
        line.close()


def _backdoor(port: int, op: str, **args: object) -> dict[str, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(json.dumps({"id": 7, "op": op, "args": args}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            assert chunk, "backdoor closed the connection"
            data += chunk
    return json.loads(data)  # type: ignore[no-any-return]


def _wait_for(line: SerialLine, predicate: Callable[[], bool], timeout: float) -> bool:
    """Keep the unit's watchdog fed until ``predicate`` holds (never a bare sleep)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        line.ok("HB")
        line.pump(0.05)
    return predicate()


def test_ignore_stop_through_the_json_backdoor_of_a_simulator_on_a_pty(
    laser_on_pty: tuple[SimulatorThread, SerialLine, int],
) -> None:
    sims, line, port = laser_on_pty
    ops = _backdoor(port, "ops")["result"]
    assert set(NEW_COMMON_OPS + ("uncommanded_pulse",)) <= set(ops)
    line.ok("LIMIT", "PULSES", 50)
    line.ok("READY")
    assert _wait_for(line, lambda: _backdoor(port, "truth")["result"]["state"] == "READY", timeout=3.0)
    assert _backdoor(port, "ignore_stop", on=True) == {"id": 7, "ok": True, "result": None}
    assert line.ok("STOP") == {"state": "READY"}
    assert _backdoor(port, "set_input", name="foot", value=1)["ok"] is True
    assert _wait_for(line, lambda: len(line.events_named("PULSE")) >= 2, timeout=3.0)
    assert line.ok("STOP") == {"state": "EMITTING"}
    truth = _backdoor(port, "truth")["result"]
    assert truth["state"] == "EMITTING" and truth["shutter_open"] is True
    assert _backdoor(port, "ignore_stop", on=False)["ok"] is True
    assert line.ok("STOP") == {"state": "STANDBY"}
    assert _backdoor(port, "truth")["result"]["shutter_open"] is False
    refused = _backdoor(port, "ignore_stop", on="yes")
    assert refused["ok"] is False and "on" in refused["error"]
