"""QS-1064 state rules, emission, physics and latched faults (laser.md), in virtual time."""

from __future__ import annotations

import statistics

import pytest

from simulators.virtual import VirtualUnit


def armed(budget: int = 100, energy: int = 450, rate: str = "5.0", seed: int = 0) -> VirtualUnit:
    v = VirtualUnit("laser", seed=seed)
    v.ok("LIMIT", "PULSES", budget)
    v.ok("LIMIT", "ENERGY", 1000)
    v.ok("ENERGY", energy)
    v.ok("RATE", rate)
    v.ok("READY")
    return v


def ready(**kwargs: object) -> VirtualUnit:
    v = armed(**kwargs)  # type: ignore[arg-type]
    v.run(1.6)
    assert v.state()["state"] == "READY"
    return v


def states(v: VirtualUnit) -> list[tuple[str, str]]:
    return [(e.fields_dict()["state"], e.fields_dict()["cause"]) for e in v.events_named("STATE")]


def test_charging_takes_one_and_a_half_seconds() -> None:
    v = armed()
    v.run(1.45, step=0.05)
    assert v.state()["state"] == "CHARGING"
    v.run(0.1, step=0.05)
    assert v.state()["state"] == "READY"
    assert states(v)[-1] == ("READY", "cmd")


def test_footswitch_fires_at_rate_and_release_returns_to_ready() -> None:
    v = ready(rate="5.0")
    v.do("set_input", name="foot", value=1)
    v.run(1.05, step=0.01)
    v.do("set_input", name="foot", value=0)
    pulses = v.events_named("PULSE")
    assert len(pulses) == 5 + 1  # at once, then every 200 ms up to and including t=1.0 s
    times = [int(p.fields_dict()["t"]) for p in pulses]
    assert all(b - a == 200 for a, b in zip(times, times[1:]))
    assert [int(p.fields_dict()["n"]) for p in pulses] == list(range(1, 7))
    assert states(v)[-2:] == [("EMITTING", "foot"), ("READY", "foot")]
    assert v.do("truth")["shutter_open"] is True  # open in READY
    v.run(1.0)
    assert len(v.events_named("PULSE")) == 6


def test_pulses_never_closer_than_one_over_ratemax() -> None:
    v = ready(rate="10.0")
    for _ in range(5):  # tapping the pedal fast does not beat the rate limit
        v.do("set_input", name="foot", value=1)
        v.run(0.03, step=0.01)
        v.do("set_input", name="foot", value=0)
        v.run(0.03, step=0.01)
    times = [int(p.fields_dict()["t"]) for p in v.events_named("PULSE")]
    assert len(times) >= 2
    assert all(b - a >= 100 for a, b in zip(times, times[1:]))


def test_budget_is_enforced_by_the_unit() -> None:
    v = ready(budget=7, rate="10.0")
    v.do("set_input", name="foot", value=1)
    v.run(3.0)
    assert len(v.events_named("PULSE")) == 7
    assert v.events_named("LIMIT")[0].fields_dict() == {"kind": "pulses"}
    assert states(v)[-1] == ("STANDBY", "limit")
    assert v.do("truth")["shutter_open"] is False
    v.do("set_input", name="foot", value=0)
    assert v.refused("READY") == ("E03", "budget-spent")
    assert v.ok("COUNT?") == {"count": "7", "total": "7"}
    v.ok("COUNT", "RESET")
    assert v.ok("COUNT?") == {"count": "0", "total": "7"}
    v.ok("READY")


@pytest.mark.parametrize(("name", "value"), [("interlock", 0), ("key", 0), ("estop", 1)])
def test_unsafe_input_mid_emission_closes_the_shutter_at_once(name: str, value: int) -> None:
    v = ready(rate="10.0")
    v.do("set_input", name="foot", value=1)
    v.run(0.5, step=0.01)
    fired = len(v.events_named("PULSE"))
    v.do("set_input", name=name, value=value)
    assert v.do("truth")["shutter_open"] is False  # in the same instant, before any time passes
    assert states(v)[-1] == ("STANDBY", name)
    assert v.events_named("INPUT")[-1].fields_dict()[name] == str(value)
    v.run(1.0)
    assert len(v.events_named("PULSE")) == fired


def test_ready_times_out_without_a_pulse() -> None:
    v = VirtualUnit("laser")
    v.ok("LIMIT", "PULSES", 10)
    v.ok("READYTIMEOUT", 10)
    v.ok("READY")
    v.run(11.4)
    assert v.state()["state"] == "READY"
    v.run(0.2)
    assert v.state()["state"] == "STANDBY"
    assert states(v)[-1] == ("STANDBY", "limit")


def test_service_mode_fire_replies_after_the_last_pulse_and_ignores_the_pedal() -> None:
    v = VirtualUnit("laser")
    v.ok("WDT", 5000)  # a FIRE burst must end inside the watchdog
    v.ok("LIMIT", "PULSES", 100)
    v.ok("SERVICE", 1)
    v.ok("RATE", "2.0")
    v.ok("READY")
    v.run(1.6)
    v.do("set_input", name="foot", value=1)
    v.run(0.5)
    assert not v.events_named("PULSE")  # pedal ignored
    v.do("set_input", name="foot", value=0)
    assert v.request("FIRE", 3) is None  # no reply until the last pulse
    assert len(v.events_named("PULSE")) == 1
    assert v.refused("HB") == ("E07", "busy")
    v.clock.advance(1.01)
    v.unit.advance_to(v.clock.now())
    v._collect()
    assert v.replies[-1].fields_dict() == {"fired": "3"}  # type: ignore[union-attr]
    assert len(v.events_named("PULSE")) == 3
    assert v.state()["state"] == "READY"


def test_stop_ends_a_fire_burst_and_reports_what_fired() -> None:
    v = VirtualUnit("laser")
    v.ok("WDT", 5000)
    v.ok("LIMIT", "PULSES", 100)
    v.ok("SERVICE", 1)
    v.ok("READY")
    v.run(1.6)
    v.request("FIRE", 50)
    v.clock.advance(2.5)
    v.unit.advance_to(v.clock.now())
    assert v.ok("STOP") == {"state": "STANDBY"}
    fired = [r for r in v.replies if r.fields_dict().get("fired")]  # type: ignore[union-attr]
    assert fired[0].fields_dict() == {"fired": "3"}  # type: ignore[union-attr]


def test_fire_respects_the_budget() -> None:
    v = VirtualUnit("laser")
    v.ok("LIMIT", "PULSES", 2)
    v.ok("SERVICE", 1)
    v.ok("RATE", "10.0")
    v.ok("READY")
    v.run(1.6)
    v.request("FIRE", 5)
    v.run(1.0)
    assert len(v.events_named("PULSE")) == 2
    assert any(r.fields_dict() == {"fired": "2"} for r in v.replies if hasattr(r, "fields_dict"))  # type: ignore[union-attr]


def test_emitted_energy_gain_noise_and_monitor_error() -> None:
    v = ready(budget=2000, energy=400, rate="10.0", seed=11)
    v.do("set_gain", gain=0.9)
    v.do("set_monitor_gain", gain=1.05)
    v.do("set_gain_drift", per_pulse=0.0)
    v.do("set_input", name="foot", value=1)
    v.run(40.0)
    truth = v.do("truth")["pulses"]
    assert len(truth) == 400
    ratios = [p["emitted_mj"] / 400 for p in truth]
    assert statistics.mean(ratios) == pytest.approx(0.9, abs=0.005)
    assert statistics.stdev(ratios) / statistics.mean(ratios) == pytest.approx(0.02, abs=0.004)
    monitor = [p["monitored_mj"] / p["emitted_mj"] for p in truth]
    assert statistics.mean(monitor) == pytest.approx(1.05, abs=0.002)
    reported = [float(e.fields_dict()["e"]) for e in v.events_named("PULSE")]
    assert reported == [p["monitored_mj"] for p in truth]


def test_lamp_ageing_lowers_the_gain_with_pulses() -> None:
    v = ready(budget=1000, rate="10.0")
    v.do("set_gain_drift", per_pulse=1e-4)
    v.do("set_input", name="foot", value=1)
    v.run(50.0)
    assert v.do("truth")["true_gain"] == pytest.approx(1.0 - 1e-4 * 500, abs=1e-6)


def test_head_heats_and_relaxes_and_reports_once_a_second() -> None:
    v = ready(budget=10000, energy=1000, rate="10.0")
    v.do("set_input", name="foot", value=1)
    v.run(30.0)
    hot = float(v.state()["temp"])
    assert hot > 27.0
    v.do("set_input", name="foot", value=0)
    v.ok("STANDBY")
    v.run(120.0)
    assert 22.0 < float(v.state()["temp"]) < 22.0 + (hot - 22.0) * 0.5
    temps = v.events_named("TEMP")
    assert len(temps) == pytest.approx(151.6, abs=2)


def test_sustained_high_rate_firing_reaches_f03_in_a_few_minutes() -> None:
    v = ready(budget=10000, energy=1000, rate="10.0")
    v.do("set_input", name="foot", value=1)
    assert v.run_until(lambda: v.events_named("FAULT"), timeout=300.0, step=0.5)
    assert v.events_named("FAULT")[0].fields_dict() == {"code": "F03", "text": "overtemp"}
    when = int(v.events_named("PULSE")[-1].fields_dict()["t"]) / 1000
    assert 60 < when < 240
    assert v.state()["state"] == "FAULT"
    assert v.do("truth")["shutter_open"] is False
    v.do("set_input", name="foot", value=0)
    assert v.refused("FAULT", "CLEAR") == ("E06", "fault-active")  # still above 35 degC
    assert v.run_until(lambda: float(v.state()["temp"]) < 35.0, timeout=120.0, step=0.5)
    v.run(1.5)
    assert v.ok("FAULT", "CLEAR") == {"state": "STANDBY"}


def test_f02_after_three_deviating_pulses_and_not_before() -> None:
    v = ready(rate="10.0")
    v.do("inject_fault", code="F02")
    v.do("set_input", name="foot", value=1)
    v.run(0.15, step=0.01)
    assert len(v.events_named("PULSE")) == 2 and not v.events_named("FAULT")
    v.run(0.1, step=0.01)
    assert len(v.events_named("PULSE")) == 3
    assert v.events_named("FAULT")[0].fields_dict() == {"code": "F02", "text": "energy-deviation"}
    assert states(v)[-1] == ("FAULT", "fault")
    assert v.do("truth")["shutter_open"] is False
    v.run(1.0)
    assert len(v.events_named("PULSE")) == 3
    assert v.refused("FAULT", "CLEAR") == ("E06", "fault-active")
    v.do("remove_fault_cause", code="F02")
    assert v.ok("FAULT", "CLEAR") == {"state": "STANDBY"}


def test_two_deviating_pulses_then_a_good_one_do_not_latch() -> None:
    v = ready(rate="10.0")
    v.do("set_energy_deviation", factor=1.4)
    v.do("set_input", name="foot", value=1)
    v.run(0.15, step=0.01)
    v.do("set_energy_deviation", factor=1.0)
    v.run(0.5, step=0.01)
    assert not v.events_named("FAULT")


def test_f01_lamp_does_not_fire() -> None:
    v = ready()
    v.do("inject_fault", code="F01")
    v.do("set_input", name="foot", value=1)
    v.run(0.1)
    assert not v.events_named("PULSE")
    assert v.events_named("FAULT")[0].fields_dict()["code"] == "F01"
    v.do("set_input", name="foot", value=0)
    assert v.refused("FAULT", "CLEAR") == ("E06", "fault-active")
    v.do("remove_fault_cause", code="F01")
    assert v.ok("FAULT", "CLEAR") == {"state": "STANDBY"}


def test_f04_coolant_latches_in_any_state() -> None:
    v = VirtualUnit("laser")
    v.do("inject_fault", code="F04")
    v.run(0.2)
    assert v.ok("FAULT?") == {"code": "F04", "text": "coolant"}
    assert v.state()["state"] == "FAULT"


def test_f05_shutter_stuck_latches_when_the_unit_closes_it() -> None:
    v = ready()
    v.do("inject_fault", code="F05")
    v.run(0.2)
    assert not v.events_named("FAULT")
    v.ok("STANDBY")
    assert v.events_named("FAULT")[0].fields_dict()["code"] == "F05"
    assert v.state()["state"] == "FAULT"
    assert v.do("truth")["shutter_open"] is True  # physically stuck: the fault says so
    v.do("remove_fault_cause", code="F05")
    assert v.ok("FAULT", "CLEAR") == {"state": "STANDBY"}
    assert v.do("truth")["shutter_open"] is False


def test_power_on_refuses_emission_until_a_budget_is_programmed() -> None:
    v = VirtualUnit("laser")
    assert v.refused("READY") == ("E03", "budget-spent")
    assert v.refused("ENERGY", 50) == ("E03", "over-limit")


def test_limit_energy_lowers_a_higher_setting() -> None:
    v = VirtualUnit("laser")
    v.ok("LIMIT", "ENERGY", 800)
    v.ok("ENERGY", 700)
    v.ok("LIMIT", "ENERGY", 300)
    assert v.state()["energy"] == "300"


def test_wl_532_lowers_energy_to_half_emax() -> None:
    v = VirtualUnit("laser")
    v.ok("LIMIT", "ENERGY", 1000)
    v.ok("ENERGY", 900)
    v.ok("WL", 532)
    assert v.state()["energy"] == "500"


def test_input_events_and_spot_reading() -> None:
    v = VirtualUnit("laser")
    v.do("set_input", name="interlock", value=0)
    assert v.events_named("INPUT")[-1].fields_dict() == {"key": "1", "interlock": "0", "estop": "0", "foot": "0"}
    v.do("set_input", name="spot", value=6.0)
    assert v.state()["spot"] == "6.0"
    with pytest.raises(Exception, match="spot"):
        v.do("set_input", name="spot", value=5.0)


def test_lifetime_count_survives_a_power_cycle() -> None:
    v = ready(budget=3, rate="10.0")
    v.do("set_input", name="foot", value=1)
    v.run(1.0)
    v.do("power_cycle")
    assert v.ok("COUNT?") == {"count": "0", "total": "3"}
