"""MQTT against a real Mosquitto running the shipped configuration (deploy/mosquitto/)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devicectl.mqtt import broker
from tests.service_harness import (
    ALL_CHECKED,
    BenchProcess,
    ServiceProcess,
    laser_session,
    ready,
    set_up_users,
)

BASE = "devicectl/clinic"


class Broker:
    def __init__(self, root: Path) -> None:
        self.dir = root / "mqtt"
        self.port = broker.free_port()
        self.passwords = broker.write_config(self.dir, self.port)
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = broker.start_broker(self.dir, self.port)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def client(self, user: str | None, **kwargs: Any) -> aiomqtt.Client:
        return aiomqtt.Client("127.0.0.1", self.port, username=user, password=self.passwords.get(user or "", None),
                              protocol=aiomqtt.ProtocolVersion.V5, timeout=5, **kwargs)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Broker, BenchProcess, ServiceProcess]]:
    mqtt = Broker(tmp_path)
    bench = BenchProcess(tmp_path)
    extra = f'[mqtt]\nport = {mqtt.port}\nusername = "service"\npassword_file = "{mqtt.dir / "service.password"}"\n'
    service = ServiceProcess(tmp_path, bench, extra).start()
    try:
        yield mqtt, bench, service
    finally:
        service.stop()
        bench.stop()
        if mqtt.proc and mqtt.proc.poll() is None:
            mqtt.kill()


async def retained(mqtt: Broker, user: str, topics: list[str], wait: float = 3.0) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    async with mqtt.client(user) as client:
        for topic in topics:
            await client.subscribe(topic, qos=1)
        try:
            async with asyncio.timeout(wait):
                async for message in client.messages:
                    found[str(message.topic)] = message.payload  # type: ignore[assignment]
                    if all(t in found for t in topics):
                        break
        except TimeoutError:
            pass
    return found


async def command(mqtt: Broker, user: str, payload: dict[str, Any], wait: float = 3.0,
                  reply_topic: str | None = None, as_user: str | None = None) -> dict[str, Any] | None:
    reply_topic = reply_topic or f"devicectl/reply/{user}/{uuid.uuid4().hex}"
    correlation = uuid.uuid4().bytes
    async with mqtt.client(user) as client:
        await client.subscribe(reply_topic, qos=1)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = reply_topic
        props.CorrelationData = correlation
        await client.publish(f"{BASE}/service/command/{as_user or user}", json.dumps(payload), qos=1, properties=props)
        try:
            async with asyncio.timeout(wait):
                async for message in client.messages:
                    if getattr(message.properties, "CorrelationData", None) != correlation:
                        continue  # not our reply (say a retained message on a hijacked topic)
                    return json.loads(message.payload)  # type: ignore[arg-type]
        except TimeoutError:
            return None
    return None


def test_retained_state_and_availability(world) -> None:  # type: ignore[no-untyped-def]
    mqtt, bench, service = world
    topics = [f"{BASE}/laser/availability", f"{BASE}/cryo/availability", f"{BASE}/service/availability",
              f"{BASE}/laser/state", f"{BASE}/service/status"]
    found = asyncio.run(retained(mqtt, "monitor", topics))
    assert found[f"{BASE}/laser/availability"] == b"online" and found[f"{BASE}/service/availability"] == b"online"
    state = json.loads(found[f"{BASE}/laser/state"])
    assert state["serial"] == bench.addresses["laser_serial"] and state["connected"] is True


def test_stop_over_mqtt_reaches_the_simulator_and_arming_is_refused(world) -> None:  # type: ignore[no-untyped-def]
    mqtt, bench, service = world
    before = len(bench.laser("executed"))
    reply = asyncio.run(command(mqtt, "operator", {"command": "stop"}))
    assert reply == {"ok": True, "stopped": ["laser", "cryo"], "unconfirmed": []}
    assert "STOP" in bench.laser("executed")[before:] and "STOP" in bench.cryo("executed")[-5:]
    refused = asyncio.run(command(mqtt, "operator", {"command": "arm", "device": "laser"}))
    assert refused and refused["ok"] is False and "authenticated session" in refused["error"]
    status = asyncio.run(command(mqtt, "operator", {"command": "status"}))
    assert status and status["ok"] and {d["name"] for d in status["status"]["devices"]} == {"laser", "cryo"}
    garbage = asyncio.run(command(mqtt, "operator", {"nonsense": 1}))
    assert garbage and garbage["ok"] is False


def test_acl_refuses_a_monitors_command_and_anonymous_clients(world) -> None:  # type: ignore[no-untyped-def]
    mqtt, bench, service = world
    before = len(bench.laser("executed"))
    assert asyncio.run(command(mqtt, "monitor", {"command": "stop"}, wait=1.5)) is None
    assert "STOP" not in bench.laser("executed")[before:]

    async def anonymous() -> None:
        async with mqtt.client(None):
            pass

    with pytest.raises(aiomqtt.MqttError):
        asyncio.run(anonymous())

    async def impostor() -> None:
        async with aiomqtt.Client("127.0.0.1", mqtt.port, username="service", password="wrong", timeout=5):
            pass

    with pytest.raises(aiomqtt.MqttError):
        asyncio.run(impostor())


def test_last_will_marks_everything_offline_when_the_service_dies(world) -> None:  # type: ignore[no-untyped-def]
    mqtt, bench, service = world
    service.kill9()
    time.sleep(1.0)
    topics = [f"{BASE}/laser/availability", f"{BASE}/cryo/availability", f"{BASE}/service/availability"]
    found = asyncio.run(retained(mqtt, "monitor", topics))
    assert found == {topic: b"offline" for topic in topics}


def test_broker_outage_during_treatment_loses_no_pulse(world) -> None:  # type: ignore[no-untyped-def]
    mqtt, bench, service = world
    from tests.service_harness import Api

    admin, practitioner, technician = set_up_users(service, bench)
    sid = laser_session(practitioner, budget=25)
    practitioner.call("PUT", f"/api/sessions/{sid}/checklist", json=ALL_CHECKED)
    practitioner.call("POST", f"/api/sessions/{sid}/start")
    ready(practitioner, sid)
    bench.laser("set_input", name="foot", value=1)
    practitioner.wait(f"/api/sessions/{sid}", lambda s: s["pulses_recorded"] >= 3)
    mqtt.kill()  # the broker dies mid-treatment
    practitioner.wait(f"/api/sessions/{sid}", lambda s: s["pulses_recorded"] >= 12)
    mqtt.start()
    session = practitioner.wait(f"/api/sessions/{sid}", lambda s: s["pulses_recorded"] == 25, timeout=15)
    bench.laser("set_input", name="foot", value=0)
    assert bench.laser("truth")["count"] == 25 == session["pulses_recorded"]

    async def resumed() -> bool:
        async with mqtt.client("monitor") as client:
            await client.subscribe(f"{BASE}/laser/#", qos=1)
            async with asyncio.timeout(8):
                async for message in client.messages:
                    if str(message.topic).endswith("/state") and not message.retain:
                        return True  # a fresh state published after the outage
        return False

    assert asyncio.run(resumed())
    found = asyncio.run(retained(mqtt, "monitor", [f"{BASE}/laser/availability", f"{BASE}/service/availability"]))
    assert set(found.values()) == {b"online"}
    health = Api(service.url, "pat", "4827").call("GET", "/api/health")
    assert health["ok"]


def test_replies_go_only_to_the_requesters_reply_topic_and_commands_name_their_user(world) -> None:  # type: ignore[no-untyped-def]
    """An operator cannot make the service publish on a topic of its choosing (say a device's
    availability), cannot send a command as another user, and its STOP is audited under its name."""
    mqtt, bench, service = world
    hijack = f"{BASE}/laser/availability"
    assert asyncio.run(command(mqtt, "operator", {"command": "status"}, wait=1.5, reply_topic=hijack)) is None
    found = asyncio.run(retained(mqtt, "monitor", [hijack]))
    assert found[hijack] == b"online"  # not overwritten by a reply
    # the ACL drops a command sent as someone else: no reply, and no STOP on the record
    assert asyncio.run(command(mqtt, "operator", {"command": "stop"}, wait=1.5, as_user="service")) is None
    reply = asyncio.run(command(mqtt, "operator", {"command": "stop"}))
    assert reply is not None and reply["ok"] is True
    db = sqlite3.connect(service.data_dir / "devicectl.sqlite3")
    rows = db.execute("SELECT actor, action FROM audit WHERE action IN ('stop', 'mqtt.reply.refused') ORDER BY id").fetchall()
    db.close()
    assert rows == [("mqtt:operator", "mqtt.reply.refused"), ("mqtt:operator", "stop")]


def test_a_monitor_reading_everything_does_not_see_an_operators_replies(world) -> None:  # type: ignore[no-untyped-def]
    mqtt, bench, service = world

    async def both() -> tuple[dict[str, Any] | None, list[str]]:
        seen: list[str] = []
        async with mqtt.client("monitor") as monitor:
            await monitor.subscribe("devicectl/#", qos=1)

            async def watch() -> None:
                async for message in monitor.messages:
                    seen.append(str(message.topic))

            watching = asyncio.get_running_loop().create_task(watch())
            reply = await command(mqtt, "operator", {"command": "status"})
            await asyncio.sleep(1.0)  # a bound on delivery: the reply was published before the operator read it
            watching.cancel()
        return reply, seen

    reply, seen = asyncio.run(both())
    assert reply is not None and reply["ok"] is True
    assert seen and not any(topic.startswith("devicectl/reply/") for topic in seen), seen
