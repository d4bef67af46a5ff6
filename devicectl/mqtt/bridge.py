"""MQTT: the devices' state, telemetry and events for clinic systems, and STOP from outside.

Topics under ``{prefix}/{site}/`` (docs/mqtt.md). Each device has its own connection whose Last
Will marks that device's ``availability`` offline, so a dead service shows every device offline;
the service connection's Will does the same for ``service/availability``. Commands are MQTT v5
request/response (response topic + correlation data): status queries and STOP, which is always
accepted; arming and treatment stay with authenticated sessions in the service.

A broker outage never delays device control: the hub hands messages over without waiting, and
while the broker is away they are dropped and counted; on reconnect the retained state and
availability are published again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devicectl.core.config import MqttConfig

if TYPE_CHECKING:
    from devicectl.core.service import Service

log = logging.getLogger(__name__)
QUEUE_SIZE = 2000
BACKOFF_S = (0.2, 5.0)
STOP_FLUSH_S = 3.0  #: at most this long at shutdown for the last audit checkpoint to reach the broker


class MqttBridge:
    def __init__(self, config: MqttConfig, service: Service) -> None:
        self.config = config
        self.service = service
        self.base = f"{config.prefix}/{config.site}"
        self.channels = {name: _Channel(self, name) for name in service.supervisors}
        self.control = _Control(self)
        self.dropped = 0
        self.published = 0
        self._tasks: list[asyncio.Task[None]] = []  # the channels' and the control's connections
        self._publishing: list[asyncio.Task[None]] = []  # audit checkpoints on their way to the broker
        self._loop: asyncio.AbstractEventLoop | None = None
        #: the audit log's latest signed checkpoint, published retained (again at each reconnect)
        self.checkpoint: dict[str, Any] | None = None

    def topic(self, *parts: str) -> str:
        return "/".join((self.base,) + parts)

    def start(self) -> None:
        self.service.hub.add_sink(self._on_hub)
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._tasks = [loop.create_task(c.run()) for c in (*self.channels.values(), self.control)]

    async def stop(self) -> None:
        publishing = [task for task in self._publishing if not task.done()]
        if publishing:  # the shutdown's audit checkpoint, on its way to the broker: let it arrive (bounded)
            await asyncio.wait(publishing, timeout=STOP_FLUSH_S)
        for channel in (*self.channels.values(), self.control):
            await channel.close()
        for task in (*self._tasks, *self._publishing):
            task.cancel()
        for task in (*self._tasks, *self._publishing):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def audit_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """An audit checkpoint was written (on the store's writer thread): publish it retained on
        ``{prefix}/{site}/audit/checkpoint``, a copy the database's owner cannot take back."""
        self.checkpoint = checkpoint
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the service is stopping
                self._loop.call_soon_threadsafe(self._publish_checkpoint)

    def _publish_checkpoint(self) -> None:
        self._publishing = [task for task in self._publishing if not task.done()]
        self._publishing.append(asyncio.get_running_loop().create_task(self.control.publish_checkpoint()))

    def _on_hub(self, message: dict[str, Any]) -> None:
        """Called in the devices' path: never blocks, never raises."""
        channel = self.channels.get(message.get("device", ""))
        if channel is None:
            return
        kind = message.get("type")
        event = message.get("event", {})
        if kind == "status":
            channel.offer("state", message["status"], retain=True)
        elif kind == "event" and event.get("kind") in ("TEMP", "LEVEL"):
            channel.offer("telemetry", event)
        elif kind in ("event", "decision"):
            channel.offer("events", message)

    def stats(self) -> dict[str, Any]:
        return {"published": self.published, "dropped": self.dropped,
                "connected": {name: c.connected for name, c in self.channels.items()} | {"service": self.control.connected}}


class _Connection:
    """One client with its own Will; reconnects with backoff."""

    def __init__(self, bridge: MqttBridge, identifier: str, availability_topic: str) -> None:
        self.bridge = bridge
        self.identifier = identifier
        self.availability_topic = availability_topic
        self.client: aiomqtt.Client | None = None
        self.connected = False
        self._closing = False

    def _client(self) -> aiomqtt.Client:
        config = self.bridge.config
        return aiomqtt.Client(
            config.host, config.port, username=config.username, password=config.password,
            identifier=self.identifier, protocol=aiomqtt.ProtocolVersion.V5,
            will=aiomqtt.Will(self.availability_topic, b"offline", qos=1, retain=True), timeout=5,
        )

    async def run(self) -> None:
        delay = BACKOFF_S[0]
        while not self._closing:
            try:
                async with self._client() as client:
                    self.client = client
                    self.connected = True
                    delay = BACKOFF_S[0]
                    await self.on_connected(client)
                    await self.serve(client)
            except aiomqtt.MqttError as exc:
                log.info("%s: broker unavailable (%s); retrying in %.1f s", self.identifier, exc, delay)
            finally:
                self.connected = False
                self.client = None
            if self._closing:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_S[1])

    async def on_connected(self, client: aiomqtt.Client) -> None:
        raise NotImplementedError

    async def serve(self, client: aiomqtt.Client) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        self._closing = True
        client = self.client
        if client is not None and self.connected:
            with contextlib.suppress(Exception):
                await client.publish(self.availability_topic, b"offline", qos=1, retain=True, timeout=2)


class _Channel(_Connection):
    """One device: availability (Will), retained state, telemetry, events."""

    def __init__(self, bridge: MqttBridge, device: str) -> None:
        super().__init__(bridge, f"devicectl-{bridge.config.site}-{device}", bridge.topic(device, "availability"))
        self.device = device
        self.queue: asyncio.Queue[tuple[str, bytes, bool]] = asyncio.Queue(QUEUE_SIZE)
        self._published_link = False

    def offer(self, leaf: str, data: Any, retain: bool = False) -> None:
        if not self.connected or self.queue.full():
            self.bridge.dropped += 1  # the broker is away: drop, count, never wait
            return
        self.queue.put_nowait((self.bridge.topic(self.device, leaf), json.dumps(data, default=str).encode(), retain))

    async def on_connected(self, client: aiomqtt.Client) -> None:
        supervisor = self.bridge.service.supervisors[self.device]
        snapshot = await self.bridge.service.call(supervisor.snapshot)  # read on the service loop
        self._published_link = snapshot["connected"]
        online = b"online" if self._published_link else b"offline"
        await client.publish(self.availability_topic, online, qos=1, retain=True)
        await client.publish(self.bridge.topic(self.device, "state"), json.dumps(snapshot, default=str).encode(),
                             qos=1, retain=True)

    async def serve(self, client: aiomqtt.Client) -> None:
        supervisor = self.bridge.service.supervisors[self.device]
        last_link = self._published_link  # what the broker holds, not what the link is now
        while True:
            try:
                topic, payload, retain = await asyncio.wait_for(self.queue.get(), 1.0)
                await client.publish(topic, payload, qos=1 if retain else 0, retain=retain)
                self.bridge.published += 1
            except TimeoutError:
                pass
            if supervisor.status.connected != last_link:
                last_link = supervisor.status.connected
                await client.publish(self.availability_topic, b"online" if last_link else b"offline", qos=1, retain=True)


class _Control(_Connection):
    """The service: its availability and status, and the command topic."""

    def __init__(self, bridge: MqttBridge) -> None:
        super().__init__(bridge, f"devicectl-{bridge.config.site}-service", bridge.topic("service", "availability"))

    async def on_connected(self, client: aiomqtt.Client) -> None:
        await client.publish(self.availability_topic, b"online", qos=1, retain=True)
        await client.publish(self.bridge.topic("service", "status"), json.dumps(await self.status()).encode(), qos=1,
                             retain=True)
        await self.publish_checkpoint()
        # one command topic per MQTT user: the broker's ACL lets each user write only its own, so
        # the topic names who sent the command (MQTT itself does not tell a subscriber)
        await client.subscribe(self.bridge.topic("service", "command", "+"), qos=1)

    async def publish_checkpoint(self) -> None:
        checkpoint, client = self.bridge.checkpoint, self.client
        if checkpoint is None or client is None or not self.connected:
            return  # published at the next connection
        with contextlib.suppress(aiomqtt.MqttError):
            await client.publish(self.bridge.topic("audit", "checkpoint"), json.dumps(checkpoint).encode(), qos=1,
                                 retain=True)

    def reply_root(self, user: str) -> str:
        return f"{self.bridge.config.prefix}/reply/{user}/"

    async def status(self) -> dict[str, Any]:
        service = self.bridge.service
        return {"service": "devicectl", "at": time.time(), "devices": await service.call(service.devices),
                "mqtt": self.bridge.stats()}

    async def serve(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            user = str(message.topic).rsplit("/", 1)[-1]
            reply = await self.handle(message.payload, user)
            props = message.properties
            response_topic = getattr(props, "ResponseTopic", None) if props else None
            if not response_topic:
                continue
            if not response_topic.startswith(self.reply_root(user)):
                # replies go only where that user may read them (the ACL), never to a topic of
                # the requester's choosing such as another device's availability
                log.warning("mqtt: %s asked for a reply on %r; replies go to %s#", user, response_topic, self.reply_root(user))
                # queued to the store's writer from this loop, awaited until committed
                await self.bridge.service.audit.append(f"mqtt:{user}", "mqtt.reply.refused", topic=response_topic[:200])
                continue
            out = Properties(PacketTypes.PUBLISH)
            correlation = getattr(props, "CorrelationData", None)
            if correlation is not None:
                out.CorrelationData = correlation
            await client.publish(response_topic, json.dumps(reply, default=str).encode(), qos=1, properties=out)

    async def handle(self, payload: Any, user: str = "unknown") -> dict[str, Any]:
        try:
            request = json.loads(payload)
            if not isinstance(request, dict):
                raise TypeError("a command is a JSON object")
            command = request.get("command")
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            return {"ok": False, "error": f"not a command: {exc}"}
        service = self.bridge.service
        if command == "stop":
            device = request.get("device")
            if device is not None and device not in service.supervisors:
                # STOP is always accepted: an unknown name stops every device rather than none
                device = None
            names = [device] if device else list(service.supervisors)
            answer: dict[str, Any] = await service.run(self._stop(names, user))
            return answer  # decided on the service loop, with the devices
        if command == "status":
            return {"ok": True, "status": await self.status()}
        if command in ("arm", "ready", "freeze", "fire", "start"):
            return {"ok": False, "error": "arming and treatment need an authenticated session at the service; MQTT can only stop"}
        return {"ok": False, "error": f"unknown command {command!r}; known: status, stop"}

    async def _stop(self, names: list[str], user: str) -> dict[str, Any]:
        service = self.bridge.service
        results = await asyncio.gather(*[service.supervisors[name].stop_and_confirm(f"mqtt by {user}") for name in names])
        stopped = [name for name, ok in zip(names, results) if ok]
        unconfirmed = [name for name, ok in zip(names, results) if not ok]
        await service.audit.append(f"mqtt:{user}", "stop", origin="mqtt", devices=names, confirmed=stopped, unconfirmed=unconfirmed)
        return {"ok": not unconfirmed, "stopped": stopped, "unconfirmed": unconfirmed}
