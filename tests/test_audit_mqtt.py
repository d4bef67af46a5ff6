"""The audit log's signed checkpoints are published retained over MQTT while the bridge runs: a
copy outside the clinic PC that whoever can write its disk cannot take back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from devicectl.core.audit import default_checkpoint_file
from devicectl.core.config import MqttConfig, load_settings
from devicectl.core.service import Service
from devicectl.mqtt.bridge import STOP_FLUSH_S
from tests.service_harness import BenchProcess, ServiceProcess, set_up_users
from tests.test_mqtt import BASE, Broker, retained


def test_each_checkpoint_is_published_retained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVICECTL_AUDIT_CHECKPOINT_EVERY", "3")  # the service process's setting
    mqtt = Broker(tmp_path)
    bench = BenchProcess(tmp_path)
    extra = (f'[mqtt]\nport = {mqtt.port}\nusername = "service"\npassword_file = "{mqtt.dir / "service.password"}"\n')
    service = ServiceProcess(tmp_path, bench, extra).start()
    try:
        set_up_users(service, bench)  # logins, users, calibrations: checkpoints every 3 entries
        topic = f"{BASE}/audit/checkpoint"
        published = json.loads(asyncio.run(retained(mqtt, "monitor", [topic], wait=10))[topic])
        written = [json.loads(line) for line in default_checkpoint_file(service.data_dir).read_text().splitlines()]
        assert published in written and published["id"] % 3 == 0 and published["sig"]
        service.stop()  # the shutdown's checkpoint (the head, whatever its id) is published too
        last = json.loads(default_checkpoint_file(service.data_dir).read_text().splitlines()[-1])
        assert last["id"] > published["id"]
        assert json.loads(asyncio.run(retained(mqtt, "monitor", [topic], wait=10))[topic]) == last
    finally:
        service.stop()
        bench.stop()
        if mqtt.proc and mqtt.proc.poll() is None:
            mqtt.kill()


async def test_the_service_stops_without_waiting_when_no_checkpoint_is_on_its_way(tmp_path: Path) -> None:
    """The bridge waits (bounded) only for a checkpoint still being published; its connections,
    which run until closed, are closed at once: a stop is not held for the flush bound."""
    mqtt = Broker(tmp_path)
    try:
        service = Service(load_settings(None, data_dir=tmp_path / "data", mqtt=MqttConfig(
            port=mqtt.port, username="service", password_file=mqtt.dir / "service.password")))
        await service.start()
        try:
            async with asyncio.timeout(10):
                while not service.mqtt.control.connected:
                    await asyncio.sleep(0.02)
            await service.audit.checkpoint()  # published now, before the stop
            async with asyncio.timeout(10):
                while any(not task.done() for task in service.mqtt._publishing):
                    await asyncio.sleep(0.02)
        finally:
            async with asyncio.timeout(STOP_FLUSH_S / 2):  # held for the flush bound before the fix
                await service.stop()
        topic = f"{BASE}/audit/checkpoint"
        last = json.loads(default_checkpoint_file(service.settings.data_dir).read_text().splitlines()[-1])
        assert json.loads((await retained(mqtt, "monitor", [topic], wait=10))[topic]) == last  # the shutdown's
    finally:
        mqtt.kill()
