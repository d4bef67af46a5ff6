"""Run the service (and, with --simulate, the simulated bench as a separate process).

The bench runs in its own process so that the service can die (even by kill -9) while the
devices live on: they then fall to their safe state by their own watchdogs, as real units do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import uvicorn

from devicectl.core import heap, loopguard
from devicectl.core.audit import AuditKeyError
from devicectl.core.config import DeviceConfig, MqttConfig, Settings
from devicectl.core.loops import LoopThread, ask_realtime
from devicectl.core.procs import PortTaken, die_with_parent, require_free_port
from devicectl.core.service import Service
from devicectl.mqtt import broker
from devicectl.web.api import create_app
from devicectl.web.tls import StrictTransportSecurity


def start_bench(data_dir: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    link_dir = (data_dir / "sim").resolve()
    proc = subprocess.Popen(
        [sys.executable, "-m", "devicectl.cli", "sim", "bench", "--json", "--link-dir", str(link_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
        preexec_fn=die_with_parent,  # noqa: PLW1509 (one prctl call through ctypes)  # the simulated bench dies with the service, even by kill -9
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError("the simulated bench did not start")
    addresses = json.loads(line)
    return proc, addresses


def simulated_settings(settings: Settings, addresses: dict[str, str]) -> Settings:
    link_dir = (settings.data_dir / "sim").resolve()
    return settings.model_copy(update={
        "devices": [
            DeviceConfig(name="laser", type="laser", port=str(link_dir / "laser")),
            DeviceConfig(name="cryo", type="cryo", port=str(link_dir / "cryo")),
        ],
        "meter": addresses["meter"],
        "thermometer": addresses["thermometer"],
    })


def seed_factory_calibrations(service: Service, addresses: dict[str, str]) -> None:
    """A simulated unit ships, like a real one, with its factory calibration record."""
    known = {row["device_serial"] for row in service.calibrations()}
    for kind in ("laser", "cryo"):
        serial = addresses[f"{kind}_serial"]
        if serial not in known:
            service.record_calibration(None, serial, kind, True, {"source": "factory (simulated unit)", "monitor_correction": 1.0})


def start_local_broker(settings: Settings) -> tuple[subprocess.Popen[bytes] | None, Settings, str]:
    """With Mosquitto installed, run it with the shipped config under data/mqtt/; else say so."""
    if settings.mqtt is not None:
        return None, settings, f"MQTT broker: {settings.mqtt.host}:{settings.mqtt.port} (configured)"
    if broker.mosquitto_binary() is None:
        return None, settings, "MQTT: mosquitto is not installed, running without MQTT"
    directory = settings.data_dir / "mqtt"
    port = settings.local_broker_port  # taken: an error naming it (checked before anything started)
    passwords = broker.write_config(directory, port)
    proc = broker.start_broker(directory, port)
    mqtt = MqttConfig(port=port, username="service", password_file=directory / "service.password")
    note = f"MQTT broker: mosquitto on 127.0.0.1:{port} with deploy/mosquitto (users in {directory / 'passwd'})"
    if passwords:
        note += f"\n  MQTT passwords (shown once): monitor {passwords['monitor']}, operator {passwords['operator']}"
    return proc, settings.model_copy(update={"mqtt": mqtt}), note


async def _warm_up(asgi: Any) -> None:
    """Serve a few requests in process before the first screen connects: the static files, a JSON
    answer, a refusal and the worker threads behind them import and start what they need once, at
    start-up, never on the loop during a treatment."""
    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://127.0.0.1") as client:
        for path in ("/", "/app.js", "/app.css", "/api/health", "/api/devices", "/api/clinic"):
            with contextlib.suppress(Exception):
                await client.get(path)


def guard_loop(settings: Settings) -> loopguard.Guard | None:
    """Other threads hand the GIL back within 0.05 ms (``SWITCH_INTERVAL_S``); with ``slow_callback_ms`` (tests),
    every callback of the loop over it is reported on stderr and in DATA_DIR/slow-callbacks.log."""
    sys.setswitchinterval(loopguard.SWITCH_INTERVAL_S)
    if settings.slow_callback_ms is None:
        return None
    log_path = settings.data_dir / "slow-callbacks.log"

    def report(what: str, seconds: float) -> None:
        line = f"slow callback on the event loop: {seconds * 1000:.1f} ms: {what}"
        print(f"devicectl: {line}", file=sys.stderr, flush=True)
        with log_path.open("a") as out:
            out.write(line + "\n")

    return loopguard.install(settings.slow_callback_ms / 1000, report, threading.get_ident())


def _shut_down(server: uvicorn.Server) -> None:
    """Ctrl-C or SIGTERM: the HTTP server finishes its requests, then the service stops the devices."""
    server.should_exit = True


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the service as Ctrl-C does: devices stopped, children ended


def run_service(settings: Settings, simulate: bool) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    bench: subprocess.Popen[str] | None = None
    mosquitto: subprocess.Popen[bytes] | None = None
    addresses: dict[str, Any] = {}
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        if simulate:
            try:
                require_free_port(settings.http_port, "the service's HTTP port", "http_port (--port)", settings.http_host)
                if settings.mqtt is None and broker.mosquitto_binary() is not None:
                    require_free_port(settings.local_broker_port, "the simulated bench's MQTT broker",
                                      "local_broker_port")
            except PortTaken as exc:
                print(f"devicectl: {exc}", file=sys.stderr, flush=True)
                return 2
            bench, addresses = start_bench(settings.data_dir)
            settings = simulated_settings(settings, addresses)
            mosquitto, settings, note = start_local_broker(settings)
            addresses["mqtt_note"] = note
        return asyncio.run(_serve(settings, addresses))
    except AuditKeyError as exc:  # before any device is started
        print(f"devicectl: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:  # uvicorn shut down gracefully, then re-raised Ctrl-C: a normal stop
        return 0
    finally:
        if bench is not None:
            bench.send_signal(signal.SIGTERM)
            bench.wait(timeout=10)
        if mosquitto is not None:
            mosquitto.terminate()
            mosquitto.wait(timeout=10)


async def _serve(settings: Settings, addresses: dict[str, Any]) -> int:
    service = Service(settings)  # opens (and migrates) the database before the loop carries anything
    # the app (its routes and OpenAPI schema) and the HTTP server's modules (tenths of a second of
    # CPU) are built and loaded before the devices start: nothing long on the loop while they link up
    app = create_app(service, manage_lifecycle=False)
    if addresses:  # the simulator panel: only against the simulated bench
        from devicectl.web.sim_panel import install as install_sim_panel

        install_sim_panel(app, service, addresses)
    tls = settings.tls_cert is not None
    asgi: Any = StrictTransportSecurity(app) if tls else app
    config = uvicorn.Config(asgi, host=settings.http_host, port=settings.http_port, log_level="warning", lifespan="off",
                            ssl_certfile=str(settings.tls_cert) if tls else None,
                            ssl_keyfile=str(settings.tls_key) if tls else None)
    server = uvicorn.Server(config)
    config.load()
    # the people's side (HTTP, WebSocket, MQTT) on a loop of its own; this loop carries the devices (H26)
    edge = LoopThread("devicectl-edge").start()
    try:
        return await _serve_on(service, server, edge, asgi, settings, addresses)
    finally:
        edge.stop()


async def _serve_on(service: Service, server: uvicorn.Server, edge: LoopThread, asgi: Any, settings: Settings,
                    addresses: dict[str, Any]) -> int:
    await service.start(edge.loop)
    if addresses:
        await asyncio.to_thread(seed_factory_calibrations, service, addresses)
    serving = asyncio.ensure_future(edge.run(server.serve()))
    while not server.started and not serving.done():
        await asyncio.sleep(0.02)
    if serving.done():  # the HTTP port could not be opened: uvicorn said why
        await service.stop()
        await serving
        return 1
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):  # uvicorn, off the main thread, does not hear them
        loop.add_signal_handler(signum, _shut_down, server)
    await _warm_up(asgi)
    heap.settle()  # start-up's objects out of the collector's walk (H26)
    guard_loop(settings)  # from now on (start-up imports its modules once, before any session can run)
    service.realtime = realtime = ask_realtime(settings.realtime_priority)
    if realtime is not None:
        await service.audit.append("system", "service.realtime_priority", priority=realtime.priority,
                                   granted=realtime.granted, refused=realtime.refused)
    tls = settings.tls_cert is not None
    url = f"{'https' if tls else 'http'}://{settings.http_host}:{settings.http_port}"
    print(f"devicectl service on {url}  (data in {settings.data_dir.resolve()})", flush=True)
    for device in settings.devices:
        print(f"  device {device.name}: {device.type} on {device.port}", flush=True)
    if addresses:
        print(f"  simulated bench: meter {addresses['meter']}, thermometer {addresses['thermometer']}", flush=True)
        print(f"  simulator backdoors: laser {addresses.get('laser_backdoor')}, cryo {addresses.get('cryo_backdoor')}", flush=True)
        print(f"  {addresses['mqtt_note']}", flush=True)
    if realtime is not None:
        print(f"  {realtime.note}", flush=True)
    if service.interrupted:
        print(f"  sessions interrupted by the last stop: {service.interrupted}", flush=True)
    if service.first_admin_pin:
        print(f"  first run: log in as 'admin' with the one-time PIN {service.first_admin_pin} (change it at once)", flush=True)
    else:
        print("  log in with your user name and PIN", flush=True)
    try:
        await serving
    finally:
        await service.stop()
    return 0
