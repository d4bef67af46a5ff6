"""The events → facts table covers every event a driver can deliver, and each row gives the fact it should."""

from __future__ import annotations

import typing

from devicectl.core import event_facts
from devicectl.core.supervisor import DeviceStatus
from drivers import events as E
from safety import facts as F


def _event_types() -> set[type]:
    return {t for t in typing.get_args(E.DriverEvent) if t is not E.DeviceEvent} | {
        t for t in vars(E).values() if isinstance(t, type) and issubclass(t, E.DeviceEvent) and t is not E.DeviceEvent}


def test_every_event_type_is_a_fact_or_named_as_none() -> None:
    types = _event_types()
    assert len(types) >= 19
    assert types == set(event_facts.FACTS) | set(event_facts.NOT_FACTS)
    assert not set(event_facts.FACTS) & set(event_facts.NOT_FACTS)
    assert set(event_facts.FOLLOW_UPS) <= set(event_facts.FACTS)


def test_rows_give_their_facts_records_and_status() -> None:
    status = DeviceStatus("laser", "laser")
    pulse = E.Pulse(evseq=4, t_ms=10, n=3, energy_mj=498.0, set_mj=500)
    fact, record = event_facts.translate(pulse, 7.0, status)
    assert fact == F.PulseSeen(3, 498.0, 500, 7.0) and record == ("pulse", {"n": 3, "energy_mj": 498.0, "set_mj": 500,
                                                                            "t_ms": 10})
    fact, record = event_facts.translate(E.FaultLatched(evseq=5, code="F02", text="cooling"), 8.0, status)
    assert fact == F.FaultSeen("F02", "cooling", 8.0) and record is None and status.fault == "F02 cooling"
    event_facts.translate(E.Booted(evseq=1, fw="1.0"), 9.0, status)
    assert status.fault is None
    fact, _ = event_facts.translate(E.MalformedEvent(evseq=6, name="PULSE", fields={}, error="n"), 9.5, status)
    assert fact == F.EventGapSeen(1, 9.5)  # an unreadable event counts as a lost one
    fact, _ = event_facts.translate(E.LinkDown(reason="port vanished"), 10.0, status)
    assert fact == F.LinkLost("port vanished", 10.0) and not status.connected and status.last_reason == "port vanished"
    assert event_facts.translate(E.LineNoise(reason="crc", detail=""), 11.0, status) == (None, None)
